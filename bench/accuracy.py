"""Benchmark: accuracy on the real TLC samples (../shared/data/tlc), inside and outside the training window.

Loads the shared samples (yellow 2020-01..04, HVFHV one evening of 2020-04, 10k trips per file) into a database of
its own on the embedded PostgreSQL, builds the dbt models, and reads every trip of `marts.ml_fare_training`. Then:

- the training window is the newest `--window` months (default 3: February to April 2020, one tariff period);
- inside it, one trip in five of each service (by a hash of trip_id) is held out, the rest is fitted on, with the zone
  typicals and Uber levels rebuilt from the fitted trips only (ml.simulate.build_lookups), the real zone pairs and
  rate card from the marts;
- outside it, every yellow trip of the months before the window is held out (they share its tariff period).

It prints the sizes, the model's and the zone-pair median baseline's MAE, the 80% band's coverage by months from the
window, and each issue-24 target it can measure, with what it cannot (no Uber fares after April 2020 and no yellow
trips before 2020 in the samples). No timing: accuracy only.

    python bench/accuracy.py                  # build (about a minute) and measure
    python bench/accuracy.py --skip-build     # measure again on the database a previous run left
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from fares.config.settings import Settings
    from fares.config.warehouse import Warehouse
    from fares.ml.evaluate import BaselineModel
    from fares.ml.predict import FareModel

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tlc"
TARGET_MAE = 2.40  # dollars, held-out yellow trips of the tariff period
TARGET_COVERAGE = (0.75, 0.85)  # of the 80% band, inside and outside the window


def _build(settings: Settings, wh: Warehouse, source: Path) -> None:
    from fares.engines.transform import run_dbt
    from fares.ingestion.pipeline import ingest

    report = ingest(settings, wh, source=str(source), months=["2020-01..2020-04"], progress=False)
    if report.failed:
        raise SystemExit(f"ingest failed: {report.failed}")
    run_dbt(settings, wh, ["build"])


def _scores(model: FareModel, baseline: BaselineModel, frame: pd.DataFrame, service: str) -> dict[str, float]:
    """MAE of the model and the baseline, and the band's coverage, on `frame`'s trips of `service`."""
    part = frame[frame["service"] == service]
    if part.empty:
        return {"n": 0, "mae": float("nan"), "baseline_mae": float("nan"), "coverage": float("nan")}
    predicted = model.predict_frame(part)
    actual = part["rider_fare"].to_numpy(dtype=float)
    fare = predicted[f"{service}_fare"].to_numpy()
    low, high = predicted[f"{service}_low"].to_numpy(), predicted[f"{service}_high"].to_numpy()
    return {
        "n": len(part),
        "mae": float(np.mean(np.abs(fare - actual))),
        "baseline_mae": float(np.mean(np.abs(baseline.predict(part, service) - actual))),
        "coverage": float(np.mean((actual >= low) & (actual <= high))),
        "median_ratio": float(np.median(fare / actual)),
    }


def _line(label: str, s: dict[str, float]) -> str:
    if not s["n"]:
        return f"  {label:<44} no trips"
    return (
        f"  {label:<44} n={s['n']:>6,}  MAE ${s['mae']:.2f} (baseline ${s['baseline_mae']:.2f})  "
        f"80% band covers {s['coverage']:.0%}  median quote/real {s['median_ratio']:.2f}"
    )


def _print_months(model: FareModel, baseline: BaselineModel, trips: pd.DataFrame) -> None:
    """Band coverage by months from the training window, per service (ml.evaluate.coverage_by_months)."""
    from fares.ml.evaluate import evaluate_holdout

    rows = evaluate_holdout(model, baseline, trips)[0]["coverage_by_months"]
    print("80% band coverage by months from the training window (inside: the hash holdout; outside: every trip):")
    for r in rows:
        print(
            f"  {r['service']:<5} {r['months_from_window']:>2} month(s) n={r['n']:>6,}  covers {r['coverage']:.1%}  "
            f"median high/low {r['median_width']:.2f}  MAE ${r['model_mae']:.2f}"
        )


def _print_drift(model: FareModel) -> None:
    """How far the bands widen per month outside what each model saw, and the level moves behind the Uber drift."""
    from fares.ml.train import describe_drift

    drift = describe_drift(model)
    uber = drift["uber_level"]
    print(
        f"taxi fare-to-meter drift {drift['taxi_monthly_drift']:.2%} a month (sd of the log ratio, times sqrt(months "
        f"outside)); Uber level: noise {uber['monthly_noise']:.2%} a month, trend of unknown sign "
        f"{uber['monthly_trend']:.2%} a month; sd of the log level move at "
        + ", ".join(f"{k} months {v:.1%}" for k, v in uber["spread_at"].items())
    )
    for m in uber["moves"]:
        if m["source"] == "data":
            print(f"  data: {m['pairs']} month pair(s) {m['lag']} month(s) apart, rms log move {m['rms_move']:.3f}")
        else:
            print(f"  published: {m['from_month']} -> {m['to_month']} ({m['lag']} months) {m['move_pct']:+.0f}%")


# What-ifs for real Uber fares about three years past the window (none in the samples): April 2020's held-out fares
# raised by issue 24's measured gap (quotes for real Jan-May 2023 Uber trips came out at a median 0.73 of the fares)
# and by the published move (base fares up about half from April 2020 to March 2023, the seed hvfhv_price_moves)
WHAT_IFS = {"issue 24's measured 2023 quote/real median": 0.73, "published +50% to March 2023": 1 / 1.5}
STRESS_MONTHS = 35  # April 2020 -> March 2023
STALE_MONTHS = (0, 1, 3, 12, 24, 36)


def _print_staleness(model: FareModel, holdout: pd.DataFrame) -> dict[str, dict[str, float]]:
    """The held-out trips quoted k months later (whole weeks, so the weekday stays): how the Uber band, p_uber_cheaper
    and the answer move with staleness; then the what-ifs (WHAT_IFS) for real fares three years on. Returns their
    figures."""
    from fares.ml.predict import SAME_REASONS, quote_reasons

    uber = holdout[holdout["service"] == "uber"]
    print(f"staleness: the {len(holdout):,} held-out trips quoted k months later (k: Uber band high/low, p, answers):")
    for k in STALE_MONTHS:
        later = holdout.assign(pickup_at=holdout["pickup_at"] + pd.Timedelta(weeks=round(k * 30.44 / 7)))
        q = model.predict_frame(later)
        codes = quote_reasons(q)
        print(
            f"  k={k:>2}: stale {int(q.uber_stale_months.median())} months, Uber high/low "
            f"{np.median(q.uber_high / q.uber_low):.2f}, mean |p-0.5| {np.mean(np.abs(q.p_uber_cheaper - 0.5)):.3f}, "
            f"named {np.mean(codes == 0):.0%}, 'about the same' for staleness {np.mean(codes == 3):.0%}"
        )
    later = uber.assign(pickup_at=uber["pickup_at"] + pd.Timedelta(weeks=round(STRESS_MONTHS * 30.44 / 7)))
    q = model.predict_frame(later)
    p = q.p_uber_cheaper.to_numpy()
    codes = quote_reasons(q)
    named = codes == 0
    results = {}
    for label, ratio in WHAT_IFS.items():
        actual = uber["rider_fare"].to_numpy(dtype=float) / ratio
        covered = (actual >= q.uber_low.to_numpy()) & (actual <= q.uber_high.to_numpy())
        y = (actual < q.taxi_fare.to_numpy()).astype(float)
        results[label] = out = {
            "coverage": float(covered.mean()),
            "brier": float(np.mean((p - y) ** 2)),
            "named": int(named.sum()),
            "named_right": float(((p > 0.5) == (y > 0.5))[named].mean()) if named.any() else float("nan"),
        }
        print(
            f"what-if ({label}): the {len(uber):,} held-out April 2020 Uber trips quoted {STRESS_MONTHS} months on "
            f"(stale {int(np.median(q.uber_stale_months))} months), real fares divided by {ratio:.2f}: band covers "
            f"{out['coverage']:.0%}, Brier {out['brier']:.3f} against 'the real Uber fare was below the taxi quote' "
            f"(Uber cheaper on {y.mean():.0%}), named on {named.mean():.0%}, right on {out['named_right']:.0%} of those"
        )
    print(
        f"  'about the same' on {np.mean(codes != 0):.0%} of them, for staleness on {np.mean(codes == 3):.0%}: "
        f"{SAME_REASONS[3]}"
    )
    return results


def _verdict(name: str, ok: bool, figure: str) -> str:
    return f"  {'MET ' if ok else 'MISS'} {name}: {figure}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(".data/bench-accuracy"))
    parser.add_argument("--db-name", default="bench_accuracy")
    parser.add_argument("--source", type=Path, default=SAMPLES)
    parser.add_argument("--window", type=int, default=3, help="newest months in the training window")
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument(
        "--in-sample-typicals", action="store_true", help="fit without leave-one-out typicals (for comparison)"
    )
    args = parser.parse_args()

    from fares.config.settings import get_settings
    from fares.ml import OUTCOME_COLUMNS, SERVICES
    from fares.ml.evaluate import BaselineModel
    from fares.ml.lookups import load_lookups
    from fares.ml.sample import load_training_sample
    from fares.ml.simulate import build_lookups
    from fares.ml.train import fit_fare_model
    from fares.ops.schema import prepare_warehouse

    settings = get_settings().model_copy(
        update={
            "data_dir": args.data_dir.resolve(),
            "db_name": args.db_name,
            "database_url": None,
            "train_months": 12,
            "train_rows_per_service": 10**8,
        }
    )
    wh = prepare_warehouse(settings)  # a process entry: schema ops migrated here, as the CLI does
    if not args.skip_build:
        _build(settings, wh, args.source)
    trips, parts = load_training_sample(settings, wh)
    marts = load_lookups(settings, wh)
    zones = marts.zones
    months = trips["pickup_at"].dt.strftime("%Y-%m")
    window = sorted(months.unique())[-args.window :]
    inside = trips[months.isin(window)]
    before = trips[~months.isin(window) & (trips["service"] == "taxi")]
    held = (pd.util.hash_pandas_object(inside["trip_id"], index=False).to_numpy() % 5) == 0
    fit, holdout = inside[~held], inside[held]
    rebuilt = build_lookups(fit, zones)
    # the marts' zone pairs, rate card and HVFHV charges; typicals and Uber levels from the fitted trips only
    lookups = dataclasses.replace(
        marts, typicals=rebuilt.typicals, price_levels=rebuilt.price_levels, holdout_from=None, holdout=None
    )
    # without a trip's own miles and minutes the fit reads the in-sample typicals, as before leave-one-out
    fitted_on = fit.drop(columns=list(OUTCOME_COLUMNS)) if args.in_sample_typicals else fit
    model = fit_fare_model(fitted_on, marts.zones, lookups=lookups)
    baseline = BaselineModel.fit(fit, model.zone_table)

    print(f"data: {args.source} (real TLC samples); marts.ml_fare_training per month and service:")
    print("  " + ", ".join(f"{p.month} {p.service} {p.available:,}" for p in parts))
    print(
        f"training window {window[0]}..{window[-1]}: fitted on {len(fit):,} trips "
        f"({', '.join(f'{s} {int((fit.service == s).sum()):,}' for s in SERVICES)}), one in five held out; "
        f"typicals {'in-sample' if args.in_sample_typicals else 'leave-one-out'}"
    )
    inside_scores = {s: _scores(model, baseline, holdout, s) for s in SERVICES}
    for s in SERVICES:
        print(_line(f"{s}, inside the window (hash holdout)", inside_scores[s]))
    before_months = sorted(before["pickup_at"].dt.strftime("%Y-%m").unique())
    outside = {}
    for month in before_months:
        away = (pd.Period(window[0]) - pd.Period(month)).n
        outside[month] = _scores(model, baseline, before[before["pickup_at"].dt.strftime("%Y-%m") == month], "taxi")
        print(_line(f"taxi, {month} ({away} month(s) before the window)", outside[month]))
    every_before = _scores(model, baseline, before, "taxi")
    print(_line("taxi, every month before the window", every_before))

    from fares.ml.evaluate import evaluate_holdout

    per_trip = evaluate_holdout(model, baseline, holdout)[0]["cheaper_agreement"]["per_trip"]
    print(
        f"p_uber_cheaper, trip by trip on the inside holdout ({per_trip['trips']:,} trips: "
        f"{per_trip['trips_by_service']['uber']:,} Uber, {per_trip['trips_by_service']['taxi']:,} taxi; event: one "
        f"real fare below the other service's quote): Uber cheaper on {per_trip['uber_cheaper_share']:.0%}, Brier "
        f"{per_trip['brier']:.3f} (coin 0.250, base rate {per_trip['brier_base_rate']:.3f}), a service named on "
        f"{per_trip['named_share']:.0%}, right on {per_trip['named_right']:.0%} of those"
    )
    print(
        "  reliability: "
        + "; ".join(
            f"p {r['p_from']:.1f}-{r['p_to']:.1f}: {r['trips']:,} trips, mean p {r['mean_p']:.2f}, Uber cheaper "
            f"{r['uber_cheaper_share']:.0%}"
            for r in per_trip["reliability"]
        )
    )
    _print_months(model, baseline, pd.concat([holdout, before]))
    _print_drift(model)
    stale = _print_staleness(model, holdout)
    print("issue 24 targets measurable here:")
    taxi_in = inside_scores["taxi"]
    low, high = TARGET_COVERAGE
    print(
        _verdict(
            f"held-out yellow MAE <= ${TARGET_MAE:.2f}",
            max(taxi_in["mae"], every_before["mae"]) <= TARGET_MAE,
            f"${taxi_in['mae']:.2f} inside, ${every_before['mae']:.2f} outside the window",
        )
    )
    for label, got in (("inside", taxi_in), ("outside", every_before)):
        print(
            _verdict(
                f"taxi 80% band covers 75-85% {label} the window",
                low <= got["coverage"] <= high,
                f"{got['coverage']:.1%} of {got['n']:,}",
            )
        )
    print("not measurable on the shared samples:")
    print("  Uber fares 2-3 years past the window (band coverage, Brier against 'the real Uber fare was below the taxi")
    print("  quote', named answers right): the HVFHV sample is one evening of April 2020, nothing later. The")
    print("  what-ifs above (real April 2020 Uber fares raised by a known factor, quoted 35 months on) check the")
    print("  mechanism, not the targets, since every fare moves by exactly the same factor there:")
    for label, got in stale.items():
        print(
            f"    {label}: coverage {got['coverage']:.0%}, Brier {got['brier']:.3f}, named right "
            f"{got['named_right']:.0%} of {got['named']:,}"
        )
    print("  2009-2012 and 2013-2015 quotes against real fares: the yellow samples are 2020-01..04 only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
