"""Benchmark: the project's loader vs a raw psycopg COPY of the same synthetic month (rows/s, ratio, peak memory)."""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fares.config.settings import Settings, get_settings
from fares.config.warehouse import Warehouse
from fares.ops.schema import prepare_warehouse

MONTH = "2024-01"
CHUNK = 500_000
TARGET = 0.5


def _write_month(path: Path, rows: int) -> None:
    """Write `rows` synthetic yellow trips in chunks, so even 20M rows never sit in memory at once."""
    import pyarrow.parquet as pq

    from fares.ingestion.synthetic_trips import make_yellow_month

    writer = None
    for i, start in enumerate(range(0, rows, CHUNK)):
        table = make_yellow_month(MONTH, min(CHUNK, rows - start), seed=1000 + i)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=CHUNK)
    if writer:
        writer.close()


def _bench_settings(data_dir: Path) -> tuple[Settings, Warehouse]:
    settings = get_settings().model_copy(update={"db_name": "bench_ingest", "sample": None})
    settings = settings.model_copy(update={"data_dir": settings.data_dir}) if settings.database_url else settings
    wh = prepare_warehouse(settings)
    with wh.connect(autocommit=True) as conn:
        conn.execute(
            "drop schema if exists raw cascade; drop schema if exists raw_staging cascade;"
            "drop schema if exists bench cascade"
        )
    return settings.model_copy(update={"data_dir": data_dir}), wh


def _phase_loader(path: Path, data_dir: Path) -> int:
    from fares.engines.postgres import PostgresEngine
    from fares.ingestion.loader import load_trip_file

    settings, wh = _bench_settings(data_dir)
    # PostgreSQL's raw writer whatever FARES_ENGINE says: the benchmark compares it with a COPY into the same server
    rows, _ = load_trip_file(PostgresEngine(settings).raw_writer(wh), path, "yellow", MONTH)
    return rows


def _phase_copy(path: Path, data_dir: Path) -> int:
    import io

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from fares.ingestion.schema import conform, target_schema

    _, wh = _bench_settings(data_dir)
    sql_types = {"int64": "bigint", "double": "double precision", "string": "text", "timestamp[us]": "timestamp"}
    cols = ", ".join(f"{f.name} {sql_types[str(f.type)]}" for f in target_schema("yellow"))
    rows = 0
    with wh.connect() as conn:
        conn.execute(f"create schema bench; create table bench.yellow_trips ({cols})")
        with conn.cursor().copy("copy bench.yellow_trips from stdin (format csv)") as copy:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK):
                table = conform(batch, "yellow", path.name, MONTH)
                buf = io.BytesIO()
                pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False))
                copy.write(buf.getvalue())
                rows += table.num_rows
        conn.commit()
    return rows


def _run_phase(phase: str, path: Path, data_dir: Path) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--phase", phase, "--file", str(path), "--data-dir", str(data_dir)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    """Run both loads in fresh processes and print rows/s, the ratio and peak memory."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each method; the best one counts")
    parser.add_argument("--phase", choices=["loader", "copy"])
    parser.add_argument("--file", type=Path)
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.phase:
        start = time.perf_counter()
        rows = (_phase_loader if args.phase == "loader" else _phase_copy)(args.file, args.data_dir)
        elapsed = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"rows": rows, "seconds": elapsed, "peak_mb": peak_mb}))
        return
    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        path = Path(tmp) / f"yellow_tripdata_{MONTH}.parquet"
        _write_month(path, args.rows)
        # Alternate the two and keep each one's best run: other work on the machine hits both alike.
        runs: dict[str, list[dict[str, float]]] = {"copy": [], "loader": []}
        for _ in range(args.repeat):
            for phase in ("copy", "loader"):
                runs[phase].append(_run_phase(phase, path, Path(tmp) / "data"))
    copy, loader = (min(runs[p], key=lambda r: r["seconds"]) for p in ("copy", "loader"))
    ratio = (loader["rows"] / loader["seconds"]) / (copy["rows"] / copy["seconds"])
    print(f"ingest bench: {args.rows:,} synthetic yellow rows, best of {args.repeat} runs each")
    for name, r in (("raw psycopg COPY", copy), ("fares loader (dlt)", loader)):
        print(
            f"  {name:20s} {r['rows']:>10,} rows  {r['seconds']:6.2f} s  {r['rows'] / r['seconds']:>10,.0f} rows/s"
            f"  peak {r['peak_mb']:,.0f} MB"
        )
    verdict = "OK" if ratio >= TARGET else "BELOW TARGET"
    print(f"  ratio loader/COPY = {ratio:.2f}x (target >= {TARGET}x): {verdict}")


if __name__ == "__main__":
    main()
