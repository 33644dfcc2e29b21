"""Benchmark: each engine's fixed cost and marginal cost per million trips, from one synthetic month at two sizes.

Engines: `postgres` (the embedded server), `spark` (local mode, dbt's own session), `spark-cluster` (a standalone
master and worker and a Thrift server started from the wheel on this machine, dbt through the Thrift server, the
metastore in PostgreSQL: needs a server over TCP, --database-url). Each (engine, size) runs in its own child process
with its own data folder, so no JVM or warm cache carries over.

From the two sizes (m1, m2 million trips in all, t1, t2 seconds): marginal = (t2 - t1) / (m2 - m1) seconds per million
trips, fixed = t1 - marginal * m1 seconds (JVM starts, dbt's parse and connection, per-run work). PostgreSQL, measured
in the same run, is the reference. `--real` measures one real-size month (3M yellow + 20M HVFHV) instead, on the
engines given.

    python bench/engines.py                                  # 1M and 4M trips per kind, all three engines (heavy)
    python bench/engines.py --rows 20000 50000               # a quick look at the shape
    python bench/engines.py --real --engines postgres spark-cluster
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fares.config.settings import Settings
    from fares.config.warehouse import Warehouse

STAGES = ("ingest", "transform", "validate", "train")
MONTH = "2024-03"
ENGINES = ("postgres", "spark", "spark-cluster")
SYSTEM_SERVER = "postgresql://postgres@127.0.0.1:5432/test"


def run_child(engine: str, yellow: int, fhvhv: int, work: Path, database_url: str) -> dict[str, float]:
    """In this process: write the month, run each stage on `engine`, return seconds per stage."""
    # bench/chain.py by its path from the repo root: a bare `chain` would be the production package fares.chain's
    # folder to mypy (run from the repo root), not the benchmark beside this file
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.chain import write_month
    from fares.config.settings import Settings
    from fares.config.warehouse import drop_database, ensure_database, parse_database_url
    from fares.ingestion.synthetic import write_zone_lookup, write_zone_shapes
    from fares.ops.schema import prepare_warehouse

    mirror = work / "mirror" / "trip-data"
    mirror.mkdir(parents=True, exist_ok=True)
    write_month(mirror, "yellow", MONTH, yellow)
    write_month(mirror, "fhvhv", MONTH, fhvhv)
    write_zone_lookup(work / "mirror")
    write_zone_shapes(work / "mirror", 42)
    data_dir = work / f"data-{engine}"
    if engine != "spark-cluster":
        settings = Settings(database_url=None, data_dir=data_dir, db_name="bench_engines", engine=engine)
        return _stages(settings, prepare_warehouse(settings), work)

    from fares.engines.spark_cluster import free_port, local_cluster, loopback_settings

    server = parse_database_url(database_url)
    db = ensure_database(server, f"bench_engines_{int(time.time())}")
    settings = loopback_settings(db.url(), data_dir, executor_memory="3g")
    try:
        started = time.perf_counter()
        with local_cluster(settings, work / "cluster-logs", free_port(), cores=2, memory="8g"):
            up = time.perf_counter() - started
            times = _stages(settings, prepare_warehouse(settings), work)
        return {"cluster_start": up, **times}
    finally:
        drop_database(server, db.dbname)


def _stages(settings: Settings, wh: Warehouse, work: Path) -> dict[str, float]:
    from fares.chain import stages

    steps: dict[str, Callable[[], object]] = {
        "ingest": lambda: stages.run_ingest(settings, wh, source=str(work / "mirror"), months=[MONTH]),
        "transform": lambda: stages.run_transform(settings, wh),
        "validate": lambda: stages.run_validate(settings, wh),
        "train": lambda: stages.run_train(settings, wh),
    }
    times: dict[str, float] = {}
    for stage in STAGES:
        started = time.perf_counter()
        steps[stage]()
        times[stage] = time.perf_counter() - started
    return times


def _measure(engine: str, yellow: int, fhvhv: int, work: Path, database_url: str) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", engine, str(yellow), str(fhvhv), str(work), database_url]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{engine} at {yellow:,}+{fhvhv:,} rows failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _total(times: dict[str, float]) -> float:
    return sum(v for k, v in times.items() if k in STAGES)


def main() -> int:
    """Measure every engine at both sizes (or at real size) and print fixed and marginal costs."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs=2, default=[1_000_000, 4_000_000], help="two sizes, trips per kind")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--real", action="store_true", help="one real-size month: 3M yellow + 20M HVFHV trips")
    parser.add_argument("--database-url", default=SYSTEM_SERVER, help="a TCP server for spark-cluster's metastore")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        engine, yellow, fhvhv, work, url = args.child
        print(json.dumps(run_child(engine, int(yellow), int(fhvhv), Path(work), url)))
        return 0
    sizes = [(3_000_000, 20_000_000)] if args.real else [(r, r) for r in sorted(args.rows)]
    results: dict[tuple[str, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_engines_") as tmp:
        for yellow, fhvhv in sizes:
            for engine in args.engines:
                print(f"{engine}: {yellow:,} yellow + {fhvhv:,} HVFHV trips ...", flush=True)
                work = Path(tmp) / f"{engine}-{yellow}"
                results[(engine, yellow)] = _measure(engine, yellow, fhvhv, work, args.database_url)
                print(f"  {json.dumps({k: round(v, 1) for k, v in results[(engine, yellow)].items()})}", flush=True)
    print()
    if args.real:
        yellow, fhvhv = sizes[0]
        print(f"seconds per stage, one real-size month ({yellow:,} yellow + {fhvhv:,} HVFHV trips)")
        print(f"{'stage':<14}" + "".join(f"{e:>16}" for e in args.engines))
        for stage in ["cluster_start", *STAGES, "total"]:
            cells = [
                _total(t) if stage == "total" else t.get(stage) for t in (results[(e, yellow)] for e in args.engines)
            ]
            print(f"{stage:<14}" + "".join(f"{'-' if v is None else f'{v:.1f}':>16}" for v in cells))
        ref = _total(results[(args.engines[0], yellow)])
        for engine in args.engines[1:]:
            print(f"{engine} / {args.engines[0]}: {_total(results[(engine, yellow)]) / ref:.2f}x")
        return 0
    (small, _), (large, _) = sizes
    m1, m2 = 2 * small / 1e6, 2 * large / 1e6  # million trips in all (both kinds)
    print(f"fixed cost (s) and marginal cost (s per million trips), from {m1:g}M and {m2:g}M trips in one month")
    print(f"{'stage':<12}" + "".join(f"{e + ' fixed':>22}{e + ' per M':>22}" for e in args.engines))
    for stage in [*STAGES, "total"]:
        line = f"{stage:<12}"
        for engine in args.engines:
            a, b = results[(engine, small)], results[(engine, large)]
            t1, t2 = (_total(a), _total(b)) if stage == "total" else (a[stage], b[stage])
            marginal = (t2 - t1) / (m2 - m1)
            line += f"{t1 - marginal * m1:>22.1f}{marginal:>22.1f}"
        print(line)
    if "postgres" in args.engines:
        base = results[("postgres", large)]
        for engine in args.engines:
            if engine != "postgres":
                ratio = _total(results[(engine, large)]) / _total(base)
                print(f"{engine} / postgres at {m2:g}M trips: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
