"""Benchmark: `dbt build` on 1M + 1M synthetic trips and on 2M + 2M, with the time ratio between them and rows/s."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fares.config.settings import Settings, get_settings
from fares.config.warehouse import Warehouse, drop_database, ensure_database, parse_database_url, scalar, start_embedded

ROOT = Path(__file__).resolve().parent.parent

MONTHS = ["2024-01", "2024-02"]
RATIO_TARGET = 2.2
DB_NAME = "bench_transform"

log = logging.getLogger("bench.transform")


def _mirror(rows_per_month: int) -> Path:
    """The synthetic files (written once, then reused: same seed, same files)."""
    from fares.ingestion.synthetic import write_mirror

    dest = get_settings().data_dir / "bench" / f"transform_mirror_{rows_per_month}"
    if not all((dest / f"{kind}_tripdata_{m}.parquet").exists() for m in MONTHS for kind in ("yellow", "fhvhv")):
        start = time.perf_counter()
        write_mirror(dest, MONTHS, rows_per_month=rows_per_month)
        log.warning("generated %s in %.1f s", dest, time.perf_counter() - start)
    return dest


def _admin() -> Warehouse:
    settings = get_settings()
    return parse_database_url(settings.database_url) if settings.database_url else start_embedded(settings)


def _trip_rows(wh: Warehouse) -> tuple[int, int]:
    with wh.connect() as conn:
        yellow = scalar(conn, "select count(*) from raw.yellow_trips")
        fhvhv = scalar(conn, "select count(*) from raw.fhvhv_trips")
    return yellow, fhvhv


def _timed_build(settings: Settings, wh: Warehouse, target: Path) -> tuple[float, list[tuple[str, float]]]:
    """Seconds of one `dbt build`, and its ten slowest nodes."""
    # bench/chain.py by its path from the repo root, as bench/engines.py does: a bare `chain` would be the production
    # package fares.chain's folder to mypy (run from the repo root), not the benchmark beside this file
    sys.path.insert(0, str(ROOT))
    from bench.chain import slowest_nodes
    from fares.engines.transform import run_dbt

    start = time.perf_counter()
    run_dbt(settings, wh, ["build", "--target-path", str(target)])
    elapsed = time.perf_counter() - start
    return elapsed, slowest_nodes(target / "run_results.json", 10)


def run(rows_per_month: int, keep: bool) -> dict[str, Any]:
    """Ingest one month (1x), build; ingest the second month (2x), build; return both timings."""
    from fares.engines.transform import run_dbt
    from fares.ingestion.pipeline import ingest
    from fares.ops.schema import migrate

    source = _mirror(rows_per_month)
    admin = _admin()
    drop_database(admin, DB_NAME)
    wh = ensure_database(admin, DB_NAME)
    migrate(wh)  # this script is a process entry: schema ops first
    settings = get_settings().model_copy(update={"database_url": wh.url(), "sample": None})
    phases: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench_transform_") as tmp:
            target = Path(tmp) / "target"
            run_dbt(settings, wh, ["parse", "--target-path", str(target)])  # both builds then parse partially, alike
            for month in MONTHS:
                report = ingest(settings, wh, source=str(source), months=[month], progress=False)
                if report.failed:
                    raise RuntimeError(f"ingest failed: {report.failed}")
                seconds, slowest = _timed_build(settings, wh, target)
                yellow, fhvhv = _trip_rows(wh)
                phases.append({"yellow_rows": yellow, "fhvhv_rows": fhvhv, "seconds": seconds, "slowest": slowest})
    finally:
        if not keep:
            drop_database(admin, DB_NAME)
    return {"rows_per_month": rows_per_month, "phases": phases, "ratio": phases[1]["seconds"] / phases[0]["seconds"]}


def main() -> None:
    """Run the two builds and print rows/s, the ratio and the slowest models."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="trips per month and kind (default 1M)")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = run(args.rows, args.keep)
    print(f"transform bench: dbt build (models, data tests, unit tests) on synthetic trips, {DB_NAME}")
    for phase in result["phases"]:
        rows = phase["yellow_rows"] + phase["fhvhv_rows"]
        print(
            f"  {phase['yellow_rows']:>10,} yellow + {phase['fhvhv_rows']:>10,} fhvhv  {phase['seconds']:7.1f} s"
            f"  {rows / phase['seconds']:>10,.0f} rows/s"
        )
        print("      10 slowest: " + ", ".join(f"{name} {secs:.1f}s" for name, secs in phase["slowest"]))
    verdict = "OK" if result["ratio"] <= RATIO_TARGET else "ABOVE TARGET"
    print(f"  ratio 2x/1x = {result['ratio']:.2f}x (target <= {RATIO_TARGET}x): {verdict}")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "transform.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
