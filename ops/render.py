"""The one renderer of a run: its text (the CLI, `fares runs show`, the alert body) and the pieces the /runs pages
show (duration, months, status mark, dbt counts), so a run reads the same wherever it is shown."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fares.ops.runs import RunRecord, StageRecord
from fares.ops.validation import ValidationRunSummary

FRESHNESS_FILE = "sources.json"  # a run's `dbt source freshness` result, in its folder
_MARK = {"succeeded": "ok", "failed": "FAIL", "timed_out": "TIMEOUT", "interrupted": "stop", "running": "..."}
ERROR_WIDTH = 60


def duration(seconds: float | None) -> str:
    """A run's or a stage's duration for people: seconds to a tenth under two minutes, then minutes, then hours."""
    if seconds is None:
        return ""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def months_label(months: list[str] | None) -> str:
    """The months a run covers, short: one month, a range, a pair, or "(newest)" when none was named."""
    if not months:
        return "(newest)"
    return months[0] if len(months) == 1 else f"{months[0]}..{months[-1]}" if len(months) > 2 else ",".join(months)


def first_line(text: str | None, width: int = ERROR_WIDTH) -> str:
    """The first line of `text`, cut to `width` characters."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def stage_mark(stage: StageRecord) -> str:
    """A stage in a few characters: `transform:ok`, `validate:FAIL`."""
    return f"{stage.stage}:{_MARK.get(stage.status, stage.status)}"


def stage_line(stage: StageRecord) -> str:
    """One stage: name, status, duration, rows in and out, attempts when retried."""
    rows = ", ".join(
        f"{label} {value:,}"
        for label, value in (("rows in", stage.rows_in), ("rows out", stage.rows_out))
        if value is not None
    )
    retried = f", {stage.attempts} attempts" if (stage.attempts or 1) > 1 else ""
    note = f" ({stage.note})" if stage.note else ""
    return f"  {stage.stage:<10} {stage.status:<11} {duration(stage.seconds):>9}  {rows}{retried}{note}".rstrip()


def format_run(run: RunRecord) -> str:
    """A recorded run as a few lines for people: status, each stage with its rows, the model published, the error."""
    took = f" in {duration(run.seconds)}" if run.seconds is not None else ""
    lines = [f"run {run.run_id} {run.status}{took}" + (f" (months {', '.join(run.months)})" if run.months else "")]
    lines += [stage_line(st) for st in run.stages]
    if run.model_version:
        lines.append(f"  model published: {run.model_version}")
    if run.error:
        lines.append(f"  error: {run.error}")
    return "\n".join(lines)


def format_runs_table(runs: list[RunRecord]) -> str:
    """The run history as a table that fits a terminal: the error is its first line, cut to ERROR_WIDTH."""
    if not runs:
        return "(no runs yet)"
    table = [("run", "status", "started", "took", "by", "months", "stages", "error")]
    for r in runs:
        table.append(
            (
                str(r.run_id),
                r.status,
                r.started_at.astimezone().strftime("%m-%d %H:%M"),
                duration(r.seconds),
                r.trigger or "",
                months_label(r.months),
                " ".join(stage_mark(s) for s in r.stages),
                first_line(r.error),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table)


def dbt_counts(results_path: Path) -> dict[str, int] | None:
    """How many dbt nodes ended in each status, from a run's run_results.json (None when it kept none)."""
    if not results_path.is_file():
        return None
    counts: dict[str, int] = {}
    for result in json.loads(results_path.read_text(encoding="utf-8")).get("results", []):
        counts[result.get("status", "?")] = counts.get(result.get("status", "?"), 0) + 1
    return counts


def counts_text(counts: dict[str, int]) -> str:
    """dbt's counts in words: `3 pass, 12 success`."""
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


@dataclass(frozen=True)
class SourceFreshness:
    """One source table in a run's `dbt source freshness`: pass, warn, error or runtime error."""

    source: str  # tlc.yellow_trips
    status: str
    max_loaded_at: str | None
    age_seconds: float | None


def read_freshness(path: Path) -> list[SourceFreshness] | None:
    """The source tables of a run's sources.json, by name (None when the run kept none)."""
    if not path.is_file():
        return None
    found = [
        SourceFreshness(
            str(r.get("unique_id", "?")).removeprefix("source.").split(".", 1)[-1],
            str(r.get("status", "?")),
            r.get("max_loaded_at"),
            r.get("max_loaded_at_time_ago_in_s"),
        )
        for r in json.loads(path.read_text(encoding="utf-8")).get("results", [])
    ]
    return sorted(found, key=lambda f: f.source)


def format_run_detail(
    run: RunRecord, run_dir: Path, validation: list[ValidationRunSummary], tail_lines: int = 15
) -> str:
    """Where the run's log is, dbt's results in counts, the validation summaries, and the log's last lines."""
    lines = [f"  triggered by: {run.trigger or '?'}; pid {run.pid} on {run.host}"]
    if run.redo_of:
        lines.append(f"  redoes run {run.redo_of}")
    dbt = run_dir / "run_results.json"
    counts = dbt_counts(dbt)
    if counts is not None:
        lines.append(f"  dbt: {counts_text(counts)} ({dbt})")
    freshness = read_freshness(run_dir / FRESHNESS_FILE)
    if freshness is not None:
        lines.append(f"  source freshness: {', '.join(f'{f.source} {f.status}' for f in freshness)}")
    for found in validation:
        lines.append("  " + found.summary.replace("\n", "\n  "))
    log_path = Path(run.log_path) if run.log_path else run_dir / "run.log"
    if log_path.is_file():
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-tail_lines:]
        lines.append(f"  log: {log_path} (last {len(tail)} lines)")
        lines += [f"    {line}" for line in tail]
    return "\n".join(lines)
