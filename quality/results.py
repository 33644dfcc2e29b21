"""Validation results: the per-check record, the readable summary, and the ops.validation_* tables that keep them."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fares.quality.suites import CRITICAL, WARNING

if TYPE_CHECKING:
    from fares.warehouse import Warehouse

log = logging.getLogger(__name__)

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


def format_summary(scope: str, run_id: str, results: list[CheckResult], unchanged: int = 0) -> str:
    """The readable summary of one run: the critical failures first, then the warnings."""
    failures = [r for r in results if r.is_critical_failure]
    warnings = [r for r in results if r.is_warning]
    tables = sorted({f"{r.table} {r.batch}" for r in results})
    verdict = "FAILED" if failures else "passed"
    head = (
        f"quality gate ({scope}) {verdict}: {len(results)} checks on {len(tables)} batches, "
        f"{len(failures)} critical failures, {len(warnings)} warnings (run {run_id})"
    )
    if unchanged:
        head += f"; {unchanged} batches unchanged since they passed, not re-checked"
    lines = [head]
    if failures:
        lines.append("critical:")
        lines += [f"  - {r.line()}" for r in failures]
    if warnings:
        lines.append("warnings:")
        lines += [f"  - {r.line()}" for r in warnings]
    return "\n".join(lines)


def ensure_tables(wh: Warehouse) -> None:
    """Make sure ops.validation_runs and ops.validation_results exist (fares.ops owns their DDL)."""
    from fares import ops

    ops.migrate(wh)


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
    ensure_tables(wh)
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
    ensure_tables(wh)
    with wh.connect() as conn:
        rows = conn.execute(
            "select r.table_name, r.batch, r.fingerprint from ops.validation_results r"
            " join ops.validation_runs v using (run_id) where v.scope = %s and r.fingerprint is not null"
            " group by r.run_id, r.table_name, r.batch, r.fingerprint"
            " having bool_and(r.success or r.severity <> 'critical')",
            (scope,),
        ).fetchall()
    return {(t, b, f) for t, b, f in rows}


def list_validation_runs(wh: Warehouse, limit: int = 20) -> list[dict[str, Any]]:
    """The newest validation runs, newest first (empty when none was stored yet)."""
    with wh.connect() as conn:
        exists = conn.execute("select to_regclass('ops.validation_runs') is not null").fetchone()
        if not exists or not exists[0]:
            return []
        cur = conn.execute(
            "select run_id, scope, months, started_at, finished_at, success, checks, critical_failures, warnings"
            " from ops.validation_runs order by started_at desc limit %s",
            (limit,),
        )
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def as_dicts(results: list[CheckResult]) -> list[dict[str, Any]]:
    """Plain dicts of the results (for JSON output)."""
    return [asdict(r) for r in results]
