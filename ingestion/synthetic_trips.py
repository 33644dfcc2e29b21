"""Synthetic TLC trips with realistic fare rules: metered yellow fares with surcharges and the JFK flat fare,
Uber/Lyft fares that vary with distance, minutes and hour (surge), plus a few outliers for the dbt rules."""

from __future__ import annotations

import calendar
import csv
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa

from fares.ingestion.geo import haversine_miles

SEED_FILE = Path(__file__).with_name("zone_seed.csv")
JFK, LGA, EWR = 132, 138, 1
AIRPORTS = (JFK, LGA, EWR)
OUTLIER_RATE = 0.004  # per outlier type
# Trips per hour of day (0..23), shaped like the TLC's: quiet before dawn, peaks at 8-9 and 17-20.
HOUR_PROFILE = np.array(
    [
        3.0,
        2.2,
        1.6,
        1.1,
        0.9,
        1.0,
        2.0,
        3.6,
        4.6,
        4.6,
        4.4,
        4.5,
        4.7,
        4.8,
        5.0,
        5.2,
        5.3,
        5.9,
        6.2,
        6.0,
        5.5,
        5.1,
        4.7,
        3.9,
    ]
)


@dataclass(frozen=True)
class Zones:
    """Zones with a known centroid: ids, boroughs, coordinates, and flags used by the fare rules."""

    ids: np.ndarray
    borough: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    radius_ft: np.ndarray
    manhattan: np.ndarray
    cbd: np.ndarray  # Manhattan south of 60th Street: the 2025 congestion relief zone


@lru_cache(maxsize=1)
def load_zones() -> Zones:
    """The committed zone seed (ids 1-263 with centroids)."""
    with SEED_FILE.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["centroid_lat"]]
    lat = np.array([float(r["centroid_lat"]) for r in rows])
    borough = np.array([r["borough"] for r in rows])
    manhattan = borough == "Manhattan"
    return Zones(
        np.array([int(r["location_id"]) for r in rows]),
        borough,
        lat,
        np.array([float(r["centroid_lon"]) for r in rows]),
        np.array([float(r["radius_ft"]) for r in rows]),
        manhattan,
        manhattan & (lat < 40.7655),
    )


def _distance_miles(z: Zones) -> np.ndarray:
    return haversine_miles(z.lat[:, None], z.lon[:, None], z.lat[None, :], z.lon[None, :])


def _zone_weights(z: Zones, kind: str) -> np.ndarray:
    if kind == "yellow":
        w = np.where(z.manhattan, 10.0, 0.25)
    else:
        w = np.select([z.manhattan, z.borough == "Staten Island", z.borough == "EWR"], [2.5, 0.2, 0.05], 1.0)
    airport = np.isin(z.ids, (JFK, LGA))
    return np.where(airport, 25.0 if kind == "yellow" else 15.0, w)


