"""The Spark engine's raw lake: dlt's filesystem destination writes TLC months as parquet, a folder per kind and month.

Layout: `<lake>/raw/<kind>_trips/source_month=YYYY-MM/<load id>.<file id>.parquet` (Hive-style partitions Spark reads
as external tables), `<lake>/raw/zones/`, `<lake>/raw/zone_shapes/`. Same pinned schema, sampling, row ids and
bad-file handling as the PostgreSQL loader; a month is replaced by writing the new files first and then removing the
month's older files, so a failed load leaves the month's earlier data in place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fares.ingestion.loader import FILE_ROWS, FileLoadError, _batches, _open_checked, _root_message
from fares.ingestion.schema import TABLES, dlt_columns

if TYPE_CHECKING:
    import dlt
    from dlt.common.schema.typing import TTableSchemaColumns
    from fsspec import AbstractFileSystem

    from fares.ingestion.progress import Progress
    from fares.settings import Settings
    from fares.warehouse import Warehouse

log = logging.getLogger(__name__)

DATASET = "raw"
_TRIP_LAYOUT = "{table_name}/source_month={month}/{load_id}.{file_id}.{ext}"
_TABLE_LAYOUT = "{table_name}/{load_id}.{file_id}.{ext}"


@dataclass
class LakeSink:
    """Where the lake is and where dlt keeps its working files; one dlt pipeline per load (layouts differ)."""

    lake: str
    pipelines_dir: str

    def pipeline(self, layout: str, month: str | None = None) -> dlt.Pipeline:
        """A dlt pipeline writing parquet into the lake with `layout` (`{month}` filled in for trip files)."""
        import dlt

        dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True
        dlt.config["runtime.dlthub_telemetry"] = False
        dlt.config["data_writer.file_max_items"] = FILE_ROWS
        destination = dlt.destinations.filesystem(
            bucket_url=self.lake, layout=layout, extra_placeholders={"month": month} if month else None
        )
        return dlt.pipeline(
            pipeline_name="fares_lake",
            pipelines_dir=self.pipelines_dir,
            destination=destination,
            dataset_name=DATASET,
        )

    def filesystem(self) -> tuple[AbstractFileSystem, str]:
        """The fsspec filesystem of the lake and the lake's path in it."""
        from fsspec.core import url_to_fs

        return url_to_fs(self.lake)

    def folder(self, *parts: str) -> str:
        """A folder of the lake's raw dataset, as a path of its filesystem."""
        _, root = self.filesystem()
        return "/".join([root.rstrip("/"), DATASET, *parts])


def make_lake_sink(settings: Settings) -> LakeSink:
    """The sink for the Spark engine: settings.lake_location, dlt working files under data_dir/dlt/lake."""
    location = settings.lake_location
    if "://" not in location:
        Path(location).mkdir(parents=True, exist_ok=True)
    return LakeSink(location, str(settings.data_dir / "dlt" / "lake"))


def month_folder(sink: LakeSink, kind: str, month: str) -> str:
    """The lake folder holding one month of one kind."""
    return sink.folder(TABLES[kind], f"source_month={month}")


def _remove_files(sink: LakeSink, folder: str, keep_load_id: str | None) -> int:
    """Delete the parquet files in `folder` not written by `keep_load_id` (None: all); returns how many."""
    fs, _ = sink.filesystem()
    if not fs.exists(folder):
        return 0
    stale = [p for p in fs.ls(folder, detail=False) if not keep_load_id or not Path(p).name.startswith(keep_load_id)]
    for path in stale:
        fs.rm(path, recursive=True)
    if not keep_load_id:
        fs.rm(folder, recursive=True)
    return len(stale)


def load_trip_file(
    sink: LakeSink,
    wh: Warehouse,
    path: Path,
    kind: str,
    month: str,
    sample: float | None = None,
    progress: Progress | None = None,
) -> tuple[int, str | None]:
    """Write one TLC file as the lake's month of `kind`, replacing what the month held before (`wh`, the ops
    database, is not written: the signature is the PostgreSQL loader's).

    Returns:
        (rows written, dlt load id).
    """
    import dlt

    _open_checked(path, kind)
    counter = {"rows": 0}
    columns = dlt_columns(kind)
    columns["_dlt_id"] = {"name": "_dlt_id", "data_type": "text", "nullable": False}
    resource = dlt.resource(
        _batches(path, kind, month, sample, counter, progress),
        name=TABLES[kind],
        table_name=TABLES[kind],
        write_disposition="append",
        columns=columns,
    )
    pipeline = sink.pipeline(_TRIP_LAYOUT, month)
    try:
        info = pipeline.run(resource, loader_file_format="parquet")
    except Exception as exc:
        pipeline.abort_packages()
        raise FileLoadError(_root_message(exc, path.name)) from exc
    load_id = info.loads_ids[-1] if info.loads_ids else None
    removed = _remove_files(sink, month_folder(sink, kind, month), load_id if counter["rows"] else None)
    log.debug("%s %s: %d older file(s) replaced", kind, month, removed)
    return counter["rows"], load_id


def load_rows(
    sink: LakeSink, table: str, rows: list[dict[str, Any]], columns: TTableSchemaColumns, file: str
) -> str | None:
    """Replace the lake's `table` (zones, shapes) with `rows`; returns the load id."""
    import dlt

    resource = dlt.resource(rows, name=table, table_name=table, write_disposition="replace", columns=columns)
    pipeline = sink.pipeline(_TABLE_LAYOUT)
    try:
        info = pipeline.run(resource, loader_file_format="parquet")
    except Exception as exc:
        pipeline.abort_packages()
        raise FileLoadError(_root_message(exc, file)) from exc
    return info.loads_ids[-1] if info.loads_ids else None
