"""Test helpers for the API: the real zone shapes as dim_zones, a generated training frame, a published model."""

from __future__ import annotations

import csv
import math
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from fares.ingestion.geo import haversine_miles

AIRPORTS = {1, 132, 138}


def load_real_zones(tlc_dir: Path) -> pd.DataFrame:
    """`marts.dim_zones`-shaped frame from the TLC lookup CSV and shapefile (EPSG:2263 -> WGS84, keyed by OBJECTID)."""
    import shapefile
    import shapely
    from pyproj import Transformer
    from shapely.geometry import shape

    to_wgs84 = Transformer.from_crs("EPSG:2263", "EPSG:4326", always_xy=True)

    def project(xy: np.ndarray) -> np.ndarray:
        lon, lat = to_wgs84.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    shapes: dict[int, shapely.Geometry] = {}
    with shapefile.Reader(str(tlc_dir / "taxi_zones.zip")) as reader:
        for rec in reader.iterShapeRecords():
            shapes[int(rec.record["OBJECTID"])] = shapely.transform(shape(rec.shape.__geo_interface__), project)
    rows = []
    with (tlc_dir / "taxi_zone_lookup.csv").open(newline="") as handle:
        for rec in csv.DictReader(handle):
            zid = int(rec["LocationID"])
            geom = shapes.get(zid)
            centre = geom.centroid if geom is not None else None
            rows.append(
                {
                    "zone_id": zid,
                    "borough": rec["Borough"],
                    "zone_name": rec["Zone"],
                    "service_zone": rec["service_zone"],
                    "centroid_lat": centre.y if centre is not None else None,
                    "centroid_lon": centre.x if centre is not None else None,
                    "geometry_wkt": geom.wkt if geom is not None else None,
                    "is_airport": zid in AIRPORTS,
                }
            )
    return pd.DataFrame(rows)


def make_training_frame(
    zones: pd.DataFrame, rows_per_service: int = 1500, seed: int = 7, start: str = "2024-01-01", months: int = 3
) -> pd.DataFrame:
    """An `ml_fare_training`-like frame: fares grow with distance, Uber surges at rush hour, taxis add airport fees"""
    rng = np.random.default_rng(seed)
    located = zones.dropna(subset=["centroid_lat"]).set_index("zone_id")
    frames = []
    for service in ("taxi", "uber"):
        n = rows_per_service
        pu = rng.choice(located.index.to_numpy(), n)
        do = rng.choice(located.index.to_numpy(), n)
        offset = rng.integers(0, months * 30 * 24 * 60, n)
        pickup_at = pd.Timestamp(start) + pd.to_timedelta(offset, unit="min")
        dist = haversine_miles(
            located.loc[pu, "centroid_lat"].to_numpy(),
            located.loc[pu, "centroid_lon"].to_numpy(),
            located.loc[do, "centroid_lat"].to_numpy(),
            located.loc[do, "centroid_lon"].to_numpy(),
        )
        hour = pickup_at.hour.to_numpy()
        rush = ((hour >= 7) & (hour <= 9)) | ((hour >= 16) & (hour <= 19))
        airport = located.loc[pu, "is_airport"].to_numpy() | located.loc[do, "is_airport"].to_numpy()
        miles = dist * 1.3 + 0.4
        if service == "taxi":
            fare = 4.0 + 2.8 * miles + 1.75 * airport + 2.5 * rush
        else:
            fare = 6.0 + 2.2 * miles * np.where(rush, 1.4, 1.0)
        fare = np.maximum(3.0, fare * rng.lognormal(0, 0.12, n))
        frames.append(
            pd.DataFrame(
                {
                    "trip_id": [f"{service}-{i}" for i in range(n)],
                    "service": service,
                    "pickup_at": pickup_at.to_numpy(),
                    "source_month": pickup_at.strftime("%Y-%m"),
                    "pickup_zone_id": pu.astype(int),
                    "dropoff_zone_id": do.astype(int),
                    "pickup_borough": located.loc[pu, "borough"].to_numpy(),
                    "dropoff_borough": located.loc[do, "borough"].to_numpy(),
                    "pickup_hour": hour,
                    "pickup_dow": pickup_at.dayofweek.to_numpy(),
                    "is_weekend": pickup_at.dayofweek.to_numpy() >= 5,
                    "pickup_month": pickup_at.month.to_numpy(),
                    "is_airport_pickup": located.loc[pu, "is_airport"].to_numpy(),
                    "is_airport_dropoff": located.loc[do, "is_airport"].to_numpy(),
                    "is_same_zone": pu == do,
                    "centroid_distance_miles": dist,
                    "trip_miles": miles,
                    "duration_minutes": miles * 3.5 + 4,
                    "rider_fare": np.round(fare, 2),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


SYNTHETIC_SOURCE = {
    "kind": "synthetic",
    "synthetic": True,
    "months": ["2024-01", "2024-02", "2024-03"],
    "sample": {},
    "locations": ["tests/api_kit.py"],
    "label": "synthetic TLC-shaped trips 2024-01..2024-03: not real fares",
}


def save_model(models_dir: Path, training: pd.DataFrame, zones: pd.DataFrame, data_source: dict | None = None) -> str:
    """Fit a real FareModel on `training` and register it at `models_dir` (not promoted); returns its version.
    The model says it learned from `data_source` (default: synthetic trips, which `make_training_frame` makes)."""
    from fares.ml.registry import Registry
    from fares.ml.train import fit_fare_model

    model = fit_fare_model(training, zones, params={"max_iter": 80})  # a real model, fewer trees: fast tests
    model.data_source = dict(SYNTHETIC_SOURCE if data_source is None else data_source)
    saved = Registry(models_dir).save(model)
    return saved if isinstance(saved, str) else str(model.version)


def publish_model(models_dir: Path, training: pd.DataFrame, zones: pd.DataFrame) -> str:
    """`save_model`, then promote it to current; returns its version."""
    from fares.ml.registry import Registry

    version = save_model(models_dir, training, zones)
    Registry(models_dir).promote(version)
    return version


@lru_cache(maxsize=2)
def real_zones(tlc_dir: Path) -> pd.DataFrame:
    """`load_real_zones`, once per test process (callers must not mutate it)."""
    return load_real_zones(tlc_dir)


@lru_cache(maxsize=1)
def _shared_registry(tlc_dir: Path) -> tuple[Path, str]:
    zones = real_zones(tlc_dir)
    models_dir = Path(tempfile.mkdtemp(prefix="fares-api-models-")) / "models"
    return models_dir, publish_model(models_dir, make_training_frame(zones), zones)


def registry_copy(tlc_dir: Path, dest: Path) -> tuple[Path, str]:
    """A registry under `dest` with one real promoted model (fitted once per process); returns (models_dir, version)."""
    src, version = _shared_registry(tlc_dir)
    shutil.copytree(src, dest)
    return dest, version


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(settings, port: int) -> Iterator[threading.Thread]:
    """`api.server.build_server` on 127.0.0.1:`port` in a thread, ready (it answered /v1/model) when this yields."""
    import httpx

    from fares.api.server import build_server

    server = build_server(settings, "127.0.0.1", port, access_log=False)
    thread = threading.Thread(target=server.run, name="fares-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/model", timeout=2).status_code in (200, 503):
                break
        except httpx.TransportError:
            time.sleep(0.1)
    try:
        yield thread
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def assert_money(value: float) -> None:
    """A fare as users see it: a positive, finite number of dollars with cents."""
    assert isinstance(value, float | int) and math.isfinite(value) and value > 0, value
    assert round(value, 2) == value, value
