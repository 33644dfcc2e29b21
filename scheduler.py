"""The stage chain ingest -> transform -> validate -> train -> publish, and the APScheduler daemon that runs it."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fares import runs
from fares.runs import RunContext, StageFn, is_transient, list_runs  # noqa: F401 - list_runs: `fares runs`, GET /v1/runs
from fares.settings import Settings, get_settings
from fares.warehouse import DBT_PROJECT_DIR, Warehouse, dbt_environment, get_warehouse

if TYPE_CHECKING:
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger

log = logging.getLogger(__name__)

STAGES = ("ingest", "transform", "validate", "train", "publish")
JOB_ID = "fares-chain"
JOB_FUNC = "fares.scheduler:scheduled_run"
JOB_TABLE = "apscheduler_jobs"
_TRAINING_MART = "marts.ml_fare_training"
_RAW_TRIPS = ("raw.yellow_trips", "raw.fhvhv_trips")

_stop = threading.Event()  # set by SIGTERM/SIGINT: finish the running stage, start no other
_busy = threading.Lock()  # held while the daemon runs the chain, so shutdown can wait for it
_current: dict[str, Any] = {}  # the run in progress: wh, run_id (for recording a forced stop)
_daemon: dict[str, Any] = {}  # the settings and stages start_daemon was given, for the job the store names


class StageError(RuntimeError):
    """A stage failed; the stages after it do not run."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage


@dataclass
class ChainResult:
    """What one run of the chain did, stage by stage."""

    stages: dict[str, Any] = field(default_factory=dict)
    model_version: str | None = None
    promoted: bool = False


