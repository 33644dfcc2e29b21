"""The model matrix from dbt-built features: ml_fare_training's columns when training, the same lookups for a request.

dbt defines every feature once: per-trip columns in `marts.ml_fare_training`, route facts in `marts.dim_zone_pairs`,
the zone pair's typical trip at each hour (training window only) in `marts.zone_pair_hourly_typicals`. The model bundle
carries those lookups, and `request_columns` reads them for a live trip so that it yields the mart's values for the
same trip (tests/integration/test_ml_train.py checks it on real rows). Only clock arithmetic happens here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fares.ml import MART_FEATURES
from fares.ml.tariff import ROUTE_FLAGS, ROUTE_SHARES, SHARE_FALLBACK

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
    *MART_FEATURES,
    "hour_of_week",
    "pickup_zone_id",
    "dropoff_zone_id",
    "pickup_borough",
    "dropoff_borough",
    "pair_miles",
    "pair_minutes",
    "pair_log_count",
)
DEFAULT_DETOUR = 1.3  # road miles per straight-line mile when the lookup cannot tell
DEFAULT_MINUTES_PER_MILE = 4.0
CELL_SHRINK = 3.0  # pseudo-trips pulling a thin pair x hour cell towards the pair's all-day typical
PAIR_SHRINK = 3.0  # and a thin pair towards the distance-based fallback
LOO_MEAN_MAX = 2  # up to this many trips a cell's median is their mean, so a trip's own share comes out exactly


@dataclass
class ZoneTable:
    """Per-zone lookups indexed by zone id (arrays of length max_id + 1), from dim_zones."""

    known: np.ndarray
    borough_code: np.ndarray
    is_airport: np.ndarray

    @property
    def size(self) -> int:
        """One more than the largest zone id."""
        return len(self.known)


@dataclass
class RouteTable:
    """dim_zone_pairs as dense (size, size) arrays: centroid distance (NaN unknown) and the rate card's route flags."""

    distance: np.ndarray
    flags: dict[str, np.ndarray]


@dataclass
class PairStats:
    """zone_pair_hourly_typicals as dense (size, size, 24) arrays, thin or missing cells filled by fallbacks."""

    miles: np.ndarray
    minutes: np.ndarray
    log_count: np.ndarray


def build_zone_table(zones: pd.DataFrame) -> ZoneTable:
    """Index a `marts.dim_zones`-shaped frame by zone id."""
    ids = zones["zone_id"].to_numpy(dtype=np.int64)
    size = int(ids.max()) + 1 if len(ids) else 1
    known = np.zeros(size, dtype=bool)
    known[ids] = True
    code = {name: i for i, name in enumerate(BOROUGHS)}
    borough = np.full(size, code["Unknown"], dtype=np.float64)
    borough[ids] = [code.get(str(b), code["Unknown"]) for b in zones["borough"]]
    airport = np.zeros(size, dtype=bool)
    airport[ids] = zones["is_airport"].fillna(False).astype(bool).to_numpy()
    return ZoneTable(known, borough, airport)


def build_route_table(zone_pairs: pd.DataFrame, size: int) -> RouteTable:
    """Dense arrays from a `marts.dim_zone_pairs`-shaped frame."""
    pu = zone_pairs["pickup_zone_id"].to_numpy(dtype=np.int64)
    do = zone_pairs["dropoff_zone_id"].to_numpy(dtype=np.int64)
    distance = np.full((size, size), np.nan)
    distance[pu, do] = pd.to_numeric(zone_pairs["centroid_distance_miles"], errors="coerce").to_numpy(dtype=float)
    flags = {}
    for name in ROUTE_FLAGS:
        flag = np.zeros((size, size), dtype=bool)
        flag[pu, do] = zone_pairs[name].fillna(False).astype(bool).to_numpy()
        flags[name] = flag
    for name in ROUTE_SHARES:
        # a frame without the learned shares (an older dim_zone_pairs) charges by the zone-list flag
        share = flags[SHARE_FALLBACK[name]].astype(float)
        if name in zone_pairs:
            share[pu, do] = pd.to_numeric(zone_pairs[name], errors="coerce").fillna(0.0).to_numpy(dtype=float)
        flags[name] = share
    return RouteTable(distance, flags)


