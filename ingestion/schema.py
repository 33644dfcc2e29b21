"""Conforming a TLC file to the pinned raw schema (`fares.engines.raw_tables`): names, casts, dlt hints, checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from fares.engines.base import LoadError
from fares.engines.raw_tables import LINEAGE_COLUMNS, TRIP_COLUMNS, TS

if TYPE_CHECKING:
    from dlt.common.data_types.typing import TDataType
    from dlt.common.schema.typing import TColumnSchema, TTableSchemaColumns

# A file without one of these cannot feed the fare models: the month fails rather than loading nulls.
REQUIRED: dict[str, tuple[str, ...]] = {
    "yellow": (
        "tpep_pickup_datetime",
        "tpep_dropoff_datetime",
        "pu_location_id",
        "do_location_id",
        "trip_distance",
        "fare_amount",
        "total_amount",
    ),
    "fhvhv": (
        "hvfhs_license_num",
        "pickup_datetime",
        "dropoff_datetime",
        "pu_location_id",
        "do_location_id",
        "trip_miles",
        "base_passenger_fare",
    ),
}

# TLC spellings that a plain lower-casing does not turn into dlt's snake_case names.
_RENAMES = {
    "vendorid": "vendor_id",
    "ratecodeid": "ratecode_id",
    "pulocationid": "pu_location_id",
    "dolocationid": "do_location_id",
}

_DLT_TYPES: dict[pa.DataType, TDataType] = {
    pa.int64(): "bigint",
    pa.float64(): "double",
    pa.string(): "text",
    TS: "timestamp",
}


class SchemaError(LoadError, ValueError):
    """A file does not carry what the raw contract needs."""


def normalize_name(name: str) -> str:
    """The raw name of a TLC column (`PULocationID` -> `pu_location_id`, `Airport_fee` -> `airport_fee`)."""
    low = name.strip().lower()
    return _RENAMES.get(low, low)


def target_schema(kind: str) -> pa.Schema:
    """The Arrow schema a conformed batch of `kind` has (trip columns, then lineage)."""
    cols = {**TRIP_COLUMNS[kind], **LINEAGE_COLUMNS}
    return pa.schema([pa.field(name, typ, nullable=True) for name, typ in cols.items()])


def dlt_columns(kind: str) -> TTableSchemaColumns:
    """dlt column hints pinning every column's type (timestamps without time zone)."""
    hints: TTableSchemaColumns = {}
    for name, typ in {**TRIP_COLUMNS[kind], **LINEAGE_COLUMNS}.items():
        hint: TColumnSchema = {"name": name, "data_type": _DLT_TYPES[typ], "nullable": True}
        if typ == TS:
            hint["timezone"] = False
        hints[name] = hint
    return hints


def check_columns(kind: str, names: list[str], file: str) -> None:
    """Raise SchemaError naming `file` and the missing columns when a required column is absent."""
    present = {normalize_name(n) for n in names}
    missing = [c for c in REQUIRED[kind] if c not in present]
    if missing:
        raise SchemaError(f"{file}: missing required column(s) {', '.join(missing)}")


def _cast(column: pa.ChunkedArray | pa.Array, typ: pa.DataType, name: str, file: str) -> pa.Array:
    if column.type == typ:
        return column
    if pa.types.is_timestamp(column.type) and column.type.tz is not None:
        # TLC timestamps are New York wall clock; an aware column is converted back to it.
        column = pc.local_timestamp(pc.cast(column, pa.timestamp(column.type.unit, "America/New_York")))
    try:
        return pc.cast(column, typ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        try:
            return pc.cast(column, typ, safe=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SchemaError(f"{file}: column {name} of type {column.type} cannot become {typ}: {exc}") from exc


def conform(batch: pa.RecordBatch | pa.Table, kind: str, file: str, month: str) -> pa.Table:
    """Rename, cast and complete a batch to the pinned schema of `kind`, adding source_file and source_month."""
    by_name = {normalize_name(n): i for i, n in enumerate(batch.schema.names)}
    n = batch.num_rows
    arrays = []
    for name, typ in TRIP_COLUMNS[kind].items():
        idx = by_name.get(name)
        arrays.append(pa.nulls(n, typ) if idx is None else _cast(batch.column(idx), typ, name, file))
    arrays.append(pa.repeat(pa.scalar(file, pa.string()), n))
    arrays.append(pa.repeat(pa.scalar(month, pa.string()), n))
    return pa.Table.from_arrays(arrays, schema=target_schema(kind))
