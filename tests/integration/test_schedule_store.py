"""The crontab trigger in the daemon's job store (ops.apscheduler_jobs): kept across restarts while the schedule is
unchanged (a missed night still runs once), replaced when FARES_SCHEDULE_CRON changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fares import scheduler
from fares.config.warehouse import Warehouse

pytestmark = pytest.mark.integration


def _store_job(settings, next_run_time: datetime) -> None:
    """What an earlier daemon left: the chain's job with `next_run_time`, pickled into ops.apscheduler_jobs."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    from fares.config.warehouse import get_warehouse

    store = SQLAlchemyJobStore(
        url=get_warehouse(settings).url("psycopg"), tablename=scheduler.JOB_TABLE, tableschema="ops"
    )
    earlier = BackgroundScheduler(jobstores={"default": store}, timezone="UTC")  # never started: it only builds the job
    store.start(earlier, "default")
    job = earlier.add_job(
        scheduler.JOB_FUNC,
        scheduler.build_trigger(settings),
        id=scheduler.JOB_ID,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=settings.misfire_grace_seconds,
        next_run_time=next_run_time,
    )
    store.add_job(job)


def _pending(sched) -> list[str]:
    """The jobs build_scheduler asked to (re)write into the store, as `id trigger`."""
    return [f"{job.id} {job.trigger!r}" for job in sched.get_jobs() if job.id == scheduler.JOB_ID]


def test_an_unchanged_crontab_keeps_the_stored_job_and_a_new_one_replaces_it(
    fresh_db: Warehouse, tmp_path: Path
) -> None:
    from conftest import settings_for

    settings = settings_for(fresh_db, tmp_path / "data", schedule_cron="0 3 * * 0-4")
    missed = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    _store_job(settings, missed)

    again = scheduler.build_scheduler(settings)  # the daemon restarted with the same schedule
    assert _pending(again) == []
    with fresh_db.connect() as conn:
        stored = conn.execute("select id, next_run_time from ops.apscheduler_jobs").fetchall()
    assert stored == [(scheduler.JOB_ID, missed.timestamp())]  # still due: the missed night runs once on start

    changed = settings.model_copy(update={"schedule_cron": "30 4 * * mon-fri"})
    replaced = scheduler.build_scheduler(changed)
    assert _pending(replaced) == [
        f"{scheduler.JOB_ID} <CrontabTrigger ('30 4 * * mon-fri', timezone='America/New_York')>"
    ]
