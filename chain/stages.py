"""The five stages, defined once: ingest -> transform -> validate -> train -> publish, each an adapter the chain calls.

The engine (`fares.engines.get_engine`) decides where each stage's data lives; the stages do not.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fares.chain.executor import RunContext, StageFn, StageResult, StageTimeout
from fares.chain.reports import check_source_freshness, rebuild_data_docs
from fares.config.settings import Settings
from fares.config.warehouse import Warehouse
from fares.engines import get_engine
from fares.engines.transform import DbtFailed, DbtTimeout
from fares.ml import SERVICES
from fares.ops import ledger, runs

if TYPE_CHECKING:
    from fares.ingestion.pipeline import IngestReport
    from fares.ml.train import TrainOutcome
    from fares.quality.validate import ValidationReport

log = logging.getLogger(__name__)

_TRAINING_MART = "marts.ml_fare_training"
_COVERAGE = "marts.service_month_coverage"
_TRIP_KINDS = ("yellow", "fhvhv")
# what the nightly `dbt build` leaves out (run_transform): the unit tests, which the test suite and analysts run
NIGHTLY_BUILD_EXCLUDES = ("--exclude-resource-type", "unit_test")


class StageError(RuntimeError):
    """A stage failed; the stages after it do not run."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage


@dataclass(frozen=True)
class PublishOutcome:
    """What the publish stage did: the version now current, or why the current model stayed."""

    model_version: str | None
    published: bool
    reason: str | None = None
    retrained: bool = False

    @property
    def kept_model(self) -> str | None:
        """Why a model trained in this run was not published (None when it was, or none was retrained)."""
        if self.published or not self.retrained:
            return None
        return self.reason or "judged worse than the current model"


def run_ingest(
    settings: Settings, wh: Warehouse, source: str | None = None, months: list[str] | None = None, force: bool = False
) -> IngestReport:
    """Load TLC files into raw; a failed file fails the stage after the other months have loaded.

    `force` reloads the months' files even when the ledger says they are unchanged.
    """
    from fares.ingestion.months import parse_months
    from fares.ingestion.pipeline import ingest
    from fares.ops.ledger import forget_months

    wanted = months or settings.months or None
    if force and wanted:
        forget_months(wh, parse_months(list(wanted)))
    report = ingest(settings, wh, source=source or settings.tlc_source, months=wanted, sample=settings.sample)
    if report.failed:
        raise StageError("ingest", "; ".join(r.error or r.file for r in report.failed))  # each error names its file
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
    """`dbt build`: models and data tests on the engine in use; in a run, dbt's run_results.json is kept in the
    run's folder. Past the stage's limit dbt is stopped (StageTimeout).

    dbt's unit tests are left out (`--exclude-resource-type unit_test`): they check the models' SQL on fixed inputs,
    so they belong to development and CI (an analyst's `dbt build`, the test suite), not to every night's data; dbt's
    own docs recommend the same ("When to run unit tests", docs.getdbt.com/docs/build/unit-tests).

    The months to build come from the ledger (loaded or reloaded since last built) and reach dbt as the var
    `trip_months`; once dbt succeeded they are marked built in the ledger.
    """
    plan = ledger.plan_trip_months(wh)
    log.info("trip months to build (ledger): %s", ", ".join(sorted(plan.loads)) or "none")
    args = ["build", *NIGHTLY_BUILD_EXCLUDES, "--vars", json.dumps({"trip_months": plan.loads})]
    try:
        done = get_engine(settings).run_dbt(
            wh, args, timeout=ctx.remaining() if ctx else None, cancel=ctx.cancel if ctx else None
        )
        ledger.mark_months_built(wh, plan)
        return done
    except DbtTimeout as exc:
        raise StageTimeout(str(exc)) from exc
    except DbtFailed as exc:
        raise StageError("transform", str(exc)) from exc
    finally:
        results = settings.dbt_dir / "target" / "run_results.json"
        if ctx is not None and results.is_file():
            shutil.copy(results, settings.run_dir(ctx.run_id) / "run_results.json")


def run_validate(settings: Settings, wh: Warehouse) -> list[ValidationReport]:
    """The Great Expectations gate on raw data and the training mart; raises on a critical failure."""
    from fares.quality import QualityGateError
    from fares.quality.validate import run_validations

    try:
        return run_validations(settings, wh, ("raw", "training"))
    except QualityGateError as exc:
        raise StageError("validate", str(exc)) from exc


