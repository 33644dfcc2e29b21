"""The HTML report of one training run: metrics against the baseline and plots, self-contained (PNGs as base64)."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np
import pandas as pd

from fares.ml import SERVICES

_STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.good{color:#176317}.bad{color:#a11}
img{max-width:100%}"""


def _png(fig: Any) -> str:
    """The figure as an <img> tag with an embedded base64 PNG."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _plots(detail: pd.DataFrame, metrics: dict) -> list[str]:
    """Predicted vs actual, MAE by hour and MAE by borough pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, service in zip(axes, SERVICES, strict=True):
        part = detail[detail.service == service]
        part = part.sample(min(len(part), 4000), random_state=0) if len(part) else part
        ax.scatter(part.actual, part.model, s=4, alpha=0.3, label="model")
        top = float(np.nanpercentile(part.actual, 99)) if len(part) else 1.0
        ax.plot([0, top], [0, top], color="k", lw=1)
        ax.set(xlim=(0, top), ylim=(0, top), xlabel="actual fare ($)", ylabel="predicted fare ($)", title=service)
    figs.append(_png(fig))
    by_hour = pd.DataFrame(metrics["mae_by_hour"])
    fig, ax = plt.subplots(figsize=(11, 4))
    for i, service in enumerate(SERVICES):
        part = by_hour[by_hour.service == service] if len(by_hour) else by_hour
        if len(part):
            ax.plot(part.hour, part.model_mae, marker="o", color=f"C{i}", label=f"{service} model")
            ax.plot(part.hour, part.baseline_mae, ls="--", color=f"C{i}", label=f"{service} baseline")
    ax.set(xlabel="pickup hour", ylabel="MAE ($)", title="holdout error by hour", xticks=range(24))
    ax.legend()
    figs.append(_png(fig))
    pairs = pd.DataFrame(metrics["mae_by_borough_pair"])
    if len(pairs):
        top_pairs = pairs.groupby("borough_pair")["n"].sum().nlargest(12).index
        table = (
            pairs[pairs.borough_pair.isin(top_pairs)]
            .pivot_table(index="borough_pair", columns="service", values=["model_mae", "baseline_mae"])
            .reindex(top_pairs[::-1])
        )
        table.columns = [f"{service} {who.removesuffix('_mae')}" for who, service in table.columns]
        fig, ax = plt.subplots(figsize=(11, 0.45 * len(table) + 1.5))
        table.plot.barh(ax=ax)
        ax.set(xlabel="MAE ($)", ylabel="", title="holdout error by borough pair (12 busiest)")
        figs.append(_png(fig))
    return figs


def _service_table(metrics: dict) -> str:
    rows = []
    for service in SERVICES:
        s = metrics["services"][service]
        for who in ("model", "baseline"):
            m = s[who]
            cover = f"{s['interval_coverage'] * 100:.0f}%" if who == "model" else "–"
            rows.append(
                f"<tr><td>{service} {who}</td><td>{m['n']}</td><td>{m['mae']:.2f}</td><td>{m['rmse']:.2f}</td>"
                f"<td>{m['mape']:.1f}%</td><td>{cover}</td></tr>"
            )
    return (
        "<table><tr><th></th><th>holdout rows</th><th>MAE $</th><th>RMSE $</th><th>MAPE</th>"
        "<th>low–high coverage</th></tr>" + "".join(rows) + "</table>"
    )


