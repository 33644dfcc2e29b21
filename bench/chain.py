"""Benchmark: the whole chain on real-size months (3M yellow + 20M HVFHV each), then a second month on top.

Each stage runs in its own child process, so its time and peak memory (the child and what it waited for, dbt
included) are its own; beside it, the database server's memory is sampled while the stage runs (the proportional set
size of the embedded PostgreSQL's processes, so the shared buffers count once), and the stage's peak plus the server's
is the chain's memory on the machine. The database size is read after each month. The reference is the first month,
measured in the same run: the second month's figure / the first's is the nightly cost growth with history
(target <= 1.1x).

    python bench/chain.py                                  # real size: 3M + 20M rows per month, two months
    python bench/chain.py --yellow 200000 --fhvhv 1000000  # a quick look at the shape
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

CHUNK = 1_000_000
STAGES = ("ingest", "transform", "validate", "train")
# issue 25's targets for one real-size month on this 2-core machine (ratio: a later month / the first)
TARGETS = {"whole_s": 480, "transform_s": 270, "validate_s": 45, "db_gb": 10.0, "train_peak_gb": 4.0, "ratio": 1.1}


def write_month(dest: Path, kind: str, month: str, rows: int) -> Path:
    """A synthetic TLC file of `rows` trips, generated in chunks so even 20M rows never sit in memory at once."""
    import pyarrow.parquet as pq

    from fares.ingestion.synthetic_trips import make_fhvhv_month, make_yellow_month

    path = dest / f"{kind}_tripdata_{month}.parquet"
    stamp = path.with_name(f".{path.name}.{rows}")
    if path.exists() and stamp.exists():
        return path
    make = make_yellow_month if kind == "yellow" else make_fhvhv_month
    tmp = path.with_name(f".{path.name}.part")
    writer = None
    for i, start in enumerate(range(0, rows, CHUNK)):
        table = make(month, min(CHUNK, rows - start), seed=7919 * (i + 1))
        writer = writer or pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table, row_group_size=250_000)
    assert writer is not None
    writer.close()
    tmp.replace(path)
    stamp.touch()
    return path


def duckdb_reference(source: Path, month: str, threads: int = 2) -> dict[str, float]:
    """The transform's core work on one month, done by DuckDB straight from the parquet files: the basic cleaning
    rules (macros/outlier_rules.sql), the fare-per-mile fences per service, then per service, zone pair and pickup
    hour the trips and the medians of fare, distance and duration. The single-machine reference for `dbt build`."""
    import duckdb  # a bench-only dependency: pip install '.[bench]'
    import pyarrow.parquet as pq

    from fares.quality.suites import check_month

    yellow, fhvhv = (source / f"{kind}_tripdata_{month}.parquet" for kind in ("yellow", "fhvhv"))
    cbd = "+ coalesce(cbd_congestion_fee, 0)" if "cbd_congestion_fee" in pq.read_schema(fhvhv).names else ""
    start = f"{check_month(month)}-01"
    sql = f"""
    create or replace table pair_hours as
    with trips as (
        select 'taxi' as service, tpep_pickup_datetime as pickup_at, tpep_dropoff_datetime as dropoff_at,
            PULocationID as pu, DOLocationID as dz, trip_distance as miles,
            round(total_amount - coalesce(tip_amount, 0), 2) as fare, cast(RatecodeID as integer) as rate_code,
            payment_type, false as is_shared, false as is_aar
        from read_parquet('{yellow}')
        union all
        select case hvfhs_license_num when 'HV0003' then 'uber' when 'HV0005' then 'lyft' when 'HV0004' then 'via'
                   when 'HV0002' then 'juno' else 'unknown' end,
            pickup_datetime, dropoff_datetime, PULocationID, DOLocationID, trip_miles,
            round(base_passenger_fare + coalesce(tolls, 0) + coalesce(bcf, 0) + coalesce(sales_tax, 0)
                  + coalesce(congestion_surcharge, 0) + coalesce(airport_fee, 0) {cbd}, 2),
            null, null, coalesce(shared_request_flag = 'Y' or shared_match_flag = 'Y', false),
            coalesce(access_a_ride_flag = 'Y', false)
        from read_parquet('{fhvhv}')
    ),
    measured as (
        select *, epoch(dropoff_at - pickup_at) / 60.0 as minutes from trips
    ),
    simple as (
        select * from measured
        where pickup_at >= timestamp '{start}' and pickup_at < timestamp '{start}' + interval 1 month
            and pu between 1 and 263 and dz between 1 and 263
            and (service <> 'taxi' or (rate_code in (1, 2, 3) and coalesce(payment_type, 0) not in (3, 4, 6)))
            and not is_shared and not is_aar and fare > 0 and fare <= 500 and miles > 0 and miles <= 100
            and minutes >= 1 and minutes <= 180 and miles / (minutes / 60.0) <= 80
    ),
    quartiles as (
        select service, quantile_cont(ln(fare / miles), 0.25) as p25, quantile_cont(ln(fare / miles), 0.75) as p75
        from simple group by service
    ),
    kept as (
        select simple.* from simple join quartiles using (service)
        where ln(fare / miles) between p25 - 3 * greatest(p75 - p25, 0.1) and p75 + 3 * greatest(p75 - p25, 0.1)
    )
    select service, pu, dz, hour(pickup_at) as pickup_hour, count(*) as trips, median(fare) as median_fare,
        median(miles) as median_miles, median(minutes) as median_minutes
    from kept group by all
    """  # noqa: S608 - our own file paths and a checked month
    con = duckdb.connect()
    con.execute(f"set threads = {threads}")
    con.execute("set enable_progress_bar = false")
    began = time.perf_counter()
    con.execute(sql)
    seconds = time.perf_counter() - began
    rows, trips = con.execute("select count(*), sum(trips) from pair_hours").fetchone() or (0, 0)
    return {"s": seconds, "rows": float(rows), "kept_trips": float(trips or 0)}


def _reference(source: Path, month: str) -> dict[str, float] | None:
    """duckdb_reference in a child process: its memory must not count in the later stages' peaks (a child's
    ru_maxrss starts from its parent's)."""
    try:
        import duckdb  # noqa: F401 - only whether it is installed
    except ImportError:
        print("  reference: DuckDB is not installed (pip install '.[bench]'): no reference", flush=True)
        return None
    cmd = [sys.executable, __file__, "--reference", month, "--source", str(source)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"DuckDB reference failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def slowest_nodes(run_results: Path, n: int = 10) -> list[tuple[str, float]]:
    """The `n` slowest nodes of a dbt invocation (its run_results.json): (name, seconds), slowest first."""
    results = json.loads(run_results.read_text())["results"]
    timed = [(r["unique_id"].split(".", 2)[-1], float(r["execution_time"])) for r in results]
    return sorted(timed, key=lambda x: -x[1])[:n]


def _settings(data_dir: Path):  # noqa: ANN202 - Settings, imported lazily
    from fares.config.settings import get_settings

    return get_settings().model_copy(update={"data_dir": data_dir, "db_name": "bench_chain", "sample": None})


def run_stage(stage: str, data_dir: Path, source: Path, month: str) -> None:
    """One stage of the chain for `month`, in this process (called in a child by `_measure`)."""
    from fares.chain import stages
    from fares.ops.schema import prepare_warehouse

    settings = _settings(data_dir)
    wh = prepare_warehouse(settings)
    if stage == "ingest":
        stages.run_ingest(settings, wh, source=str(source), months=[month])
    elif stage == "transform":
        stages.run_transform(settings, wh)
    elif stage == "validate":
        stages.run_validate(settings, wh)
    elif stage == "train":
        outcome = stages.run_train(settings, wh)
        stages.run_publish(settings, outcome)
        print(json.dumps({"n_train": outcome.metrics.get("n_train"), "mae": outcome.metrics.get("model_mae")}))


def _server_pids(pid_file: Path) -> list[int]:
    """The embedded PostgreSQL's postmaster (its pid file's first line) and every process it started."""
    try:
        postmaster = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    pids = [postmaster]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone since the listing
        if fields and int(fields[1]) == postmaster:  # after "pid (comm)": state, ppid
            pids.append(int(stat.parent.name))
    return pids


def _pss_mb(pids: list[int]) -> float:
    """The summed proportional set size of `pids` (a page shared by n of them counts 1/n to each), MB."""
    total_kb = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
                    break
        except (OSError, ValueError):
            continue  # exited, or not ours to read
    return total_kb / 1024


class ServerMemory(threading.Thread):
    """Samples the database server's memory (`_pss_mb` of `_server_pids`) every `every` s until stopped; `peak_mb`."""

    def __init__(self, data_dir: Path, every: float = 0.5) -> None:
        from fares.config.warehouse import _pg_dir  # the embedded server's folder, as the warehouse lays it out

        super().__init__(daemon=True)
        self.pid_file, self.every, self.peak_mb = _pg_dir(_settings(data_dir)) / "postmaster.pid", every, 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak_mb = max(self.peak_mb, _pss_mb(_server_pids(self.pid_file)))
            self._halt.wait(self.every)

    def stop(self) -> float:
        self._halt.set()
        self.join()
        return self.peak_mb


def _measure(stage: str, data_dir: Path, source: Path, month: str) -> dict[str, float]:
    started = time.perf_counter()
    cmd = [sys.executable, __file__, "--stage", stage, "--data-dir", str(data_dir), "--source", str(source)]
    server = ServerMemory(data_dir)
    server.start()
    try:
        proc = subprocess.run([*cmd, "--month", month], capture_output=True, text=True, check=False)
    finally:
        server_mb = server.stop()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{stage} {month} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    peak = json.loads(proc.stdout.strip().splitlines()[-1])["peak_mb"]
    extra = [line for line in proc.stdout.splitlines() if line.startswith("{") and "n_train" in line]
    if extra:
        print(f"    train: {extra[-1]}", flush=True)
    return {"s": seconds, "peak_mb": peak, "server_mb": server_mb}


def _db_bytes(data_dir: Path) -> int:
    from fares.config.warehouse import get_warehouse, scalar

    with get_warehouse(_settings(data_dir)).connect() as conn:
        return int(scalar(conn, "select pg_database_size(current_database())"))


def _reset(data_dir: Path) -> None:
    import shutil

    from fares.ops.schema import prepare_warehouse

    wh = prepare_warehouse(_settings(data_dir))
    with wh.connect(autocommit=True) as conn:
        for schema in ("raw", "staging", "intermediate", "marts", "ops", "fares_ingest"):
            conn.execute(f"drop schema if exists {schema} cascade")
    shutil.rmtree(data_dir / "models", ignore_errors=True)
    shutil.rmtree(data_dir / "dlt", ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--yellow", type=int, default=3_000_000, help="yellow trips per month")
    parser.add_argument("--fhvhv", type=int, default=20_000_000, help="HVFHV trips per month")
    parser.add_argument("--months", default="2024-01,2024-02", help="comma-separated months, loaded one per round")
    parser.add_argument("--data-dir", type=Path, default=Path(".data/bench-chain"))
    parser.add_argument("--source", type=Path, default=None, help="mirror folder (default DATA_DIR/mirror)")
    parser.add_argument("--no-duckdb", action="store_true", help="skip the DuckDB reference (needs '.[bench]')")
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    parser.add_argument("--month", help=argparse.SUPPRESS)
    args = parser.parse_args()
    data_dir = args.data_dir.resolve()
    source = (args.source or data_dir / "mirror").resolve()
    if args.reference:  # a child: the DuckDB reference for one month
        print(json.dumps(duckdb_reference(source, args.reference)))
        return 0
    if args.stage:  # a child: run one stage and report its peak memory
        run_stage(args.stage, data_dir, source, args.month)
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(json.dumps({"peak_mb": max(own, kids) / 1024}))
        return 0

    from fares.ingestion.synthetic import write_zone_lookup, write_zone_shapes

    months = args.months.split(",")
    source.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    write_zone_lookup(source), write_zone_shapes(source)
    for month in months:
        write_month(source, "yellow", month, args.yellow)
        write_month(source, "fhvhv", month, args.fhvhv)
    print(
        f"mirror: {len(months)} month(s) of {args.yellow:,} yellow + {args.fhvhv:,} HVFHV trips in {source} "
        f"({time.perf_counter() - t0:.0f} s to write)",
        flush=True,
    )
    _reset(data_dir)
    rounds: list[dict[str, Any]] = []
    for month in months:
        print(f"== month {month} (history: {len(rounds)} month(s) before it)", flush=True)
        figures: dict[str, dict[str, Any]] = {}
        for stage in STAGES:
            figures[stage] = _measure(stage, data_dir, source, month)
            print(
                f"  {stage:<10} {figures[stage]['s']:8.1f} s   peak {figures[stage]['peak_mb']:8.0f} MB"
                f"   database server {figures[stage]['server_mb']:6.0f} MB",
                flush=True,
            )
            if stage == "transform":
                nodes = slowest_nodes(data_dir / "dbt" / "target" / "run_results.json")
                print("    the 10 slowest dbt nodes: " + ", ".join(f"{n} {t:.1f} s" for n, t in nodes), flush=True)
                figures["slowest_nodes"] = {"s": sum(t for _, t in nodes), "peak_mb": 0.0, "nodes": nodes}
                # right after the transform, so both see the same machine
                ref = _reference(source, month) if not args.no_duckdb else None
                if ref is not None:
                    figures["duckdb"] = {"s": ref["s"], "peak_mb": 0.0}
                    print(
                        "    reference: DuckDB, the same core work from the month's parquet files (cleaning, fences,"
                        f" zone pair x hour medians; {ref['kept_trips']:,.0f} kept trips, {ref['rows']:,.0f} cells,"
                        f" 2 threads): {ref['s']:.1f} s; transform / DuckDB = "
                        f"{figures['transform']['s'] / ref['s']:.1f}x",
                        flush=True,
                    )
        figures["whole"] = {"s": sum(figures[stage]["s"] for stage in STAGES), "peak_mb": 0.0}
        figures["db_gb"] = {"s": _db_bytes(data_dir) / 1e9, "peak_mb": 0.0}
        print(
            f"  {'whole run':<10} {figures['whole']['s']:8.1f} s   database {figures['db_gb']['s']:.2f} GB", flush=True
        )
        rounds.append(figures)
    first = rounds[0]
    print(f"\nchain, {args.yellow:,} yellow + {args.fhvhv:,} HVFHV trips per month (real size: 3M + 20M)")
    print(
        f"first month: whole run {first['whole']['s']:.0f} s (target < {TARGETS['whole_s']} s), transform "
        f"{first['transform']['s']:.0f} s (target < {TARGETS['transform_s']} s), validate "
        f"{first['validate']['s']:.0f} s (target < {TARGETS['validate_s']} s), database "
        f"{first['db_gb']['s']:.2f} GB (target < {TARGETS['db_gb']} GB)"
    )
    # each stage's own peak plus the server's peak during it: an upper bound, the two need not peak at once
    for n, figures in enumerate(rounds, start=1):
        stage, mb = max(((st, figures[st]["peak_mb"] + figures[st]["server_mb"]) for st in STAGES), key=lambda x: x[1])
        print(
            f"month {n}: highest memory, a stage with the database server beside it: {mb / 1024:.2f} GB ({stage}: "
            f"{figures[stage]['peak_mb']:.0f} MB + server {figures[stage]['server_mb']:.0f} MB; target < "
            f"{TARGETS['train_peak_gb']} GB)"
        )
    for later in rounds[1:]:
        print(f"second month / first month (target <= {TARGETS['ratio']}x):")
        for stage in (*STAGES, "whole"):
            print(
                f"  {stage:<10} {later[stage]['s']:8.1f} s / {first[stage]['s']:8.1f} s = "
                f"{later[stage]['s'] / first[stage]['s']:.2f}x"
            )
        print(
            f"  train peak memory with {len(rounds)} months loaded: {later['train']['peak_mb'] / 1024:.2f} GB "
            f"(target < {TARGETS['train_peak_gb']} GB); database {later['db_gb']['s']:.2f} GB"
        )
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / "chain.json").write_text(
        json.dumps({"yellow": args.yellow, "fhvhv": args.fhvhv, "rounds": rounds}, indent=1)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
