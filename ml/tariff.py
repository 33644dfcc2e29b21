"""The taxi rate card (the dbt seed `taxi_rate_card`) for any date: the Python twin of macros/taxi_meter_fare.sql.

The model bundle carries the rate card as loaded into `marts.taxi_rate_card`, so a live quote applies the tariff in
force at the requested pickup time. Both this module and the dbt macro are checked against the same hand-computed fares
(the unit test `taxi_meter_fare_follows_each_tariff_period` in dbt_project/models/marts/_marts__unit_tests.yml).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fares.config.warehouse import DBT_PROJECT_DIR

RATE_CARD_FILE = DBT_PROJECT_DIR / "seeds" / "taxi_rate_card.csv"
RATE_CARD_COLUMNS: tuple[str, ...] = ("charge", "amount_usd", "effective_from", "effective_to")  # all but `source`
RATE_CARD_SQL = f"select {', '.join(RATE_CARD_COLUMNS)} from marts.taxi_rate_card"  # noqa: S608 - constants
HVFHV_CHARGES_FILE = DBT_PROJECT_DIR / "seeds" / "hvfhv_charges.csv"
HVFHV_CHARGE_COLUMNS: tuple[str, ...] = ("charge", "amount", "unit", "effective_from", "effective_to")  # not `source`
ROUTE_FLAGS: tuple[str, ...] = (
    "is_jfk_manhattan",
    "is_newark_dropoff",
    "is_laguardia_trip",
    "is_airport_fee_pickup",
    "is_congestion_trip",
    "is_relief_zone_trip",
)
# Expected share of a pair's trips that pay the congestion surcharge / the relief-zone fee (dim_zone_pairs): learned
# from the trips' own fields, or the zone-list flag above as 1/0 where a pair has too few trips.
ROUTE_SHARES: tuple[str, ...] = ("congestion_incidence", "relief_zone_incidence")
SHARE_FALLBACK: dict[str, str] = {
    "congestion_incidence": "is_congestion_trip",
    "relief_zone_incidence": "is_relief_zone_trip",
}
CHARGE_ZONES_FILE = DBT_PROJECT_DIR / "seeds" / "charge_zones.csv"
UNITS_PER_MILE = 5  # one unit per 1/5 mile
MINUTES_PER_MILE_AT_12_MPH = 5  # below 12 mph the meter counts minutes instead of fifths of a mile


def read_rate_card(path: Path = RATE_CARD_FILE) -> pd.DataFrame:
    """The seed CSV as a frame (charge, amount_usd, effective_from, effective_to): for tests and DB-free fits."""
    card = pd.read_csv(path, usecols=list(RATE_CARD_COLUMNS))
    return card


def read_charge_zones(path: Path = CHARGE_ZONES_FILE) -> dict[str, frozenset[int]]:
    """The zone lists of the seed `charge_zones`: {charge_zone: taxi zone ids} (congestion_surcharge,
    congestion_relief_zone)."""
    zones = pd.read_csv(path, usecols=["charge_zone", "zone_id"])
    return {str(name): frozenset(group["zone_id"].astype(int)) for name, group in zones.groupby("charge_zone")}


def route_share(flags: dict[str, np.ndarray], name: str) -> np.ndarray:
    """The expected share `name` (ROUTE_SHARES) of each trip's pair: the learned incidence where the flags carry it
    (dim_zone_pairs), else its zone-list flag as 1/0 (a bundle or a caller from before the incidence)."""
    share = flags.get(name)
    if share is None:
        share = flags[SHARE_FALLBACK[name]]
    return np.asarray(share, dtype=float)


def read_hvfhv_charges(path: Path = HVFHV_CHARGES_FILE) -> pd.DataFrame:
    """The HVFHV charges seed as a frame (charge, amount, unit, effective_from, effective_to): for DB-free fits."""
    return pd.read_csv(path, usecols=list(HVFHV_CHARGE_COLUMNS))


@dataclass
class Tariff:
    """The rate card's rows, looked up per charge and day."""

    card: pd.DataFrame

    def __post_init__(self) -> None:
        self.card = self.card[["charge", "amount_usd", "effective_from", "effective_to"]].reset_index(drop=True)
        names = self.card["charge"].astype(str).to_numpy()
        amount = pd.to_numeric(self.card["amount_usd"]).to_numpy(dtype=float)
        start = pd.to_datetime(self.card["effective_from"]).to_numpy().astype("datetime64[D]")
        end = pd.to_datetime(self.card["effective_to"]).to_numpy().astype("datetime64[D]")
        # the periods in which no charge changes, one amount per charge: a single searchsorted per lookup
        self.bounds = np.unique(np.concatenate([start, end[~np.isnat(end)]]))
        self.names = tuple(dict.fromkeys(names.tolist()))
        self.amounts = np.zeros((len(self.bounds) + 1, len(self.names)))  # row 0: before the card's first day
        for i, name in enumerate(names):
            inside = (self.bounds >= start[i]) & (np.isnat(end[i]) | (self.bounds < end[i]))
            self.amounts[1:, self.names.index(name)][inside] = amount[i]

    def _period(self, days: np.ndarray) -> np.ndarray:
        """Row of `amounts` for each day (0 before the first period)."""
        return np.searchsorted(self.bounds, days.astype("datetime64[D]"), side="right")

    def charges(self, days: np.ndarray) -> dict[str, np.ndarray]:
        """Every charge in force on each day (0 where it did not exist)."""
        rows = self.amounts[self._period(days)]
        return {name: rows[:, i] for i, name in enumerate(self.names)}

    def charge(self, name: str, days: np.ndarray) -> np.ndarray:
        """The amount of charge `name` in force on each day (0 where it did not exist)."""
        if name not in self.names:
            return np.zeros(len(days))
        return self.amounts[self._period(days), self.names.index(name)]

    def period_start(self, days: np.ndarray) -> np.ndarray:
        """The first day of the tariff period each day falls in (NaT before the card's first day)."""
        idx = self._period(days) - 1
        return np.where(idx >= 0, self.bounds[np.maximum(idx, 0)], np.datetime64("NaT"))

    @property
    def newest_change(self) -> np.datetime64:
        """The last day any charge changed (the newest tariff period's start)."""
        return self.bounds[-1]


