"""Benchmark of the fare models: 1M-row fit time and peak memory, one-row and 10k-row prediction latency.

Prints ratios against references measured in the same run: the baseline model (median by zone pair x hour) for
fit and predict, and scikit-learn's own predict for one row. Targets: fit under 60 s, one row under 1 ms.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import time
from collections.abc import Callable

import numpy as np

from fares.ml.evaluate import BaselineModel
from fares.ml.features import build_zone_table
from fares.ml.simulate import make_training_frame, make_zones
from fares.ml.train import fit_fare_model


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _latency_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of `fn` in milliseconds, after a warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    """Run the benchmark and print one line per measurement."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1, help="OpenMP threads for the fit; 0 = all cores")
    args = parser.parse_args()
    zones = make_zones()
    training = make_training_frame(zones, n_rows=args.rows, seed=11, days=120)
    gc.collect()
    rss_before = _max_rss_mb()

    start = time.perf_counter()
    baseline = BaselineModel.fit(training, build_zone_table(zones))
    baseline_fit = time.perf_counter() - start
    start = time.perf_counter()
    model = fit_fare_model(training, zones, n_threads=args.threads or None)
    fit = time.perf_counter() - start
    rss_after = _max_rss_mb()
    trees = {s: m.regressor.n_iter_ for s, m in model.services.items()}

    requests = training[["pickup_at", "pickup_zone_id", "dropoff_zone_id"]]
    one, batch = requests.iloc[[12345 % len(requests)]], requests.iloc[:10_000]
    one_ms = _latency_ms(lambda: model.predict_frame(one), 300)
    batch_ms = _latency_ms(lambda: model.predict_frame(batch), 10)
    base_one_ms = _latency_ms(lambda: baseline.predict(training.iloc[[0]], "taxi"), 100)
    base_batch_ms = _latency_ms(lambda: baseline.predict(training.iloc[:10_000], "taxi"), 10)
    x1, *_ = model.matrix(one)
    sk_one_ms = _latency_ms(lambda: [m.regressor.predict(x1) for m in model.services.values()], 100)

    print(f"rows {len(training):,} (taxi+uber), trees {trees}, fit threads {args.threads or 'all'}")
    print(
        f"fit            {fit:7.2f} s   baseline fit {baseline_fit:6.2f} s   ratio {fit / baseline_fit:6.1f}x"
        f"   target < 60 s: {'ok' if fit < 60 else 'OVER'}"
    )
    print(
        f"peak memory    {rss_after:7.0f} MB max RSS ({rss_after - rss_before:+.0f} MB during the fit; "
        f"data frame {training.memory_usage(deep=True).sum() / 2**20:.0f} MB)"
    )
    print(
        f"predict 1 row  {one_ms:7.3f} ms  baseline {base_one_ms:6.3f} ms   ratio {one_ms / base_one_ms:5.2f}x"
        f"   scikit-learn predict (2 models) {sk_one_ms:6.3f} ms, ratio {one_ms / sk_one_ms:5.2f}x"
        f"   target < 1 ms: {'ok' if one_ms < 1 else 'OVER'}"
    )
    print(
        f"predict 10k    {batch_ms:7.1f} ms  baseline {base_batch_ms:6.1f} ms   ratio "
        f"{batch_ms / base_batch_ms:5.2f}x   target < 200 ms: {'ok' if batch_ms < 200 else 'OVER'}"
    )
    assert np.isfinite(model.predict_frame(batch).to_numpy()).all()


if __name__ == "__main__":
    main()
