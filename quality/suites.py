"""The expectation suites as plain data: which checks run on which batch, and whether a failure is critical.

Nothing here imports Great Expectations; `quality.gx_run` turns each `Check` into a GX expectation.
Raw trips are checked one month at a time (one batch per `source_month`), the training mart per service and whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fares.ml import MART_FEATURES, SERVICES
from fares.ml import TRAINING_COLUMNS as ML_COLUMNS
from fares.ops.validation import CRITICAL, WARNING  # the stored severities

TRAINING_TABLE = "marts.ml_fare_training"
KNOWN_ZONE_IDS = tuple(range(1, 266))  # used when raw.zones is empty: the TLC's 1..265
SUITE_VERSION = "4"  # bump when a check changes, so months validated before are validated again
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

# Plausible (low, high) bounds of rider_fare quantiles per service, dollars. Wide on purpose: they catch unit
# mistakes (cents, tips included twice) and broken joins, not ordinary month-to-month drift.
FARE_QUANTILES: dict[str, dict[float, tuple[float, float]]] = {
    "taxi": {0.1: (3.0, 30.0), 0.5: (5.0, 60.0), 0.9: (10.0, 150.0)},
    "uber": {0.1: (3.0, 40.0), 0.5: (6.0, 80.0), 0.9: (10.0, 200.0)},
}
# Exactly the columns ml/ reads from the training mart (defined once, in fares.ml), plus source_month (the batch key).
TRAINING_FEATURES = MART_FEATURES
TRAINING_COLUMNS = (*ML_COLUMNS, "source_month")
# Not null in the mart: the features, which come from the zone lookups through its joins. The columns the stored
# trips carry (ids, service, pickup_at, source_month, zones, rider_fare) and their ranges and values are dbt's tests
# on those stored rows (int_trips_kept's row_rules and key, dim_zone_pairs' distances), on the same months: the gate
# does not check them again.
TRAINING_NOT_NULL = tuple(c for c in TRAINING_FEATURES if c != "centroid_distance_miles")


@dataclass(frozen=True)
class Check:
    """One expectation: a stable name, the GX expectation class and its arguments, severity, a readable sentence."""

    name: str
    expectation: str
    kwargs: dict[str, Any]
    severity: str
    description: str


@dataclass(frozen=True)
class Tally:
    """A batch's row checks counted in one aggregate query over its rows: each of `checks` tests a column of the
    query's one row and has the name of the row check it stands for (see `tally`)."""

    query: str
    checks: list[Check]


@dataclass(frozen=True)
class Batch:
    """A slice of one table (a month, a service, or all of it) and the checks it must pass.

    A batch is either the table itself restricted by `where` (column -> value or list of values; GX row
    conditions, so column types come from the catalog), or, for aggregates, the result of `query`. A table batch
    with a `tally` is decided by it (one pass over the rows for all its checks); the row checks then run only where
    the tally fails (for the failing rows' count and examples) and where no tally column stands for them.
    """

    table: str
    label: str
    checks: list[Check] = field(default_factory=list)
    where: dict[str, str | list[str]] = field(default_factory=dict)
    query: str | None = None
    fingerprint: str | None = None  # what the data and suite looked like; a passed fingerprint is not re-checked
    tally: Tally | None = None


@dataclass(frozen=True)
class TripKind:
    """The column names that differ between the raw trip tables."""

    kind: str
    table: str
    pickup: str
    dropoff: str
    fare: str
    distance: str
    required: tuple[str, ...]


KINDS = (
    TripKind(
        "yellow",
        "raw.yellow_trips",
        "tpep_pickup_datetime",
        "tpep_dropoff_datetime",
        "fare_amount",
        "trip_distance",
        (
            "vendor_id",
            "tpep_pickup_datetime",
            "tpep_dropoff_datetime",
            "trip_distance",
            "pu_location_id",
            "do_location_id",
            "payment_type",
            "fare_amount",
            "tip_amount",
            "tolls_amount",
            "total_amount",
            "source_file",
            "source_month",
        ),
    ),
    TripKind(
        "fhvhv",
        "raw.fhvhv_trips",
        "pickup_datetime",
        "dropoff_datetime",
        "base_passenger_fare",
        "trip_miles",
        (
            "hvfhs_license_num",
            "pickup_datetime",
            "dropoff_datetime",
            "pu_location_id",
            "do_location_id",
            "trip_miles",
            "trip_time",
            "base_passenger_fare",
            "tolls",
            "bcf",
            "sales_tax",
            "congestion_surcharge",
            "tips",
            "source_file",
            "source_month",
        ),
    ),
)


