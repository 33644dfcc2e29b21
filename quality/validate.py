"""The validate stage: run the raw or training suites, store the results, raise QualityGateError on a critical failure.

`months=None` covers every month present in raw (not only the newest): dbt builds the marts from all of raw, so any
bad month still there would reach training. To keep nightly runs cheap, a month whose rows, load id and suite are
unchanged since it last passed is not validated again; months named explicitly are always validated.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fares.engines import get_engine
from fares.engines.base import Catalog
from fares.ml import SERVICES
from fares.ops.ledger import built_trip_months
from fares.ops.validation import CheckResult, passed_fingerprints, save_run
from fares.quality.results import as_dicts, format_summary
from fares.quality.suites import (
    CRITICAL,
    KINDS,
    KNOWN_ZONE_IDS,
    SUITE_VERSION,
    TRAINING_TABLE,
    Batch,
    check_month,
    raw_batch,
    training_batches,
)

if TYPE_CHECKING:
    from fares.config.settings import Settings
    from fares.config.warehouse import Warehouse
    from fares.quality.gx_run import Settler

log = logging.getLogger(__name__)

SCOPES = ("raw", "training")


class QualityGateError(RuntimeError):
    """A critical expectation failed; the message is the readable summary and `report` holds every result."""

    def __init__(self, message: str, report: ValidationReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ValidationReport:
    """What one validation run checked and found."""

    run_id: str
    scope: str
    months: list[str]
    started_at: datetime
    finished_at: datetime
    results: list[CheckResult] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # batches not re-checked: unchanged since they passed

    @property
    def failures(self) -> list[CheckResult]:
        """Failed critical checks (any of them fails the gate)."""
        return [r for r in self.results if r.is_critical_failure]

    @property
    def warnings(self) -> list[CheckResult]:
        """Failed warning checks (recorded; the chain goes on)."""
        return [r for r in self.results if r.is_warning]

    @property
    def success(self) -> bool:
        """True when no critical check failed."""
        return not self.failures

    def summary(self) -> str:
        """The readable summary: counts, then every critical failure and warning with examples."""
        return format_summary(self.scope, self.run_id, self.results, len(self.unchanged))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form of the report."""
        return {
            "run_id": self.run_id,
            "scope": self.scope,
            "months": self.months,
            "success": self.success,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "critical_failures": len(self.failures),
            "warnings": len(self.warnings),
            "unchanged": self.unchanged,
            "results": as_dicts(self.results),
        }


def _missing(table: str, batch: str, check: str, description: str) -> CheckResult:
    """A critical failure found before GX runs (a table or a month that is not there)."""
    return CheckResult(table, batch, check, "precondition", CRITICAL, False, description, error="not found")


@contextmanager
def _connect(settings: Settings, wh: Warehouse) -> Iterator[Catalog]:
    """The analytics tables' catalog, wherever the engine keeps them."""
    with get_engine(settings).catalog(wh) as catalog:
        yield catalog


def _zone_ids(conn: Catalog) -> list[int]:
    if conn.table_exists("raw.zones"):
        ids = [r[0] for r in conn.execute("select distinct location_id from raw.zones where location_id is not null")]
        if ids:
            return sorted(int(i) for i in ids)
    return list(KNOWN_ZONE_IDS)


class _MonthStats:
    """Load id of each month of a raw trip table, and its row count on demand.

    The engine answers both without scanning the history (PostgreSQL from each month's partition, the Spark lake
    from the ledger); an unpartitioned PostgreSQL table (an older layout) is scanned once for both.
    """

    def __init__(self, conn: Catalog, table: str) -> None:
        self.conn, self.table = conn, table
        # Where the engine keeps no catalog of month loads (an older layout), the load-id column is scanned once.
        self.loads = conn.month_loads(table)
        self.counts: dict[str, int] = {}
        if self.loads is None:
            rows = conn.execute(
                f"select source_month, count(*), max(_dlt_load_id) from {table}"  # noqa: S608 - fixed names
                " where source_month is not null group by source_month order by 1"
            ).fetchall()
            self.loads = {m: str(lid or "") for m, _, lid in rows}
            self.counts = {m: int(n) for m, n, _ in rows}

    def rows(self, month: str) -> int:
        """Rows of `month` (counted once)."""
        if month not in self.counts:
            self.counts[month] = self.conn.count_month(self.table, month)
        return self.counts[month]


