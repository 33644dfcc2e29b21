"""Runs for people at a terminal: `fares runs` (one short line per run) and the detail of `fares runs show ID`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from fares.settings import Settings
from fares.warehouse import Warehouse

_MARK = {"succeeded": "ok", "failed": "FAIL", "timed_out": "TIMEOUT", "interrupted": "stop", "running": "..."}
ERROR_WIDTH = 60


def _took(row: dict[str, Any]) -> str:
    if not row.get("finished_at") or not row.get("started_at"):
        return ""
    seconds = (row["finished_at"] - row["started_at"]).total_seconds()
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}m"


def _months(months: list[str] | None) -> str:
    if not months:
        return "(newest)"
    return months[0] if len(months) == 1 else f"{months[0]}..{months[-1]}" if len(months) > 2 else ",".join(months)


def _short(text: str | None, width: int = ERROR_WIDTH) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def format_runs_table(rows: list[dict[str, Any]]) -> str:
    """The run history as a table that fits a terminal: the error is its first line, cut to ERROR_WIDTH."""
    if not rows:
        return "(no runs yet)"
    table = [("run", "status", "started", "took", "by", "months", "stages", "error")]
    for r in rows:
        started: datetime | None = r.get("started_at")
        stages = " ".join(f"{s['stage']}:{_MARK.get(s['status'], s['status'])}" for s in r.get("stages", []))
        table.append(
            (
                str(r["run_id"]),
                r["status"],
                started.astimezone().strftime("%m-%d %H:%M") if started else "",
                _took(r),
                r.get("trigger") or "",
                _months(r.get("months")),
                stages,
                _short(r.get("error")),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table)


def format_run_detail(settings: Settings, wh: Warehouse, run: dict[str, Any]) -> str:
    """Where the run's log is, dbt's results in counts, the validation summaries, and the log's last lines."""
    from fares import ops

    lines = [f"  triggered by: {run.get('trigger') or '?'}; pid {run.get('pid')} on {run.get('host')}"]
    if run.get("redo_of"):
        lines.append(f"  redoes run {run['redo_of']}")
    log_path = Path(run["log_path"]) if run.get("log_path") else None
    dbt = settings.data_dir / "runs" / str(run["run_id"]) / "run_results.json"
    if dbt.is_file():
        counts: dict[str, int] = {}
        for result in json.loads(dbt.read_text(encoding="utf-8")).get("results", []):
            counts[result.get("status", "?")] = counts.get(result.get("status", "?"), 0) + 1
        lines.append(f"  dbt: {', '.join(f'{n} {k}' for k, n in sorted(counts.items()))} ({dbt})")
    for found in ops.validation_results(wh, run.get("validation_run_ids") or []):
        lines.append("  " + found["summary"].replace("\n", "\n  "))
    if log_path is not None and log_path.is_file():
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        lines.append(f"  log: {log_path} (last {len(tail)} lines)")
        lines += [f"    {line}" for line in tail]
    return "\n".join(lines)