def check_month(month: str) -> str:
    """Return `month` if it is 'YYYY-MM', else raise ValueError (months end up inside SQL text)."""
    if not _MONTH.match(month):
        raise ValueError(f"month must look like 2024-01, got {month!r}")
    return month


def month_bounds(month: str) -> tuple[str, str]:
    """First instant of `month` and of the month after, as 'YYYY-MM-DD 00:00:00' text."""
    year, mon = (int(p) for p in check_month(month).split("-"))
    nxt = f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"
    return f"{month}-01 00:00:00", f"{nxt}-01 00:00:00"


def _check(name: str, expectation: str, severity: str, description: str, **kwargs: Any) -> Check:
    return Check(name, expectation, kwargs, severity, description)


def _between(
    name: str,
    column: str,
    low: Any,
    high: Any,
    severity: str,
    mostly: float = 1.0,
    description: str | None = None,
    **extra: Any,
) -> Check:
    share = "" if mostly >= 1 else f" for at least {mostly * 100:g}% of rows"
    span = f"at least {low}" if high is None else f"between {low} and {high}"
    return _check(
        name,
        "ExpectColumnValuesToBeBetween",
        severity,
        description or f"{column} {span}{share}",
        column=column,
        min_value=low,
        max_value=high,
        mostly=mostly,
        **extra,
    )


def _not_null(column: str, severity: str = CRITICAL) -> Check:
    return _check(
        f"{column}_not_null", "ExpectColumnValuesToNotBeNull", severity, f"{column} is never null", column=column
    )


def _known_zone(column: str, zone_ids: list[int]) -> Check:
    """Zone ids in raw.zones; a contiguous id range becomes a between check (a 265-value set is slow in GX)."""
    ids = sorted(set(zone_ids))
    if ids and ids == list(range(ids[0], ids[-1] + 1)):
        return _between(
            f"{column}_known_zone",
            column,
            ids[0],
            ids[-1],
            CRITICAL,
            mostly=0.999,
            description=f"{column} is a known zone id ({ids[0]}..{ids[-1]}) for at least 99.9% of rows",
        )
    return _check(
        f"{column}_known_zone",
        "ExpectColumnValuesToBeInSet",
        CRITICAL,
        f"{column} is a known zone id for at least 99.9% of rows",
        column=column,
        value_set=ids,
        mostly=0.999,
    )


def _row_count_check(month: str, previous: tuple[str, int] | None, band: float) -> Check | None:
    if previous is None or previous[1] <= 0:
        return None
    prev_month, prev_rows = previous
    low, high = int(prev_rows * (1 - band)), int(prev_rows * (1 + band)) + 1
    return _check(
        "row_count_vs_previous_month",
        "ExpectTableRowCountToBeBetween",
        CRITICAL,
        f"row count of {month} within ±{band:.0%} of {prev_month} ({prev_rows:,} rows), "
        f"i.e. more than {low:,} and fewer than {high:,}",
        min_value=low,
        max_value=high,
        strict_min=True,
        strict_max=True,
    )