@dataclass
class _Plan:
    """What a run will validate: GX batches, failures found before GX, months covered, batches left unchanged."""

    batches: list[Batch] = field(default_factory=list)
    upfront: list[CheckResult] = field(default_factory=list)
    covered: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _raw_plan(settings: Settings, wh: Warehouse, months: list[str] | None) -> _Plan:
    """The raw batches to validate, failures found up front, and the months covered.

    With `months` None, a month whose data and suite did not change since it last passed is not validated again.
    """
    plan = _Plan()
    covered: set[str] = set()
    passed = passed_fingerprints(wh, "raw") if months is None else set()
    with _connect(settings, wh) as conn:
        zone_ids = _zone_ids(conn)
        present = [k for k in KINDS if conn.table_exists(k.table)]
        if not present:
            plan.upfront.append(
                _missing(
                    "raw",
                    "-",
                    "trip_tables_exist",
                    "raw.yellow_trips or raw.fhvhv_trips exists (run `fares ingest` first)",
                )
            )
        for kind in present:
            stats = _MonthStats(conn, kind.table)
            loads = stats.loads or {}
            for month in sorted(set(months or loads)):
                if month not in loads:
                    continue
                earlier = [m for m in loads if m < month]
                prev = max(earlier) if earlier else None
                covered.add(month)
                # What identifies the month's data: its load (one load per partition) and its neighbour's.
                fingerprint = (
                    f"v{SUITE_VERSION}|load={loads[month]}|prev={prev}:{loads.get(prev or '', '')}"
                    f"|band={settings.row_count_band}|zones={len(zone_ids)}"
                )
                if (kind.table, month, fingerprint) in passed:
                    plan.unchanged.append(f"{kind.table} {month}")
                    continue
                previous = (prev, stats.rows(prev)) if prev else None
                batch = raw_batch(kind, month, zone_ids, previous, settings.row_count_band, f"load={loads[month]}")
                plan.batches.append(replace(batch, fingerprint=fingerprint))
    for month in sorted(set(months or [])) if present else []:
        if month not in covered:
            plan.upfront.append(_missing("raw", month, "month_loaded", f"trips of {month} are loaded"))
    plan.covered = sorted(covered)
    return plan


def _built_months(conn: Catalog, wh: Warehouse) -> dict[str, str]:
    """{month in the training mart: the raw load its last transform-stage build came from, "" if unknown}.

    The months from the documented mart `marts.service_month_coverage` (month-level: the training mart itself is
    never scanned to find its months); the loads from the ledger (`fares.ops.ledger.built_trip_months`).
    """
    if not conn.table_exists("marts.service_month_coverage"):
        return {}
    months = {
        r[0]
        for r in conn.execute(
            "select distinct source_month from marts.service_month_coverage where service = any(%s)",
            (list(SERVICES),),
        )
    }
    built = built_trip_months(wh) if months else {}
    return {month: built.get(month, "") for month in sorted(months)}


def _services_by_month(conn: Catalog) -> dict[str, set[str]]:
    """{month: the training services with trips in it} (service_month_coverage): each service learns from its own
    months, so a month without Uber trips (yellow before 2019-02) is not checked for them."""
    if not conn.table_exists("marts.service_month_coverage"):
        return {}
    found: dict[str, set[str]] = {}
    for month, service in conn.execute(
        "select source_month, service from marts.service_month_coverage where service = any(%s)", (list(SERVICES),)
    ):
        found.setdefault(month, set()).add(service)
    return found


def _applies(batch_label: str, services: set[str] | None) -> bool:
    """Whether a training batch applies to months holding `services` (None: unknown, every batch applies): a
    service's batch where that service has trips, the aligned-window batch where both have."""
    if services is None or batch_label == "all":
        return True
    if batch_label == "aligned window":
        return set(SERVICES) <= services
    return batch_label in services


