"""The quote service: resolve places to zones, price trips with the model in one vectorised call, flag doubtful ones."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo as TimeZone

import numpy as np
import pandas as pd

from api.model_store import Bundle
from api.schemas import PointPlace, QuoteRequest, ZoneIdPlace, ZoneNamePlace
from api.zones import PlaceError, ZoneIndex

NEW_YORK = TimeZone("America/New_York")
EARLIEST, LATEST = datetime(1900, 1, 1), datetime(2200, 1, 1)
WINDOW_SLACK = timedelta(days=31)
_PRICE_COLUMNS = ("taxi_fare", "taxi_low", "taxi_high", "uber_fare", "uber_low", "uber_high", "p_uber_cheaper")


def to_new_york(pickup_at: datetime | None) -> datetime:
    """New York wall-clock time (naive) for a request time; naive input is already New York time."""
    if pickup_at is None:
        return datetime.now(NEW_YORK).replace(tzinfo=None, microsecond=0)
    if pickup_at.tzinfo is not None:
        try:
            pickup_at = pickup_at.astimezone(NEW_YORK).replace(tzinfo=None)
        except (OverflowError, ValueError):
            raise PlaceError(f"pickup_at {pickup_at.isoformat()} is out of range") from None
    if not EARLIEST <= pickup_at < LATEST:
        raise PlaceError(f"pickup_at {pickup_at.isoformat()} must fall between {EARLIEST.year} and {LATEST.year}")
    return pickup_at


def resolve_place(zones: ZoneIndex, place: ZoneIdPlace | ZoneNamePlace | PointPlace, role: str) -> int:
    """The zone id a place means; PlaceError names the role (pickup/dropoff) and the reason."""
    try:
        if isinstance(place, ZoneIdPlace):
            return zones.get(place.zone_id).zone_id
        if isinstance(place, ZoneNamePlace):
            return zones.by_name(place.zone).zone_id
        return zones.at_point(place.lat, place.lon).zone_id
    except PlaceError as exc:
        raise PlaceError(f"{role}: {exc}") from None


def _window(bundle: Bundle) -> tuple[date, date]:
    return date.fromisoformat(bundle.trained_from[:10]), date.fromisoformat(bundle.trained_to[:10])


def trip_warnings(bundle: Bundle, pickup_id: int, dropoff_id: int, pickup_at: datetime) -> list[str]:
    """Why a quote may be less trustworthy than usual, in words."""
    notes = []
    if pickup_id == dropoff_id:
        notes.append("pickup and dropoff are the same zone: the fares are for a short trip inside it")
    for role, zid in (("pickup", pickup_id), ("dropoff", dropoff_id)):
        zone = bundle.zones.zones[zid]
        if zone.borough in ("Unknown", "N/A", ""):
            notes.append(f"{role} zone {zid} ({zone.zone_name}) is a TLC code for an unknown or outside location")
    first, last = _window(bundle)
    day = pickup_at.date()
    if day > last + WINDOW_SLACK:
        notes.append(f"pickup_at is {(day - last).days} days after the newest training data ({last}): "
                     "prices may have changed since")
    elif day < first - WINDOW_SLACK:
        notes.append(f"pickup_at is {(first - day).days} days before the oldest training data ({first}): "
                     "prices were different then")
    return notes


def predict(bundle: Bundle, pickup_at: Sequence[datetime], pickup_ids: Sequence[int],
            dropoff_ids: Sequence[int]) -> pd.DataFrame:
    """The model's price frame for these trips (one vectorised call)."""
    trips = pd.DataFrame({
        "pickup_at": pd.to_datetime(pd.Series(list(pickup_at), dtype="datetime64[us]")),
        "pickup_zone_id": np.asarray(pickup_ids, dtype=np.int64),
        "dropoff_zone_id": np.asarray(dropoff_ids, dtype=np.int64),
    })
    prices = bundle.model.predict_frame(trips)
    return prices.reset_index(drop=True)