def run_train(settings: Settings, wh: Warehouse) -> TrainOutcome:
    """Train both fare models from the marts and register them; run_publish acts on whether each is promoted."""
    from fares.ml.train import train_models

    return train_models(settings, wh, publish=False)  # the publish stage alone moves CURRENT


def run_publish(settings: Settings, outcome: TrainOutcome | None) -> PublishOutcome:
    """Point the registry's CURRENT at the version this run trained when training judged it not worse.

    Training registers and judges but leaves CURRENT alone, so this stage is the one place the chain changes the
    model in service: a run stopped before it (or run without a train stage) leaves the previous model current.
    """
    from fares.ml.registry import Registry

    if outcome is None:
        log.info("no model trained in this run: nothing to publish")
        return PublishOutcome(None, False, "no model trained in this run")
    if not outcome.promoted:
        log.info("model %s not promoted: the current model stays (%s)", outcome.version, outcome.reason)
        return PublishOutcome(None, False, outcome.reason, outcome.retrained)
    registry = Registry(settings.models_dir)
    registry.promote(outcome.version)
    return PublishOutcome(registry.current_version(), True, retrained=outcome.retrained)


def _raw_rows(ctx: RunContext) -> int | None:
    """Trip rows in raw as the ledger records each loaded month: a count(*) over raw would read every month kept,
    longer with each one (each month's rows are its file's, counted when it was loaded). None before any load."""
    rows = [r.rows for r in ledger.rows_loaded_per_month(ctx.wh) if r.kind in _TRIP_KINDS]
    return sum(rows) if rows else None


def _training_rows(ctx: RunContext) -> int | None:
    """Rows of the training mart as the month-level mart counts them: service_month_coverage's trips of the training
    services, which every dbt build tests to be the view's rows (assert_cleaning_counts_add_up: the kept trips are the
    stored ones; assert_training_rows_are_the_taxi_and_uber_trips: the view holds every stored taxi and Uber trip).
    Counting the view itself joins every stored trip to the lookups again: ~10 s a real month, three times a run.
    None before the marts are built."""
    services = ", ".join(f"'{s}'" for s in SERVICES)
    with get_engine(ctx.settings).catalog(ctx.wh) as cat:
        if not cat.table_exists(_COVERAGE) or not cat.table_exists(_TRAINING_MART):
            return None
        row = cat.execute(f"select sum(trips) from {_COVERAGE} where service in ({services})").fetchone()  # noqa: S608 - fixed names
    return int(row[0]) if row and row[0] is not None else 0


def _ingest(ctx: RunContext) -> StageResult:
    report = run_ingest(ctx.settings, ctx.wh, ctx.source, ctx.months, force=bool(ctx.params.get("force")))
    note = None if report.loaded else "nothing new: every file was unchanged or unpublished"
    return StageResult(report, rows_out=report.rows, note=note)


def _transform(ctx: RunContext) -> StageResult:
    done = run_transform(ctx.settings, ctx.wh, ctx)
    check_source_freshness(ctx)  # kept in the run's folder, shown on its page; stale sources do not fail it
    return StageResult(done, _raw_rows(ctx), _training_rows(ctx))


def _validate(ctx: RunContext) -> StageResult:
    try:
        reports = run_validate(ctx.settings, ctx.wh)
    finally:
        stored = runs.validation_ids_since_start(ctx.wh, ctx.run_id)
        if stored:
            runs.set_run_facts(ctx.wh, ctx.run_id, validation_run_ids=stored)
        rebuild_data_docs(ctx.settings)  # the run's page links them
    return StageResult(reports, rows_in=_training_rows(ctx))


def _train(ctx: RunContext) -> StageResult:
    return StageResult(run_train(ctx.settings, ctx.wh), rows_in=_training_rows(ctx))


def _publish(ctx: RunContext) -> StageResult:
    trained = ctx.results.get("train")
    outcome = run_publish(ctx.settings, trained.value if trained is not None else None)
    return StageResult(outcome, note=None if outcome.published else f"nothing published: {outcome.reason}")


# The chain's stages in their order, defined here once: everything else reads STAGES or DEFAULT_STAGES.
DEFAULT_STAGES: dict[str, StageFn] = {
    "ingest": _ingest,
    "transform": _transform,
    "validate": _validate,
    "train": _train,
    "publish": _publish,
}
STAGES: tuple[str, ...] = tuple(DEFAULT_STAGES)


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