def _training_plan(settings: Settings, wh: Warehouse, months: list[str] | None) -> _Plan:
    """The training-mart batches, or a failure when the mart does not exist.

    With `months` None, each training month is validated once per build of it: a month whose data (the raw load its
    build came from) and suite did not change since it last passed is not validated again.
    """
    services_list = get_engine(settings).sorted_string_agg("service")
    with _connect(settings, wh) as conn:
        if not conn.table_exists(TRAINING_TABLE):
            return _Plan(
                upfront=[_missing(TRAINING_TABLE, "-", "table_exists", f"{TRAINING_TABLE} exists (run dbt first)")]
            )
        if months:
            by_month = _services_by_month(conn)
            if by_month:  # the months the mart holds, from the month-level mart (not by reading the view whole)
                present = [(m,) for m in sorted(set(months)) if m in by_month]
            else:
                present = conn.execute(
                    f"select distinct source_month from {TRAINING_TABLE} where source_month = any(%s) order by 1",  # noqa: S608 - a constant table name
                    (months,),
                ).fetchall()
            services = set().union(*(by_month.get(m, set()) for m in months)) if by_month else None
            aligned = all(set(SERVICES) <= by_month.get(m, set()) for m in months) if by_month else True
            batches = [
                b
                for b in training_batches(months, services_list)
                if _applies(b.label, services) and (b.label != "aligned window" or aligned)
            ]
            return _Plan(batches=batches, covered=[r[0] for r in present])
        built = _built_months(conn, wh)
        by_month = _services_by_month(conn)
    if not built:
        return _Plan(batches=training_batches(None, services_list), covered=[])
    plan = _Plan(covered=sorted(built))
    passed = passed_fingerprints(wh, "training")
    for month, load in sorted(built.items()):
        fingerprint = f"v{SUITE_VERSION}|{month}|load={load}"
        if load and (TRAINING_TABLE, month, fingerprint) in passed:
            plan.unchanged.append(f"{TRAINING_TABLE} {month}")
            continue
        for batch in training_batches([month], services_list):
            if not _applies(batch.label, by_month.get(month) if by_month else None):
                continue
            label = month if batch.label == "all" else f"{month} {batch.label}"
            plan.batches.append(replace(batch, label=label, fingerprint=fingerprint))
    return plan


def _plan(settings: Settings, wh: Warehouse, scope: str, months: list[str] | None) -> _Plan:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    return _raw_plan(settings, wh, months) if scope == "raw" else _training_plan(settings, wh, months)


def run_validation(
    settings: Settings,
    wh: Warehouse,
    scope: str,
    months: list[str] | None = None,
    *,
    plan: _Plan | None = None,
    settler: Settler | None = None,
) -> ValidationReport:
    """Validate `scope` ("raw" or "training"), store the run, and raise QualityGateError on a critical failure.

    Args:
        settings: row_count_band and data_dir (GX stores and Data Docs) come from here.
        wh: the database to validate and to store results in (ops.validation_runs / ops.validation_results).
        scope: "raw" checks each month of raw.yellow_trips and raw.fhvhv_trips; "training" checks the mart.
        months: 'YYYY-MM' months to check; None means every month present.
        plan, settler: given by `run_validations` (the scope's plan made beforehand, its queries already started).

    Returns:
        The report (also when only warnings failed).

    Raises:
        QualityGateError: a critical check failed; its message is the readable summary.
    """
    from fares.quality.gx_run import run_batches

    months = [check_month(m) for m in months] if months else None
    started = datetime.now(UTC)
    run_id = f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    plan = plan or _plan(settings, wh, scope, months)
    log.info(
        "validating %s: %d batches (%d unchanged since they passed)", scope, len(plan.batches), len(plan.unchanged)
    )
    results = plan.upfront + run_batches(settings, wh, plan.batches, settler)
    report = ValidationReport(run_id, scope, plan.covered, started, datetime.now(UTC), results, plan.unchanged)
    summary = report.summary()
    save_run(wh, run_id, scope, plan.covered, report.started_at, report.finished_at, results, summary)
    if not report.success:
        log.error("%s", summary)
        raise QualityGateError(summary, report)
    log.info("%s", summary)
    return report


def run_validations(settings: Settings, wh: Warehouse, scopes: tuple[str, ...] = SCOPES) -> list[ValidationReport]:
    """The gate of a chain run: every month of each scope in turn (`run_validation` with months None), stopping at
    the first scope with a critical failure. Every scope is planned first and their aggregate queries are settled
    side by side (`Settler`), the last scope's first: the training mart's per-service passes are the longest (every
    trip of the month through the view's joins and features), so they start at once and raw's tallies and checks
    run beside them. Real month (3M + 20M), two cores: 42-46 s with the fare quantiles by percentile_cont (one
    server process's sort), 35-39 s with them from the fares' histogram (`suites._service_pass`, parallel).
    """
    from fares.quality.gx_run import Settler

    plans = [(scope, _plan(settings, wh, scope, None)) for scope in scopes]
    with Settler(get_engine(settings), wh, [b for _, p in reversed(plans) for b in p.batches]) as settler:
        return [run_validation(settings, wh, scope, plan=plan, settler=settler) for scope, plan in plans]


def build_data_docs(settings: Settings) -> Path:
    """Build the GX Data Docs site under data_dir/gx from every run so far; returns its index.html."""
    from fares.quality.gx_run import build_data_docs as build

    return build(settings)