def _rates(typicals: pd.DataFrame, routes: RouteTable) -> tuple[float, float, float]:
    """Road miles per centroid mile, minutes per mile, and the same-zone trip's miles, weighted by trips."""
    if typicals.empty:
        return DEFAULT_DETOUR, DEFAULT_MINUTES_PER_MILE, 1.0
    pu, do = typicals["pickup_zone_id"].to_numpy(dtype=np.int64), typicals["dropoff_zone_id"].to_numpy(dtype=np.int64)
    miles, minutes = (
        typicals["typical_trip_miles"].to_numpy(dtype=float),
        typicals["typical_duration_minutes"].to_numpy(dtype=float),
    )
    weight = typicals["trips"].to_numpy(dtype=float)
    dist = routes.distance[pu, do]
    far = (dist > 0.5) & (miles > 0)
    detour = (
        float(np.clip(np.average(miles[far] / dist[far], weights=weight[far]), 1.0, 3.0))
        if far.sum() >= 10
        else DEFAULT_DETOUR
    )
    moving = miles > 0.1
    per_mile = (
        float(np.clip(np.average(minutes[moving] / miles[moving], weights=weight[moving]), 1.0, 20.0))
        if moving.sum() >= 10
        else DEFAULT_MINUTES_PER_MILE
    )
    same = pu == do
    same_zone = float(np.average(miles[same], weights=weight[same])) if same.sum() >= 5 else 1.0
    return detour, per_mile, same_zone


@dataclass
class _Cells:
    """zone_pair_hourly_typicals as dense arrays before shrinking: trips and typical miles/minutes per pair x hour,
    and the fallbacks a thin cell or pair is pulled towards."""

    n: np.ndarray
    miles: np.ndarray
    minutes: np.ndarray
    fallback: np.ndarray
    per_mile: float


def _dense_cells(typicals: pd.DataFrame, routes: RouteTable, size: int) -> _Cells:
    detour, per_mile, same_zone = _rates(typicals, routes)
    fallback = np.where(np.isfinite(routes.distance), routes.distance * detour, np.nan)
    np.fill_diagonal(fallback, same_zone)
    fallback = np.where(np.isfinite(fallback), fallback, 3.0)
    pu, do = typicals["pickup_zone_id"].to_numpy(dtype=np.int64), typicals["dropoff_zone_id"].to_numpy(dtype=np.int64)
    hour = typicals["pickup_hour"].to_numpy(dtype=np.int64)
    cell_n = np.zeros((size, size, 24))
    cell_miles, cell_minutes = np.zeros((size, size, 24)), np.zeros((size, size, 24))
    cell_n[pu, do, hour] = typicals["trips"].to_numpy(dtype=float)
    cell_miles[pu, do, hour] = typicals["typical_trip_miles"].to_numpy(dtype=float)
    cell_minutes[pu, do, hour] = typicals["typical_duration_minutes"].to_numpy(dtype=float)
    return _Cells(cell_n, cell_miles, cell_minutes, fallback, per_mile)


