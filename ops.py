"""The ops schema's one owner: ordered migrations applied once, the advisory locks, the run history everyone reads."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from fares.warehouse import Warehouse, WarehouseError

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

# Advisory-lock keys, below 2**32 so pg_locks shows them in `objid`: "FARE" (one run at a time), "FDDL" (migrations),
# and the ingest's own (one ingest at a time, also outside a recorded run).
RUN_LOCK = 0x46415245
DDL_LOCK = 0x4644444C
INGEST_LOCK = 7_301_947_112

RUN_STATUSES = ("running", "succeeded", "failed", "interrupted", "skipped", "timed_out")
STAGE_STATUSES = ("running", "succeeded", "failed", "interrupted", "timed_out")
RUN_COLUMNS = (
    "run_id",
    "started_at",
    "finished_at",
    "status",
    "months",
    "source",
    "error",
    "model_version",
    "rows_in",
    "rows_out",
    "pid",
    "host",
    "redo_of",
    "trigger",
    "stages_requested",
    "log_path",
    "validation_run_ids",
)
STAGE_COLUMNS = ("run_id", "stage", "started_at", "finished_at", "status", "attempts", "rows_in", "rows_out", "error")
_RUN_LIST, _STAGE_LIST = ", ".join(RUN_COLUMNS), ", ".join(STAGE_COLUMNS)  # constants: safe to format into SQL


def _check(table: str, statuses: tuple[str, ...]) -> str:
    values = ", ".join(f"'{s}'" for s in statuses)
    return (
        f"alter table ops.{table} drop constraint if exists {table}_status_check;\n"
        f"alter table ops.{table} add constraint {table}_status_check check (status in ({values}));"
    )


# Ordered, never edited once released: a change is a new entry. Each is written so that a database created before
# ops.schema_migrations existed (tables made by `create ... if not exists`) takes it too.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "pipeline and stage runs",
        """
create table if not exists ops.pipeline_runs (
    run_id bigint generated always as identity primary key,
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    status text not null check (status in ('running', 'succeeded', 'failed', 'interrupted', 'skipped')),
    months text[],
    source text,
    error text,
    model_version text,
    rows_in bigint,
    rows_out bigint,
    pid integer,
    host text,
    redo_of bigint references ops.pipeline_runs (run_id)
);
create table if not exists ops.stage_runs (
    run_id bigint not null references ops.pipeline_runs (run_id) on delete cascade,
    stage text not null,
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    status text not null check (status in ('running', 'succeeded', 'failed', 'interrupted')),
    attempts integer not null default 1,
    rows_in bigint,
    rows_out bigint,
    error text,
    primary key (run_id, stage)
);""",
    ),
    (
        "ingest ledger",
        """
create table if not exists ops.ingested_files (
    file text primary key,
    kind text not null,
    month text,
    source text not null,
    size_bytes bigint,
    etag text,
    sample double precision,
    rows bigint,
    load_id text,
    status text not null,
    loaded_at timestamptz,
    last_attempt_at timestamptz not null default now(),
    last_error text
);""",
    ),
    (
        "validation runs and results",
        """
create table if not exists ops.validation_runs (
    run_id text primary key,
    scope text not null,
    months text[],
    started_at timestamptz not null,
    finished_at timestamptz not null,
    success boolean not null,
    checks integer not null,
    critical_failures integer not null,
    warnings integer not null,
    summary text not null
);
create table if not exists ops.validation_results (
    run_id text not null references ops.validation_runs (run_id) on delete cascade,
    table_name text not null,
    batch text not null,
    check_name text not null,
    expectation_type text not null,
    severity text not null,
    success boolean not null,
    element_count bigint,
    unexpected_count bigint,
    unexpected_percent double precision,
    observed_value text,
    examples jsonb not null default '[]',
    description text not null,
    error text,
    kwargs jsonb not null default '{}',
    fingerprint text,
    primary key (run_id, table_name, batch, check_name)
);
alter table ops.validation_results add column if not exists fingerprint text;""",
    ),
    (
        "timeouts, triggers, run logs, alerts",
        _check("pipeline_runs", RUN_STATUSES)
        + "\n"
        + _check("stage_runs", STAGE_STATUSES)
        + """
