"""The quote service: resolve places to zones, price trips with the model in one vectorised call, flag doubtful ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo as TimeZone

import numpy as np
import orjson
import pandas as pd

from fares.api.model_store import Bundle
from fares.api.schemas import PointPlace, QuoteRequest, ZoneIdPlace, ZoneNamePlace
from fares.api.zones import PlaceError, ZoneIndex
from fares.ml.predict import PRICE_COLUMNS, SAME_REASONS, answer_reasons

NEW_YORK = TimeZone("America/New_York")
EARLIEST, LATEST = datetime(1900, 1, 1), datetime(2200, 1, 1)  # what a request may say at all
YEARS_AHEAD = 10  # a quote is refused further than this past the newest training data: nothing there to stand on
WINDOW_SLACK = timedelta(days=31)


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


def supported_dates(bundle: Bundle) -> tuple[date, date]:
    """The first and last day this model quotes: from the first day of its taxi rate card (before it every charge is
    unknown) to YEARS_AHEAD years past its newest training data."""
    last = bundle.window[1]
    try:
        latest = last.replace(year=last.year + YEARS_AHEAD)
    except ValueError:  # a 29 February
        latest = last.replace(year=last.year + YEARS_AHEAD, day=28)
    tariff = getattr(bundle.model, "tariff", None)
    if tariff is None or not len(tariff.bounds):  # a bundle from before the dated rate card
        return EARLIEST.date(), latest
    return date.fromisoformat(str(tariff.bounds[0])), latest


def check_supported(bundle: Bundle, pickup_at: datetime) -> datetime:
    """`pickup_at` when the model can quote it; PlaceError (a 422) naming the supported dates otherwise."""
    earliest, latest = supported_dates(bundle)
    day = pickup_at.date()
    if day < earliest:
        raise PlaceError(
            f"pickup_at {pickup_at.isoformat()} is before {earliest.isoformat()}, the earliest date fares quotes "
            "(the first taxi rate card it knows)"
        )
    if day > latest:
        raise PlaceError(
            f"pickup_at {pickup_at.isoformat()} is after {latest.isoformat()}, the latest date fares quotes "
            f"({YEARS_AHEAD} years past its newest training data); the earliest is {earliest.isoformat()}"
        )
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


def trip_warnings(bundle: Bundle, pickup_id: int, dropoff_id: int, pickup_at: datetime) -> list[str]:
    """Why a quote may be less trustworthy than usual, in words."""
    notes = []
    if pickup_id == dropoff_id:
        notes.append("pickup and dropoff are the same zone: the fares are for a short trip inside it")
    for role, zid in (("pickup", pickup_id), ("dropoff", dropoff_id)):
        zone = bundle.zones.zones[zid]
        if zone.borough in ("Unknown", "N/A", ""):
            notes.append(f"{role} zone {zid} ({zone.zone_name}) is a TLC code for an unknown or outside location")
    first, last = bundle.window
    day = pickup_at.date()
    if day > last + WINDOW_SLACK:
        notes.append(
            f"pickup_at is {(day - last).days} days after the newest training data ({last}): the taxi fare follows "
            "the rate card of that date, the Uber fare the newest known price level (see uber_stale_months)"
        )
    elif day < first - WINDOW_SLACK:
        notes.append(
            f"pickup_at is {(first - day).days} days before the oldest training data ({first}): "
            "prices were different then"
        )
    return notes


def predict(
    bundle: Bundle,
    pickup_at: Sequence[datetime] | np.ndarray,
    pickup_ids: Sequence[int] | np.ndarray,
    dropoff_ids: Sequence[int] | np.ndarray,
) -> np.ndarray | pd.DataFrame:
    """The model's prices for these trips (one vectorised call): an array in OUTPUT_COLUMNS' order, or the frame of
    a model without `predict_arrays`."""
    at = np.asarray(pickup_at, dtype="datetime64[us]")
    pickup, dropoff = np.asarray(pickup_ids, dtype=np.int64), np.asarray(dropoff_ids, dtype=np.int64)
    predict_arrays = getattr(bundle.model, "predict_arrays", None)
    if predict_arrays is not None:
        return predict_arrays(at, pickup, dropoff)
    trips = pd.DataFrame({"pickup_at": at, "pickup_zone_id": pickup, "dropoff_zone_id": dropoff}, copy=False)
    return bundle.model.predict_frame(trips)


def price_matrix(prices: np.ndarray | pd.DataFrame) -> np.ndarray:
    """Columns [taxi fare, low, high, uber fare, low, high, p_uber_cheaper, savings, uber_is_cheaper,
    uber_stale_months, why about the same (0 = a service is named, else an index into SAME_REASONS)] as floats (money
    rounded to cents, ranges widened to hold the fare). `prices`: an array in OUTPUT_COLUMNS' order, or a frame."""
    if isinstance(prices, np.ndarray):
        raw = prices[:, : len(PRICE_COLUMNS)]
    elif tuple(prices.columns[: len(PRICE_COLUMNS)]) == PRICE_COLUMNS:  # the model's own order: one block
        raw = prices.to_numpy(dtype=float)[:, : len(PRICE_COLUMNS)]
    else:  # a frame without the staleness columns (older models): a current level
        zero = pd.Series(0.0, index=prices.index)
        raw = np.column_stack(
            [prices[c].to_numpy(dtype=float) if c in prices else zero.to_numpy() for c in PRICE_COLUMNS]
        )
    out = np.empty((len(raw), 11))
    out[:, :6] = np.round(raw[:, :6], 2)
    for fare in (0, 3):
        out[:, fare + 1] = np.minimum(out[:, fare + 1], out[:, fare])
        out[:, fare + 2] = np.maximum(out[:, fare + 2], out[:, fare])
    out[:, 6] = np.round(np.clip(raw[:, 6], 0.0, 1.0), 3)
    out[:, 7] = np.round(np.abs(out[:, 0] - out[:, 3]), 2)
    out[:, 8] = out[:, 3] < out[:, 0]
    out[:, 9] = raw[:, 7]
    out[:, 10] = answer_reasons(out[:, 0], out[:, 3], raw[:, 6], raw[:, 7], raw[:, 8])
    return out


