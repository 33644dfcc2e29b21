"""The five stages as the chain calls them: ingest -> transform -> validate -> train -> publish, each an adapter."""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fares.runs import RunContext, StageFn, StageTimeout
from fares.settings import Settings
from fares.warehouse import DBT_PROJECT_DIR, Warehouse, dbt_environment

if TYPE_CHECKING:
    from fares.ingestion.pipeline import IngestReport
    from fares.ml.train import TrainOutcome
    from fares.quality.validate import ValidationReport

log = logging.getLogger(__name__)

STAGES = ("ingest", "transform", "validate", "train", "publish")
_TRAINING_MART = "marts.ml_fare_training"
_RAW_TRIPS = ("raw.yellow_trips", "raw.fhvhv_trips")


class StageError(RuntimeError):
    """A stage failed; the stages after it do not run."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage


def _dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def dbt_vars(settings: Settings) -> dict[str, Any]:
    """The dbt vars that are settings: `zone_pair_months` is FARES_TRAIN_MONTHS, the one training window that bounds
    the holdout, the zone-pair typicals and the Uber levels in dbt and the training sample in ml/; the holdout's
    minimums are FARES_HOLDOUT_MIN_TRIPS and FARES_HOLDOUT_MIN_CELLS."""
    return {
        "zone_pair_months": settings.train_months,
        "holdout_min_trips": settings.holdout_min_trips,
        "holdout_min_cells": settings.holdout_min_cells,
    }


def dbt_command(settings: Settings, args: list[str]) -> list[str]:
    """The dbt command line for `args`: the project, and `--vars` with dbt_vars(settings) plus any vars the caller
    passes (`fares dbt build --vars '{max_trip_miles: 80}'`, for an experiment).

    Raises ValueError when the caller's vars give a var that is a setting another value: set the setting instead.
    """
    rest: list[str] = []
    given: dict[str, Any] = {}
    items = iter(args)
    for arg in items:
        if arg == "--vars" or arg.startswith("--vars="):
            import yaml

            text = arg.partition("=")[2] if arg.startswith("--vars=") else next(items, "")
            given |= yaml.safe_load(text) or {}  # dbt reads --vars as YAML (JSON is YAML too)
        else:
            rest.append(arg)
    ours = dbt_vars(settings)
    clash = {k: v for k, v in given.items() if k in ours and v != ours[k]}
    if clash:
        raise ValueError(
            f"dbt var(s) {sorted(clash)} come from the settings (zone_pair_months is FARES_TRAIN_MONTHS, "
            f"{settings.train_months} now): set the setting instead, so training reads the same window"
        )
    cmd = [_dbt_executable(), *rest, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    if rest and not rest[0].startswith("-"):  # a sub-command; `dbt --version` and the like take no vars
        cmd += ["--vars", json.dumps(given | ours)]
    return cmd


def run_dbt(
    settings: Settings,
    wh: Warehouse,
    args: list[str],
    capture: bool = True,
    timeout: float | None = None,
    ctx: RunContext | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `dbt <args>` in dbt_project/ against `wh`; raises StageError with dbt's own output on failure.

    dbt writes its target/ and logs/ under `settings.dbt_dir`, never into the (possibly installed) dbt_project/, and
    gets the vars that are settings (dbt_vars).

    `timeout` (seconds) kills dbt and its children past it; inside a run (`ctx`) the stage's timeout does the same.
    """
    cmd = dbt_command(settings, args)
    log.info("running %s", " ".join(cmd))
    out = subprocess.PIPE if capture else None
    proc = subprocess.Popen(  # noqa: S603 - fixed executable, arguments from our own code
        cmd,
        cwd=DBT_PROJECT_DIR,
        env=dbt_environment(wh, settings),
        text=True,
        stdout=out,
        stderr=subprocess.STDOUT if capture else None,
        start_new_session=True,  # its own process group: a timeout kills dbt's threads and children too
    )
    kill = functools.partial(_kill_group, proc)
    if ctx is not None:
        ctx.cancel.append(kill)
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        kill()
        proc.communicate()
        raise StageTimeout(f"dbt {' '.join(args)} timed out after {timeout:.0f} s and was stopped") from exc
    finally:
        if ctx is not None and kill in ctx.cancel:
            ctx.cancel.remove(kill)
    for line in (stdout or "").splitlines():
        log.info("dbt: %s", line)
    if proc.returncode != 0:
        if proc.returncode < 0:
            raise StageError("transform", f"dbt {' '.join(args)} was stopped (signal {-proc.returncode})")
        tail = "\n".join((stdout or "").splitlines()[-40:]) if capture else ""
        raise StageError("transform", f"dbt {' '.join(args)} failed (exit {proc.returncode})\n{tail}")
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, None)