def _dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def run_dbt(wh: Warehouse, args: list[str], capture: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `dbt <args>` in dbt_project/ against `wh`; raises StageError with dbt's own output on failure."""
    cmd = [_dbt_executable(), *args, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    log.info("running %s", " ".join(cmd))
    result = subprocess.run(  # noqa: S603 - fixed executable, arguments from our own code
        cmd, cwd=DBT_PROJECT_DIR, env=dbt_environment(wh), text=True, capture_output=capture, check=False
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout or "").splitlines()[-40:]) if capture else ""
        raise StageError("transform", f"dbt {' '.join(args)} failed (exit {result.returncode})\n{tail}")
    return result


def run_dbt_for(settings: Settings, args: list[str], capture: bool = True) -> Any:
    """`dbt <args>` on the engine in use: a dbt subprocess on PostgreSQL, dbt-spark in this process on Spark."""
    if settings.engine == "spark":
        from fares.lakehouse import DbtSparkError, run_dbt_spark

        try:
            return run_dbt_spark(settings, args)
        except DbtSparkError as exc:
            raise StageError("transform", str(exc)) from exc
    return run_dbt(get_warehouse(settings), args, capture=capture)


def run_ingest(settings: Settings, wh: Warehouse, source: str | None = None, months: list[str] | None = None) -> Any:
    """Load TLC files into raw; a failed file fails the stage after the other months have loaded."""
    from fares.ingestion.pipeline import ingest

    report = ingest(
        settings,
        wh,
        source=source or settings.tlc_source,
        months=months or settings.months or None,
        sample=settings.sample,
    )
    if report.failed:
        raise StageError("ingest", "; ".join(f"{r.file}: {r.error}" for r in report.failed))
    trips = [r for r in report.results if r.month]
    if (months or settings.months) and trips and all(r.status == "unpublished" for r in trips):
        # Months asked for by name that are nowhere to be found: say so rather than go on with old data.
        raise StageError(
            "ingest",
            "none of the requested months is published at "
            f"{source or settings.tlc_source}: " + "; ".join(r.error or r.file for r in trips),
        )
    return report


def run_transform(settings: Settings, wh: Warehouse) -> Any:
    """`dbt build`: models, tests and unit tests (on Spark: dbt-spark inside this process's SparkSession)."""
    if settings.engine == "spark":
        return run_dbt_for(settings, ["build"])
    return run_dbt(wh, ["build"])


def run_validate(settings: Settings, wh: Warehouse) -> Any:
    """The Great Expectations gate on raw data and the training mart; raises on a critical failure."""
    from fares.quality import QualityGateError
    from fares.quality.validate import run_validation

    try:
        return [run_validation(settings, wh, scope) for scope in ("raw", "training")]
    except QualityGateError as exc:
        raise StageError("validate", str(exc)) from exc


def run_train(settings: Settings, wh: Warehouse) -> Any:
    """Train both fare models from the marts and register them; whether each is promoted is for run_publish to act on."""
    from fares.ml.train import train_models

    return train_models(settings, wh, publish=False)  # the publish stage alone moves CURRENT


def run_publish(settings: Settings, outcome: Any) -> dict[str, Any]:
    """Point the registry's CURRENT at the trained version when training judged it not worse; the API follows it.

    Training registers and judges but leaves CURRENT alone (train_models(publish=False)), so this stage is the one
    place the chain changes the model in service: a run stopped before it leaves the previous model current.
    """
    from fares.ml.registry import Registry

    version = getattr(outcome, "version", None)
    if not version or not getattr(outcome, "promoted", False):
        log.info("model %s not promoted: the current model stays", version)
        return {"model_version": None, "published": False}
    registry = Registry(settings.models_dir)
    registry.promote(version)
    return {"model_version": registry.current_version(), "published": True}


def _count(wh: Warehouse, tables: tuple[str, ...], settings: Settings | None = None) -> int | None:
    """Rows in the tables that exist (in Spark's catalog with the Spark engine); None when none does."""
    if settings is not None and settings.engine == "spark":
        from fares.lakehouse import count_rows

        return count_rows(settings, tables)
    with wh.connect() as conn:
        present = [t for t in tables if conn.execute("select to_regclass(%s)", (t,)).fetchone()[0]]
        return sum(conn.execute(f"select count(*) from {t}").fetchone()[0] for t in present) if present else None


def _ingest(ctx: RunContext) -> dict[str, Any]:
    report = run_ingest(ctx.settings, ctx.wh, ctx.source, ctx.months)
    loaded = [r for r in report.results if r.status == "loaded"]
    return {"value": report, "rows_out": sum(r.rows or 0 for r in loaded)}


def _transform(ctx: RunContext) -> dict[str, Any]:
    done = run_transform(ctx.settings, ctx.wh)
    return {
        "value": done,
        "rows_in": _count(ctx.wh, _RAW_TRIPS, ctx.settings),
        "rows_out": _count(ctx.wh, (_TRAINING_MART,), ctx.settings),
    }


def _validate(ctx: RunContext) -> dict[str, Any]:
    return {"value": run_validate(ctx.settings, ctx.wh), "rows_in": _count(ctx.wh, (_TRAINING_MART,), ctx.settings)}


def _train(ctx: RunContext) -> dict[str, Any]:
    return {"value": run_train(ctx.settings, ctx.wh), "rows_in": _count(ctx.wh, (_TRAINING_MART,), ctx.settings)}


def _publish(ctx: RunContext) -> dict[str, Any]:
    return run_publish(ctx.settings, _value(ctx.results.get("train")))


DEFAULT_STAGES: dict[str, StageFn] = {
    "ingest": _ingest,
    "transform": _transform,
    "validate": _validate,
    "train": _train,
    "publish": _publish,
}


def _value(result: Any) -> Any:
    return result.get("value", result) if isinstance(result, dict) else result


def _record_interrupted(wh: Warehouse, run_id: int, reason: str) -> None:
    try:
        runs.mark_interrupted(wh, run_id, reason)
    except Exception:  # noqa: BLE001 - the database may be what failed; the next start marks the run crashed
        log.exception("could not record run %s as interrupted", run_id)


def _run_locked(
    settings: Settings, source: str | None, months: list[str] | None, stages: Mapping[str, StageFn], redo_of: int | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The chain under the advisory lock, recorded; returns (run row with stages, stage results)."""
    wh = get_warehouse(settings)
    runs.ensure_tables(wh)
    shown_source, shown_months = source or settings.tlc_source, months or settings.months or None
    lock = runs.RunLock(wh)
    if not lock.acquire():
        return runs.get_run(wh, runs.record_skipped(wh, shown_months, shown_source)), {}
    try:
        runs.mark_crashed(wh)
        run_id = runs.start_run(wh, shown_months, shown_source, redo_of)
        _current.update(wh=wh, run_id=run_id)
        ctx = RunContext(settings, wh, source, months, run_id)
        try:
            status, error = runs.execute_stages(ctx, stages, lock, _stop)
        except BaseException as exc:  # Ctrl+C in `fares run`, or the bookkeeping itself failed
            _record_interrupted(wh, run_id, f"interrupted: {type(exc).__name__}: {exc}")
            raise
        got = ctx.results
        runs.finish_run(
            wh,
            run_id,
            status,
            error,
            runs.result_field(got.get("publish"), "model_version"),
            runs.result_field(got.get("ingest"), "rows_out"),
            runs.result_field(got.get("transform"), "rows_out"),
        )
    finally:
        _current.clear()
        lock.release()
    return runs.get_run(wh, run_id), ctx.results


def run_once(
    settings: Settings,
    source: str | None = None,
    months: list[str] | None = None,
    *,
    stages: Mapping[str, StageFn] | None = None,
    redo_of: int | None = None,
) -> dict[str, Any]:
    """Run the chain now under the pipeline lock and record it; returns the ops.pipeline_runs row plus `stages`.

    `status` is 'succeeded', 'failed' (a stage failed; later stages did not run, the current model is untouched),
    'interrupted' (shutdown) or 'skipped' (another run held the lock). Pipeline rows_in = rows ingested,
    rows_out = rows in the training mart.
    """
    return _run_locked(settings, source, months, stages or DEFAULT_STAGES, redo_of)[0]


def run_chain(
    settings: Settings | None = None, source: str | None = None, months: list[str] | None = None
) -> ChainResult:
    """Run every stage once, in order, recorded like run_once; raises StageError naming the first failing stage."""
    settings = settings or get_settings()
    row, results = _run_locked(settings, source, months, DEFAULT_STAGES, None)
    if row["status"] != "succeeded":
        failed = next((s["stage"] for s in row["stages"] if s["status"] != "succeeded"), "chain")
        raise StageError(failed, row["error"] or row["status"])
    outcome = _value(results.get("train"))
    return ChainResult(
        stages={k: _value(v) for k, v in results.items()},
        model_version=getattr(outcome, "version", None),
        promoted=bool(getattr(outcome, "promoted", False)),
    )


def build_trigger(settings: Settings) -> CronTrigger:
    """settings.schedule_cron in settings.schedule_timezone; crontab weekdays (0 or 7 = Sunday); 6 fields = seconds first."""
    import re

    from apscheduler.triggers.cron import CronTrigger

    fields = settings.schedule_cron.split()
    if len(fields) not in (5, 6):
        raise ValueError(
            f"FARES_SCHEDULE_CRON needs 5 fields (minute hour day month weekday), got {settings.schedule_cron!r}"
        )
    second = fields.pop(0) if len(fields) == 6 else "0"
    minute, hour, day, month, weekday = fields
    # APScheduler 3 counts weekdays from Monday = 0; crontab from Sunday = 0: use names, which both read alike.
    names = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
    weekday = re.sub(r"(?<![/\d])\d+", lambda m: names[int(m.group())] if int(m.group()) < 8 else m.group(), weekday)
    return CronTrigger(
        second=second,
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=weekday,
        timezone=settings.schedule_timezone,
    )


def build_scheduler(settings: Settings) -> BlockingScheduler:
    """A BlockingScheduler whose one job (the chain) lives in ops.apscheduler_jobs.

    A stored job with the same trigger and grace time is kept as is, so a run missed while the daemon was down
    still fires once on start (coalesced, within misfire_grace_seconds); a changed timetable replaces it.
    """
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.blocking import BlockingScheduler

    wh = get_warehouse(settings)
    runs.ensure_tables(wh)
    store = SQLAlchemyJobStore(
        url=wh.url("psycopg"), tablename=JOB_TABLE, tableschema="ops", engine_options={"pool_pre_ping": True}
    )
    sched = BlockingScheduler(
        jobstores={"default": store},
        timezone=settings.schedule_timezone,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": settings.misfire_grace_seconds},
    )
    trigger = build_trigger(settings)
    with runs.ddl_lock(wh):
        store.start(sched, "default")  # creates the table now, so the stored job can be read before start()
    stored = store.lookup_job(JOB_ID)
    wanted = (JOB_FUNC, repr(trigger), settings.misfire_grace_seconds)
    if stored is not None and (stored.func_ref, repr(stored.trigger), stored.misfire_grace_time) == wanted:
        log.info("keeping the stored schedule %s; next run %s", trigger, stored.next_run_time)
    else:
        sched.add_job(JOB_FUNC, trigger, id=JOB_ID, name="fares chain", replace_existing=True)
        log.info("schedule set to %s (%s)", trigger, settings.schedule_timezone)
    return sched


def scheduled_run() -> None:
    """The daemon's job: one recorded run of the chain (no arguments, so nothing secret lands in the job store)."""
    with _busy:
        row = run_once(_daemon.get("settings") or get_settings(), stages=_daemon.get("stages"))
    log.info("run %s %s%s", row["run_id"], row["status"], f": {row['error']}" if row["error"] else "")


def recover_runs(settings: Settings, stages: Mapping[str, StageFn] | None = None) -> list[dict[str, Any]]:
    """Mark runs left 'running' by a dead process as failed, then run the months of crashed/interrupted runs again."""
    wh = get_warehouse(settings)
    runs.ensure_tables(wh)
    lock = runs.RunLock(wh)
    if not lock.acquire():
        log.info("another process is running the chain; nothing to recover now")
        return []
    try:
        runs.mark_crashed(wh)
        todo = runs.runs_to_redo(wh)
    finally:
        lock.release()
    done = []
    for run_id, months, source in todo:
        if _stop.is_set():
            break
        log.warning("run %s did not finish: running months %s again", run_id, months or "(newest)")
        with _busy:
            done.append(run_once(settings, source, months, stages=stages, redo_of=run_id))
    return done


def _stop_scheduler(sched: BlockingScheduler) -> None:
    from apscheduler.schedulers import SchedulerNotRunningError

    try:
        sched.shutdown(wait=False)
    except SchedulerNotRunningError:  # the signal handler and the start listener both got here
        pass


def _on_signal(sched: BlockingScheduler) -> Callable[[int, Any], None]:
    def handle(signum: int, frame: Any) -> None:
        if _stop.is_set():  # a second signal: stop now, and say so in the run's row
            if "run_id" in _current:
                _record_interrupted(_current["wh"], _current["run_id"], f"interrupted: signal {signum} during a stage")
            os._exit(128 + signum)
        log.warning("signal %d: finishing the running stage, then stopping (send again to stop at once)", signum)
        _stop.set()
        if sched.running:  # shutdown from another thread: the main loop may hold the scheduler's locks right now
            threading.Thread(target=_stop_scheduler, args=(sched,), daemon=True).start()
        # not running yet: the EVENT_SCHEDULER_START listener stops it as soon as it starts

    return handle


def start_daemon(settings: Settings, stages: Mapping[str, StageFn] | None = None) -> None:
    """Run the chain on settings.schedule_cron until SIGTERM/SIGINT; first redo what a crash left unfinished.

    On a signal the running stage finishes, later stages do not start and the run is recorded 'interrupted';
    a second signal records it at once and exits.
    """
    _daemon.update(settings=settings, stages=stages)
    _stop.clear()
    sched = build_scheduler(settings)
    from apscheduler.events import EVENT_SCHEDULER_START

    sched.add_listener(lambda _event: _stop_scheduler(sched) if _stop.is_set() else None, EVENT_SCHEDULER_START)
    handler = _on_signal(sched)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    recover_runs(settings, stages)
    if _stop.is_set():
        return
    log.info("daemon started (pid %d): %s %s", os.getpid(), settings.schedule_cron, settings.schedule_timezone)
    sched.start()
    with _busy:  # the main loop ended on a signal: wait for a run in progress to reach its end
        log.info("daemon stopped")


def main() -> None:
    """`python scheduler.py`: the daemon with settings from the environment."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    start_daemon(get_settings())


if __name__ == "__main__":
    from fares import (
        scheduler,
    )  # the job store names "fares.scheduler:scheduled_run": run the importable module, not __main__

    scheduler.main()
