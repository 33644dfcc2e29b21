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
            "train_rows_per_month": 10**7,
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
    print("  quote', named answers right): the HVFHV sample is one evening of April 2020, nothing later")
    print("  2009-2012 and 2013-2015 quotes against real fares: the yellow samples are 2020-01..04 only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
