"""Benchmark: the GX gate on one raw month vs one plain SQL pass over it (ratio), and the nightly no-change run."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from fares.config.settings import Settings, get_settings
from fares.config.warehouse import Warehouse
from fares.ops.schema import prepare_warehouse

MONTHS = ["2024-01", "2024-02", "2024-03"]
REFERENCE_SQL = (
    "select count(*), count(pu_location_id), min(fare_amount), max(fare_amount), min(tpep_pickup_datetime)"
    " from raw.yellow_trips where source_month = %s"
)
TARGET_SCANS = 15.0  # the gate on one month should cost no more than this many plain passes over it


def _setup(rows: int, data_dir: Path) -> tuple[Settings, Warehouse]:
    from fares.ingestion.pipeline import ingest
    from fares.ingestion.synthetic import write_mirror

    settings = get_settings().model_copy(update={"db_name": "bench_quality", "sample": None})
    wh = prepare_warehouse(settings)
    with wh.connect(autocommit=True) as conn:
        conn.execute("drop schema if exists raw cascade; drop schema if exists ops cascade")
    settings = settings.model_copy(update={"data_dir": data_dir})
    mirror = data_dir / "mirror"
    write_mirror(mirror, MONTHS, rows_per_month=rows, seed=3)
    report = ingest(settings, wh, source=str(mirror), months=MONTHS, kinds=("yellow",), progress=False)
    if report.failed:
        raise SystemExit(f"ingest failed: {report.failed}")
    return settings, wh


def _timed(fn, *args, **kwargs) -> float:  # noqa: ANN001, ANN002, ANN003 - a tiny bench helper
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def _reference(wh: Warehouse, month: str) -> float:
    with wh.connect() as conn:
        conn.execute(REFERENCE_SQL, (month,)).fetchone()  # warm the cache like the gate's first query does
        return min(_timed(lambda: conn.execute(REFERENCE_SQL, (month,)).fetchone()) for _ in range(3))


def main() -> int:
    """Print seconds and ratios; exit 1 when the gate costs more than TARGET_SCANS plain passes."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=300_000, help="yellow trips per month")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench_quality_") as tmp:
        settings, wh = _setup(args.rows, Path(tmp))
        gx_import = _timed(__import__, "great_expectations")
        from fares.quality.validate import run_validation

        month = MONTHS[-1]
        reference = _reference(wh, month)
        one_month = _timed(run_validation, settings, wh, "raw", months=[month])
        _timed(run_validation, settings, wh, "raw")  # first nightly run: validates the other months
        unchanged = _timed(run_validation, settings, wh, "raw")  # nothing changed since: planning only
    ratio = one_month / reference
    print(f"rows per month           {args.rows:,} (table {len(MONTHS) * args.rows:,} rows)")
    print(f"import great_expectations {gx_import:6.2f} s (paid once per process)")
    print(f"reference: one SQL pass  {reference:6.3f} s")
    print(f"gate on one month        {one_month:6.3f} s  = {ratio:5.1f} passes (target <= {TARGET_SCANS:g})")
    print(f"nightly, nothing changed {unchanged:6.3f} s  = {unchanged / reference:5.1f} passes")
    return 0 if ratio <= TARGET_SCANS else 1


if __name__ == "__main__":
    sys.exit(main())