def price_rows(prices: np.ndarray | pd.DataFrame) -> tuple[list[list[float]], np.ndarray]:
    """The rows of `price_matrix` as Python lists, and a mask of rows that are all finite."""
    out = price_matrix(prices)
    return out.tolist(), np.isfinite(out).all(axis=1)


def _priced(row: list[float]) -> dict[str, Any]:
    taxi, taxi_low, taxi_high, uber, uber_low, uber_high, p_uber, savings, uber_cheaper, stale, same = row
    cheaper = "uber" if uber_cheaper else "taxi"
    return {
        "taxi": {"fare": taxi, "low": taxi_low, "high": taxi_high},
        "uber": {"fare": uber, "low": uber_low, "high": uber_high},
        "cheaper": cheaper,
        "answer": "about the same" if same else cheaper,
        "answer_reason": SAME_REASONS[int(same)],
        "savings": savings,
        "p_uber_cheaper": p_uber,
        "uber_stale_months": int(stale),
    }


def tariff_used(bundle: Bundle, pickup_at: datetime) -> str | None:
    """The first day of the taxi rate-card period the quote applied (None for an old model without a tariff)."""
    tariff_in_force = getattr(bundle.model, "tariff_in_force", None)
    if tariff_in_force is None:
        return None
    start = tariff_in_force(np.array([np.datetime64(pickup_at, "D")]))[0]
    return None if np.isnat(start) else str(start)


def window_of(bundle: Bundle) -> dict[str, str]:
    """The `trained_window` object of responses."""
    return {"from": bundle.trained_from, "to": bundle.trained_to}


def source_of(bundle: Bundle) -> dict[str, Any]:
    """The `data_source` object of responses: kind, synthetic, label (the page's banner), months, sample."""
    src = bundle.data_source
    return {
        "kind": src.get("kind", "unknown"),
        "synthetic": bool(src.get("synthetic", False)),
        "label": src.get("label", "unknown"),
        "months": list(src.get("months") or []),
        "sample": dict(src.get("sample") or {}),
    }


def prepare_quote(bundle: Bundle, request: QuoteRequest) -> tuple[datetime, int, int]:
    """New York pickup time and the two zone ids of a request; PlaceError for a place or time that cannot be used."""
    pickup_at = check_supported(bundle, to_new_york(request.pickup_at))
    return (
        pickup_at,
        resolve_place(bundle.zones, request.pickup, "pickup"),
        resolve_place(bundle.zones, request.dropoff, "dropoff"),
    )


def build_quote(bundle: Bundle, pickup_at: datetime, pickup: int, dropoff: int, row: list[float]) -> dict[str, Any]:
    """The response body of one priced trip."""
    return {
        "pickup_at": pickup_at.isoformat(),
        "pickup": bundle.zones.zones[pickup].as_dict(),
        "dropoff": bundle.zones.zones[dropoff].as_dict(),
        **_priced(row),
        "taxi_tariff_from": tariff_used(bundle, pickup_at),
        "model_version": bundle.version,
        "trained_window": window_of(bundle),
        "data_source": source_of(bundle),
        "warnings": trip_warnings(bundle, pickup, dropoff, pickup_at),
    }


