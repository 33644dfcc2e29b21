"""Validation records: ops.validation_runs and ops.validation_results, the per-check record they keep, and reads."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fares.config.warehouse import Warehouse

log = logging.getLogger(__name__)

CRITICAL = "critical"  # a failed critical check stops the chain
WARNING = "warning"  # a failed warning is recorded; the chain goes on
_MAX_EXAMPLES = 5


@dataclass
class CheckResult:
    """The outcome of one check on one batch (a table's month, service or whole)."""

    table: str
    batch: str
    check: str
    expectation_type: str
    severity: str
    success: bool
    description: str
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    observed_value: str | None = None
    examples: list[str] = field(default_factory=list)
    error: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None

    @property
    def is_critical_failure(self) -> bool:
        """Failed and critical: this stops the chain."""
        return not self.success and self.severity == CRITICAL

    @property
    def is_warning(self) -> bool:
        """Failed but only a warning: recorded, the chain goes on."""
        return not self.success and self.severity == WARNING

    def line(self) -> str:
        """One readable line: which table, which batch, which expectation, how many rows, a few example values."""
        where = f"{self.table} {self.batch}"
        what = f"{self.check} [{self.expectation_type}] ({self.description})"
        if self.expectation_type == "precondition":
            return f"{where}: {self.check}: expected {self.description}, {self.error}"
        if self.error:
            return f"{where}: {what}: could not be evaluated: {self.error}"
        if self.unexpected_count is not None:
            total = f" of {self.element_count:,}" if self.element_count is not None else ""
            pct = f" ({self.unexpected_percent:.2f}%)" if self.unexpected_percent is not None else ""
            detail = f"{self.unexpected_count:,}{total} rows fail{pct}"
        else:
            detail = f"observed {self.observed_value}"
        if self.examples:
            detail += "; e.g. " + ", ".join(self.examples[:_MAX_EXAMPLES])
        return f"{where}: {what}: {detail}"


def save_run(
    wh: Warehouse,
    run_id: str,
    scope: str,
    months: list[str] | None,
    started_at: datetime,
    finished_at: datetime,
    results: list[CheckResult],
    summary: str,
) -> None:
    """Store one validation run and every check result of it."""
    failures = sum(r.is_critical_failure for r in results)
    warnings = sum(r.is_warning for r in results)
    with wh.connect() as conn:
        conn.execute(
            "insert into ops.validation_runs (run_id, scope, months, started_at, finished_at, success, checks,"
            " critical_failures, warnings, summary) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (run_id, scope, months, started_at, finished_at, failures == 0, len(results), failures, warnings, summary),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "insert into ops.validation_results (run_id, table_name, batch, check_name, expectation_type,"
                " severity, success, element_count, unexpected_count, unexpected_percent, observed_value, examples,"
                " description, error, kwargs, fingerprint)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        run_id,
                        r.table,
                        r.batch,
                        r.check,
                        r.expectation_type,
                        r.severity,
                        r.success,
                        r.element_count,
                        r.unexpected_count,
                        r.unexpected_percent,
                        r.observed_value,
                        json.dumps(r.examples),
                        r.description,
                        r.error,
                        json.dumps(r.kwargs, default=str),
                        r.fingerprint,
                    )
                    for r in results
                ],
            )
    log.info("stored validation run %s (%d results)", run_id, len(results))


def passed_fingerprints(wh: Warehouse, scope: str) -> set[tuple[str, str, str]]:
    """(table, batch, fingerprint) of every batch that once passed all its critical checks in `scope`."""
    with wh.connect() as conn:
        rows = conn.execute(
            "select r.table_name, r.batch, r.fingerprint from ops.validation_results r"
            " join ops.validation_runs v using (run_id) where v.scope = %s and r.fingerprint is not null"
            " group by r.run_id, r.table_name, r.batch, r.fingerprint"
            " having bool_and(r.success or r.severity <> 'critical')",
            (scope,),
        ).fetchall()
    return {(t, b, f) for t, b, f in rows}


@dataclass(frozen=True)
class FailedCheck:
    """A stored check that failed, as the run pages show it."""

    table_name: str
    batch: str
    check_name: str
    severity: str
    unexpected_count: int | None
    observed_value: str | None
    description: str


@dataclass(frozen=True)
class ValidationRunSummary:
    """A stored validation run with its failed checks."""

    run_id: str
    scope: str
    months: list[str] | None
    success: bool
    checks: int
    critical_failures: int
    warnings: int
    summary: str
    failures: list[FailedCheck] = field(default_factory=list)


def validation_results(wh: Warehouse, validation_run_ids: list[str]) -> list[ValidationRunSummary]:
    """The stored validation runs with these ids, oldest first, each with its failed checks."""
    if not validation_run_ids:
        return []
    with wh.connect() as conn:
        found = conn.execute(
            "select run_id, scope, months, success, checks, critical_failures, warnings, summary"
            " from ops.validation_runs where run_id = any(%s) order by started_at",
            (validation_run_ids,),
        ).fetchall()
        failed = conn.execute(
            "select run_id, table_name, batch, check_name, severity, unexpected_count, observed_value, description"
            " from ops.validation_results where run_id = any(%s) and not success order by severity, table_name, batch",
            (validation_run_ids,),
        ).fetchall()
    names = ("run_id", "scope", "months", "success", "checks", "critical_failures", "warnings", "summary")
    return [
        ValidationRunSummary(
            **{
                **dict(zip(names, run, strict=True)),
                "failures": [FailedCheck(*f[1:]) for f in failed if f[0] == run[0]],
            }
        )
        for run in found
    ]
