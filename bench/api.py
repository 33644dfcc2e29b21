"""Benchmark: POST /v1/quotes vs GET /health in one uvicorn server (req/s, p50/p99, ratio) and a 10,000-trip batch."""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RATIO_TARGET = 0.75  # issue 24: quoting stays as fast as before the tariff-aware models
BATCH_TARGET_MS = 150.0  # issue 24: a 10,000-trip batch, both forms
BATCH_SIZE = 10_000
UNREACHABLE_DB = "postgresql://postgres@127.0.0.1:9/bench"  # /health reports it (cached); quotes never need it

log = logging.getLogger("bench.api")


def _build_registry(data_dir: Path) -> str:
    """A real model fitted on ml.simulate's generated month, saved and promoted under data_dir/models."""
    from fares.ml.registry import Registry
    from fares.ml.simulate import make_training_frame, make_zones
    from fares.ml.train import fit_fare_model

    zones = make_zones()
    model = fit_fare_model(make_training_frame(zones, n_rows=20_000), zones)
    registry = Registry(data_dir / "models")
    version = registry.save(model)
    registry.promote(version)
    return version


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(data_dir: Path, port: int) -> subprocess.Popen:
    code = (
        "import sys; from fares.config.settings import get_settings; "
        "from fares.api.server import serve; serve(get_settings(), '127.0.0.1', int(sys.argv[1]), access_log=False)"
    )
    env = {**os.environ, "FARES_DATA_DIR": str(data_dir), "DATABASE_URL": UNREACHABLE_DB, "FARES_DEMO_ONCE": "false"}
    return subprocess.Popen(
        [sys.executable, "-c", code, str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_ready(base: str, proc: subprocess.Popen) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the API server exited early:\n{proc.stderr.read()[-3000:] if proc.stderr else ''}")
        try:
            if httpx.get(f"{base}/v1/model", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the API server did not become ready in 120 s")


def _trips(n: int, seed: int) -> list[dict]:
    import random

    rng = random.Random(seed)
    return [
        {
            "pickup_at": f"2024-0{rng.randint(1, 2)}-{rng.randint(1, 28):02d}"
            f"T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00",
            "pickup": {"zone_id": rng.randint(1, 263)},
            "dropoff": {"zone_id": rng.randint(1, 263)},
        }
        for _ in range(n)
    ]


def _load(base: str, method: str, path: str, bodies: list[dict] | None, clients: int, per_client: int) -> dict:
    """`clients` threads with keep-alive connections, `per_client` requests each; req/s and latency percentiles."""
    import httpx

    latencies: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        mine, bad = [], []
        with httpx.Client(base_url=base, timeout=10) as client:
            for i in range(per_client):
                body = bodies[(k * per_client + i) % len(bodies)] if bodies else None
                t0 = time.perf_counter()
                r = client.request(method, path, json=body)
                mine.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    bad.append(r.status_code)
        with lock:
            latencies.extend(mine)
            errors.extend(bad)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "errors": len(errors),
    }


def _batch(base: str, rounds: int) -> dict:
    """Client time of a 10,000-trip batch, request sent to last byte received (columns form and trips form)."""
    import httpx

    trips = _trips(BATCH_SIZE, seed=99)
    columns = {
        "pickup_at": [t["pickup_at"] for t in trips],
        "pickup_zone_id": [t["pickup"]["zone_id"] for t in trips],
        "dropoff_zone_id": [t["dropoff"]["zone_id"] for t in trips],
    }
    out = {}
    with httpx.Client(base_url=base, timeout=60) as client:
        for form, payload in (("columns", {"columns": columns}), ("trips", {"trips": trips})):
            body = json.dumps(payload).encode()
            times = []
            for _ in range(rounds + 1):  # the first one warms up
                t0 = time.perf_counter()
                r = client.post("/v1/quotes/batch", content=body, headers={"content-type": "application/json"})
                r.read()
                times.append(time.perf_counter() - t0)
                if r.status_code != 200 or r.json()["count"] != BATCH_SIZE:
                    raise SystemExit(f"batch failed: {r.status_code} {r.text[:300]}")
            out[form] = {"median_ms": 1000 * statistics.median(times[1:]), "best_ms": 1000 * min(times[1:])}
    return out


def _predict_reference(data_dir: Path) -> tuple[float, float, float]:
    """In-process FareModel.predict_frame on the 10,000 batch trips and on one trip, and predict_arrays (the API's
    path) on one trip: the model's own share, ms."""
    import numpy as np
    import pandas as pd

    from fares.ml.predict import load_current

    model = load_current(data_dir / "models")
    if model is None:
        raise SystemExit(f"no current model under {data_dir / 'models'}")
    trips = _trips(BATCH_SIZE, seed=99)
    frame = pd.DataFrame(
        {
            "pickup_at": np.array([t["pickup_at"] for t in trips], dtype="datetime64[us]"),
            "pickup_zone_id": [t["pickup"]["zone_id"] for t in trips],
            "dropoff_zone_id": [t["dropoff"]["zone_id"] for t in trips],
        }
    )
    times = []
    for _ in range(4):
        t0 = time.perf_counter()
        model.predict_frame(frame)
        times.append(time.perf_counter() - t0)
    one = frame.iloc[:1].copy()
    t0 = time.perf_counter()
    for _ in range(500):
        model.predict_frame(one)
    one_frame_ms = 1000 * (time.perf_counter() - t0) / 500
    at, pu, do = (one[c].to_numpy() for c in ("pickup_at", "pickup_zone_id", "dropoff_zone_id"))
    t0 = time.perf_counter()
    for _ in range(500):
        model.predict_arrays(at, pu, do)
    one_arrays_ms = 1000 * (time.perf_counter() - t0) / 500
    return 1000 * statistics.median(times[1:]), one_frame_ms, one_arrays_ms


def _median_run(runs: list[dict]) -> dict:
    best = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
    return {**best, "errors": sum(r["errors"] for r in runs)}


def main() -> int:
    """Start the API in a subprocess, load it, print the numbers and the verdicts."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=150, help="per client and round")
    parser.add_argument("--rounds", type=int, default=7, help="alternating health/quote rounds; the median is kept")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="fares-bench-api-") as tmp:
        data_dir = Path(tmp)
        version = _build_registry(data_dir)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        proc = _start_server(data_dir, port)
        try:
            _wait_ready(base, proc)
            bodies = _trips(2_000, seed=1)
            _load(base, "POST", "/v1/quotes", bodies, args.clients, 50)  # warm-up
            health, quotes = [], []
            for _ in range(args.rounds):
                health.append(_load(base, "GET", "/health", None, args.clients, args.requests))
                quotes.append(_load(base, "POST", "/v1/quotes", bodies, args.clients, args.requests))
            batch = _batch(base, rounds=5)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        predict_ms, predict_one_ms, predict_one_arrays_ms = _predict_reference(data_dir)

    h, q = _median_run(health), _median_run(quotes)
    load = (load_before, os.getloadavg()[0])
    ratio = q["rps"] / h["rps"]
    print(
        f"api bench: model {version}, {args.clients} clients x {args.requests} requests x {args.rounds} rounds, "
        f"uvicorn on 127.0.0.1 (client on the same machine), "
        f"1-min load average {load[0]:.2f} -> {load[1]:.2f} on {os.cpu_count()} CPUs"
    )
    for name, r in (("GET /health", h), ("POST /v1/quotes", q)):
        print(
            f"  {name:16s} {r['rps']:8.0f} req/s   p50 {r['p50_ms']:6.2f} ms   p99 {r['p99_ms']:6.2f} ms   "
            f"non-200: {r['errors']}"
        )
    print(
        f"  ratio quotes/health = {ratio:.2f} (target >= {RATIO_TARGET}): "
        f"{'OK' if ratio >= RATIO_TARGET else 'BELOW TARGET'}"
    )
    for form, b in batch.items():
        verdict = "OK" if b["median_ms"] < BATCH_TARGET_MS else "BELOW TARGET"
        print(
            f"  batch of {BATCH_SIZE:,} trips ({form} form): median {b['median_ms']:.0f} ms,"
            f" best {b['best_ms']:.0f} ms "
            f"(target < {BATCH_TARGET_MS:.0f} ms): {verdict}"
        )
    print(
        f"  the model alone, in-process predict_frame: {predict_ms:.0f} ms for the 10,000 trips, "
        f"{predict_one_ms:.2f} ms for one trip; predict_arrays (what the API calls) {predict_one_arrays_ms:.2f} ms "
        "for one trip"
    )
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "api.json").write_text(
        json.dumps(
            {
                "health": h,
                "quotes": q,
                "ratio": ratio,
                "batch": batch,
                "predict_ms": predict_ms,
                "predict_one_ms": predict_one_ms,
                "predict_one_arrays_ms": predict_one_arrays_ms,
                "load_average": load,
            },
            indent=1,
        )
    )
    return 0 if h["errors"] == 0 and q["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
