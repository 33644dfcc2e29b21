"""Benchmark: what the bounded training sample costs in holdout MAE, against a much larger sample of the same data.

Reads the marts of an already built database (by default the one `bench/chain.py` leaves: two real-size months),
draws the largest sample once, holds out its latest fifth per service, and fits the models on nested smaller samples
of the rest (N trips per service, shared among its months as ml/sample.py shares them, each month's first in hash
order). Every model is scored on the same holdout; the reference is the largest sample, measured in the same run.

    python bench/train_sample.py                         # sizes 100k, 300k (the default), 1M, 3M per service
    python bench/train_sample.py --sizes 300000,20000000 # against (nearly) every trip, where memory allows
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _nested(train: pd.DataFrame, size: int) -> pd.DataFrame:
    """`size` trips per service, each month's share (ml/sample.py's month_quotas) its first trips in hash order: a
    smaller sample is a subset of a larger one."""
    from fares.ml.sample import month_quotas

    key = pd.util.hash_pandas_object(train["trip_id"], index=False).to_numpy()
    month = train["pickup_at"].dt.strftime("%Y-%m").to_numpy()
    frame = pd.DataFrame({"key": key, "month": month, "service": train["service"].to_numpy()}, index=train.index)
    rank = frame.sort_values("key").groupby(["month", "service"]).cumcount().reindex(train.index)
    quota = pd.Series(0, index=train.index)
    for _service, months in frame.groupby("service")["month"]:
        quotas = month_quotas(months.value_counts().to_dict(), size)
        quota[months.index] = months.map(quotas).to_numpy()
    return train.loc[rank[rank < quota].index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(".data/bench-chain"))
    parser.add_argument("--db-name", default="bench_chain")
    parser.add_argument("--months", type=int, default=2)
    parser.add_argument("--sizes", default="100000,300000,1000000,3000000", help="trips per service")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))

    from fares.config.settings import get_settings
    from fares.ml.evaluate import BaselineModel, evaluate_holdout
    from fares.ml.holdout import split_holdout
    from fares.ml.lookups import load_lookups
    from fares.ml.sample import fit_threads, load_training_sample
    from fares.ml.train import fit_fare_model
    from fares.ops.schema import prepare_warehouse

    settings = get_settings().model_copy(
        update={
            "data_dir": args.data_dir.resolve(),
            "db_name": args.db_name,
            "train_months": args.months,
            "train_rows_per_service": max(sizes) * args.months,
        }
    )
    started = time.perf_counter()
    wh = prepare_warehouse(settings)
    sample, parts = load_training_sample(settings, wh)
    zones = load_lookups(settings, wh).zones
    print(
        f"largest sample: {len(sample):,} trips from {len({p.month for p in parts})} month(s) in "
        f"{time.perf_counter() - started:.0f} s; available per (month, service): "
        + ", ".join(f"{p.month} {p.service} {p.available:,}" for p in parts),
        flush=True,
    )
    train, holdout = split_holdout(sample)
    print(f"common holdout: {len(holdout):,} trips (latest fifth per service)", flush=True)
    results = {}
    for size in sizes:
        part = _nested(train, size)
        started = time.perf_counter()
        model = fit_fare_model(part, zones, n_threads=fit_threads(settings))
        seconds = time.perf_counter() - started
        metrics, _ = evaluate_holdout(model, BaselineModel.fit(part, model.zone_table), holdout)
        mae = {s: metrics["services"][s]["model"]["mae"] for s in ("taxi", "uber")}
        results[size] = (mae, seconds)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        print(
            f"  {size:>10,} per service: {len(part):>10,} rows, fit {seconds:6.0f} s, holdout MAE "
            f"taxi ${mae['taxi']:.3f} uber ${mae['uber']:.3f} (process peak so far {peak:.1f} GB)",
            flush=True,
        )
    ref_mae, ref_s = results[max(sizes)]
    print(f"\nagainst the largest sample ({max(sizes):,} per service):")
    for size, (mae, seconds) in results.items():
        print(
            f"  {size:>10,}: MAE taxi {mae['taxi'] - ref_mae['taxi']:+.3f} $,"
            f" uber {mae['uber'] - ref_mae['uber']:+.3f} $"
            f"; fit time {seconds / ref_s:.2f}x"
        )
    return 0 if np.isfinite(ref_mae["taxi"]) else 1


if __name__ == "__main__":
    sys.exit(main())
