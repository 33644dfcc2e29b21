"""The Spark engine's catalog of the lake, made to match the ingest ledger: one list of SQL statements.

A raw trip table is partitioned by source_month, and each month's partition points at one version folder of the lake
(`fares.engines.spark_lake`): the folder of the load the ledger says is the month's current one. Moving a partition
to a new folder is one metastore operation, so a reader resolving the month's partition gets the old version or the
new one, never a mix. The statements are plain Spark SQL with no file listing (`msck repair` cannot tell versions
apart); they run in a fares process's session (`spark_session.register_raw_tables`) and in dbt's on-run-start hook.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fares.engines.raw_tables import LINEAGE_COLUMNS, TABLES, TRIP_COLUMNS
from fares.engines.spark_lake import DATASET, version_dir

if TYPE_CHECKING:
    from fares.config.settings import Settings
    from fares.ops.ledger import LedgerEntry

RAW = "raw"  # the Spark database of the raw tables
# Small tables dlt replaces whole; Spark infers their schema from the parquet files.
SMALL_TABLES = ("zones", "zone_shapes")
_SPARK_TYPES = {"int64": "bigint", "double": "double", "string": "string", "timestamp[us]": "timestamp"}


@dataclass(frozen=True)
class LakeMonth:
    """A trip month in service: the load its rows come from (its version folder) and the rows that load stored."""

    table: str
    month: str
    load_id: str
    rows: int


def lake_path(settings: Settings, *parts: str) -> str:
    """A location inside the lake (a local folder or an object-store URL)."""
    return "/".join([settings.lake_location, *parts])


def lake_months(entries: Iterable[LedgerEntry]) -> dict[str, dict[str, LakeMonth]]:
    """{raw table: {month: LakeMonth}} from the ledger, every trip month whose current load holds rows.

    A file's current load is its last successful one: a failed reload keeps the load id and rows of the load before.
    """
    found: dict[str, dict[str, LakeMonth]] = {}
    for entry in entries:
        table = TABLES.get(entry.kind)
        if not table or not entry.month or not entry.load_id or not entry.rows:
            continue
        known = found.setdefault(f"{RAW}.{table}", {}).get(entry.month)
        if known is None or entry.load_id > known.load_id:
            found[f"{RAW}.{table}"][entry.month] = LakeMonth(table, entry.month, entry.load_id, int(entry.rows))
    return found


def month_loads(entries: Iterable[LedgerEntry]) -> dict[str, str]:
    """{month: the newest current load id over its yellow and HVFHV partitions}: what dbt's month planning compares
    with its builds (var `lake_month_loads`, read by `spark__raw_month_loads`), from the ledger and not the rows."""
    loads: dict[str, str] = {}
    for months in lake_months(entries).values():
        for month, lake in months.items():
            loads[month] = max(loads.get(month, ""), lake.load_id)
    return loads


def trip_table_ddl(kind: str) -> str:
    """The column list of raw.<kind>_trips in Spark SQL: the pinned columns, dlt's two, source_month last."""
    columns = {**TRIP_COLUMNS[kind], **LINEAGE_COLUMNS}
    columns.pop("source_month")
    cols = [f"`{name}` {_SPARK_TYPES[str(typ)]}" for name, typ in columns.items()]
    cols += ["`_dlt_id` string", "`_dlt_load_id` string", "`source_month` string"]
    return ", ".join(cols)


def _text(value: str) -> str:
    """A Spark SQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def lake_ddl(settings: Settings, entries: Iterable[LedgerEntry]) -> list[str]:
    """The Spark SQL statements that make the raw tables match the ledger; running them again changes nothing.

    A trip table exists once the ledger has a load of its kind; each month in service gets its partition (added if
    new) pointed at its current version folder; a month the ledger knows without rows in service (never loaded, or
    its load held none) is dropped from the table (the files stay). Zones and zone shapes are plain parquet folders
    that dlt replaces whole, refreshed so a session does not read a file list from before the replacement.

    Args:
        entries: the ledger (`fares.ops.ledger.read_ledger(wh).values()`).
    """
    entries = list(entries)
    in_service = lake_months(entries)
    statements = [f"create database if not exists {RAW}"]
    for kind, table in TABLES.items():
        own = [e for e in entries if e.kind == kind and e.month]
        if not any(e.load_id for e in own):
            continue
        name = f"{RAW}.{table}"
        statements.append(
            f"create table if not exists {name} ({trip_table_ddl(kind)}) using parquet"
            f" partitioned by (source_month) location {_text(lake_path(settings, DATASET, table))}"
        )
        months = in_service.get(name, {})
        for month, current in sorted(months.items()):
            where = f"partition (source_month = {_text(month)})"
            location = _text(lake_path(settings, DATASET, version_dir(table, month, current.load_id)))
            statements.append(f"alter table {name} add if not exists {where} location {location}")
            statements.append(f"alter table {name} {where} set location {location}")
        for month in sorted({e.month for e in own if e.month} - set(months)):
            statements.append(f"alter table {name} drop if exists partition (source_month = {_text(month)})")
    for table in SMALL_TABLES:
        if any(e.kind == table and e.load_id for e in entries):
            location = _text(lake_path(settings, DATASET, table))
            statements.append(f"create table if not exists {RAW}.{table} using parquet location {location}")
            statements.append(f"refresh table {RAW}.{table}")
    return statements