NOT_FINITE = "the model could not price this trip (no finite prediction)"


def quote_one(bundle: Bundle, request: QuoteRequest) -> dict[str, Any]:
    """Price one trip on its own (the HTTP route batches concurrent trips instead); raises PlaceError."""
    pickup_at, pickup, dropoff = prepare_quote(bundle, request)
    values, ok = price_rows(predict(bundle, [pickup_at], [pickup], [dropoff]))
    if not ok[0]:
        raise PlaceError(NOT_FINITE)
    return build_quote(bundle, pickup_at, pickup, dropoff, values[0])


def _resolve_column(zones: ZoneIndex, places: list[dict[str, Any]], role: str, errors: dict[int, str]) -> np.ndarray:
    """Zone ids for one side of a batch: ids by dict, names cached per distinct text, points in one STRtree query."""
    ids = np.full(len(places), -1, dtype=np.int64)
    names: dict[str, int | str] = {}
    point_rows = []
    for i, place in enumerate(places):
        if "zone_id" in place:
            if place["zone_id"] in zones.zones:
                ids[i] = place["zone_id"]
            else:
                errors.setdefault(i, f"{role}: unknown zone_id {place['zone_id']}")
        elif "zone" in place:
            name = place["zone"]
            if name not in names:
                try:
                    names[name] = zones.by_name(name).zone_id
                except PlaceError as exc:
                    names[name] = f"{role}: {exc}"
            found = names[name]
            if isinstance(found, int):
                ids[i] = found
            else:
                errors.setdefault(i, found)
        else:
            point_rows.append(i)
    if point_rows:
        lats = np.array([places[i]["lat"] for i in point_rows], dtype=float)
        lons = np.array([places[i]["lon"] for i in point_rows], dtype=float)
        found_ids = zones.at_points(lats, lons)
        for i, zid, lat, lon in zip(point_rows, found_ids.tolist(), lats.tolist(), lons.tolist(), strict=True):
            if zid < 0:
                errors.setdefault(i, f"{role}: the point lat={lat}, lon={lon} is outside every NYC taxi zone")
            else:
                ids[i] = zid
    return ids


def _flagged(bundle: Bundle, times: np.ndarray, pickups: np.ndarray, dropoffs: np.ndarray) -> np.ndarray:
    """Rows that need warnings (same zone, unknown-location zone, far outside the window), found without a loop."""
    first, last = bundle.window
    days = times.astype("datetime64[D]")
    outside = (days > np.datetime64(last + WINDOW_SLACK)) | (days < np.datetime64(first - WINDOW_SLACK))
    odd = bundle.odd_zone_ids
    return (pickups == dropoffs) | outside | np.isin(pickups, odd) | np.isin(dropoffs, odd)


# One priced trip of a batch as JSON text (the BatchQuote contract, keys in schema order). The numbers are orjson's own
# text, cut from one array per column: building text, not 10,000 dicts, halves the time and spares the GC.
_QUOTE_JSON = (
    '{"index":%d,"pickup_zone_id":%d,"dropoff_zone_id":%d,'
    '"taxi":{"fare":%s,"low":%s,"high":%s},"uber":{"fare":%s,"low":%s,"high":%s},'
    '"cheaper":"%s","answer":"%s","answer_reason":%s,"savings":%s,"p_uber_cheaper":%s,"uber_stale_months":%d,'
    '"warnings":%s}'
)
_REASONS_JSON = [orjson.dumps(reason).decode() for reason in SAME_REASONS]


@dataclass(frozen=True)
class BatchResult:
    """A priced batch: the response body (JSON bytes) and the counts the metrics need."""

    body: bytes
    count: int
    uber_cheaper: int
    errors: int


