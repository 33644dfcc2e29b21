"""Generated zones and training frames with a known fare rule, and dbt's lookups rebuilt from them: for unit tests,
benchmarks and the API's tests (no DB). `build_lookups` is a test double of the dbt marts (dim_zone_pairs,
zone_pair_hourly_typicals, uber_monthly_price_levels, the rate card seed); production fits read the marts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fares.ingestion.geo import haversine_miles
from fares.ml.drift import read_price_moves
from fares.ml.lookups import LEVEL_COLUMNS, TYPICAL_COLUMNS, Lookups
from fares.ml.tariff import read_charge_zones, read_hvfhv_charges, read_rate_card

JFK, LAGUARDIA, NEWARK = 132, 138, 1
TAXI_JFK_FLAT = 70.0
_BOROUGH_BOXES = {  # (lat, lon) centre and half-size of a box the generated centroids fall in
    "Manhattan": ((40.775, -73.970), (0.05, 0.02)),
    "Brooklyn": ((40.650, -73.950), (0.04, 0.05)),
    "Queens": ((40.720, -73.820), (0.05, 0.06)),
    "Bronx": ((40.850, -73.880), (0.03, 0.04)),
    "Staten Island": ((40.580, -74.150), (0.03, 0.04)),
}


def make_zones(n_zones: int = 265, seed: int = 7) -> pd.DataFrame:
    """A dim_zones-shaped frame: ids 1..n_zones, JFK/LaGuardia/Newark airports, the last two ids without a place."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n_zones + 1)
    names = list(_BOROUGH_BOXES)
    borough = rng.choice(names, size=n_zones, p=[0.3, 0.25, 0.25, 0.15, 0.05])
    centre = np.array([_BOROUGH_BOXES[b][0] for b in borough])
    half = np.array([_BOROUGH_BOXES[b][1] for b in borough])
    lat, lon = (centre + rng.uniform(-1, 1, size=(n_zones, 2)) * half).T
    frame = pd.DataFrame(
        {
            "zone_id": ids,
            "borough": borough,
            "zone_name": [f"Zone {i}" for i in ids],
            "service_zone": "Boro Zone",
            "centroid_lat": lat,
            "centroid_lon": lon,
            "geometry_wkt": None,
            "is_airport": False,
        }
    )
    fixed = {
        JFK: ("Queens", "JFK Airport", 40.6413, -73.7781),
        LAGUARDIA: ("Queens", "LaGuardia Airport", 40.7769, -73.8740),
        NEWARK: ("EWR", "Newark Airport", 40.6895, -74.1745),
    }
    for zone_id, (b, name, la, lo) in fixed.items():
        if zone_id <= n_zones:
            frame.loc[
                frame.zone_id == zone_id,
                ["borough", "zone_name", "centroid_lat", "centroid_lon", "is_airport", "service_zone"],
            ] = [b, name, la, lo, True, "Airports"]
    frame.loc[frame.borough == "Manhattan", "service_zone"] = "Yellow Zone"
    for zone_id, b in ((n_zones - 1, "Unknown"), (n_zones, "N/A")):
        frame.loc[frame.zone_id == zone_id, ["borough", "zone_name", "centroid_lat", "centroid_lon"]] = [
            b,
            b,
            np.nan,
            np.nan,
        ]
    return frame


def make_training_frame(
    zones: pd.DataFrame,
    n_rows: int = 20_000,
    seed: int = 0,
    start: str = "2024-01-01",
    days: int = 60,
    noise: float = 0.08,
) -> pd.DataFrame:
    """An ml_fare_training-shaped frame, half taxi half Uber, following a known fare rule (taxi JFK-Manhattan flat)."""
    rng = np.random.default_rng(seed)
    placed = zones[zones.centroid_lat.notna()]
    ids = placed.zone_id.to_numpy()
    weight = np.where(placed.borough == "Manhattan", 6.0, 1.0) + np.where(placed.is_airport, 8.0, 0.0)
    pu = rng.choice(ids, size=n_rows, p=weight / weight.sum())
    do = rng.choice(ids, size=n_rows, p=weight / weight.sum())
    at = pd.Timestamp(start) + pd.to_timedelta(rng.uniform(0, days * 86400, n_rows).astype(np.int64), unit="s")
    hour = at.hour.to_numpy()
    by_id = zones.set_index("zone_id")
    dist = haversine_miles(
        by_id.centroid_lat[pu].to_numpy(),
        by_id.centroid_lon[pu].to_numpy(),
        by_id.centroid_lat[do].to_numpy(),
        by_id.centroid_lon[do].to_numpy(),
    )
    miles = np.maximum(dist * 1.3, 0.4) * rng.lognormal(0, 0.15, n_rows)
    rush = ((hour >= 7) & (hour <= 9)) | ((hour >= 16) & (hour <= 19))
    minutes = miles * np.where(rush, 5.0, 3.2) * rng.lognormal(0, 0.15, n_rows) + 2
    service = np.where(rng.random(n_rows) < 0.5, "taxi", "uber")
    manhattan = (by_id.borough[pu].to_numpy() == "Manhattan") | (by_id.borough[do].to_numpy() == "Manhattan")
    taxi = 3.5 + 2.5 * miles + 0.5 * minutes + np.where(manhattan, 2.5, 0.0)
    jfk = ((pu == JFK) & (by_id.borough[do].to_numpy() == "Manhattan")) | (
        (do == JFK) & (by_id.borough[pu].to_numpy() == "Manhattan")
    )
    taxi = np.where(jfk, TAXI_JFK_FLAT + 5.0, taxi)
    surge = np.where(rush, 1.35, 1.0)
    uber = (2.5 + 1.8 * miles + 0.45 * minutes) * surge * 1.12 + np.where(manhattan, 2.75, 0.0)
    fare = np.where(service == "taxi", taxi, uber) * rng.lognormal(0, noise, n_rows)
    frame = pd.DataFrame(
        {
            "trip_id": [f"t{i}" for i in range(n_rows)],
            "service": service,
            "pickup_at": at.to_numpy(),
            "pickup_zone_id": pu,
            "dropoff_zone_id": do,
            "trip_miles": miles,
            "duration_minutes": minutes,
            "rider_fare": np.round(fare, 2),
        }
    )
    return frame.sort_values("pickup_at", ignore_index=True)


