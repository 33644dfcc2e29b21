"""dlt loading: TLC parquet files streamed by row group into raw.*_trips month partitions (swapped in), zone rows."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from fares.ingestion import partitions
from fares.ingestion.schema import LINEAGE_COLUMNS, TABLES, SchemaError, check_columns, conform, dlt_columns
from fares.settings import Settings
from fares.warehouse import Warehouse

if TYPE_CHECKING:
    import dlt
    from dlt.common.schema.typing import TTableSchemaColumns

    from fares.ingestion.progress import Progress

log = logging.getLogger(__name__)

DATASET = "raw"
BATCH_ROWS = 500_000  # rows per Arrow batch: bounds memory whatever the file's row-group size
FILE_ROWS = 500_000  # rows per dlt load file (one COPY job each)
LOAD_WORKERS = 2
_SAMPLE_SALT = np.uint64(0x5EED_F0A5)


class FileLoadError(RuntimeError):
    """One file could not be loaded; the message names the file and the problem."""


def make_pipeline(settings: Settings, wh: Warehouse) -> dlt.Pipeline:
    """The dlt pipeline writing to schema raw of `wh`, working files under data_dir/dlt/<db>."""
    import dlt

    # No per-row load id: a month's partition is one load, and its load id, file and month are set as column
    # defaults when it is swapped in (ingestion/partitions.py), costing no bytes per row.
    dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = False
    dlt.config["runtime.dlthub_telemetry"] = False
    # adbc materialises a whole load file before COPY: cap the file size so a 20M-row month streams in slices,
    # and cap parallel load jobs so at most two slices are in memory at once.
    dlt.config["data_writer.file_max_items"] = FILE_ROWS
    dlt.config["load.workers"] = LOAD_WORKERS
    return dlt.pipeline(
        pipeline_name="fares_ingest",
        pipelines_dir=str(settings.data_dir / "dlt" / wh.dbname),
        destination=dlt.destinations.postgres(credentials=wh.dlt_credentials()),
        dataset_name=DATASET,
    )


def sample_mask(start: int, n: int, fraction: float) -> np.ndarray:
    """Keep-mask for rows start..start+n-1: a hash of the row's position, so the same rows every run."""
    x = np.arange(start, start + n, dtype=np.uint64) ^ _SAMPLE_SALT
    with np.errstate(over="ignore"):  # splitmix64: wrap-around is the point
        x = (x + np.uint64(0x9E3779B97F4A7C15)) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(31))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(29))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53) < fraction


def _row_ids(prefix: str, start: int, n: int) -> pa.Array:
    # Stable ids (file + row position): a reload gives every trip the same _dlt_id again.
    pos = pc.cast(pa.array(np.arange(start, start + n, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(pa.repeat(pa.scalar(prefix), n), pos, "")


def _batches(
    path: Path, kind: str, month: str, sample: float | None, counter: dict[str, int], progress: Progress | None
) -> Iterator[pa.Table]:
    import pyarrow.parquet as pq

    name = path.name
    pf = pq.ParquetFile(path)
    task = progress.start(f"load {name} ({pf.metadata.num_rows:,} rows)", pf.metadata.num_rows) if progress else None
    start = 0
    try:
        for batch in pf.iter_batches(batch_size=BATCH_ROWS):
            n = batch.num_rows
            # source_file and source_month are constants of the month's partition (set at the swap), not row data
            table = conform(batch, kind, name, month).drop_columns(list(LINEAGE_COLUMNS))
            ids = _row_ids(f"{kind[0]}{month}-", start, n)
            table = table.append_column(pa.field("_dlt_id", pa.string(), nullable=False), ids)
            if sample is not None and sample < 1:
                table = table.filter(pa.array(sample_mask(start, n, sample)))
            start += n
            counter["rows"] += table.num_rows
            if progress:
                progress.advance(task, n)
            if table.num_rows:
                yield table
    except (OSError, pa.ArrowException) as exc:
        raise FileLoadError(f"{name}: corrupted or unreadable parquet after {start} rows: {exc}") from exc
    finally:
        if progress:
            progress.finish(task)


def _open_checked(path: Path, kind: str) -> int:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise FileLoadError(f"{path.name}: not a readable parquet file: {exc}") from exc
    check_columns(kind, pf.schema_arrow.names, path.name)
    return pf.metadata.num_rows


def load_trip_file(
    pipeline: dlt.Pipeline,
    wh: Warehouse,
    path: Path,
    kind: str,
    month: str,
    sample: float | None = None,
    progress: Progress | None = None,
) -> tuple[int, str | None]:
    """Stream one TLC file into raw.<kind>_trips as the month's partition, swapped in atomically.

    dlt writes the month into raw.<kind>_trips_incoming; only a complete load replaces the month's partition, so a
    failed or corrupted file leaves the month as it was (see ingestion/partitions.py).

    Returns:
        (rows loaded, dlt load id).
    """
    import dlt

    _open_checked(path, kind)
    table = TABLES[kind]
    partitions.clear_incoming(wh, table)
    counter = {"rows": 0}
    columns = {name: hint for name, hint in dlt_columns(kind).items() if name not in LINEAGE_COLUMNS}
    columns["_dlt_id"] = {"name": "_dlt_id", "data_type": "text", "nullable": False}
    resource = dlt.resource(
        _batches(path, kind, month, sample, counter, progress),
        name=table,
        table_name=partitions.incoming_table(table),
        write_disposition="replace",
        columns=columns,
    )
    try:
        info = pipeline.run(resource, loader_file_format="parquet")
    except Exception as exc:
        pipeline.abort_packages()
        raise FileLoadError(_root_message(exc, path.name)) from exc
    try:
        if counter["rows"] == 0:
            partitions.drop_month(wh, table, month)
        else:
            load_id = info.loads_ids[-1] if info.loads_ids else ""
            constants = {"source_file": path.name, "source_month": month, "_dlt_load_id": load_id}
            partitions.swap_in_month(wh, table, month, constants)
    except psycopg.Error as exc:
        raise FileLoadError(f"{path.name}: loaded, but swapping in the {month} partition failed: {exc}") from exc
    return counter["rows"], (info.loads_ids[-1] if info.loads_ids else None)


def load_rows(
    pipeline: dlt.Pipeline, table: str, rows: list[dict[str, Any]], columns: TTableSchemaColumns, file: str
) -> str | None:
    """Replace raw.<table> with `rows` (small tables: zones, shapes); returns the load id."""
    import dlt

    resource = dlt.resource(rows, name=table, table_name=table, write_disposition="replace", columns=columns)
    try:
        info = pipeline.run(resource, loader_file_format="insert_values")
    except Exception as exc:
        pipeline.abort_packages()
        raise FileLoadError(_root_message(exc, file)) from exc
    return info.loads_ids[-1] if info.loads_ids else None


def _root_message(exc: BaseException, file: str) -> str:
    """The innermost error message of a dlt failure, prefixed with the file name."""
    inner: BaseException = exc
    while True:
        nxt = inner.__cause__ or inner.__context__
        if nxt is None or nxt is inner:
            break
        inner = nxt
        if isinstance(inner, (FileLoadError, SchemaError)):
            break
    msg = str(inner).strip() or type(inner).__name__
    return msg if msg.startswith(file) else f"{file}: {msg}"
