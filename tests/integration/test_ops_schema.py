"""fares.ops owns the ops schema: migrations applied once and in order, an older database brought up to date, and one
run history that the CLI and the API both read alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fares.config.warehouse import Warehouse
from fares.ops import runs, schema

pytestmark = pytest.mark.integration

# What runs.py created before ops.schema_migrations existed (no timed_out, no trigger/log columns).
_OLD_DDL = """
create schema ops;
create table ops.pipeline_runs (
    run_id bigint generated always as identity primary key, started_at timestamptz not null default now(),
    finished_at timestamptz,
    status text not null check (status in ('running', 'succeeded', 'failed', 'interrupted', 'skipped')),
    months text[], source text, error text, model_version text, rows_in bigint, rows_out bigint, pid integer,
    host text, redo_of bigint references ops.pipeline_runs (run_id));
create table ops.stage_runs (
    run_id bigint not null references ops.pipeline_runs (run_id) on delete cascade, stage text not null,
    started_at timestamptz not null default now(), finished_at timestamptz,
    status text not null check (status in ('running', 'succeeded', 'failed', 'interrupted')),
    attempts integer not null default 1, rows_in bigint, rows_out bigint, error text, primary key (run_id, stage));
insert into ops.pipeline_runs (status, months) values ('succeeded', '{2024-01}');
"""


def _applied(wh: Warehouse) -> list[tuple[int, str]]:
    with wh.connect() as conn:
        return conn.execute("select version, name from ops.schema_migrations order by version").fetchall()


def test_migrations_apply_once_in_order(bare_db: Warehouse) -> None:
    assert schema.migrate(bare_db) == list(range(1, len(schema.MIGRATIONS) + 1))
    schema._migrated.clear()  # noqa: SLF001 - forget what this process applied, as a new process would
    assert schema.migrate(bare_db) == []
    assert _applied(bare_db) == [(i, name) for i, (name, _) in enumerate(schema.MIGRATIONS, start=1)]


def test_a_database_from_before_the_migrations_is_brought_up_to_date(bare_db: Warehouse) -> None:
    with bare_db.connect() as conn:
        conn.execute(_OLD_DDL)
    schema.migrate(bare_db)
    [old] = runs.list_runs(bare_db)
    assert (old.status, old.months, old.trigger) == ("succeeded", ["2024-01"], None)
    run_id = runs.start_run(bare_db, None, "x")
    runs.start_stage(bare_db, run_id, "transform")
    runs.finish_stage(bare_db, run_id, "transform", "timed_out", error="transform timed out after 1 s")
    runs.finish_run(bare_db, run_id, "timed_out", "transform timed out")
    assert runs.get_run(bare_db, run_id).stages[0].status == "timed_out"


def test_the_cli_and_the_api_read_the_same_history(fresh_db: Warehouse, tmp_path: Path, monkeypatch, capsys) -> None:
    from conftest import settings_for

    from fares.api.app import create_app
    from fares.cli import main
    from fares.config.settings import get_settings

    schema.migrate(fresh_db)
    crashed = runs.start_run(fresh_db, ["2024-01"], "x")
    runs.finish_run(fresh_db, crashed, "failed", "crashed: the process stopped " + "x" * 300)
    redo = runs.start_run(fresh_db, ["2024-01"], "x", redo_of=crashed, trigger="redo")
    runs.finish_run(fresh_db, redo, "succeeded")
    with fresh_db.connect() as conn:  # an older run that started later (clock change): run id still orders
        conn.execute(
            "update ops.pipeline_runs set started_at = now() + interval '1 hour' where run_id = %s", (crashed,)
        )

    settings = settings_for(fresh_db, tmp_path / "data", admin_token="s3cret")
    with TestClient(create_app(settings, poll_seconds=0)) as client:
        api = client.get("/v1/runs", headers={"Authorization": "Bearer s3cret"}).json()
    assert [(r["run_id"], r["redo_of"]) for r in api] == [(redo, crashed), (crashed, None)]

    monkeypatch.setenv("DATABASE_URL", fresh_db.url())
    monkeypatch.setenv("FARES_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        assert main(["runs"]) == 0
    finally:
        get_settings.cache_clear()
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == [str(redo), str(crashed)]
    assert max(len(line) for line in lines) < 160, "the table is too wide for a terminal"
    assert lines[2].endswith("…") and "redo" in lines[1]