def _price_rows(prices: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Rounded price matrix (rows x _PRICE_COLUMNS) and a mask of rows whose numbers are all finite."""
    values = np.array(prices.loc[:, list(_PRICE_COLUMNS)].to_numpy(dtype=float), copy=True)
    values[:, :6] = np.round(values[:, :6], 2)
    values[:, 6] = np.round(np.clip(values[:, 6], 0.0, 1.0), 3)
    return values, np.isfinite(values).all(axis=1)


def _priced(row: np.ndarray) -> dict[str, Any]:
    taxi, uber = float(row[0]), float(row[3])
    return {
        "taxi": {"fare": taxi, "low": float(min(row[1], taxi)), "high": float(max(row[2], taxi))},
        "uber": {"fare": uber, "low": float(min(row[4], uber)), "high": float(max(row[5], uber))},
        "cheaper": "uber" if uber < taxi else "taxi",
        "savings": round(abs(taxi - uber), 2),
        "p_uber_cheaper": float(row[6]),
    }


def window_of(bundle: Bundle) -> dict[str, str]:
    """The `trained_window` object of responses."""
    return {"from": bundle.trained_from, "to": bundle.trained_to}


def quote_one(bundle: Bundle, request: QuoteRequest) -> dict[str, Any]:
    """Price one trip; raises PlaceError for a place or time that cannot be used."""
    pickup_at = to_new_york(request.pickup_at)
    pickup = resolve_place(bundle.zones, request.pickup, "pickup")
    dropoff = resolve_place(bundle.zones, request.dropoff, "dropoff")
    values, ok = _price_rows(predict(bundle, [pickup_at], [pickup], [dropoff]))
    if not ok[0]:
        raise PlaceError("the model could not price this trip (no finite prediction)")
    return {
        "pickup_at": pickup_at.isoformat(),
        "pickup": bundle.zones.zones[pickup].as_dict(),
        "dropoff": bundle.zones.zones[dropoff].as_dict(),
        **_priced(values[0]),
        "model_version": bundle.version,
        "trained_window": window_of(bundle),
        "warnings": trip_warnings(bundle, pickup, dropoff, pickup_at),
    }


def _resolve_column(zones: ZoneIndex, places: list[Any], role: str, errors: dict[int, str]) -> np.ndarray:
    """Zone ids for one side of a batch: ids by dict, names cached per distinct text, points in one STRtree query."""
    ids = np.full(len(places), -1, dtype=np.int64)
    names: dict[str, int | str] = {}
    point_rows = []
    for i, place in enumerate(places):
        if isinstance(place, ZoneIdPlace):
            if place.zone_id in zones.zones:
                ids[i] = place.zone_id
            else:
                errors.setdefault(i, f"{role}: unknown zone_id {place.zone_id}")
        elif isinstance(place, ZoneNamePlace):
            if place.zone not in names:
                try:
                    names[place.zone] = zones.by_name(place.zone).zone_id
                except PlaceError as exc:
                    names[place.zone] = f"{role}: {exc}"
            found = names[place.zone]
            if isinstance(found, int):
                ids[i] = found
            else:
                errors.setdefault(i, found)
        else:
            point_rows.append(i)
    if point_rows:
        lats = np.array([places[i].lat for i in point_rows])
        lons = np.array([places[i].lon for i in point_rows])
        found_ids = zones.at_points(lats, lons)
        for i, zid, lat, lon in zip(point_rows, found_ids, lats, lons, strict=True):
            if zid < 0:
                errors.setdefault(i, f"{role}: the point lat={lat}, lon={lon} is outside every NYC taxi zone")
            else:
                ids[i] = zid
    return ids


def quote_batch(bundle: Bundle, requests: list[QuoteRequest]) -> dict[str, Any]:
    """Price many trips in one model call; trips that cannot be priced come back in `errors` with their index."""
    errors: dict[int, str] = {}
    times: list[datetime] = []
    for i, req in enumerate(requests):
        try:
            times.append(to_new_york(req.pickup_at))
        except PlaceError as exc:
            errors[i] = str(exc)
            times.append(EARLIEST)
    pickups = _resolve_column(bundle.zones, [r.pickup for r in requests], "pickup", errors)
    dropoffs = _resolve_column(bundle.zones, [r.dropoff for r in requests], "dropoff", errors)
    good = np.array([i not in errors for i in range(len(requests))], dtype=bool)
    rows = np.flatnonzero(good)
    quotes = []
    if len(rows):
        values, ok = _price_rows(predict(bundle, [times[i] for i in rows], pickups[rows], dropoffs[rows]))
        for k, i in enumerate(rows.tolist()):
            if not ok[k]:
                errors[i] = "the model could not price this trip (no finite prediction)"
                continue
            pu, do = int(pickups[i]), int(dropoffs[i])
            quotes.append({"index": i, "pickup_zone_id": pu, "dropoff_zone_id": do, **_priced(values[k]),
                           "warnings": trip_warnings(bundle, pu, do, times[i])})
    return {
        "model_version": bundle.version,
        "trained_window": window_of(bundle),
        "count": len(quotes),
        "quotes": quotes,
        "errors": [{"index": i, "detail": errors[i]} for i in sorted(errors)],
    }
