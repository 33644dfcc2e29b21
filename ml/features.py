"""Request-time features: time of day/week, zones and boroughs, airports, distances and zone-pair typical trips.

The JFK<->Manhattan flag is there because the TLC sets a flat taxi fare on exactly that route (known at request time).

Everything is computed from `pickup_at` and the two zone ids with numpy lookups, identically at training and at
prediction time (no train/serve skew); the zone-pair typical miles/minutes come from the training split only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

BOROUGHS: tuple[str, ...] = ("Manhattan", "Brooklyn", "Queens", "Bronx", "Staten Island", "EWR", "Unknown")
ZONE_COLUMNS: tuple[str, ...] = (
    "zone_id",
    "borough",
    "zone_name",
    "service_zone",
    "centroid_lat",
    "centroid_lon",
    "geometry_wkt",
    "is_airport",
)
FEATURE_NAMES: tuple[str, ...] = (
    "hour",
    "dow",
    "is_weekend",
    "month",
    "hour_of_week",
    "pickup_zone_id",
    "dropoff_zone_id",
    "pickup_borough",
    "dropoff_borough",
    "is_airport_pickup",
    "is_airport_dropoff",
    "is_same_zone",
    "centroid_distance_miles",
    "pair_miles",
    "pair_minutes",
    "pair_log_count",
    "is_jfk_manhattan",
)
EARTH_RADIUS_MILES = 3958.8
DEFAULT_DETOUR = 1.3  # road miles per straight-line mile when the training data cannot tell
DEFAULT_MINUTES_PER_MILE = 4.0
PAIR_SHRINK = 3.0  # pseudo-trips pulling a thin pair's median towards the distance-based fallback


@dataclass
class ZoneTable:
    """Per-zone lookups indexed by zone id (arrays of length max_id + 1)."""

    known: np.ndarray
    borough_code: np.ndarray
    is_airport: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    is_jfk: np.ndarray

    @property
    def size(self) -> int:
        """One more than the largest zone id."""
        return len(self.known)


@dataclass
class PairStats:
    """Typical trip miles/minutes for every zone pair (dense matrices), from the training split with fallbacks."""

    miles: np.ndarray
    minutes: np.ndarray
    log_count: np.ndarray
    detour: float
    minutes_per_mile: float


def build_zone_table(zones: pd.DataFrame) -> ZoneTable:
    """Index a `marts.dim_zones`-shaped frame by zone id."""
    ids = zones["zone_id"].to_numpy(dtype=np.int64)
    size = int(ids.max()) + 1 if len(ids) else 1
    known = np.zeros(size, dtype=bool)
    known[ids] = True
    code = {name: i for i, name in enumerate(BOROUGHS)}
    borough = np.full(size, code["Unknown"], dtype=np.float64)
    borough[ids] = [code.get(str(b), code["Unknown"]) for b in zones["borough"]]
    airport = np.zeros(size, dtype=np.float64)
    airport[ids] = zones["is_airport"].fillna(False).astype(bool).to_numpy()
    lat = np.full(size, np.nan)
    lon = np.full(size, np.nan)
    lat[ids] = pd.to_numeric(zones["centroid_lat"], errors="coerce").to_numpy(dtype=np.float64)
    lon[ids] = pd.to_numeric(zones["centroid_lon"], errors="coerce").to_numpy(dtype=np.float64)
    jfk = np.zeros(size, dtype=bool)
    jfk[ids] = zones["zone_name"].astype(str).str.contains("JFK", regex=False).to_numpy()
    return ZoneTable(known, borough, airport, lat, lon, jfk)


def haversine_miles(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Great-circle distance in miles (NaN where a centroid is unknown)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_MILES * np.arcsin(np.sqrt(a))


def check_zone_ids(table: ZoneTable, pickup: np.ndarray, dropoff: np.ndarray) -> None:
    """Raise ValueError naming the zone ids that are not in the zone snapshot."""
    ids = np.concatenate([pickup, dropoff])
    bad = (ids < 0) | (ids >= table.size)
    bad[~bad] = ~table.known[ids[~bad]]
    if bad.any():
        raise ValueError(f"unknown zone id(s): {sorted(set(ids[bad].tolist()))[:10]}")


def _centroid_distance(table: ZoneTable, pu: np.ndarray, do: np.ndarray) -> np.ndarray:
    return haversine_miles(table.lat[pu], table.lon[pu], table.lat[do], table.lon[do])


def build_pair_stats(training: pd.DataFrame, table: ZoneTable) -> PairStats:
    """Median miles/minutes per zone pair from `training` (the training split), shrunk towards a distance fallback."""
    size = table.size
    grid_pu, grid_do = np.divmod(np.arange(size * size), size)
    dist = _centroid_distance(table, grid_pu, grid_do)
    pu = training["pickup_zone_id"].to_numpy(dtype=np.int64)
    do = training["dropoff_zone_id"].to_numpy(dtype=np.int64)
    has_trips = {"trip_miles", "duration_minutes"} <= set(training.columns)
    missing = np.full(len(training), np.nan)
    miles = pd.to_numeric(training["trip_miles"], errors="coerce").to_numpy(dtype=float) if has_trips else missing
    minutes = (
        pd.to_numeric(training["duration_minutes"], errors="coerce").to_numpy(dtype=float) if has_trips else missing
    )
    detour, per_mile, same_zone = DEFAULT_DETOUR, DEFAULT_MINUTES_PER_MILE, 1.0
    if has_trips and np.isfinite(miles).any():
        row_dist = _centroid_distance(table, pu, do)
        far = (row_dist > 0.5) & (miles > 0)
        if far.sum() >= 10:
            detour = float(np.clip(np.nanmedian(miles[far] / row_dist[far]), 1.0, 3.0))
        moving = (miles > 0.1) & (minutes > 0)
        if moving.sum() >= 10:
            per_mile = float(np.clip(np.nanmedian(minutes[moving] / miles[moving]), 1.0, 20.0))
        same = (pu == do) & np.isfinite(miles)
        same_zone = float(np.nanmedian(miles[same])) if same.sum() >= 5 else same_zone
    fallback = np.where(np.isfinite(dist), dist * detour, np.nan)
    fallback[grid_pu == grid_do] = same_zone
    fallback = np.where(
        np.isfinite(fallback), fallback, np.nanmedian(miles) if has_trips and np.isfinite(miles).any() else 3.0
    )
    pair_miles, pair_minutes, count = fallback.copy(), fallback * per_mile, np.zeros(size * size)
    if has_trips:
        frame = pd.DataFrame({"key": pu * size + do, "miles": miles, "minutes": minutes})
        stats = frame.groupby("key").agg(n=("miles", "size"), miles=("miles", "median"), minutes=("minutes", "median"))
        stats = stats.dropna()
        key = stats.index.to_numpy(dtype=np.int64)
        n = stats["n"].to_numpy(dtype=float)
        weight = n / (n + PAIR_SHRINK)
        pair_miles[key] = weight * stats["miles"].to_numpy() + (1 - weight) * fallback[key]
        pair_minutes[key] = weight * stats["minutes"].to_numpy() + (1 - weight) * fallback[key] * per_mile
        count[key] = n
    return PairStats(
        pair_miles.reshape(size, size),
        pair_minutes.reshape(size, size),
        np.log1p(count).reshape(size, size),
        detour,
        per_mile,
    )


def time_parts(pickup_at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hour (0-23), day of week (0 = Monday) and month (1-12) of naive datetime64 values."""
    minutes = pickup_at.astype("datetime64[m]").astype(np.int64)
    hour = (minutes // 60) % 24
    dow = (minutes // 1440 + 3) % 7  # 1970-01-01 was a Thursday
    month = pickup_at.astype("datetime64[M]").astype(np.int64) % 12 + 1
    return hour, dow, month


def build_features(
    pickup_at: np.ndarray, pickup: np.ndarray, dropoff: np.ndarray, table: ZoneTable, pairs: PairStats
) -> np.ndarray:
    """The model matrix (n, len(FEATURE_NAMES)), float64 and free of NaN (unknown distances are -1)."""
    hour, dow, month = time_parts(pickup_at)
    dist = _centroid_distance(table, pickup, dropoff)
    x = np.empty((len(pickup), len(FEATURE_NAMES)), dtype=np.float64)
    x[:, 0] = hour
    x[:, 1] = dow
    x[:, 2] = dow >= 5
    x[:, 3] = month
    x[:, 4] = dow * 24 + hour
    x[:, 5] = pickup
    x[:, 6] = dropoff
    x[:, 7] = table.borough_code[pickup]
    x[:, 8] = table.borough_code[dropoff]
    x[:, 9] = table.is_airport[pickup]
    x[:, 10] = table.is_airport[dropoff]
    x[:, 11] = pickup == dropoff
    x[:, 12] = np.where(np.isfinite(dist), dist, -1.0)
    x[:, 13] = pairs.miles[pickup, dropoff]
    x[:, 14] = pairs.minutes[pickup, dropoff]
    x[:, 15] = pairs.log_count[pickup, dropoff]
    manhattan = BOROUGHS.index("Manhattan")
    x[:, 16] = (table.is_jfk[pickup] & (x[:, 8] == manhattan)) | (table.is_jfk[dropoff] & (x[:, 7] == manhattan))
    return x