def raw_batch(
    kind: TripKind,
    month: str,
    zone_ids: list[int],
    previous: tuple[str, int] | None,
    band: float,
    data_version: str = "",
) -> Batch:
    """The checks for one month of one raw trip table.

    Args:
        kind: which raw table.
        month: the `source_month` to check.
        zone_ids: the known zone ids (raw.zones).
        previous: (month, rows) of the nearest earlier month of the same table, if any.
        band: allowed relative change of the row count against `previous` (strict).
        data_version: what identifies the month's current data (rows and load id), for the fingerprint.
    """
    start, end = month_bounds(month)
    checks = [
        _check(
            "required_columns",
            "ExpectTableColumnsToMatchSet",
            CRITICAL,
            f"columns {', '.join(kind.required)} exist",
            column_set=list(kind.required),
            exact_match=False,
        ),
        *(_not_null(c) for c in (kind.pickup, kind.dropoff, "pu_location_id", "do_location_id", kind.fare)),
        _between(f"{kind.fare}_in_range", kind.fare, 0, 1000, CRITICAL, mostly=0.99),
        _between(
            "pickup_in_file_month",
            kind.pickup,
            start,
            end,
            CRITICAL,
            mostly=0.99,
            strict_max=True,
            description=f"{kind.pickup} inside {month} for at least 99% of rows",
        ),
        *(_known_zone(c, zone_ids) for c in ("pu_location_id", "do_location_id")),
        _check(
            "dropoff_after_pickup",
            "ExpectColumnPairValuesAToBeGreaterThanB",
            WARNING,
            f"{kind.dropoff} not before {kind.pickup} for at least 99% of rows",
            column_A=kind.dropoff,
            column_B=kind.pickup,
            or_equal=True,
            mostly=0.99,
        ),
        _between(f"{kind.distance}_in_range", kind.distance, 0, 200, WARNING, mostly=0.99),
        _between(f"{kind.fare}_not_negative", kind.fare, 0, None, WARNING),
    ]
    if kind.kind == "fhvhv":
        checks.append(
            _check(
                "license_known",
                "ExpectColumnValuesToBeInSet",
                WARNING,
                "hvfhs_license_num is one of HV0002..HV0005",
                column="hvfhs_license_num",
                value_set=["HV0002", "HV0003", "HV0004", "HV0005"],
            )
        )
    row_count = _row_count_check(month, previous, band)
    if row_count:
        checks.append(row_count)
    fingerprint = f"v{SUITE_VERSION}|{data_version}|prev={previous}|band={band}|zones={len(zone_ids)}"
    return Batch(
        kind.table,
        month,
        checks,
        where={"source_month": check_month(month)},
        fingerprint=fingerprint,
        tally=tally(kind.table, month, checks),
    )


