"""Retention on a real PostgreSQL and real folders: `fares prune --dry-run` lists what `fares prune` then removes, and
both keep what must stay (running and newest runs, what a kept run redid, the newest validation, open alerts, the
newest heartbeat, fresh GX results, the current model and the one before it)."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fares.cli import main
from fares.config.settings import get_settings
from fares.config.warehouse import Warehouse
from fares.ml.predict import MODEL_FILE
from fares.ml.registry import Registry
from fares.ops import runs, validation
from fares.ops.retention import GX_RESULT_PAGES, GX_RESULTS, KINDS

pytestmark = pytest.mark.integration

DAY = 86_400


def _run(wh: Warehouse, status: str, days_ago: float, redo_of: int | None = None) -> int:
    """A recorded run with one stage, ended `days_ago` (still running when status is 'running')."""
    run_id = runs.start_run(wh, ["2024-01"], "test", redo_of=redo_of)
    runs.start_stage(wh, run_id, "ingest")
    if status != "running":
        runs.finish_stage(wh, run_id, "ingest", "succeeded" if status == "succeeded" else "failed")
        runs.finish_run(wh, run_id, status, error=None if status == "succeeded" else "crashed: the process died")
    with wh.connect() as conn:
        conn.execute(
            "update ops.pipeline_runs set started_at = now() - make_interval(secs => %s),"
            " finished_at = case when finished_at is null then null else now() - make_interval(secs => %s) end"
            " where run_id = %s",
            ((days_ago + 0.1) * DAY, days_ago * DAY, run_id),
        )
    return run_id


def _old(path: Path, days: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text("x")
    stamp = time.time() - days * DAY
    os.utime(path, (stamp, stamp))
    return path


def _ids(wh: Warehouse, sql: str) -> list:
    with wh.connect() as conn:
        return [r[0] for r in conn.execute(sql).fetchall()]


def _state(wh: Warehouse, data: Path) -> dict[str, list]:
    """Everything retention may touch, as names."""
    gx = data / "gx"
    return {
        "run folders": sorted(p.name for p in (data / "runs").iterdir()),
        "pipeline runs": _ids(wh, "select run_id from ops.pipeline_runs order by run_id"),
        "stage rows": _ids(wh, "select run_id from ops.stage_runs order by run_id"),
        "validation runs": _ids(wh, "select run_id from ops.validation_runs order by run_id"),
        "validation results": _ids(wh, "select run_id from ops.validation_results order by run_id"),
        "alerts": _ids(wh, "select title from ops.alerts order by alert_id"),
        "heartbeats": _ids(wh, "select host from ops.scheduler_heartbeats order by host"),
        "GX results": sorted(str(p.relative_to(gx)) for p in gx.rglob("*") if p.is_file()),
        "model versions": sorted(p.name for p in (data / "models").iterdir() if p.is_dir() and p.name[0] != "."),
    }


def _counts(out: str) -> dict[str, int]:
    """The count printed per kind (a kind missing from the output fails the test)."""
    found = {kind: re.search(rf"^  {re.escape(kind)}\s+(\d+)", out, re.M) for kind in KINDS}
    assert all(found.values()), out
    return {kind: int(m.group(1)) for kind, m in found.items() if m is not None}


def test_prune_dry_run_lists_then_prune_removes_only_what_retention_lets_go(
    fresh_db: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import settings_for

    data = tmp_path / "data"
    settings_for(fresh_db, data)  # schema ops migrated
    old = _run(fresh_db, "succeeded", 100)  # past every limit: goes
    crashed = _run(fresh_db, "failed", 90)  # old, but the kept redo below points at it: its row stays
    running = _run(fresh_db, "running", 80)  # never pruned while running
    redo = _run(fresh_db, "succeeded", 40, redo_of=crashed)  # old, but the newest success: stays
    newest = _run(fresh_db, "failed", 1)
    for run_id in (old, crashed, running, redo, newest):
        _old(data / "runs" / str(run_id) / "run.log", 0)  # a folder's age is its run's, not its files'
    _old(data / "runs" / "99" / "run.log", 20)  # a folder whose run row is gone: its own age counts
    _old(data / "runs" / "98" / "run.log", 1)
    (data / "runs" / "98").touch()
    os.utime(data / "runs" / "99", (time.time() - 20 * DAY,) * 2)

    now = datetime.now(UTC)
    for validation_id, days in (("v-old", 200), ("v-newest", 50), ("v-recent", 2)):
        scope = "training" if validation_id != "v-recent" else "raw"
        at = now - timedelta(days=days)
        check = validation.CheckResult("t", "all", "c", "expect", "critical", True, "d")
        validation.save_run(fresh_db, validation_id, scope, None, at, at, [check], "ok")
    with fresh_db.connect() as conn:
        for title, sent, resolved in (("closed old", 200, 199), ("open old", 200, None), ("closed new", 1, 1)):
            conn.execute(
                "insert into ops.alerts (event, title, body, delivered, sent_at, resolved_at) values"
                " ('run_failed', %s, '', true, now() - make_interval(days => %s),"
                " now() - make_interval(days => %s))",
                (title, sent, resolved),
            )
        for host, days in (("gone-host", 300), ("last-host", 250)):
            conn.execute(
                "insert into ops.scheduler_heartbeats values (%s, 1, now() - make_interval(days => %s),"
                " now() - make_interval(days => %s), null)",
                (host, days, days),
            )

    gx = data / "gx"
    _old(gx / GX_RESULTS / "suite_a" / "run1" / "result.json", 40)
    _old(gx / GX_RESULTS / "suite_a" / "run2" / "result.json", 1)
    _old(gx / GX_RESULT_PAGES / "suite_a" / "run1" / "page.html", 40)
    _old(gx / GX_RESULT_PAGES / "suite_a" / "run2" / "page.html", 1)
    _old(gx / "data_docs" / "index.html", 40)  # the site's index is not a result: rebuilt, never pruned
    _old(gx / "expectations" / "suite_a.json", 400)  # suites are not results either

    models = data / "models"
    for version in ("20240101T000000Z-a", "20240201T000000Z-b", "20240301T000000Z-c", "20240401T000000Z-d"):
        (models / version).mkdir(parents=True)
        (models / version / MODEL_FILE).write_bytes(b"model")
    registry = Registry(models)
    registry.promote("20240101T000000Z-a")
    registry.promote("20240201T000000Z-b")  # current; the one before it is -a, the oldest

    for variable, value in {
        "DATABASE_URL": fresh_db.url(),
        "FARES_DATA_DIR": str(data),
        "FARES_KEEP_OPS_DAYS": "30",
        "FARES_KEEP_RUN_FOLDERS_DAYS": "7",
        "FARES_KEEP_GX_DAYS": "7",
        "FARES_KEEP_MODEL_VERSIONS": "1",
    }.items():
        monkeypatch.setenv(variable, value)
    get_settings.cache_clear()
    monkeypatch.chdir(tmp_path)
    before = _state(fresh_db, data)

    try:
        assert main(["prune", "--dry-run"]) == 0
        dry = capsys.readouterr().out
        assert _state(fresh_db, data) == before, "--dry-run deleted something"
        assert main(["prune"]) == 0
        done = capsys.readouterr().out
    finally:
        get_settings.cache_clear()

    expected = {
        "run folders": 3,
        "pipeline runs": 1,
        "validation runs": 1,
        "alerts": 1,
        "heartbeats": 1,
        "GX results": 1,
        "GX result pages": 1,
        "model versions": 1,
    }
    assert dry.startswith("would prune (dry run, nothing deleted): 10 item(s)\n")
    assert done.startswith("pruned: 10 item(s)\n")
    assert _counts(dry) == _counts(done) == expected
    assert f"  pipeline runs         1  ({old})" in done
    assert "  model versions        1  (20240301T000000Z-c)" in done
    after = _state(fresh_db, data)
    assert after["run folders"] == sorted([str(running), str(redo), str(newest), "98"])
    assert after["pipeline runs"] == [crashed, running, redo, newest]
    assert old not in after["stage rows"]
    assert after["validation runs"] == ["v-newest", "v-recent"]
    assert after["validation results"] == ["v-newest", "v-recent"]
    assert after["alerts"] == ["open old", "closed new"]
    assert after["heartbeats"] == ["last-host"]
    assert after["GX results"] == [
        "data_docs/index.html",
        "data_docs/validations/suite_a/run2/page.html",
        "expectations/suite_a.json",
        "uncommitted/validations/suite_a/run2/result.json",
    ]
    assert after["model versions"] == ["20240101T000000Z-a", "20240201T000000Z-b", "20240401T000000Z-d"]

    assert main(["prune"]) == 0  # nothing left to go
    assert capsys.readouterr().out.startswith("pruned: 0 item(s)\n")
    assert Registry(models).rollback() == "20240101T000000Z-a"  # the one before the current is still there


def test_zero_days_keeps_everything_and_the_model_count_never_touches_current_or_previous(
    fresh_db: Warehouse, tmp_path: Path
) -> None:
    from conftest import settings_for

    from fares.ops.retention import prune

    settings = settings_for(
        fresh_db,
        tmp_path / "data",
        keep_ops_days=0,
        keep_run_folders_days=0,
        keep_gx_days=0,
        keep_model_versions=1,
    )
    first = _run(fresh_db, "succeeded", 1000)
    _run(fresh_db, "succeeded", 900)
    _old(settings.run_dir(first) / "run.log", 1000)
    _old(settings.gx_dir / GX_RESULTS / "s" / "r" / "x.json", 1000)
    models = settings.models_dir
    for version in ("v1", "v2", "v3"):
        (models / version).mkdir(parents=True)
        (models / version / MODEL_FILE).write_bytes(b"m")
    registry = Registry(models)
    registry.promote("v2")
    registry.promote("v1")  # current is the oldest: kept, and so is v2 before it; v3 is the newest
    report = prune(settings, fresh_db, registry)
    assert {p.kind: p.items for p in report.kinds} == {kind: [] for kind in KINDS}
    assert sorted(p.name for p in models.iterdir() if p.is_dir()) == ["v1", "v2", "v3"]
    assert settings.run_dir(first).is_dir()
    assert json.loads((models / "history.json").read_text())[-1]["version"] == "v1"


def test_the_daemon_prunes_every_night_at_the_prune_hour(
    fresh_db: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import settings_for

    from fares import scheduler

    settings = settings_for(
        fresh_db, tmp_path / "data", prune_hour=4, schedule_timezone="America/New_York", keep_ops_days=30
    )
    _run(fresh_db, "succeeded", 100)  # past FARES_KEEP_OPS_DAYS: the job removes it
    success = _run(fresh_db, "succeeded", 50)  # the newest success: kept
    newest = _run(fresh_db, "failed", 1)
    job = scheduler.build_scheduler(settings).get_job(scheduler.PRUNE_JOB_ID)
    now = datetime.now(UTC)
    fires = job.trigger.get_next_fire_time(None, now)
    assert now < fires <= now + timedelta(days=1) and (fires.hour, fires.minute) == (4, 0)
    assert str(fires.tzinfo) == "America/New_York"
    monkeypatch.setenv("DATABASE_URL", fresh_db.url())  # the daemon's settings: the environment
    monkeypatch.setenv("FARES_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FARES_KEEP_OPS_DAYS", "30")
    get_settings.cache_clear()
    try:
        job.func()
    finally:
        get_settings.cache_clear()
    assert _ids(fresh_db, "select run_id from ops.pipeline_runs order by run_id") == [success, newest]