def _shrink(
    cell: tuple[np.ndarray, np.ndarray, np.ndarray],
    pair: tuple[np.ndarray, np.ndarray, np.ndarray],
    fallback: np.ndarray,
    per_mile: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Typical miles and minutes of cells (n, miles, minutes) within their pairs (n, trip-weighted sums of miles and
    minutes): the cell, shrunk to the pair's all-day value, then to the distance-based fallback. Any array shape."""
    cell_n, cell_miles, cell_minutes = cell
    pair_n, pair_miles_sum, pair_minutes_sum = pair
    with np.errstate(invalid="ignore", divide="ignore"):
        pair_miles = np.where(pair_n > 0, pair_miles_sum / pair_n, 0.0)
        pair_minutes = np.where(pair_n > 0, pair_minutes_sum / pair_n, 0.0)
    w = pair_n / (pair_n + PAIR_SHRINK)
    pair_miles = w * pair_miles + (1 - w) * fallback
    pair_minutes = w * pair_minutes + (1 - w) * fallback * per_mile
    wc = cell_n / (cell_n + CELL_SHRINK)
    return wc * cell_miles + (1 - wc) * pair_miles, wc * cell_minutes + (1 - wc) * pair_minutes


def build_pair_stats(typicals: pd.DataFrame, routes: RouteTable, size: int) -> PairStats:
    """Typical miles/minutes per pair x hour: the cell, shrunk to the pair's all-day value, then to the distance."""
    c = _dense_cells(typicals, routes, size)
    pair = (c.n.sum(axis=2), (c.miles * c.n).sum(axis=2), (c.minutes * c.n).sum(axis=2))
    miles, minutes = _shrink(
        (c.n, c.miles, c.minutes), tuple(a[:, :, None] for a in pair), c.fallback[:, :, None], c.per_mile
    )
    # float32: three (size, size, 24) arrays travel in every model bundle
    return PairStats(miles.astype(np.float32), minutes.astype(np.float32), np.log1p(c.n).astype(np.float32))


def leave_one_out(
    typicals: pd.DataFrame,
    routes: RouteTable,
    size: int,
    trips: tuple[np.ndarray, np.ndarray, np.ndarray],
    outcome: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For training trips that are inside `typicals` (the training window's trips): their pair x hour's typical miles,
    minutes and log1p(trips) with the trip itself left out, so no feature sees its own answer.

    `trips` is (pickup zone, dropoff zone, pickup hour), `outcome` the trip's own (miles, minutes). The trip's share
    is taken out of its cell and its pair as from a trip-weighted mean: exact for a cell of one or two trips (a
    median of two is their mean; a cell of one falls back to the pair, then the distance), where self-inclusion
    weighs most; for larger cells the trip moves the median by less than it moves the mean. A trip whose cell is
    empty (not in the typicals) keeps the in-sample values. The distance fallback's rates are left as they are
    (one trip among the window's barely moves them).
    """
    pu, do, hour = trips
    miles_own, minutes_own = outcome
    c = _dense_cells(typicals, routes, size)
    n = c.n[pu, do, hour]
    inside = n >= 1
    own = np.where(inside, 1.0, 0.0)
    rest = n - own
    exact = n <= LOO_MEAN_MAX
    with np.errstate(invalid="ignore", divide="ignore"):
        cell_miles = np.where(exact, (c.miles[pu, do, hour] * n - own * miles_own) / rest, c.miles[pu, do, hour])
        cell_minutes = np.where(
            exact, (c.minutes[pu, do, hour] * n - own * minutes_own) / rest, c.minutes[pu, do, hour]
        )
    cell_miles, cell_minutes = np.where(rest > 0, cell_miles, 0.0), np.where(rest > 0, cell_minutes, 0.0)
    pair_n = c.n[pu, do].sum(axis=1) - own
    pair_miles = (c.miles[pu, do] * c.n[pu, do]).sum(axis=1) - own * miles_own
    pair_minutes = (c.minutes[pu, do] * c.n[pu, do]).sum(axis=1) - own * minutes_own
    cell_miles, cell_minutes = np.maximum(cell_miles, 0.0), np.maximum(cell_minutes, 0.0)
    miles, minutes = _shrink(
        (rest, cell_miles, cell_minutes),
        (pair_n, np.maximum(pair_miles, 0.0), np.maximum(pair_minutes, 0.0)),
        c.fallback[pu, do],
        c.per_mile,
    )
    return miles.astype(np.float32), minutes.astype(np.float32), np.log1p(rest).astype(np.float32)


def time_parts(pickup_at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hour (0-23), day of week (0 = Monday) and month (1-12) of naive datetime64 values: fct_trips' definitions."""
    minutes = pickup_at.astype("datetime64[m]").astype(np.int64)
    hour = (minutes // 60) % 24
    dow = (minutes // 1440 + 3) % 7  # 1970-01-01 was a Thursday
    month = pickup_at.astype("datetime64[M]").astype(np.int64) % 12 + 1
    return hour, dow, month


def check_zone_ids(table: ZoneTable, pickup: np.ndarray, dropoff: np.ndarray) -> None:
    """Raise ValueError naming the zone ids that are not in the zone snapshot."""
    ids = np.concatenate([pickup, dropoff])
    bad = (ids < 0) | (ids >= table.size)
    bad[~bad] = ~table.known[ids[~bad]]
    if bad.any():
        raise ValueError(f"unknown zone id(s): {sorted(set(ids[bad].tolist()))[:10]}")


def request_columns(
    pickup_at: np.ndarray, pickup: np.ndarray, dropoff: np.ndarray, table: ZoneTable, routes: RouteTable
) -> dict[str, np.ndarray]:
    """The MART_FEATURES of trips not in the mart (a live request), read from the bundle's dbt-built lookups."""
    hour, dow, _ = time_parts(pickup_at)
    dist = routes.distance[pickup, dropoff]
    return {
        "pickup_hour": hour,
        "pickup_dow": dow,
        "is_weekend": dow >= 5,
        "is_airport_pickup": table.is_airport[pickup],
        "is_airport_dropoff": table.is_airport[dropoff],
        "is_same_zone": pickup == dropoff,
        "centroid_distance_miles": dist,
        **{
            name: routes.flags[name][pickup, dropoff]
            for name in ("is_jfk_manhattan", "is_newark_dropoff", "is_laguardia_trip")
        },
    }


def _as_float(values: pd.Series) -> np.ndarray:
    """Numbers or booleans as float; PostgreSQL's CSV booleans ('t'/'f') included."""
    if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
        values = (
            values.astype(object)
            .map({"t": 1.0, "f": 0.0, "true": 1.0, "false": 0.0, True: 1.0, False: 0.0})
            .where(values.notna(), np.nan)
        )
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def mart_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The MART_FEATURES of ml_fare_training rows, as read from the mart."""
    return {name: _as_float(frame[name]) for name in MART_FEATURES}


def build_matrix(
    cols: dict[str, np.ndarray], pickup: np.ndarray, dropoff: np.ndarray, table: ZoneTable, pairs: PairStats
) -> np.ndarray:
    """The model matrix (n, len(FEATURE_NAMES)), float64 and free of NaN (an unknown distance is -1)."""
    hour = np.asarray(cols["pickup_hour"], dtype=np.int64)
    x = np.empty((len(pickup), len(FEATURE_NAMES)), dtype=np.float64)
    for i, name in enumerate(MART_FEATURES):
        x[:, i] = np.asarray(cols[name], dtype=np.float64)
    k = len(MART_FEATURES)
    d = MART_FEATURES.index("centroid_distance_miles")
    x[:, d] = np.where(np.isfinite(x[:, d]), x[:, d], -1.0)
    x[:, k] = np.asarray(cols["pickup_dow"], dtype=np.float64) * 24 + hour
    x[:, k + 1] = pickup
    x[:, k + 2] = dropoff
    x[:, k + 3] = table.borough_code[pickup]
    x[:, k + 4] = table.borough_code[dropoff]
    x[:, k + 5] = pairs.miles[pickup, dropoff, hour]
    x[:, k + 6] = pairs.minutes[pickup, dropoff, hour]
    x[:, k + 7] = pairs.log_count[pickup, dropoff, hour]
    return x
