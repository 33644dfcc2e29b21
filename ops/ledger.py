"""The ingest ledger, ops.ingested_files: what the loader loaded (file, size/ETag, rows, load id, time) or failed to,
and the load the transform stage last built each trip file from (built_load_id)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from datetime import datetime

from fares.config.warehouse import Warehouse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LedgerEntry:
    """What is known of one file: its last successful load (facts) and its last attempt (status, error)."""

    file: str
    kind: str  # yellow | fhvhv | zones | zone_shapes
    month: str | None
    source: str
    size_bytes: int | None
    etag: str | None
    sample: float | None
    rows: int | None
    load_id: str | None
    status: str  # loaded | failed: the last attempt
    loaded_at: datetime | None
    last_attempt_at: datetime
    last_error: str | None
    built_load_id: str | None = None  # the load the transform stage last built this file's month from

    def is_version(self, size: int | None, etag: str | None, sample: float | None) -> bool:
        """True when this exact file version (and sample) is what is loaded."""
        if self.status != "loaded" or self.sample != sample:
            return False
        if etag and self.etag:
            return self.etag == etag
        return size is not None and self.size_bytes == size


@dataclass(frozen=True)
class MonthRows:
    """Trip rows the ledger says are loaded for one month and kind."""

    month: str
    kind: str
    rows: int


@dataclass(frozen=True)
class TripMonthPlan:
    """The trip months to (re)build: {month: newest load id of its files}, and the (file, load id) pairs behind it."""

    loads: dict[str, str] = field(default_factory=dict)
    files: tuple[tuple[str, str], ...] = ()


_COLUMNS = tuple(f.name for f in fields(LedgerEntry))


def forget_months(wh: Warehouse, months: list[str]) -> int:
    """Forget which file versions these months were loaded from, so their files load again even if unchanged;
    returns the files forgotten.

    The loads themselves stay recorded (load id, rows): their data stays in raw until a reload replaces it, and a
    failed reload leaves it in service, as after any failed load.
    """
    with wh.connect() as conn:
        return conn.execute(
            "update ops.ingested_files set size_bytes = null, etag = null where month = any(%s)", (months,)
        ).rowcount


def read_entry(wh: Warehouse, file: str) -> LedgerEntry | None:
    """The ledger entry of one file, or None."""
    with wh.connect() as conn:
        row = conn.execute(
            f"select {', '.join(_COLUMNS)} from ops.ingested_files where file = %s",  # noqa: S608 - fixed names
            (file,),
        ).fetchone()
    return LedgerEntry(*row) if row else None


def read_ledger(wh: Warehouse) -> dict[str, LedgerEntry]:
    """Every ledger entry by file name."""
    with wh.connect() as conn:
        cur = conn.execute(f"select {', '.join(_COLUMNS)} from ops.ingested_files order by kind, month, file")  # noqa: S608 - fixed names
        return {row[0]: LedgerEntry(*row) for row in cur.fetchall()}


def loaded_trip_files(wh: Warehouse, kinds: tuple[str, ...], months: list[str]) -> list[LedgerEntry]:
    """The loaded files of these kinds and months, by month and kind."""
    with wh.connect() as conn:
        cur = conn.execute(
            f"select {', '.join(_COLUMNS)} from ops.ingested_files"  # noqa: S608 - fixed names
            " where status = 'loaded' and kind = any(%s) and month = any(%s) order by month, kind",
            (list(kinds), months),
        )
        return [LedgerEntry(*row) for row in cur.fetchall()]


def rows_loaded_per_month(wh: Warehouse) -> list[MonthRows]:
    """Trip rows the ledger says are loaded, per month and kind (the dashboard's chart)."""
    with wh.connect() as conn:
        rows = conn.execute(
            "select month, kind, sum(rows)::bigint from ops.ingested_files"
            " where month is not null and status = 'loaded' group by month, kind order by month, kind"
        ).fetchall()
    return [MonthRows(m, k, int(n or 0)) for m, k, n in rows]


def record_loaded(
    wh: Warehouse,
    file: str,
    kind: str,
    month: str | None,
    source: str,
    size: int | None,
    etag: str | None,
    sample: float | None,
    rows: int,
    load_id: str | None,
) -> None:
    """Remember a successful load of `file` (replacing what was known of it)."""
    with wh.connect() as conn:
        conn.execute(
            """insert into ops.ingested_files (file, kind, month, source, size_bytes, etag, sample, rows, load_id,
                                               status, loaded_at, last_attempt_at, last_error)
               values (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'loaded', now(), now(), null)
               on conflict (file) do update set kind = excluded.kind, month = excluded.month,
                   source = excluded.source, size_bytes = excluded.size_bytes, etag = excluded.etag,
                   sample = excluded.sample, rows = excluded.rows, load_id = excluded.load_id, status = 'loaded',
                   loaded_at = excluded.loaded_at, last_attempt_at = excluded.last_attempt_at, last_error = null""",
            (file, kind, month, source, size, etag, sample, rows, load_id),
        )


def record_failed(wh: Warehouse, file: str, kind: str, month: str | None, source: str, error: str) -> None:
    """Remember a failed attempt; the data of an earlier successful load stays and so do its facts."""
    with wh.connect() as conn:
        conn.execute(
            """insert into ops.ingested_files (file, kind, month, source, status, last_attempt_at, last_error)
               values (%s, %s, %s, %s, 'failed', now(), %s)
               on conflict (file) do update set status = 'failed', last_attempt_at = now(),
                   last_error = excluded.last_error""",
            (file, kind, month, source, error[:2000]),
        )


# A trip file is one with a month (zones and zone shapes have none), as in rows_loaded_per_month.


def plan_trip_months(wh: Warehouse) -> TripMonthPlan:
    """The trip months whose files were loaded or reloaded since the transform stage last built them."""
    with wh.connect() as conn:
        rows = conn.execute(
            "select file, month, load_id from ops.ingested_files"
            " where month is not null and load_id is not null and month in ("
            "   select month from ops.ingested_files where month is not null and load_id is not null"
            "   and built_load_id is distinct from load_id)"
            " order by month, file"
        ).fetchall()
    loads: dict[str, str] = {}
    for _, month, load_id in rows:
        loads[month] = max(loads.get(month, ""), load_id)
    return TripMonthPlan(loads, tuple((file, load_id) for file, _, load_id in rows))


def mark_months_built(wh: Warehouse, plan: TripMonthPlan) -> None:
    """Record that the plan's files were built (a file reloaded since keeps its newer load id unbuilt)."""
    if not plan.files:
        return
    with wh.connect() as conn:
        conn.execute(
            "update ops.ingested_files as f set built_load_id = f.load_id"
            " from unnest(%s::text[], %s::text[]) as p(file, load_id)"
            " where f.file = p.file and f.load_id = p.load_id",
            ([f for f, _ in plan.files], [lid for _, lid in plan.files]),
        )


def built_trip_months(wh: Warehouse) -> dict[str, str]:
    """{trip month: the load id its last transform-stage build came from}, for months whose every file is built
    from its current load (a month loaded again since, or built only by a plain `dbt build`, is not here)."""
    with wh.connect() as conn:
        rows = conn.execute(
            "select month, max(load_id) from ops.ingested_files"
            " where month is not null and load_id is not null"
            " group by month having bool_and(built_load_id is not distinct from load_id)"
        ).fetchall()
    return {month: str(load) for month, load in rows}
