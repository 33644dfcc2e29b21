"""ops.ingested_files: what the loader loaded (file, size/ETag, rows, load id, time), what the transform stage built
from it (built_load_id), and the ingest lock."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fares import ops
from fares.warehouse import Warehouse

log = logging.getLogger(__name__)

_COLUMNS = (
    "file",
    "kind",
    "month",
    "source",
    "size_bytes",
    "etag",
    "sample",
    "rows",
    "load_id",
    "status",
    "loaded_at",
    "last_attempt_at",
    "last_error",
)


_TRIP_KINDS = ("yellow", "fhvhv")


@dataclass(frozen=True)
class TripMonthPlan:
    """The trip months to (re)build: {month: newest load id of its files}, and the (file, load id) pairs behind it."""

    loads: dict[str, str] = field(default_factory=dict)
    files: tuple[tuple[str, str], ...] = ()


class IngestLockedError(RuntimeError):
    """Another ingest holds the lock on this database."""


def ensure_ledger(wh: Warehouse) -> None:
    """Make sure ops.ingested_files exists (fares.ops owns its DDL, as every ops table's)."""
    ops.migrate(wh)


@contextmanager
def ingest_lock(wh: Warehouse) -> Iterator[None]:
    """Hold a session advisory lock so two ingests never write the same database at once."""
    with ops.try_lock(wh, ops.INGEST_LOCK) as got:
        if not got:
            raise IngestLockedError(f"another ingest is running on database {wh.dbname}")
        yield


def forget_months(wh: Warehouse, months: list[str]) -> int:
    """Drop the ledger's rows of these months, so their files load again even if unchanged; returns rows dropped."""
    ops.migrate(wh)
    with wh.connect() as conn:
        return conn.execute("delete from ops.ingested_files where month = any(%s)", (months,)).rowcount


def read_ledger(wh: Warehouse) -> dict[str, dict[str, Any]]:
    """Every ledger row by file name (empty when the table does not exist yet)."""
    with wh.connect() as conn:
        found = conn.execute("select to_regclass('ops.ingested_files')").fetchone()
        if not found or not found[0]:
            return {}
        cur = conn.execute(f"select {', '.join(_COLUMNS)} from ops.ingested_files order by kind, month, file")  # noqa: S608 - fixed names
        return {row[0]: dict(zip(_COLUMNS, row, strict=True)) for row in cur.fetchall()}


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


def is_unchanged(entry: dict[str, Any] | None, size: int | None, etag: str | None, sample: float | None) -> bool:
    """True when the ledger says this exact file version (and sample) is already loaded."""
    if not entry or entry["status"] != "loaded" or entry["sample"] != sample:
        return False
    if etag and entry["etag"]:
        return entry["etag"] == etag
    return size is not None and entry["size_bytes"] == size


def plan_trip_months(wh: Warehouse) -> TripMonthPlan:
    """The trip months whose files were loaded or reloaded since the transform stage last built them."""
    ops.migrate(wh)
    with wh.connect() as conn:
        rows = conn.execute(
            "select file, month, load_id from ops.ingested_files"
            " where kind = any(%s) and month is not null and load_id is not null and month in ("
            "   select month from ops.ingested_files where kind = any(%s) and load_id is not null"
            "   and built_load_id is distinct from load_id)"
            " order by month, file",
            (list(_TRIP_KINDS), list(_TRIP_KINDS)),
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
    ops.migrate(wh)
    with wh.connect() as conn:
        rows = conn.execute(
            "select month, max(load_id) from ops.ingested_files"
            " where kind = any(%s) and month is not null and load_id is not null"
            " group by month having bool_and(built_load_id is not distinct from load_id)",
            (list(_TRIP_KINDS),),
        ).fetchall()
    return {month: str(load) for month, load in rows}