def _rows_table(rows: list[dict], columns: list[str]) -> str:
    """A list of flat dicts as an HTML table (floats to 2-3 places)."""

    def cell(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _calibration_note(cal: dict | None) -> str:
    """How p_uber_cheaper was recalibrated: the factor on z, fitted on the training window's latest slice."""
    if not cal:
        return ""
    if cal["scale"] == 1.0:
        return (
            f" p_uber_cheaper was not rescaled: on {cal['cells']} cells of the training window's latest slice a "
            "rescaling would not have improved its Brier score by 5%."
        )
    return (
        f" p_uber_cheaper was recalibrated (z × {cal['scale']:.2f}) on {cal['cells']} cells of the training window's "
        f"latest slice (Brier {cal['brier_uncalibrated']:.3f} → {cal['brier_calibrated']:.3f} there); on the holdout "
        f"the uncalibrated score would have been {cal['holdout_brier_uncalibrated']:.3f}."
    )


def _decision_section(metrics: dict) -> str:
    """Coverage by route support, the cheaper-service call, its Brier score and reliability table, thin data."""
    d = metrics["cheaper_agreement"]
    parts = [
        "<h2>Bands by route support (holdout)</h2>",
        _rows_table(metrics.get("coverage_by_support", []), ["service", "support", "n", "coverage", "model_mae"]),
        (
            f"<h2>The cheaper-service call</h2><p>{d['cells']} borough pair × hour cells of the holdout hold both "
            f"services. Agreement with their actual medians: model {d['model'] * 100:.1f}% of the cells where it "
            f'commits ({d.get("about_the_same", 0) * 100:.0f}% answered "about the same"), baseline '
            f"{d['baseline'] * 100:.1f}%. Brier score of p_uber_cheaper {d['brier']:.3f} (always answering the base "
            f"rate: {d['brier_base_rate']:.3f}).{_calibration_note(d.get('calibration'))}</p>"
        ),
        _rows_table(d.get("reliability", []), ["p_from", "p_to", "cells", "mean_p", "uber_cheaper_share"]),
        _per_trip_section(d.get("per_trip") or {}),
        _outside_section(metrics),
        "<h2>Where the data is thin</h2>",
        _rows_table(
            metrics.get("data_coverage", []), ["split", "service", "trips", "days", "clock_hours", "first", "last"]
        ),
    ]
    return "".join(parts)


def _per_trip_section(t: dict) -> str:
    """The per-trip calibration of p_uber_cheaper (ml.evaluate.trip_calibration), flagged when it rests on too few."""
    if not t.get("trips"):
        return ""
    css = "" if t.get("enough") else ' class="bad"'
    few = "" if t.get("enough") else " These figures rest on too few held-out trips to mean much."
    text = (
        f"<h2>Calibration of p_uber_cheaper, trip by trip</h2><p{css}>Event: {html.escape(t['event'])}. "
        f"{t['trips']:,} held-out trips ({t['trips_by_service']['uber']:,} Uber, {t['trips_by_service']['taxi']:,} "
        f"taxi); Uber was cheaper on {t['uber_cheaper_share']:.0%}. Brier score {t['brier']:.3f} (a coin: 0.250; "
        f"always the base rate: {t['brier_base_rate']:.3f}). A service is named on {t['named_share']:.0%} of them "
        f"and is right on {t['named_right']:.0%} of those.{few}</p>"
    )
    return text + _rows_table(t.get("reliability", []), ["p_from", "p_to", "trips", "mean_p", "uber_cheaper_share"])


def _outside_section(metrics: dict) -> str:
    """Coverage by months from the training window, and how far each band widens per month outside what it saw."""
    drift = metrics.get("drift") or {}
    if not drift and not metrics.get("coverage_by_months"):
        return ""
    uber = drift.get("uber_level") or {}
    spread = uber.get("spread_at") or {}
    at = ", ".join(f"{k} months {v:.1%}" for k, v in spread.items())
    taxi = drift.get("taxi_monthly_drift", 0.0)
    text = (
        "<h2>Outside the training window</h2><p>A band widens outside what its model saw, in quadrature with the band "
        f"measured in the window: the taxi's by the fare-to-meter ratio's drift of {taxi:.1%} a month times the square "
        "root of the months outside the window (measured between the window's monthly medians), and relative to the "
        "fare under the pickup's rate card; the Uber band by how far the Uber price "
        f"level moves in the months since its newest known level (standard deviation of the log move: {at or 'n/a'}; "
        f"month-to-month noise {uber.get('monthly_noise', 0):.1%}, trend of unknown sign "
        f"{uber.get('monthly_trend', 0):.2%} a month, from the data's monthly levels and the published moves below). "
        "The holdout lies inside the window, so the coverage below shows months 0 only unless the trips judged reach "
        "outside it (bench/accuracy.py judges months before the window too).</p>"
    )
    return (
        text
        + _rows_table(
            metrics.get("coverage_by_months", []),
            ["service", "months_from_window", "n", "coverage", "median_width", "model_mae"],
        )
        + _rows_table(
            uber.get("moves", []), ["source", "lag", "pairs", "rms_move", "from_month", "to_month", "move_pct"]
        )
    )


def _holdout_note(metrics: dict) -> str:
    """What the holdout holds, flagged when it is below its minimum (ml.holdout.HoldoutPlan.describe)."""
    holdout = metrics.get("holdout") or {}
    if not holdout.get("statement"):
        return ""
    css = "" if holdout.get("has_minimum") else ' class="bad"'
    return f"<p{css}>{html.escape(holdout['statement'])}</p>"


def render_report(version: str, metrics: dict, detail: pd.DataFrame, info: dict[str, Any]) -> str:
    """The whole report page; `info` holds the training window, fingerprint, promotion decision and timings."""
    gain = metrics["mae_improvement_pct"]
    verdict = (
        f'<p class="good">The model beats the baseline: mean MAE ${metrics["model_mae"]:.2f} vs '
        f"${metrics['baseline_mae']:.2f}, {gain:.1f}% lower.</p>"
        if metrics["beats_baseline"]
        else f'<p class="bad">The model does NOT beat the baseline: mean MAE ${metrics["model_mae"]:.2f} vs '
        f"${metrics['baseline_mae']:.2f} ({-gain:.1f}% higher).</p>"
    )
    facts = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in info.items())
    plots = "".join(f"<div>{img}</div>" for img in _plots(detail, metrics))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>fares model {html.escape(version)}</title><style>{_STYLE}</style></head><body>
<h1>Fare model {html.escape(version)}</h1>{verdict}
<h2>Holdout metrics (both services from {html.escape(str(metrics.get("holdout_from", "")))})</h2>
{_holdout_note(metrics)}{_service_table(metrics)}
<p>Baseline: median fare by zone pair × hour from the training split, falling back to zone pair, then borough pair.</p>
{_decision_section(metrics)}
<h2>Run</h2><table>{facts}</table><h2>Plots</h2>{plots}</body></html>"""
