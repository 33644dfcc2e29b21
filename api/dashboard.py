"""The operators' pages: the runs list with two charts, and one run in detail; plain HTML, inline SVG, no scripts."""

from __future__ import annotations

import json
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from fares.ops.ledger import MonthRows
from fares.ops.render import SourceFreshness, counts_text, dbt_counts, duration, first_line, months_label
from fares.ops.runs import RunRecord, StageRecord
from fares.ops.validation import ValidationRunSummary

_STYLE = '<link rel="stylesheet" href="/static/runs.css">'
_BAR_W, _CHART_H = 28, 140


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>{_STYLE}</head><body><main>"
        '<nav><a href="/">quote</a> · <a href="/runs">runs</a> · <a href="/dbt-docs/">dbt docs</a> · '
        '<a href="/data-docs/">Data Docs</a> · <a href="/docs">API</a> · <a href="/logout">log out</a></nav>'
        f"{body}</main></body></html>"
    )


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z") if value else ""


def _num(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _badge(status: str) -> str:
    return f'<span class="status {escape(status)}">{escape(status.replace("_", " "))}</span>'


def _bars(title: str, points: list[tuple[str, float]], unit: str, label: str) -> str:
    """A bar chart as inline SVG: one bar per point, its value above it, its label below."""
    if not points:
        return (
            f'<figure class="chart"><figcaption>{escape(title)}</figcaption><p class="empty">no data yet</p></figure>'
        )
    top = max(v for _, v in points) or 1.0
    width = max(240, len(points) * (_BAR_W + 12) + 20)
    parts = []
    for i, (name, value) in enumerate(points):
        h = value / top * (_CHART_H - 40)
        x, y = 10 + i * (_BAR_W + 12), _CHART_H - 20 - h
        parts.append(
            f'<rect x="{x}" y="{y:.1f}" width="{_BAR_W}" height="{h:.1f}"><title>{escape(name)}: '
            f"{value:,.2f} {escape(unit)}</title></rect>"
            f'<text x="{x + _BAR_W / 2}" y="{y - 4:.1f}" class="value">{value:,.{0 if value >= 100 else 2}f}</text>'
            f'<text x="{x + _BAR_W / 2}" y="{_CHART_H - 6}" class="label">{escape(name[-7:])}</text>'
        )
    return (
        f'<figure class="chart"><figcaption>{escape(title)}</figcaption>'
        f'<svg role="img" aria-label="{escape(label)}" width="{width}" height="{_CHART_H}" '
        f'viewBox="0 0 {width} {_CHART_H}">{"".join(parts)}</svg></figure>'
    )


def charts(loaded: list[MonthRows], versions: list[dict[str, Any]]) -> str:
    """Rows loaded per month (both services) and holdout MAE per model version."""
    per_month: dict[str, float] = {}
    for row in loaded:
        per_month[row.month] = per_month.get(row.month, 0) + float(row.rows)
    mae = [(v["version"][:15], float(v["model_mae"])) for v in versions if v.get("model_mae") is not None]
    return (
        '<section class="charts">'
        + _bars("Trip rows loaded per month", sorted(per_month.items()), "rows", "rows loaded per month")
        + _bars("Holdout MAE per model version ($)", mae, "$", "holdout MAE per model version")
        + "</section>"
    )


def _stage_cells(stages: list[StageRecord]) -> str:
    return " ".join(
        f'<span class="stage {escape(s.status)}" title="{escape(s.error or "")}">{escape(s.stage)} '
        f"<small>{duration(s.seconds)}</small></span>"
        for s in stages
    )


def runs_page(runs: list[RunRecord], chart_html: str) -> str:
    """The list of recent runs, newest first, with the charts above it."""
    rows = "".join(
        f'<tr class="run {escape(r.status)}"><td><a href="/runs/{r.run_id}">{r.run_id}</a></td>'
        f"<td>{_badge(r.status)}</td><td>{_when(r.started_at)}</td><td>{duration(r.seconds)}</td>"
        f"<td>{escape(r.trigger or '')}</td><td>{escape(months_label(r.months))}</td>"
        f"<td>{_stage_cells(r.stages)}</td><td>{_num(r.rows_in)}</td><td>{_num(r.rows_out)}</td>"
        f'<td class="error">{escape(first_line(r.error, 400))}</td></tr>'
        for r in runs
    )
    table = (
        '<table id="runs"><thead><tr><th>run</th><th>status</th><th>started</th><th>took</th><th>by</th>'
        "<th>months</th><th>stages</th><th>rows in</th><th>rows out</th><th>error</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        if runs
        else '<p class="empty">No runs recorded yet: <code>fares run</code> or the daemon records them here.</p>'
    )
    return _page("fares: runs", f"<h1>Pipeline runs</h1>{chart_html}{table}")


def _dbt_table(path: Path) -> str:
    if not path.is_file():
        return '<p class="empty">no dbt results kept for this run</p>'
    results = json.loads(path.read_text(encoding="utf-8")).get("results", [])
    bad = [r for r in results if r.get("status") not in ("success", "pass")]
    counts = dbt_counts(path) or {}
    rows = "".join(
        f"<tr><td>{escape(r.get('unique_id', ''))}</td><td>{escape(str(r.get('status')))}</td>"
        f"<td>{float(r.get('execution_time') or 0):.2f} s</td><td>{escape(str(r.get('message') or ''))}</td></tr>"
        for r in (bad or results)[:200]
    )
    summary = counts_text(counts)
    shown = "not passing" if bad else "all"
    return (
        f'<p>{escape(summary)} · <a href="dbt">run_results.json</a> · showing {shown}</p>'
        f'<table class="dbt"><tr><th>node</th><th>status</th><th>time</th><th>message</th></tr>{rows}</table>'
    )


def _validation(found: list[ValidationRunSummary]) -> str:
    if not found:
        return '<p class="empty">no validation in this run</p>'
    return "".join(
        f"<h3>{escape(v.scope)}: {'passed' if v.success else 'FAILED'} ({v.checks} checks, "
        f"{v.critical_failures} critical, {v.warnings} warnings)</h3><pre>{escape(v.summary)}</pre>"
        for v in found
    )


_FRESHNESS_LOOK = {"pass": "succeeded", "error": "failed", "runtime error": "failed"}  # warn: the plain look


def _freshness(run_id: int, found: list[SourceFreshness] | None) -> str:
    if found is None:
        return '<p class="empty">no source freshness checked in this run (it runs after the transform)</p>'
    rows = "".join(
        f'<tr><td>{escape(f.source)}</td><td><span class="status {_FRESHNESS_LOOK.get(f.status, "")}">'
        f"{escape(f.status)}</span></td><td>{escape(f.max_loaded_at or '')}</td>"
        f"<td>{'' if f.age_seconds is None else f'{f.age_seconds / 86400:.1f} days'}</td></tr>"
        for f in found
    )
    return (
        f'<p><a href="/runs/{run_id}/freshness">sources.json</a> (dbt source freshness; thresholds from the TLC\'s '
        'publication delay)</p><table class="dbt"><tr><th>source</th><th>status</th><th>newest load</th>'
        f"<th>age</th></tr>{rows}</table>"
    )


def run_page(
    run: RunRecord,
    log_tail: str,
    dbt_results: Path,
    validation: list[ValidationRunSummary],
    freshness: list[SourceFreshness] | None = None,
) -> str:
    """One run: facts, stages, error, links, dbt's results, source freshness, the validation results and the log."""
    version = run.model_version
    links = [f'<a href="/runs/{run.run_id}/log">full log</a>', '<a href="/data-docs/">Data Docs</a>']
    links.append('<a href="/dbt-docs/">dbt docs</a>')
    if freshness is not None:
        links.append(f'<a href="/runs/{run.run_id}/freshness">source freshness</a>')
    if version:
        links.append(f'<a href="/reports/{escape(version)}">training report ({escape(version)})</a>')
    stages = "".join(
        f"<tr><td>{escape(s.stage)}</td><td>{_badge(s.status)}</td><td>{duration(s.seconds)}</td><td>{s.attempts}</td>"
        f"<td>{_num(s.rows_in)}</td><td>{_num(s.rows_out)}</td>"
        f'<td class="error">{escape(s.error or "")}</td></tr>'
        for s in run.stages
    )
    error = f'<pre id="run-error" class="error">{escape(run.error)}</pre>' if run.error else ""
    facts = (
        f"<p>{_badge(run.status)} started {_when(run.started_at)}, took {duration(run.seconds)}, "
        f"by {escape(run.trigger or '?')}, months {escape(months_label(run.months))}, "
        f"source {escape(run.source or '')}" + (f", redoes run {run.redo_of}" if run.redo_of else "") + "</p>"
    )
    body = (
        f'<h1>Run {run.run_id}</h1>{facts}{error}<p class="links">{" · ".join(links)}</p>'
        "<h2>Stages</h2><table><tr><th>stage</th><th>status</th><th>took</th><th>attempts</th><th>rows in</th>"
        f"<th>rows out</th><th>error</th></tr>{stages}</table>"
        f"<h2>dbt</h2>{_dbt_table(dbt_results)}<h2>Source freshness</h2>{_freshness(run.run_id, freshness)}"
        f"<h2>Validation</h2>{_validation(validation)}"
        f'<h2>Log</h2><pre class="log">{escape(log_tail) or "(no log)"}</pre>'
    )
    return _page(f"fares: run {run.run_id}", body)
