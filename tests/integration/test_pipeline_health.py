"""Health you can alert on: the daemon's heartbeat, /health and /metrics on a real PostgreSQL, alerts at a real
HTTP receiver, and the README's Prometheus rules against the metrics the API really exposes."""

from __future__ import annotations

import json
import re
import signal
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from alert_receiver import alert_receiver
from api_kit import registry_copy
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from test_scheduler_chain import MONTHS, probe_stages
from test_scheduler_daemon import FAR_AWAY, Daemons

from fares import scheduler
from fares.api.app import create_app
from fares.chain import pipeline
from fares.config.settings import Settings
from fares.config.warehouse import Warehouse, scalar
from fares.ops import alerts, ledger, runs, schema

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

DEAD_TITLE = "fares: the scheduler is not running"
BACK_TITLE = "fares: recovered (the scheduler beats again)"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page: (name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


ADMIN_TOKEN = "s3cret"


def _health(settings: Settings) -> dict:
    """/health of a new API process on `settings` (a new app reads the database afresh, like another worker)."""
    with TestClient(create_app(settings, poll_seconds=0)) as client:
        return client.get("/health").json()


def _metrics(settings: Settings) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics as Prometheus reads it: with the admin token (an ops page; fares.api.deps)."""
    keyed = settings.model_copy(update={"admin_token": ADMIN_TOKEN})
    with TestClient(create_app(keyed, poll_seconds=0)) as client:
        response = client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 200
    return _samples(response.text)


def _beats(wh: Warehouse) -> list[tuple]:
    """The heartbeat rows (none before the daemon migrated the database)."""
    with wh.connect() as conn:
        if not scalar(conn, "select to_regclass('ops.scheduler_heartbeats')"):
            return []
        return conn.execute("select host, pid, next_run_at from ops.scheduler_heartbeats").fetchall()


@pytest.fixture
def daemons(fresh_db: Warehouse, tmp_path: Path):
    d = Daemons(fresh_db, tmp_path)
    yield d
    d.cleanup()


def test_a_running_daemons_heartbeat_shows_in_health_and_metrics(daemons: Daemons, fresh_db: Warehouse) -> None:
    from conftest import settings_for

    proc = daemons.start(FAR_AWAY, FARES_HEARTBEAT_SECONDS="0.5")
    daemons.wait_until("a heartbeat with the next run", lambda: [b for b in _beats(fresh_db) if b[2] is not None])
    settings = settings_for(fresh_db, daemons.tmp_path / "api")
    health = _health(settings)
    trigger = scheduler.build_trigger(Settings(schedule_cron=FAR_AWAY, schedule_timezone="UTC"))
    next_run = trigger.get_next_fire_time(None, datetime.now(UTC))
    beat = health["scheduler"]
    assert (beat["status"], beat["pid"], beat["reason"]) == ("ok", proc.pid, None)
    assert datetime.fromisoformat(beat["next_run_at"]) == next_run
    assert health["database_reachable"] and not health["model_loaded"]
    metrics = _metrics(settings)
    assert metrics[("fares_scheduler_up", ())] == 1
    assert metrics[("fares_scheduler_next_run_timestamp_seconds", ())] == next_run.timestamp()
    beat_at = metrics[("fares_scheduler_heartbeat_timestamp_seconds", ())]
    daemons.wait_until(
        "a later heartbeat",
        lambda: _metrics(settings)[("fares_scheduler_heartbeat_timestamp_seconds", ())] > beat_at,
    )
    assert daemons.stop(proc, signal.SIGTERM) == 0
    with fresh_db.connect() as conn:  # the daemon's own jobs stay out of the shared job store
        assert conn.execute("select id from ops.apscheduler_jobs").fetchall() == [("fares-chain",)]


def test_a_stale_heartbeat_degrades_health_alerts_once_and_the_next_beat_closes_it(
    daemons: Daemons, fresh_db: Warehouse
) -> None:
    from conftest import settings_for

    schema.migrate(fresh_db)
    with fresh_db.connect() as conn:  # a daemon that last beat ten minutes ago
        conn.execute(
            "insert into ops.scheduler_heartbeats values ('old-host', 4242, now() - interval '1 day',"
            " now() - interval '10 minutes', now() + interval '1 hour')"
        )
    with alert_receiver() as receiver:
        settings = settings_for(
            fresh_db, daemons.tmp_path / "api", heartbeat_timeout_seconds=120, alert_urls=[receiver.url]
        )
        first, second = _health(settings), _health(settings)  # two API processes notice it
        _metrics(settings)
        assert first["status"] == second["status"] == "degraded"
        assert first["database_reachable"] and first["scheduler"]["status"] == "dead"
        assert first["scheduler"]["reason"].startswith("no heartbeat for 6")  # ~600 s
        assert "last from pid 4242 on old-host" in first["scheduler"]["reason"]
        assert receiver.wait_for(2, timeout=3) == [DEAD_TITLE]
        assert "FARES_HEARTBEAT_TIMEOUT_SECONDS=120" in receiver.messages[0]["message"]
        assert _metrics(settings)[("fares_scheduler_up", ())] == 0

        proc = daemons.start(FAR_AWAY, FARES_ALERT_URLS=json.dumps([receiver.url]), FARES_HEARTBEAT_SECONDS="0.5")
        assert receiver.wait_for(2) == [DEAD_TITLE, BACK_TITLE]
        assert str(proc.pid) in receiver.messages[1]["message"]
        healthy = _health(settings)
        assert (healthy["status"], healthy["scheduler"]["status"]) == ("degraded", "ok")  # no model loaded here
        assert healthy["scheduler"]["pid"] == proc.pid
        assert daemons.stop(proc) == 0
    with fresh_db.connect() as conn:
        rows = conn.execute("select event, resolved_at is null from ops.alerts order by alert_id").fetchall()
    assert rows == [(alerts.SCHEDULER_DEAD, False), ("recovered", False)]


def test_a_beating_scheduler_without_a_recent_success_is_late_and_alerted_once(
    fresh_db: Warehouse, tmp_path: Path
) -> None:
    from conftest import settings_for

    from fares.ops.heartbeat import write_beat

    schema.migrate(fresh_db)
    run_id = runs.start_run(fresh_db, MONTHS, "test")
    runs.finish_run(fresh_db, run_id, "succeeded")
    with fresh_db.connect() as conn:
        conn.execute(
            "update ops.pipeline_runs set finished_at = now() - interval '3 hours' where run_id = %s", (run_id,)
        )
    write_beat(fresh_db, datetime.now(UTC), None)
    with alert_receiver() as receiver:
        settings = settings_for(fresh_db, tmp_path, alert_stale_hours=1, alert_urls=[receiver.url])
        first, second = _health(settings), _health(settings)
        assert receiver.wait_for(2, timeout=3) == ["fares: no successful run for 3.0 h"]
    assert first["status"] == second["status"] == "degraded"
    assert first["scheduler"]["status"] == "late"
    assert first["scheduler"]["reason"] == "no successful run for 3.0 h (limit FARES_ALERT_STALE_HOURS=1)"


def test_health_is_ok_with_a_model_a_database_and_a_beating_scheduler(
    fresh_db: Warehouse, tlc_samples: Path, tmp_path: Path
) -> None:
    from conftest import settings_for

    from fares.ops.heartbeat import write_beat

    registry_copy(tlc_samples, tmp_path / "models")
    settings = settings_for(fresh_db, tmp_path)
    assert _health(settings)["scheduler"]["status"] == "none"  # no daemon ever ran here: not an alarm
    write_beat(fresh_db, datetime.now(UTC), None)
    health = _health(settings)
    assert (health["status"], health["scheduler"]["status"]) == ("ok", "ok")


def test_metrics_show_the_recorded_runs_stages_rows_and_model_age(
    fresh_db: Warehouse, tlc_samples: Path, tmp_path: Path
) -> None:
    from conftest import settings_for

    from fares.ops.heartbeat import write_beat

    _, version = registry_copy(tlc_samples, tmp_path / "api" / "models")
    chain = settings_for(fresh_db, tmp_path / "chain", months=MONTHS, stage_backoff_seconds=0.05)
    good = pipeline.run_once(chain, stages=probe_stages())
    bad = pipeline.run_once(chain, stages=probe_stages(fail="train"))
    settings = settings_for(fresh_db, tmp_path / "api")  # the API's own models (the probe stages publish fakes)
    assert (good.status, bad.status) == ("succeeded", "failed")
    for month, kind, rows in (("2024-01", "yellow", 1200), ("2024-01", "fhvhv", 3400), ("2024-02", "yellow", 1300)):
        ledger.record_loaded(fresh_db, f"{kind}_{month}.parquet", kind, month, "test", 1, None, None, rows, "l1")
    write_beat(fresh_db, datetime.now(UTC), datetime(2030, 1, 1, 3, tzinfo=UTC))
    good, bad = runs.get_run(fresh_db, good.run_id), runs.get_run(fresh_db, bad.run_id)

    m = _metrics(settings)
    succeeded = {
        s.stage: s.finished_at for run in (good, bad) for s in run.stages if s.status == "succeeded" and s.finished_at
    }
    assert set(succeeded) == set(pipeline.STAGES)
    for stage, finished_at in succeeded.items():  # the bad run's stages overwrite the good one's: they are newer
        key = ("fares_stage_last_success_timestamp_seconds", (("stage", stage),))
        assert m[key] == pytest.approx(finished_at.timestamp())
    newest = {s.stage: s for s in bad.stages}
    statuses = {k[1][0][1]: k[1][1][1] for k, v in m.items() if k[0] == "fares_stage_last_run_status" and v == 1}
    assert statuses == {
        "ingest": "succeeded",
        "transform": "succeeded",
        "validate": "succeeded",
        "train": "failed",
        "publish": "succeeded",
    }
    assert m[("fares_stage_last_run_duration_seconds", (("stage", "train"),))] == pytest.approx(newest["train"].seconds)
    assert m[("fares_stage_last_run_duration_seconds", (("stage", "publish"),))] == pytest.approx(
        good.stages[-1].seconds
    )
    assert m[("fares_pipeline_last_run_status", (("status", "failed"),))] == 1
    assert m[("fares_pipeline_last_run_duration_seconds", ())] == pytest.approx(bad.seconds)
    assert good.finished_at is not None
    assert m[("fares_pipeline_last_success_timestamp_seconds", ())] == pytest.approx(good.finished_at.timestamp())
    loaded = {(dict(k[1])["month"], dict(k[1])["kind"]): v for k, v in m.items() if k[0] == "fares_rows_loaded"}
    assert loaded == {("2024-01", "yellow"): 1200, ("2024-01", "fhvhv"): 3400, ("2024-02", "yellow"): 1300}
    assert m[("fares_scheduler_next_run_timestamp_seconds", ())] == datetime(2030, 1, 1, 3, tzinfo=UTC).timestamp()
    assert m[("fares_pipeline_readable", ())] == 1
    created = json.loads((tmp_path / "api" / "models" / version / "metrics.json").read_text())["created_at"]
    age = (datetime.now(UTC) - datetime.fromisoformat(created)).total_seconds()
    assert 0 < m[("fares_model_age_seconds", ())] <= age
    assert m[("fares_model_age_seconds", ())] > age - 600

    exposed = {name for name, _ in m}
    for name in _readme_rule_metrics():
        assert name in exposed, f"the README's alert rules use {name}, which /metrics does not expose"


def _readme_rule_metrics() -> set[str]:
    """The fares_* metric names the README's Prometheus rules use."""
    text = (REPO_ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "alert:" in b]
    assert blocks, "the README has no Prometheus alert rules"
    for block in blocks:  # a rules file Prometheus would load: groups of rules, each with a name and an expression
        rules = [r for g in yaml.safe_load(textwrap.dedent(block))["groups"] for r in g["rules"]]
        assert rules and all(r["alert"] and r["expr"] for r in rules)
    names = set(re.findall(r"\b(fares_[a-z_]+)\b", "".join(blocks)))
    assert {"fares_scheduler_heartbeat_timestamp_seconds", "fares_pipeline_last_success_timestamp_seconds"} <= names
    return names


def test_metrics_without_the_database_say_so_and_quotes_go_on(tlc_samples: Path, tmp_path: Path) -> None:
    registry_copy(tlc_samples, tmp_path / "models")
    settings = Settings(
        database_url="postgresql://postgres@127.0.0.1:9/nowhere", data_dir=tmp_path, admin_token=ADMIN_TOKEN
    )
    with TestClient(create_app(settings, poll_seconds=0)) as client:
        m = _samples(client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).text)
        health = client.get("/health").json()
        quote = client.post(
            "/v1/quotes",
            json={"pickup_at": "2024-02-14T08:30:00", "pickup": {"zone_id": 132}, "dropoff": {"zone_id": 230}},
        )
    assert m[("fares_pipeline_readable", ())] == 0 and ("fares_model_age_seconds", ()) in m
    assert (health["status"], health["scheduler"]["status"]) == ("degraded", "unknown")
    assert quote.status_code == 200