def _pick_zones(rng: np.random.Generator, z: Zones, kind: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pickup and dropoff zone indexes: dropoffs favour nearby zones, airports draw from everywhere."""
    w = _zone_weights(z, kind)
    pu = rng.choice(len(z.ids), size=n, p=w / w.sum())
    dist = _distance_miles(z)
    do = np.empty(n, dtype=np.int64)
    for origin in np.unique(pu):
        rows = np.flatnonzero(pu == origin)
        p = w * (np.exp(-dist[origin] / 3.0) + 0.05)
        do[rows] = rng.choice(len(z.ids), size=rows.size, p=p / p.sum())
    return pu, do


def _pickup_times(rng: np.random.Generator, month: str, n: int) -> np.ndarray:
    year, mon = int(month[:4]), int(month[5:7])
    days = calendar.monthrange(year, mon)[1]
    start = np.datetime64(datetime(year, mon, 1), "s")
    day = rng.integers(0, days, n)
    hour = rng.choice(24, size=n, p=HOUR_PROFILE / HOUR_PROFILE.sum())
    secs = day * 86400 + hour * 3600 + rng.integers(0, 3600, n)
    return np.sort(start + secs.astype("timedelta64[s]"))


def _trip_shape(
    rng: np.random.Generator, z: Zones, pu: np.ndarray, do: np.ndarray, hours: np.ndarray, weekend: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Miles (centroid distance x detour x noise) and minutes (speed by hour, borough and trip length)."""
    centroid = _distance_miles(z)[pu, do]
    same = pu == do
    local = rng.uniform(0.3, 1.0, pu.size) * np.maximum(z.radius_ft[pu] / 5280 * 1.5, 0.4)
    miles = np.where(same, local, centroid * 1.3 * rng.lognormal(0, 0.12, pu.size))
    rush = ~weekend & (((hours >= 7) & (hours <= 9)) | ((hours >= 16) & (hours <= 19)))
    night = (hours >= 22) | (hours <= 5)
    speed = np.where(z.manhattan[pu] & z.manhattan[do], 8.5, 14.0)
    speed = speed * np.where(rush, 0.75, 1.0) * np.where(night, 1.45, 1.0) * np.where(miles > 6, 1.6, 1.0)
    minutes = miles / (speed * rng.lognormal(0, 0.15, pu.size)) * 60 + rng.uniform(1, 4, pu.size)
    return np.round(miles, 2), minutes


def _month_index(month: str) -> int:
    return int(month[:4]) * 12 + int(month[5:7])


def _common(month: str, rows: int, seed: int, kind: str) -> tuple[np.random.Generator, dict[str, np.ndarray]]:
    rng = np.random.default_rng([seed, _month_index(month), 0 if kind == "yellow" else 1])
    z = load_zones()
    pu, do = _pick_zones(rng, z, kind, rows)
    pickup = _pickup_times(rng, month, rows)
    hours = (pickup.astype("datetime64[h]") - pickup.astype("datetime64[D]")).astype(int)
    dow = (pickup.astype("datetime64[D]").astype(int) + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    weekend = dow >= 5
    miles, minutes = _trip_shape(rng, z, pu, do, hours, weekend)
    return rng, {
        "pu": pu,
        "do": do,
        "pickup": pickup,
        "hours": hours,
        "weekend": weekend,
        "miles": miles,
        "minutes": minutes,
        "dropoff": pickup + (minutes * 60).astype("timedelta64[s]"),
    }


def _tolls(rng: np.random.Generator, z: Zones, pu: np.ndarray, do: np.ndarray, amount: float) -> np.ndarray:
    # Crossing between Manhattan and another borough or an airport often goes through a tolled tunnel/bridge.
    crossing = (z.manhattan[pu] != z.manhattan[do]) & (z.borough[pu] != "EWR") & (z.borough[do] != "EWR")
    return np.where(crossing & (rng.random(pu.size) < 0.35), amount, 0.0)


def _outliers(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    picks = rng.permutation(n)
    k = max(1, int(n * OUTLIER_RATE)) if n >= 50 else 0
    names = ("zero_distance", "negative_fare", "unknown_zone", "outside_month")
    return {name: picks[i * k : (i + 1) * k] for i, name in enumerate(names)}


def _apply_time_outliers(rng: np.random.Generator, c: dict[str, np.ndarray], idx: np.ndarray) -> None:
    shift = np.where(rng.random(idx.size) < 0.5, -40, 400).astype("timedelta64[D]")
    c["pickup"][idx] += shift
    c["dropoff"][idx] += shift


def _ts(values: np.ndarray) -> pa.Array:
    return pa.array(values.astype("datetime64[us]"), type=pa.timestamp("us"))


def make_yellow_month(month: str, rows: int, seed: int = 42) -> pa.Table:
    """A yellow-taxi month shaped like the TLC's current files (airport fee from 2022, CBD fee from 2025)."""
    rng, c = _common(month, rows, seed, "yellow")
    z, pu, do, hours, miles, minutes = (
        load_zones(),
        c["pu"],
        c["do"],
        c["hours"],
        c["miles"],
        c["minutes"],
    )
    ids_pu, ids_do = z.ids[pu], z.ids[do]
    slow_minutes = np.maximum(0.0, minutes - miles / 12.0 * 60) * 0.6
    metered = 3.00 + 0.70 * np.ceil(miles / 0.2) + 0.70 * np.floor(slow_minutes)
    jfk_flat = ((ids_pu == JFK) & z.manhattan[do]) | ((ids_do == JFK) & z.manhattan[pu])
    newark = (ids_pu == EWR) | (ids_do == EWR)
    flat = 70.00 if month >= "2023-01" else 52.00
    fare = np.where(jfk_flat, flat, np.where(newark, metered + 20.0, metered))
    ratecode = np.where(jfk_flat, 2, np.where(newark, 3, 1)).astype(np.int64)
    rush = ~c["weekend"] & (hours >= 16) & (hours < 20)
    night = (hours >= 20) | (hours < 6)
    extra = np.where(jfk_flat, np.where(rush, 5.0, 0.0), np.where(rush, 2.50, np.where(night, 1.00, 0.0)))
    mta = np.full(rows, 0.50)
    improvement = np.full(rows, 1.00 if month >= "2023-01" else 0.30)
    congestion = np.where(z.manhattan[pu] | z.manhattan[do], 2.50, 0.0)
    airport_fee = np.where(np.isin(ids_pu, (JFK, LGA)), 1.75, 0.0)
    cbd = np.where(z.cbd[pu] | z.cbd[do], 0.75, 0.0)
    tolls = _tolls(rng, z, pu, do, 6.94)
    payment = rng.choice([1, 2, 3, 4], size=rows, p=[0.76, 0.21, 0.02, 0.01]).astype(np.int64)
    base = fare + extra + mta + improvement + congestion + (airport_fee if month >= "2022-01" else 0)
    base = base + (cbd if month >= "2025-01" else 0) + tolls
    tip = np.where(payment == 1, np.round(base * rng.choice([0.15, 0.2, 0.25, 0.3], rows), 2), 0.0)
    out = _outliers(rng, rows)
    miles[out["zero_distance"]] = 0.0
    fare[out["negative_fare"]] *= -1
    ids_pu, ids_do = ids_pu.copy(), ids_do.copy()
    ids_pu[out["unknown_zone"]] = rng.choice([264, 265], out["unknown_zone"].size)
    _apply_time_outliers(rng, c, out["outside_month"])
    total = fare + extra + mta + tip + tolls + improvement + congestion
    cols: dict[str, pa.Array] = {
        "VendorID": pa.array(rng.choice([1, 2], rows, p=[0.3, 0.7]).astype(np.int32)),
        "tpep_pickup_datetime": _ts(c["pickup"]),
        "tpep_dropoff_datetime": _ts(c["dropoff"]),
        "passenger_count": pa.array(rng.choice([1, 2, 3, 4, 5, 6], rows, p=[0.72, 0.15, 0.05, 0.03, 0.03, 0.02])),
        "trip_distance": pa.array(miles),
        "RatecodeID": pa.array(ratecode),
        "store_and_fwd_flag": pa.array(np.where(rng.random(rows) < 0.005, "Y", "N")),
        "PULocationID": pa.array(ids_pu.astype(np.int32)),
        "DOLocationID": pa.array(ids_do.astype(np.int32)),
        "payment_type": pa.array(payment),
        "fare_amount": pa.array(np.round(fare, 2)),
        "extra": pa.array(extra),
        "mta_tax": pa.array(mta),
        "tip_amount": pa.array(tip),
        "tolls_amount": pa.array(tolls),
        "improvement_surcharge": pa.array(improvement),
        "total_amount": pa.array(np.round(total, 2)),
        "congestion_surcharge": pa.array(congestion),
    }
    if month >= "2022-01":
        cols["Airport_fee"] = pa.array(airport_fee)
        cols["total_amount"] = pa.array(np.round(total + airport_fee, 2))
    if month >= "2025-01":
        cols["cbd_congestion_fee"] = pa.array(cbd)
        cols["total_amount"] = pa.array(np.round(total + airport_fee + cbd, 2))
    return pa.table(cols)


def _surge(rng: np.random.Generator, hours: np.ndarray, weekend: np.ndarray) -> np.ndarray:
    peak = ~weekend & (((hours >= 7) & (hours <= 9)) | ((hours >= 16) & (hours <= 19)))
    late = weekend & ((hours >= 22) | (hours <= 2))
    base = np.where(peak, 1.35, np.where(late, 1.25, np.where((hours >= 3) & (hours <= 5), 0.9, 1.0)))
    spikes = np.where(rng.random(hours.size) < 0.05, rng.uniform(1.2, 1.8, hours.size), 1.0)
    return base * spikes


def make_fhvhv_month(month: str, rows: int, seed: int = 42) -> pa.Table:
    """A High-Volume FHV month (mostly HV0003 Uber, some HV0005 Lyft) with hour-dependent fares."""
    rng, c = _common(month, rows, seed, "fhvhv")
    z, pu, do, hours, miles, minutes = (
        load_zones(),
        c["pu"],
        c["do"],
        c["hours"],
        c["miles"],
        c["minutes"],
    )
    ids_pu, ids_do = z.ids[pu].copy(), z.ids[do].copy()
    lyft = rng.random(rows) < 0.25
    base = (2.50 + 1.25 * miles + 0.45 * minutes) * _surge(rng, hours, c["weekend"])
    base = np.maximum(base * np.where(lyft, 0.95, 1.0) * rng.lognormal(0, 0.08, rows), 8.0)
    airport = np.isin(ids_pu, AIRPORTS) | np.isin(ids_do, AIRPORTS)
    base = np.round(base + np.where(airport, 5.0, 0.0), 2)
    tolls = _tolls(rng, z, pu, do, 6.94)
    bcf = np.round(base * 0.0275, 2)
    sales_tax = np.round((base + tolls + bcf) * 0.08875, 2)
    congestion = np.where(z.manhattan[pu] | z.manhattan[do], 2.75, 0.0)
    airport_fee = np.where(airport, 2.50, 0.0)
    tips = np.where(rng.random(rows) < 0.2, np.round(rng.uniform(1, 6, rows), 2), 0.0)
    out = _outliers(rng, rows)
    miles[out["zero_distance"]] = 0.0
    base[out["negative_fare"]] *= -1
    ids_pu[out["unknown_zone"]] = rng.choice([264, 265], out["unknown_zone"].size)
    _apply_time_outliers(rng, c, out["outside_month"])
    pickup = c["pickup"]
    wait = rng.uniform(120, 480, rows).astype("timedelta64[s]")
    on_scene = pickup - rng.uniform(0, 120, rows).astype("timedelta64[s]")
    flag = np.full(rows, "N")
    cols: dict[str, pa.Array] = {
        "hvfhs_license_num": pa.array(np.where(lyft, "HV0005", "HV0003")),
        "dispatching_base_num": pa.array(np.where(lyft, "B03406", "B03404")),
        "originating_base_num": pa.array(np.full(rows, "B03404"), mask=lyft, type=pa.string()),
        "request_datetime": _ts(pickup - wait),
        "on_scene_datetime": _ts(on_scene),
        "pickup_datetime": _ts(pickup),
        "dropoff_datetime": _ts(c["dropoff"]),
        "PULocationID": pa.array(ids_pu.astype(np.int32)),
        "DOLocationID": pa.array(ids_do.astype(np.int32)),
        "trip_miles": pa.array(miles),
        "trip_time": pa.array(np.round(minutes * 60).astype(np.int64)),
        "base_passenger_fare": pa.array(base),
        "tolls": pa.array(tolls),
        "bcf": pa.array(bcf),
        "sales_tax": pa.array(sales_tax),
        "congestion_surcharge": pa.array(congestion),
        "airport_fee": pa.array(airport_fee),
        "tips": pa.array(tips),
        "driver_pay": pa.array(np.round(np.abs(base) * 0.72 + tolls, 2)),
        "shared_request_flag": pa.array(flag),
        "shared_match_flag": pa.array(flag),
        "access_a_ride_flag": pa.array(np.where(lyft, "N", " ")),
        "wav_request_flag": pa.array(flag),
        "wav_match_flag": pa.array(np.where(rng.random(rows) < 0.06, "Y", "N")),
    }
    if month >= "2025-01":
        cols["cbd_congestion_fee"] = pa.array(np.where(z.cbd[pu] | z.cbd[do], 1.50, 0.0))
    return pa.table(cols)