def run_dbt_for(
    settings: Settings,
    args: list[str],
    capture: bool = True,
    timeout: float | None = None,
    ctx: RunContext | None = None,
) -> Any:
    """`dbt <args>` on the engine in use: a dbt subprocess on PostgreSQL, dbt-spark in this process on Spark.

    On Spark `timeout` is not applied (dbt runs in this process's SparkSession and cannot be killed apart from it);
    inside a run the stage's timeout cancels its Spark jobs and fails its remaining nodes (`lakehouse.run_dbt_spark`).
    """
    if settings.engine == "spark":
        from fares.lakehouse import DbtSparkError, run_dbt_spark

        try:
            return run_dbt_spark(settings, args, cancel=ctx.cancel if ctx is not None else None)
        except DbtSparkError as exc:
            raise StageError("transform", str(exc)) from exc
    from fares.warehouse import get_warehouse

    return run_dbt(settings, get_warehouse(settings), args, capture=capture, timeout=timeout, ctx=ctx)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        log.warning("stopping dbt (pid %d)", proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)


def run_ingest(
    settings: Settings, wh: Warehouse, source: str | None = None, months: list[str] | None = None, force: bool = False
) -> IngestReport:
    """Load TLC files into raw; a failed file fails the stage after the other months have loaded.

    `force` reloads the months' files even when the ledger says they are unchanged.
    """
    from fares.ingestion.ledger import forget_months
    from fares.ingestion.months import parse_months
    from fares.ingestion.pipeline import ingest

    wanted = months or settings.months or None
    if force and wanted:
        forget_months(wh, parse_months(list(wanted)))
    report = ingest(settings, wh, source=source or settings.tlc_source, months=wanted, sample=settings.sample)
    if report.failed:
        raise StageError("ingest", "; ".join(f"{r.file}: {r.error}" for r in report.failed))
    trips = [r for r in report.results if r.month]
    if wanted and trips and all(r.status == "unpublished" for r in trips):
        # Months asked for by name that are nowhere to be found: say so rather than go on with old data.
        raise StageError(
            "ingest",
            "none of the requested months is published at "
            f"{source or settings.tlc_source}: " + "; ".join(r.error or r.file for r in trips),
        )
    return report


def run_transform(settings: Settings, wh: Warehouse, ctx: RunContext | None = None) -> Any:
    """`dbt build`: models, tests and unit tests; in a run, dbt's run_results.json is kept in the run's folder.

    With the Spark engine dbt-spark runs inside this process's SparkSession; `wh` (PostgreSQL) then only holds ops.
    """
    try:
        if settings.engine == "spark":
            return run_dbt_for(settings, ["build"], ctx=ctx)
        return run_dbt(settings, wh, ["build"], timeout=ctx.remaining() if ctx else None, ctx=ctx)
    finally:
        results = settings.dbt_dir / "target" / "run_results.json"
        if ctx is not None and results.is_file():
            from fares.runlog import run_dir

            shutil.copy(results, run_dir(settings, ctx.run_id) / "run_results.json")


def run_validate(settings: Settings, wh: Warehouse) -> list[ValidationReport]:
    """The Great Expectations gate on raw data and the training mart; raises on a critical failure."""
    from fares.quality import QualityGateError
    from fares.quality.validate import run_validation

    try:
        return [run_validation(settings, wh, scope) for scope in ("raw", "training")]
    except QualityGateError as exc:
        raise StageError("validate", str(exc)) from exc


def run_train(settings: Settings, wh: Warehouse) -> TrainOutcome:
    """Train both fare models from the marts and register them; run_publish acts on whether each is promoted."""
    from fares.ml.train import train_models

    return train_models(settings, wh, publish=False)  # the publish stage alone moves CURRENT