def _sql_value(value: Any) -> str:
    """A bound of a check as SQL: numbers as they are, 'YYYY-MM-DD hh:mm:ss' text as a timestamp literal."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"no SQL form for the bound {value!r}")
    if isinstance(value, str):
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", value):
            raise ValueError(f"a text bound must be a timestamp, got {value!r}")
        return f"timestamp '{value}'"
    return repr(value)


def _holds(check: Check) -> str | None:
    """SQL that is true where a row passes `check` (a column map or pair check), None for other kinds."""
    k = check.kwargs
    if check.expectation == "ExpectColumnValuesToBeBetween":
        column, parts = k["column"], []
        if k.get("min_value") is not None:
            parts.append(f"{column} {'>' if k.get('strict_min') else '>='} {_sql_value(k['min_value'])}")
        if k.get("max_value") is not None:
            parts.append(f"{column} {'<' if k.get('strict_max') else '<='} {_sql_value(k['max_value'])}")
        return " and ".join(parts) or "true"
    if check.expectation == "ExpectColumnValuesToBeInSet":
        values = (_sql_value(v) if not isinstance(v, str) else "'" + v.replace("'", "''") + "'" for v in k["value_set"])
        return f"{k['column']} in ({', '.join(values)})"
    if check.expectation == "ExpectColumnPairValuesAToBeGreaterThanB":
        # one value null: the comparison is null, and GX counts the row as passing
        return f"coalesce({k['column_A']} {'>=' if k.get('or_equal') else '>'} {k['column_B']}, true)"
    return None


def tally(table: str, month: str, checks: list[Check]) -> Tally:
    """One aggregate query over `table`'s rows of `month` (source_month) that decides every column, pair and
    row-count check of `checks` at once (GX runs each row check as its own pass or in a few bundled ones: on a real
    HVFHV month, 20M rows, six passes). What GX's row checks count, counted in SQL:

    - not null: the nulls, which must be 0;
    - a value check (between, in set, pair) with `mostly` below 1: the share of the rows that pass among those it
      applies to (a null value is skipped, as GX skips it; a pair is skipped only when both values are null), at
      least `mostly`; with `mostly` 1: the rows that fail, which must be 0;
    - the row count, within the same bounds.

    Each count is a column named after its check (`<check>__tally`).

    Table-level checks (the columns) are not tallied: they read the catalog, not rows.
    """
    exprs: list[str] = []
    tallied: list[Check] = []
    for check in checks:
        k = check.kwargs
        column = f"{check.name}__tally"
        if check.expectation == "ExpectColumnValuesToNotBeNull":
            exprs.append(f"count(*) - count({k['column']}) as {column}")
            tallied.append(_between(check.name, column, 0, 0, check.severity, description=check.description))
            continue
        if check.expectation == "ExpectTableRowCountToBeBetween":
            bounds = {b: k[b] for b in ("min_value", "max_value", "strict_min", "strict_max") if b in k}
            exprs.append(f"count(*) as {column}")
            tallied.append(
                _check(
                    check.name,
                    "ExpectColumnValuesToBeBetween",
                    check.severity,
                    check.description,
                    column=column,
                    **bounds,
                )
            )
            continue
        holds = _holds(check)
        if holds is None:
            continue
        if check.expectation == "ExpectColumnPairValuesAToBeGreaterThanB":
            skipped = f"{k['column_A']} is null and {k['column_B']} is null"
        else:
            skipped = f"{k['column']} is null"
        mostly = float(k.get("mostly", 1.0))
        if mostly < 1:
            exprs.append(f"avg(case when {skipped} then null when {holds} then 1 else 0 end) as {column}")
            tallied.append(_between(check.name, column, mostly, None, check.severity, description=check.description))
        else:
            exprs.append(f"sum(case when {skipped} then 0 when {holds} then 0 else 1 end) as {column}")
            tallied.append(_between(check.name, column, 0, 0, check.severity, description=check.description))
    query = f"select {', '.join(exprs)} from {table} where source_month = '{check_month(month)}'"  # noqa: S608 - fixed names, a checked month
    return Tally(query, tallied)


def _months_filter(months: list[str] | None) -> str:
    if not months:
        return ""
    return " where source_month in (" + ", ".join(f"'{check_month(m)}'" for m in months) + ")"


def _service_pass(service: str, quantiles: list[float], where: str) -> str:
    """The service's trips of the training mart in one query: `trips`, `<feature>_nulls` and `rider_fare_q<NN>`.

    The quantiles are percentile_cont's (linear interpolation between the two nearest ranks of the sorted fares),
    computed from the fares' histogram: the trips are counted per distinct fare (a hash aggregate, which PostgreSQL
    runs in parallel workers), the few thousand fares are ranked by a running count, and each quantile reads the
    fares at ranks floor and ceil of q x (n - 1). `percentile_cont(...) within group (...)` is an ordered-set
    aggregate: one server process sorts every trip of the service (a real month's Uber trips, 14.7M: 24.9 s in one
    process, against 13.1 s for this query in three). One pass per service, not one for both: telling the services
    apart inside the aggregates (a CASE per aggregate and row) cost more on a real month than two passes.
    """
    per_fare = ", ".join(f"count(*) - count({c}) as {c}_nulls" for c in TRAINING_NOT_NULL)
    nulls = ", ".join(f"coalesce(sum({c}_nulls), 0) as {c}_nulls" for c in TRAINING_NOT_NULL)
    ranks = ", ".join(f"{q} * (fared - 1) as at_q{round(q * 100)}" for q in quantiles)
    cols = []
    for q in quantiles:
        at = f"at_q{round(q * 100)}"
        low, high = (f"min(fare) filter (where fares_upto > {f}({at}))" for f in ("floor", "ceil"))
        cols.append(f"{low} + (max({at}) - floor(max({at}))) * ({high} - {low}) as rider_fare_q{round(q * 100)}")
    histogram = (
        f"select rider_fare as fare, count(*) as trips, {per_fare} from {TRAINING_TABLE}{where}"  # noqa: S608 - fixed names, checked months
        f" and service = '{service}' group by rider_fare"
    )
    # the fares in ascending order, a null fare last on both engines (percentile_cont leaves nulls out)
    window = "order by fare nulls last rows between unbounded preceding and current row"
    running = (
        f"select histogram.*, sum(trips) over ({window}) as fares_upto,"  # noqa: S608 - built from fixed names
        f" sum(case when fare is not null then trips else 0 end) over () as fared from ({histogram}) as histogram"
    )
    return (
        f"select coalesce(sum(trips), 0) as trips, {nulls}, {', '.join(cols)}"  # noqa: S608 - built from fixed names
        f" from (select running.*, {ranks} from ({running}) as running) as ranked"
    )


def training_batches(
    months: list[str] | None = None, services_list: str = "string_agg(service, ',' order by service)"
) -> list[Batch]:
    """The checks for the training mart: the whole (or `months` of it), each service, and the aligned window.

    `services_list` is the engine's aggregate joining a month's services sorted (`Engine.sorted_string_agg`).
    """
    where = _months_filter(months)
    # The whole batch reads one row: the view's columns and that it is not empty need nothing more (a row count or a
    # per-column pass over the view would read every trip of the month once more).
    whole = [
        _check(
            "contract_columns",
            "ExpectTableColumnsToMatchSet",
            CRITICAL,
            "the contract's columns exist",
            column_set=list(TRAINING_COLUMNS),
            exact_match=False,
        ),
        _check("not_empty", "ExpectTableRowCountToBeBetween", CRITICAL, "at least one row", min_value=1),
        # Not here, as dbt tests them on the stored rows of the same months: service taxi or uber, rider_fare in
        # range, centroid distance in range (dim_zone_pairs). pickup_hour and pickup_dow are date parts of a
        # timestamp (macros hour_of and iso_day_of_week), in range by definition.
    ]
    first_row = f"select * from {TRAINING_TABLE}{where} limit 1"  # noqa: S608 - a fixed name, checked months
    batches = [Batch(TRAINING_TABLE, "all", whole, query=first_row)]
    for service in SERVICES:
        # One pass over the service's trips for everything the gate asks of them: how many, the features' nulls,
        # the fare quantiles (computed in SQL: GX's quantile expectation cannot store its result under numpy 2).
        bounds = FARE_QUANTILES[service]
        sql = _service_pass(service, sorted(bounds), where or " where true")
        checks = [_between("service_present", "trips", 1, None, CRITICAL, description=f"{service} trips exist")]
        checks += [
            _between(f"{c}_not_null", f"{c}_nulls", 0, 0, CRITICAL, description=f"{c} is never null ({service} trips)")
            for c in TRAINING_NOT_NULL
        ]
        checks += [
            _between(
                f"rider_fare_q{round(p * 100)}",
                f"rider_fare_q{round(p * 100)}",
                low,
                high,
                CRITICAL,
                description=f"{service} rider_fare q{round(p * 100)} between ${low:g} and ${high:g}",
            )
            for p, (low, high) in sorted(bounds.items())
        ]
        batches.append(Batch(TRAINING_TABLE, service, checks, query=sql))
    # (month, service) pairs first: an aggregate over distinct services would sort every trip of the month. For given
    # months, each pair is probed on its own (a LIMIT 1 stops at its first trip) instead of reading every trip of the
    # view (uncorrelated, so both engines plan it alike).
    if months:
        pairs = " union all ".join(
            f"select * from (select source_month, service from {TRAINING_TABLE}"  # noqa: S608 - checked months, fixed names
            f" where source_month = '{check_month(month)}' and service = '{service}' limit 1) as probe_{i}"
            for i, (month, service) in enumerate((m, svc) for m in sorted(set(months)) for svc in SERVICES)
        )
    else:
        pairs = f"select distinct source_month, service from {TRAINING_TABLE}"  # noqa: S608 - a fixed name
    window = (
        f"select source_month || ' ' || {services_list} as month_services"  # noqa: S608 - fixed names, checked months
        f" from ({pairs}) as month_service"
        " group by source_month"
    )
    batches.append(
        Batch(
            TRAINING_TABLE,
            "aligned window",
            [
                _check(
                    "both_services_each_month",
                    "ExpectColumnValuesToMatchRegex",
                    CRITICAL,
                    "both taxi and uber trips in every month of the aligned window",
                    column="month_services",
                    regex=r"^\d{4}-\d{2} taxi,uber$",
                )
            ],
            query=window,
        )
    )
    return batches