alter table ops.pipeline_runs add column if not exists trigger text;
alter table ops.pipeline_runs add column if not exists stages_requested text[];
alter table ops.pipeline_runs add column if not exists log_path text;
alter table ops.pipeline_runs add column if not exists validation_run_ids text[];
create table if not exists ops.alerts (
    alert_id bigint generated always as identity primary key,
    event text not null,
    run_id bigint references ops.pipeline_runs (run_id) on delete set null,
    title text not null,
    body text not null,
    sent_at timestamptz not null default now(),
    delivered boolean not null,
    resolved_at timestamptz
);""",
    ),
    (
        "ledger: the load each trip file was last built from",
        "alter table ops.ingested_files add column if not exists built_load_id text;",
    ),
)

_migrated: set[Warehouse] = set()
_migrated_lock = threading.Lock()


@contextmanager
def ddl_lock(wh: Warehouse) -> Iterator[None]:
    """Serialise schema changes between processes starting at the same moment (waits for the holder)."""
    with wh.connect(autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (DDL_LOCK,))
        try:
            yield
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (DDL_LOCK,))


def migrate(wh: Warehouse) -> list[int]:
    """Apply the migrations this database lacks, in order, each once; returns the versions applied now."""
    with _migrated_lock:
        if wh in _migrated:
            return []
        applied: list[int] = []
        with ddl_lock(wh), wh.connect() as conn:
            conn.execute(
                "create schema if not exists ops; create table if not exists ops.schema_migrations ("
                " version integer primary key, name text not null, applied_at timestamptz not null default now())"
            )
            done = {r[0] for r in conn.execute("select version from ops.schema_migrations").fetchall()}
            for version, (name, sql) in enumerate(MIGRATIONS, start=1):
                if version in done:
                    continue
                conn.execute(sql)
                conn.execute("insert into ops.schema_migrations (version, name) values (%s, %s)", (version, name))
                applied.append(version)
            conn.commit()
        if applied:
            log.info("ops schema: applied migrations %s", applied)
        _migrated.add(wh)
        return applied


class RunLock:
    """A session-level pg advisory lock on a dedicated connection, held for a whole run."""

    def __init__(self, wh: Warehouse, key: int = RUN_LOCK) -> None:
        self.wh, self.key = wh, key
        self._conn: psycopg.Connection | None = None

    def acquire(self) -> bool:
        """Try once, without waiting; True when this process now holds the lock."""
        conn = self.wh.connect(autocommit=True)
        row = conn.execute("select pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        if row and row[0]:
            self._conn = conn
            return True
        conn.close()
        return False

    def verify(self) -> None:
        """Check the lock connection is alive; after a database restart take the lock again or raise LockLostError."""
        import psycopg

        if self._conn is not None:
            try:
                self._conn.execute("select 1")
                return
            except psycopg.Error:
                log.warning("the connection holding the pipeline lock died; taking the lock again")
        self._conn = None
        if not self.acquire():
            raise LockLostError("lost the pipeline lock (database restart?) and another run holds it now")

    def release(self) -> None:
        """Give the lock back (closing the connection would too)."""
        if self._conn is None:
            return
        try:
            self._conn.execute("select pg_advisory_unlock(%s)", (self.key,))
            self._conn.close()
        except Exception:
            log.debug("lock connection already gone", exc_info=True)
        self._conn = None


class LockLostError(WarehouseError):
    """The connection holding the pipeline lock died and another process took the lock meanwhile."""


@contextmanager
def try_lock(wh: Warehouse, key: int) -> Iterator[bool]:
    """Hold advisory lock `key` for the block if it is free; yields whether it was got (never waits)."""
    lock = RunLock(wh, key)
    got = lock.acquire()
    try:
        yield got
    finally:
        lock.release()


def _rows(wh: Warehouse, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with wh.connect(autocommit=True) as conn:
        cur = conn.execute(sql, params)
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _stages_of(wh: Warehouse, run_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, list[dict[str, Any]]] = {}
    rows = _rows(
        wh,
        f"select {_STAGE_LIST} from ops.stage_runs where run_id = any(%s) order by started_at, stage",  # noqa: S608 - constant column list
        (run_ids,),
    )
    for row in rows:
        found.setdefault(row["run_id"], []).append(row)
    return found


def list_runs(wh: Warehouse, limit: int = 20) -> list[dict[str, Any]]:
    """The newest `limit` pipeline runs, newest first (run_id order), each with RUN_COLUMNS and its `stages`."""
    migrate(wh)
    runs = _rows(wh, f"select {_RUN_LIST} from ops.pipeline_runs order by run_id desc limit %s", (limit,))  # noqa: S608 - constant columns
    stages = _stages_of(wh, [r["run_id"] for r in runs])
    return [{**r, "stages": stages.get(r["run_id"], [])} for r in runs]


def get_run(wh: Warehouse, run_id: int) -> dict[str, Any]:
    """One run (RUN_COLUMNS plus `stages`); KeyError when there is no such run."""
    migrate(wh)
    rows = _rows(wh, f"select {_RUN_LIST} from ops.pipeline_runs where run_id = %s", (run_id,))  # noqa: S608 - constant columns
    if not rows:
        raise KeyError(f"no pipeline run {run_id}")
    return {**rows[0], "stages": _stages_of(wh, [run_id]).get(run_id, [])}


def last_success_at(wh: Warehouse) -> Any:
    """When the newest succeeded run finished (None before the first)."""
    migrate(wh)
    rows = _rows(wh, "select max(finished_at) as at from ops.pipeline_runs where status = 'succeeded'")
    return rows[0]["at"] if rows else None


def rows_loaded_per_month(wh: Warehouse) -> list[dict[str, Any]]:
    """Trip rows the ledger says are loaded, per month and kind (for the dashboard's chart)."""
    migrate(wh)
    return _rows(
        wh,
        "select month, kind, sum(rows)::bigint as rows from ops.ingested_files"
        " where month is not null and status = 'loaded' group by month, kind order by month, kind",
    )


def validation_results(wh: Warehouse, validation_run_ids: list[str]) -> list[dict[str, Any]]:
    """The stored validation runs with these ids, each with its failed checks (`failures`)."""
    migrate(wh)
    if not validation_run_ids:
        return []
    found = _rows(
        wh,
        "select run_id, scope, months, success, checks, critical_failures, warnings, summary"
        " from ops.validation_runs where run_id = any(%s) order by started_at",
        (validation_run_ids,),
    )
    failed = _rows(
        wh,
        "select run_id, table_name, batch, check_name, severity, unexpected_count, observed_value, description"
        " from ops.validation_results where run_id = any(%s) and not success order by severity, table_name, batch",
        (validation_run_ids,),
    )
    for run in found:
        run["failures"] = [f for f in failed if f["run_id"] == run["run_id"]]
    return found
