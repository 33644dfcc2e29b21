"""Schema ops: ordered migrations, each applied once per database, at each process's entry (CLI, daemon, API)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from fares.config.settings import Settings
from fares.config.warehouse import Warehouse, get_warehouse

log = logging.getLogger(__name__)

# Advisory-lock key "FDDL" (migrations and any other schema change in ops), below 2**32: pg_locks shows it in `objid`.
DDL_LOCK = 0x4644444C

RUN_STATUSES = ("running", "succeeded", "failed", "interrupted", "skipped", "timed_out")
STAGE_STATUSES = ("running", "succeeded", "failed", "interrupted", "timed_out")
# Migration 6 on: an operator can cancel a run (never redone), and a stage says when it had nothing to do.
RUN_STATUSES_6 = (*RUN_STATUSES, "cancelled")
STAGE_STATUSES_6 = (*STAGE_STATUSES, "cancelled")


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
        "the scheduler's job store",
        # APScheduler's SQLAlchemyJobStore table (apscheduler 3.x: id, next_run_time, job_state), created here so
        # every ops table comes from the migrations; the store's own `create if missing` then finds it.
        """
create table if not exists ops.apscheduler_jobs (
    id varchar(191) primary key,
    next_run_time float,
    job_state bytea not null
);
create index if not exists ix_ops_apscheduler_jobs_next_run_time on ops.apscheduler_jobs (next_run_time);""",
    ),
    (
        "cancel, stage notes and processes",
        _check("pipeline_runs", RUN_STATUSES_6)
        + "\n"
        + _check("stage_runs", STAGE_STATUSES_6)
        + """
alter table ops.pipeline_runs add column if not exists cancel_requested_at timestamptz;
alter table ops.pipeline_runs add column if not exists cancel_requested_by text;
alter table ops.stage_runs add column if not exists note text;
alter table ops.stage_runs add column if not exists pid integer;""",
    ),
    (
        "scheduler heartbeats; one open scheduler alert per event",
        # One row per daemon process. At most one open `stale` or `scheduler_dead` alert: the daemon and the API both
        # check, and the index makes the first insert win (older duplicates are closed first, so it can be built).
        """
create table if not exists ops.scheduler_heartbeats (
    host text not null,
    pid integer not null,
    started_at timestamptz not null,
    beat_at timestamptz not null,
    next_run_at timestamptz,
    primary key (host, pid)
);
update ops.alerts a set resolved_at = now()
where a.resolved_at is null and a.run_id is null and a.event in ('stale', 'scheduler_dead')
  and a.alert_id < (select max(b.alert_id) from ops.alerts b
                    where b.event = a.event and b.resolved_at is null and b.run_id is null);
create unique index if not exists ux_ops_alerts_one_open_scheduler_alert on ops.alerts (event)
    where resolved_at is null and run_id is null and event in ('stale', 'scheduler_dead');""",
    ),
    (
        "run requests for the daemon",
        # POST /v1/admin/runs while a daemon beats: the request waits here and the daemon's process runs it.
        """
create table if not exists ops.run_requests (
    request_id bigint generated always as identity primary key,
    requested_at timestamptz not null default now(),
    requested_by text not null,
    months text[],
    source text,
    stages text[] not null,
    force boolean not null default false,
    taken_at timestamptz,
    taken_by text,
    run_id bigint references ops.pipeline_runs (run_id) on delete set null
);""",
    ),
    (
        "ledger: the load each trip file was last built from",
        # Written by the transform stage once dbt built the file's month (fares.ops.ledger.mark_months_built).
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


def prepare_warehouse(settings: Settings) -> Warehouse:
    """The database of `settings` with schema ops up to date: what each process entry calls once (CLI, daemon, API)."""
    wh = get_warehouse(settings)
    migrate(wh)
    return wh
