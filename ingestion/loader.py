"""Reading TLC trip files for raw: streamed by row group, checked, conformed, sampled, given row ids, and handed to
the engine's raw writer (which stores and swaps in the month)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fares.engines.base import LoadError
from fares.engines.raw_tables import LINEAGE_COLUMNS, TABLES
from fares.ingestion.schema import check_columns, conform, dlt_columns

if TYPE_CHECKING:
    from fares.engines.base import RawWriter
    from fares.ingestion.progress import Progress

log = logging.getLogger(__name__)

BATCH_ROWS = 500_000  # rows per Arrow batch: bounds memory whatever the file's row-group size
_SAMPLE_SALT = np.uint64(0x5EED_F0A5)


class FileLoadError(LoadError):
    """One file could not be loaded; the message names the file and the problem."""


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
    writer: RawWriter,
    path: Path,
    kind: str,
    month: str,
    sample: float | None = None,
    progress: Progress | None = None,
) -> tuple[int, str | None]:
    """Stream one TLC file into raw.<kind>_trips as its month, through the engine's writer (which replaces the month
    in one step, so a failed or corrupted file leaves the month as it was).

    Returns:
        (rows loaded, load id).
    """
    _open_checked(path, kind)
    columns = dlt_columns(kind)  # the engine drops what it keeps as partition constants (PostgreSQL: the lineage)
    columns["_dlt_id"] = {"name": "_dlt_id", "data_type": "text", "nullable": False}
    counter = {"rows": 0}
    return writer.write_month(
        TABLES[kind], month, path.name, _batches(path, kind, month, sample, counter, progress), columns
    )