def _zone_pairs(zones: pd.DataFrame) -> pd.DataFrame:
    """dim_zone_pairs rebuilt from a dim_zones-shaped frame (the same rules as models/marts/dim_zone_pairs.sql)."""
    z = zones.reset_index(drop=True)
    name = z["zone_name"].astype(str).to_numpy()
    manhattan = (z["borough"] == "Manhattan").to_numpy()
    lat = pd.to_numeric(z["centroid_lat"], errors="coerce").to_numpy(dtype=float)
    lon = pd.to_numeric(z["centroid_lon"], errors="coerce").to_numpy(dtype=float)
    jfk, lga, ewr = name == "JFK Airport", name == "LaGuardia Airport", name == "Newark Airport"
    # the zone lists of seed charge_zones: simulated trips carry no charge fields, so every pair takes the fallback
    charge_zones = read_charge_zones()
    ids = z["zone_id"].to_numpy(dtype=np.int64)
    congestion = np.isin(ids, list(charge_zones["congestion_surcharge"]))
    relief = np.isin(ids, list(charge_zones["congestion_relief_zone"]))
    i, j = np.divmod(np.arange(len(z) ** 2), len(z))
    return pd.DataFrame(
        {
            "pickup_zone_id": ids[i],
            "dropoff_zone_id": ids[j],
            "centroid_distance_miles": np.round(haversine_miles(lat[i], lon[i], lat[j], lon[j]), 3),
            "is_same_zone": i == j,
            "is_jfk_manhattan": (jfk[i] & manhattan[j]) | (jfk[j] & manhattan[i]),
            "is_newark_dropoff": ewr[j],
            "is_laguardia_trip": lga[i] | lga[j],
            "is_airport_fee_pickup": jfk[i] | lga[i],
            "is_congestion_trip": congestion[i] | congestion[j],
            "is_relief_zone_trip": relief[i] | relief[j],
            "congestion_incidence": (congestion[i] | congestion[j]).astype(float),
            "relief_zone_incidence": (relief[i] | relief[j]).astype(float),
        }
    )


def build_lookups(training: pd.DataFrame, zones: pd.DataFrame) -> Lookups:
    """What dbt would build for `training` (the training window) and `zones`; typicals need trip_miles/duration."""
    hour = pd.to_datetime(training["pickup_at"]).dt.hour
    if {"trip_miles", "duration_minutes"} <= set(training.columns):
        typicals = (
            training.assign(pickup_hour=hour)
            .groupby(["pickup_zone_id", "dropoff_zone_id", "pickup_hour"])
            .agg(
                trips=("trip_miles", "size"),
                typical_trip_miles=("trip_miles", "median"),
                typical_duration_minutes=("duration_minutes", "median"),
            )
            .reset_index()
        )
        uber = training[training["service"] == "uber"]
        units = 5 * uber["trip_miles"] + np.maximum(uber["duration_minutes"] - 5 * uber["trip_miles"], 0)
        levels = (
            (uber["rider_fare"] / units)
            .groupby(pd.to_datetime(uber["pickup_at"]).dt.strftime("%Y-%m"))
            .agg(["size", "median"])
            .reset_index()
        )
        levels.columns = list(LEVEL_COLUMNS)
    else:
        typicals = pd.DataFrame(columns=list(TYPICAL_COLUMNS))
        levels = pd.DataFrame(columns=list(LEVEL_COLUMNS))
    return Lookups(
        zones=zones.reset_index(drop=True),
        zone_pairs=_zone_pairs(zones),
        typicals=typicals,
        price_levels=levels,
        rate_card=read_rate_card(),
        holdout_from=None,
        hvfhv_charges=read_hvfhv_charges(),
        price_moves=read_price_moves(),
    )
