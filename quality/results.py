"""Validation results for people and JSON: the readable summary of a run and plain dicts of its checks.

The per-check record (`CheckResult`) and the tables that keep it belong to `fares.ops.validation`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from fares.ops.validation import CheckResult

log = logging.getLogger(__name__)


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


def as_dicts(results: list[CheckResult]) -> list[dict[str, Any]]:
    """Plain dicts of the results (for JSON output)."""
    return [asdict(r) for r in results]
