"""The Spark engine's raw lake: dlt's filesystem destination writes TLC months as parquet, one folder per load.

Layout: `<lake>/raw/<kind>_trips/source_month=YYYY-MM/<load id>/<load id>.<file id>.parquet`, `<lake>/raw/zones/`,
`<lake>/raw/zone_shapes/`. Same pinned schema, sampling, row ids and bad-file handling as the PostgreSQL loader.
Each write of a month goes into a folder of its own and nothing in service is touched while it is written, so a failed
write leaves the month as it was. Which folder is the month is the ledger's load id of the month's file; the catalog's
partition is pointed at it in one metastore operation (`fares.engines.lake_catalog`). After a successful write the
month keeps two versions, the new one and the one it replaces (a reader that resolved that a moment ago can finish);
older ones are removed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fares.config.warehouse import Warehouse
from fares.engines.base import FILE_ROWS, LoadError, root_message
from fares.ops.ledger import read_entry

if TYPE_CHECKING:
    import dlt
    import pyarrow as pa
    from dlt.common.schema.typing import TTableSchemaColumns
    from fsspec import AbstractFileSystem

    from fares.config.settings import Settings

log = logging.getLogger(__name__)

DATASET = "raw"
_TRIP_LAYOUT = "{table_name}/source_month={month}/{load_id}/{load_id}.{file_id}.{ext}"
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


def month_dir(table: str, month: str) -> str:
    """The folder of raw.<table>'s `month` relative to the raw dataset (its versions are folders inside it)."""
    return f"{table}/source_month={month}"


def version_dir(table: str, month: str, load_id: str) -> str:
    """The folder one load of raw.<table>'s `month` is written to, relative to the raw dataset (`_TRIP_LAYOUT`)."""
    return f"{month_dir(table, month)}/{load_id}"


def list_versions(sink: LakeSink, table: str, month: str) -> list[str]:
    """The version folders (load ids) of raw.<table>'s `month` in the lake, oldest first (dlt's load ids are times)."""
    fs, _ = sink.filesystem()
    folder = sink.folder(month_dir(table, month))
    if not fs.exists(folder):
        return []
    found = [Path(item["name"]).name for item in fs.ls(folder, detail=True) if item["type"] == "directory"]
    return sorted(found, key=_load_time)


def _load_time(load_id: str) -> float:
    try:
        return float(load_id)
    except ValueError:
        return float("-inf")  # not a dlt load id: older than any


def _remove_version(sink: LakeSink, table: str, month: str, load_id: str) -> None:
    fs, _ = sink.filesystem()
    folder = sink.folder(version_dir(table, month, load_id))
    if fs.exists(folder):
        fs.rm(folder, recursive=True)


def _with_lineage(batch: pa.Table, file: str, month: str) -> pa.Table:
    """The batch with source_file and source_month filled in: the loader leaves them to the engine (PostgreSQL keeps
    them as constants of the month's partition; a lake file carries them, as the table declares them)."""
    import pyarrow as pa

    for name, value in (("source_file", file), ("source_month", month)):
        column = pa.repeat(pa.scalar(value, pa.string()), batch.num_rows)
        if name in batch.column_names:
            batch = batch.set_column(batch.column_names.index(name), name, column)
        else:
            batch = batch.append_column(pa.field(name, pa.string()), column)
    return batch


class LakeWriter:
    """The Spark engine's raw writer: dlt's filesystem destination into the lake; the ledger (in `wh`) says which
    version of a month is in service."""

    def __init__(self, sink: LakeSink, wh: Warehouse) -> None:
        self.sink, self.wh = sink, wh

    def write_month(
        self, table: str, month: str, file: str, batches: Iterable[pa.Table], columns: TTableSchemaColumns
    ) -> tuple[int, str | None]:
        """Write `batches` as a new version of the lake's month of raw.<table>; the version in service is untouched.

        It goes in service when the caller records the load in the ledger (and the catalog follows the ledger). Of the
        month's older versions the one being replaced stays: the ledger's current load of `file` or, when the ledger
        knows none (a first load), the newest one there.

        Returns:
            (rows written, dlt load id).
        """
        import dlt

        counter = {"rows": 0}

        def counted() -> Iterator[pa.Table]:
            for batch in batches:
                counter["rows"] += batch.num_rows
                yield _with_lineage(batch, file, month)

        entry = read_entry(self.wh, file)
        resource = dlt.resource(counted(), name=table, table_name=table, write_disposition="append", columns=columns)
        pipeline = self.sink.pipeline(_TRIP_LAYOUT, month)
        try:
            info = pipeline.run(resource, loader_file_format="parquet")
        except Exception as exc:
            pipeline.abort_packages()
            failed = getattr(exc, "load_id", None)  # dlt's PipelineStepFailed: some files of that load may be there
            if failed:
                _remove_version(self.sink, table, month, failed)
            raise LoadError(root_message(exc, file)) from exc
        load_id = info.loads_ids[-1] if info.loads_ids else None
        if load_id:
            older = [v for v in list_versions(self.sink, table, month) if v != load_id]
            replaced = entry.load_id if entry and entry.load_id in older else (older[-1] if older else None)
            for stale in older:
                if stale != replaced:
                    _remove_version(self.sink, table, month, stale)
            log.debug("%s %s: version %s written beside %s", table, month, load_id, replaced)
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