def run_publish(settings: Settings, outcome: TrainOutcome | None) -> dict[str, Any]:
    """Point the registry's CURRENT at the version this run trained when training judged it not worse.

    Training registers and judges but leaves CURRENT alone, so this stage is the one place the chain changes the
    model in service: a run stopped before it (or run without a train stage) leaves the previous model current.
    """
    from fares.ml.registry import Registry

    if outcome is None:
        log.info("no model trained in this run: nothing to publish")
        return {"model_version": None, "published": False, "reason": "no model trained in this run"}
    if not outcome.promoted:
        log.info("model %s not promoted: the current model stays (%s)", outcome.version, outcome.reason)
        return {"model_version": None, "published": False, "reason": outcome.reason, "retrained": outcome.retrained}
    registry = Registry(settings.models_dir)
    registry.promote(outcome.version)
    return {"model_version": registry.current_version(), "published": True}


def _count(ctx: RunContext, tables: tuple[str, ...]) -> int | None:
    """Rows in the tables that exist (in Spark's catalog with the Spark engine); None when none does."""
    if ctx.settings.engine == "spark":
        from fares.lakehouse import count_rows

        return count_rows(ctx.settings, tables)
    return _count_postgres(ctx.wh, tables)


def _count_postgres(wh: Warehouse, tables: tuple[str, ...]) -> int | None:

    def one(conn: Any, sql: str, params: tuple[Any, ...] = ()) -> Any:
        row = conn.execute(sql, params).fetchone()
        return row[0] if row else None

    with wh.connect() as conn:
        present = [t for t in tables if one(conn, "select to_regclass(%s)", (t,))]
        counts = [one(conn, f"select count(*) from {t}") for t in present]  # noqa: S608 - table names are constants
        return sum(counts) if present else None


def _ingest(ctx: RunContext) -> dict[str, Any]:
    report = run_ingest(ctx.settings, ctx.wh, ctx.source, ctx.months, force=bool(ctx.params.get("force")))
    return {"value": report, "rows_out": report.rows}


def _transform(ctx: RunContext) -> dict[str, Any]:
    done = run_transform(ctx.settings, ctx.wh, ctx)
    return {"value": done, "rows_in": _count(ctx, _RAW_TRIPS), "rows_out": _count(ctx, (_TRAINING_MART,))}


def _validate(ctx: RunContext) -> dict[str, Any]:
    from fares import runs

    try:
        reports = run_validate(ctx.settings, ctx.wh)
    finally:
        stored = _validation_ids_since(ctx)
        if stored:
            runs.set_run_facts(ctx.wh, ctx.run_id, validation_run_ids=stored)
    return {"value": reports, "rows_in": _count(ctx, (_TRAINING_MART,))}


def _validation_ids_since(ctx: RunContext) -> list[str]:
    """Ids of the validation runs stored since this pipeline run started (a failed gate returns no report)."""
    with ctx.wh.connect() as conn:
        rows = conn.execute(
            "select v.run_id from ops.validation_runs v, ops.pipeline_runs p"
            " where p.run_id = %s and v.started_at >= p.started_at order by v.started_at",
            (ctx.run_id,),
        ).fetchall()
    return [r[0] for r in rows]


def _train(ctx: RunContext) -> dict[str, Any]:
    return {"value": run_train(ctx.settings, ctx.wh), "rows_in": _count(ctx, (_TRAINING_MART,))}


def _publish(ctx: RunContext) -> dict[str, Any]:
    trained = ctx.results.get("train")
    return run_publish(ctx.settings, trained["value"] if isinstance(trained, dict) else None)


DEFAULT_STAGES: dict[str, StageFn] = {
    "ingest": _ingest,
    "transform": _transform,
    "validate": _validate,
    "train": _train,
    "publish": _publish,
}


def select_stages(
    stages: dict[str, StageFn], start: str | None = None, only: list[str] | None = None
) -> dict[str, StageFn]:
    """The stages from `start` on (resume), or just `only` (in chain order); ValueError naming the choices."""
    for name in [start, *(only or [])]:
        if name is not None and name not in stages:
            raise ValueError(f"unknown stage {name!r}; the stages are {', '.join(stages)}")
    names = list(stages)
    if only:
        return {n: stages[n] for n in names if n in only}
    return {n: stages[n] for n in names[names.index(start) :]} if start else dict(stages)