def meter_fare(
    tariff: Tariff,
    pickup_at: np.ndarray,
    miles: np.ndarray,
    minutes: np.ndarray,
    flags: dict[str, np.ndarray],
    charges_on: np.ndarray | np.datetime64 | None = None,
) -> np.ndarray:
    """What the meter charges (dollars, before tolls and tip): the rules of macros/taxi_meter_fare.sql, vectorised.

    Args:
        pickup_at: naive New York datetime64 values.
        miles, minutes: the trip's (or the typical trip's) distance and duration.
        flags: the ROUTE_FLAGS booleans of dim_zone_pairs for each trip, and its ROUTE_SHARES where known (the
            congestion surcharge and the relief-zone fee are charged as amount x share; without a share, its flag).
        charges_on: the days whose rate card applies, or one day for every trip (default: the pickup's own day);
            the clock rules (night, rush hour) always follow `pickup_at`.
    """
    at = pickup_at.astype("datetime64[m]")
    days = at.astype("datetime64[D]")
    hour = (at.astype(np.int64) // 60) % 24
    dow = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    rush = (dow < 5) & (hour >= 16) & (hour < 20)
    night = (hour >= 20) | (hour < 6)
    card_days = (
        days if charges_on is None else np.broadcast_to(np.asarray(charges_on, dtype="datetime64[D]"), days.shape)
    )
    c = tariff.charges(card_days)
    zero = np.zeros(len(days))

    def get(name: str) -> np.ndarray:
        return c.get(name, zero)

    units = UNITS_PER_MILE * miles + np.maximum(minutes - MINUTES_PER_MILE_AT_12_MPH * miles, 0)
    metered = (
        get("initial_charge")
        + get("unit_charge") * units
        + np.where(night, get("night_surcharge"), 0)
        + np.where(rush, get("rush_hour_surcharge"), 0)
        + np.where(flags["is_newark_dropoff"], get("newark_surcharge"), 0)
        + np.where(flags["is_laguardia_trip"], get("laguardia_surcharge"), 0)
    )
    flat = get("jfk_flat_fare") + np.where(rush, get("jfk_rush_hour_surcharge"), 0)
    fare = np.where(flags["is_jfk_manhattan"], flat, metered)
    return (
        fare
        + np.where(flags["is_newark_dropoff"], 0, get("mta_tax"))
        + get("improvement_surcharge")
        # the congestion surcharge needs a trip that begins and ends in New York State: never to Newark
        + np.where(flags["is_newark_dropoff"], 0, route_share(flags, "congestion_incidence"))
        * get("congestion_surcharge")
        + route_share(flags, "relief_zone_incidence") * get("congestion_relief_zone_fee")
        + np.where(flags["is_airport_fee_pickup"], get("airport_access_fee"), 0)
    )


@dataclass
class UberCharges:
    """The public charges on an HVFHV trip (the dbt seed `hvfhv_charges`), looked up per day: dollars per trip and
    shares of the fare. An Uber quote learned at one date moves to another by their difference."""

    card: pd.DataFrame

    def __post_init__(self) -> None:
        self.card = self.card[list(HVFHV_CHARGE_COLUMNS)].reset_index(drop=True)
        self._tariff = Tariff(self.card.rename(columns={"amount": "amount_usd"}))

    def fees(
        self, days: np.ndarray, at_airport: np.ndarray, flags: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(dollars per trip, share of the fare) in force on each day for each trip: the congestion surcharge times the
        pair's incidence on trips that stay in New York State (never to Newark), the airport access fee on a pickup or
        drop-off at an airport, the relief-zone fee times its incidence; the Black Car Fund and the sales tax."""
        c = self._tariff.charges(days.astype("datetime64[D]"))
        zero = np.zeros(len(days))

        def get(name: str) -> np.ndarray:
            return c.get(name, zero)

        fixed = (
            np.where(flags["is_newark_dropoff"], 0, route_share(flags, "congestion_incidence"))
            * get("congestion_surcharge")
            + np.where(at_airport, get("airport_access_fee"), 0)
            + route_share(flags, "relief_zone_incidence") * get("congestion_relief_zone_fee")
        )
        return fixed, get("black_car_fund") + get("sales_tax")
