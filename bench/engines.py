"""Benchmark: the same synthetic month on PostgreSQL and on Spark, time per stage side by side, at two sizes.

Each (engine, size) runs in its own child process with its own data folder (embedded PostgreSQL for the ops tables,
and on PostgreSQL for the data too), so a JVM or a warm cache never carries over. The reference is the smaller
size measured in the same run: the growth column is (larger size's time) / (smaller size's time) per engine and stage.
On 2 cores Spark is expected to be slower; the point is that it runs, and how its time grows compared with PostgreSQL's.

    python bench/engines.py                          # 1M and 4M rows per kind (heavy: run on a quiet machine)
    python bench/engines.py --rows 20000 50000       # a quick look at the shape (minutes, mostly JVM and dbt)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("ingest", "transform", "validate", "train")
MONTH = "2024-03"


def run_child(engine: str, rows: int, work: Path) -> dict[str, float]:
    """In this process: write the month, run each stage on `engine`, return seconds per stage."""
    # bench/chain.py by its path from the repo root: a bare `chain` would be the production package fares.chain's
    # folder to mypy (run from the repo root), not the benchmark beside this file
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.chain import write_month
    from fares.chain import stages
    from fares.config.settings import Settings
    from fares.ops.schema import prepare_warehouse

    mirror = work / "mirror" / "trip-data"
    mirror.mkdir(parents=True, exist_ok=True)
    for kind in ("yellow", "fhvhv"):
        write_month(mirror, kind, MONTH, rows)
    from fares.ingestion.synthetic import write_zone_lookup, write_zone_shapes

    write_zone_lookup(work / "mirror")
    write_zone_shapes(work / "mirror", 42)
    settings = Settings(database_url=None, data_dir=work / f"data-{engine}", db_name="bench_engines", engine=engine)
    wh = prepare_warehouse(settings)
    times: dict[str, float] = {}
    if engine == "spark":
        from fares.engines.spark_session import get_spark

        started = time.perf_counter()
        get_spark(settings)
        times["spark_start"] = time.perf_counter() - started
    steps = {
        "ingest": lambda: stages.run_ingest(settings, wh, source=str(work / "mirror"), months=[MONTH]),
        "transform": lambda: stages.run_transform(settings, wh),
        "validate": lambda: stages.run_validate(settings, wh),
        "train": lambda: stages.run_train(settings, wh),
    }
    for stage in STAGES:
        started = time.perf_counter()
        steps[stage]()
        times[stage] = time.perf_counter() - started
    return times


def _measure(engine: str, rows: int, work: Path) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", engine, str(rows), str(work)]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{engine} at {rows:,} rows failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    """Run every engine at every size and print the side-by-side table with growth ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs=2, default=[1_000_000, 4_000_000], help="two sizes, rows per kind")
    parser.add_argument("--engines", nargs="+", default=["postgres", "spark"])
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        engine, rows, work = args.child
        print(json.dumps(run_child(engine, int(rows), Path(work))))
        return 0
    small, large = sorted(args.rows)
    results: dict[tuple[str, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_engines_") as tmp:
        for rows in (small, large):
            for engine in args.engines:
                work = Path(tmp) / f"{engine}-{rows}"
                print(f"{engine}: {rows:,} yellow + {rows:,} HVFHV trips ...", flush=True)
                results[(engine, rows)] = _measure(engine, rows, work)
    shown = ["spark_start", *STAGES] if "spark" in args.engines else list(STAGES)
    print(f"\nseconds per stage, one month of {small:,} and {large:,} rows per kind (growth = {large:,} / {small:,})")
    header = f"{'stage':<12}" + "".join(f"{e + ' ' + format(r, ','):>22}" for r in (small, large) for e in args.engines)
    print(header + "".join(f"{e + ' growth':>18}" for e in args.engines))
    for stage in [*shown, "total"]:
        line = f"{stage:<12}"
        for rows in (small, large):
            for engine in args.engines:
                t = results[(engine, rows)]
                value = sum(t.values()) if stage == "total" else t.get(stage)
                line += f"{'-' if value is None else f'{value:.1f}':>22}"
        for engine in args.engines:
            a, b = (results[(engine, r)] for r in (small, large))
            va = sum(a.values()) if stage == "total" else a.get(stage)
            vb = sum(b.values()) if stage == "total" else b.get(stage)
            line += f"{'-' if not va or vb is None else f'{vb / va:.2f}x':>18}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