def _quotes_json(
    bundle: Bundle,
    rows: list[int],
    times: list[datetime],
    pickups: np.ndarray,
    dropoffs: np.ndarray,
    values: np.ndarray,
    flagged: np.ndarray,
) -> str:
    """The `quotes` array's items, comma-joined, straight from columns (warnings only computed for flagged rows)."""
    if not rows:
        return ""
    pu, do = pickups.tolist(), dropoffs.tolist()
    columns = np.ascontiguousarray(values[:, :8].T)
    text = [orjson.dumps(col, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].decode().split(",") for col in columns]
    cheaper = ["uber" if c else "taxi" for c in values[:, 8].tolist()]
    same = values[:, 10].astype(np.int64).tolist()
    answers = ["about the same" if why else c for c, why in zip(cheaper, same, strict=True)]
    reasons = [_REASONS_JSON[why] for why in same]
    stale = values[:, 9].astype(np.int64).tolist()
    notes = ["[]"] * len(rows)
    for k in np.flatnonzero(flagged).tolist():
        notes[k] = orjson.dumps(trip_warnings(bundle, pu[k], do[k], times[rows[k]])).decode()
    taxi, taxi_low, taxi_high, uber, uber_low, uber_high, p_uber, savings = text
    return ",".join(
        map(
            _QUOTE_JSON.__mod__,
            zip(
                rows,
                pu,
                do,
                taxi,
                taxi_low,
                taxi_high,
                uber,
                uber_low,
                uber_high,
                cheaper,
                answers,
                reasons,
                savings,
                p_uber,
                stale,
                notes,
                strict=True,
            ),
        )
    )


def price_batch(
    bundle: Bundle, times: list[datetime], pickups: np.ndarray, dropoffs: np.ndarray, errors: dict[int, str]
) -> BatchResult:
    """Price every trip not already in `errors` in one model call; the batch response body."""
    good = np.ones(len(times), dtype=bool)
    good[list(errors)] = False
    rows = np.flatnonzero(good)
    quotes, count, uber = "", 0, 0
    if len(rows):
        at = pd.DatetimeIndex([times[i] for i in rows.tolist()]).as_unit("us").to_numpy()
        values = price_matrix(predict(bundle, at, pickups[rows], dropoffs[rows]))
        finite = np.isfinite(values).all(axis=1)
        for i in rows[~finite].tolist():
            errors[i] = NOT_FINITE
        rows, at, values = rows[finite], at[finite], values[finite]
        pu, do = pickups[rows], dropoffs[rows]
        quotes = _quotes_json(bundle, rows.tolist(), times, pu, do, values, _flagged(bundle, at, pu, do))
        count, uber = len(rows), int(values[:, 8].sum())
    head = orjson.dumps(
        {
            "model_version": bundle.version,
            "trained_window": window_of(bundle),
            "data_source": source_of(bundle),
            "count": count,
        }
    )
    tail = orjson.dumps([{"index": i, "detail": errors[i]} for i in sorted(errors)])
    body = b"".join((head[:-1], b',"quotes":[', quotes.encode(), b'],"errors":', tail, b"}"))
    return BatchResult(body=body, count=count, uber_cheaper=uber, errors=len(errors))


def _times(bundle: Bundle, values: Sequence[datetime | None], errors: dict[int, str]) -> list[datetime]:
    times = []
    earliest, latest = supported_dates(bundle)
    for i, value in enumerate(values):
        try:
            at = to_new_york(value)
            if not earliest <= at.date() <= latest:
                check_supported(bundle, at)
            times.append(at)
        except PlaceError as exc:
            errors[i] = str(exc)
            times.append(datetime.combine(earliest, datetime.min.time()))
    return times


def quote_batch(bundle: Bundle, trips: Sequence[Mapping[str, Any]]) -> BatchResult:
    """Price trips given as objects (validated TripIn dicts); trips that cannot be priced come back in `errors`."""
    errors: dict[int, str] = {}
    times = _times(bundle, [t.get("pickup_at") for t in trips], errors)
    pickups = _resolve_column(bundle.zones, [t["pickup"] for t in trips], "pickup", errors)
    dropoffs = _resolve_column(bundle.zones, [t["dropoff"] for t in trips], "dropoff", errors)
    return price_batch(bundle, times, pickups, dropoffs, errors)


def quote_columns(
    bundle: Bundle, pickup_at: list[datetime | None], pickup_ids: list[int], dropoff_ids: list[int]
) -> BatchResult:
    """Price trips given as columns of zone ids (the fast form); unknown ids come back in `errors`."""
    errors: dict[int, str] = {}
    times = _times(bundle, pickup_at, errors)
    pickups, dropoffs = np.asarray(pickup_ids, dtype=np.int64), np.asarray(dropoff_ids, dtype=np.int64)
    known = bundle.known_zone_ids
    for role, ids in (("pickup", pickups), ("dropoff", dropoffs)):
        for i in np.flatnonzero(~np.isin(ids, known)).tolist():
            errors.setdefault(i, f"{role}: unknown zone_id {int(ids[i])}")
    return price_batch(bundle, times, pickups, dropoffs, errors)
