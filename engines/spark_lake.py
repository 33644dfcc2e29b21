"""The Spark engine's raw lake: dlt's filesystem destination writes TLC months as parquet, a folder per kind and month.

Layout: `<lake>/raw/<kind>_trips/source_month=YYYY-MM/<load id>.<file id>.parquet` (Hive-style partitions Spark reads
as external tables), `<lake>/raw/zones/`, `<lake>/raw/zone_shapes/`. Same pinned schema, sampling, row ids and
bad-file handling as the PostgreSQL loader; a month is replaced by writing the new files first and then removing the
month's older files, so a failed load leaves the month's earlier data in place.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fares.engines.base import FILE_ROWS, LoadError, root_message

if TYPE_CHECKING:
    import dlt
    import pyarrow as pa
    from dlt.common.schema.typing import TTableSchemaColumns
    from fsspec import AbstractFileSystem

    from fares.config.settings import Settings

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


def month_folder(sink: LakeSink, table: str, month: str) -> str:
    """The lake folder holding one month of raw.<table>."""
    return sink.folder(table, f"source_month={month}")


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


class LakeWriter:
    """The Spark engine's raw writer: dlt's filesystem destination into the lake (the ledger stays in PostgreSQL)."""

    def __init__(self, sink: LakeSink) -> None:
        self.sink = sink

    def write_month(
        self, table: str, month: str, file: str, batches: Iterable[pa.Table], columns: TTableSchemaColumns
    ) -> tuple[int, str | None]:
        """Write `batches` as the lake's month of raw.<table>, replacing what the month held before.

        Returns:
            (rows written, dlt load id).
        """
        import dlt

        counter = {"rows": 0}

        def counted() -> Iterator[pa.Table]:
            for batch in batches:
                counter["rows"] += batch.num_rows
                yield batch

        resource = dlt.resource(counted(), name=table, table_name=table, write_disposition="append", columns=columns)
        pipeline = self.sink.pipeline(_TRIP_LAYOUT, month)
        try:
            info = pipeline.run(resource, loader_file_format="parquet")
        except Exception as exc:
            pipeline.abort_packages()
            raise LoadError(root_message(exc, file)) from exc
        load_id = info.loads_ids[-1] if info.loads_ids else None
        removed = _remove_files(self.sink, month_folder(self.sink, table, month), load_id if counter["rows"] else None)
        log.debug("%s %s: %d older file(s) replaced", table, month, removed)
        return counter["rows"], load_id

    def write_table(
        self, table: str, rows: list[dict[str, Any]], columns: TTableSchemaColumns, file: str
    ) -> str | None:
        """Replace the lake's `table` (zones, shapes) with `rows`; returns the load id."""
        import dlt

        resource = dlt.resource(rows, name=table, table_name=table, write_disposition="replace", columns=columns)
        pipeline = self.sink.pipeline(_TABLE_LAYOUT)
        try:
            info = pipeline.run(resource, loader_file_format="parquet")
        except Exception as exc:
            pipeline.abort_packages()
            raise LoadError(root_message(exc, file)) from exc
        return info.loads_ids[-1] if info.loads_ids else None
