"""Request and response bodies of the API (pydantic); they are the OpenAPI contract."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator, with_config
from typing_extensions import TypedDict

MAX_BATCH = 10_000
ZoneIdInt = Annotated[int, Field(ge=0, le=1_000_000, description="TLC LocationID (1-265)")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ZoneIdPlace(_Strict):
    """A place given as a TLC zone id."""

    zone_id: ZoneIdInt = Field(examples=[132])


class ZoneNamePlace(_Strict):
    """A place given as a zone name: exact, `Name (Borough)`, or an unambiguous part of one."""

    zone: str = Field(min_length=1, max_length=200, examples=["JFK Airport"])


class PointPlace(_Strict):
    """A place given as WGS84 coordinates; resolved to the zone whose shape holds it."""

    lat: float = Field(ge=-90, le=90, examples=[40.7580])
    lon: float = Field(ge=-180, le=180, examples=[-73.9855])


_PLACE_ERROR = 'a place is {"zone_id": N}, {"zone": "name"} or {"lat": ..., "lon": ...}'


def _place_kind(value: Any) -> str | None:
    """Which place form a body uses, so errors speak about that form only. Called once per place of a batch (20,000
    times for a full one): a parsed JSON object is tested first, with plain key lookups."""
    if type(value) is dict:
        if "zone_id" in value:
            return "zone_id"
        if "zone" in value:
            return "zone"
        return "point" if "lat" in value or "lon" in value else None
    if isinstance(value, BaseModel):
        return {ZoneIdPlace: "zone_id", ZoneNamePlace: "zone", PointPlace: "point"}.get(type(value))
    if isinstance(value, dict):
        return _place_kind(dict(value))
    return None


Place = Annotated[
    Annotated[ZoneIdPlace, Tag("zone_id")]
    | Annotated[ZoneNamePlace, Tag("zone")]
    | Annotated[PointPlace, Tag("point")],
    Discriminator(_place_kind, custom_error_type="place_form", custom_error_message=_PLACE_ERROR),
    Field(description="zone_id, zone name, or lat/lon"),
]


class QuoteRequest(_Strict):
    """One trip to price."""

    pickup_at: datetime | None = Field(
        default=None,
        description="Pickup time, ISO 8601; naive means New York time; omitted means now.",
        examples=["2024-03-15T08:30:00"],
    )
    pickup: Place
    dropoff: Place


# The batch's trips are TypedDicts, not models: same JSON schema, but validating 10,000 of them is ~10x faster.
_FORBID = ConfigDict(extra="forbid")


@with_config(_FORBID)
class ZoneIdRef(TypedDict):
    """A batch place given as a TLC zone id."""

    zone_id: ZoneIdInt


@with_config(_FORBID)
class ZoneNameRef(TypedDict):
    """A batch place given as a zone name."""

    zone: Annotated[str, Field(min_length=1, max_length=200)]


@with_config(_FORBID)
class PointRef(TypedDict):
    """A batch place given as WGS84 coordinates."""

    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]


PlaceRef = Annotated[
    Annotated[ZoneIdRef, Tag("zone_id")] | Annotated[ZoneNameRef, Tag("zone")] | Annotated[PointRef, Tag("point")],
    Discriminator(_place_kind, custom_error_type="place_form", custom_error_message=_PLACE_ERROR),
]


@with_config(_FORBID)
class TripIn(TypedDict):
    """One trip of a batch (the same fields as a single quote request)."""

    pickup_at: NotRequired[datetime | None]
    pickup: PlaceRef
    dropoff: PlaceRef


class BatchColumns(_Strict):
    """Trips as three equally long columns of zone ids and times: the fastest form for large batches."""

    pickup_at: list[datetime | None] = Field(
        min_length=1, max_length=MAX_BATCH, description="ISO times, naive means New York; null means now"
    )
    pickup_zone_id: list[ZoneIdInt] = Field(min_length=1, max_length=MAX_BATCH)
    dropoff_zone_id: list[ZoneIdInt] = Field(min_length=1, max_length=MAX_BATCH)

    @model_validator(mode="after")
    def _same_length(self) -> BatchColumns:
        sizes = {len(self.pickup_at), len(self.pickup_zone_id), len(self.dropoff_zone_id)}
        if len(sizes) != 1:
            raise ValueError(
                f"pickup_at, pickup_zone_id and dropoff_zone_id must have the same length, got {sorted(sizes)}"
            )
        return self


class BatchRequest(_Strict):
    """Up to 10,000 trips priced in one vectorised call: either `trips` (objects) or `columns` (zone-id columns)."""

    trips: list[TripIn] | None = Field(default=None, min_length=1, max_length=MAX_BATCH)
    columns: BatchColumns | None = None

    @model_validator(mode="after")
    def _one_form(self) -> BatchRequest:
        if (self.trips is None) == (self.columns is None):
            raise ValueError("give exactly one of `trips` (a list of trips) or `columns` (zone-id columns)")
        return self


class Price(BaseModel):
    """One service's expected fare and its likely range, in dollars before tip."""

    fare: float
    low: float
    high: float


class ZoneOut(BaseModel):
    """A zone as resolved from the request."""

    zone_id: int
    zone_name: str
    borough: str
    service_zone: str
    is_airport: bool
    centroid_lat: float | None = None
    centroid_lon: float | None = None


class TrainedWindow(BaseModel):
    """The trip dates the model learned from."""

    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", serialization_alias="from")
    to: str


class DataSource(BaseModel):
    """What the model in service learned from."""

    kind: Literal["tlc", "synthetic", "files", "mixed", "unknown"] = Field(
        description="tlc: the TLC's trip records; synthetic: generated TLC-shaped trips (not real fares); "
        "files: TLC-shaped files from a folder; mixed: several of these"
    )
    synthetic: bool = Field(description="True when some training trips were synthetic: the fares are not real")
    label: str = Field(description="The source in a few words", examples=["TLC trip records 2025-09 (sample: ...)"])
    months: list[str] = Field(description="Months of trips loaded (YYYY-MM)")
    sample: dict[str, float] = Field(description="Fraction of each published file kept (yellow, fhvhv); {} = whole")


class QuoteResponse(BaseModel):
    """Both fares for one trip, which is cheaper, by how much, and how sure the model is."""

    pickup_at: str = Field(description="The pickup time used, New York wall-clock time")
    pickup: ZoneOut
    dropoff: ZoneOut
    taxi: Price
    uber: Price
    cheaper: Literal["taxi", "uber"]
    answer: Literal["taxi", "uber", "about the same"] = Field(
        description='The call: "about the same" when the expected fares differ by less than $1 or 5%, or when the '
        "data cannot tell which is cheaper (their bands overlap too much, or the Uber price level is stale and its "
        "band, widened by how far Uber's prices move over that long, overlaps the taxi's)"
    )
    answer_reason: str | None = Field(
        description='Why the answer is "about the same" (fares close, bands overlapping, or a stale Uber level); '
        "null when it names a service"
    )
    savings: float = Field(description="Dollars saved by taking the cheaper one (expected fares)")
    p_uber_cheaper: float = Field(ge=0, le=1)
    uber_stale_months: int = Field(
        description="Months between pickup_at and the newest month whose Uber price level is known (0 = current)"
    )
    taxi_tariff_from: str | None = Field(description="First day of the taxi rate-card period the taxi fare applies")
    model_version: str
    trained_window: TrainedWindow
    data_source: DataSource
    warnings: list[str]


class BatchQuote(BaseModel):
    """One priced trip of a batch."""

    index: int
    pickup_zone_id: int
    dropoff_zone_id: int
    taxi: Price
    uber: Price
    cheaper: Literal["taxi", "uber"]
    answer: Literal["taxi", "uber", "about the same"]
    answer_reason: str | None
    savings: float
    p_uber_cheaper: float
    uber_stale_months: int
    warnings: list[str]


class BatchError(BaseModel):
    """A trip of a batch that could not be priced, and why."""

    index: int
    detail: str


class BatchResponse(BaseModel):
    """Prices for every trip that could be priced, errors for the others."""

    model_version: str
    trained_window: TrainedWindow
    data_source: DataSource
    count: int
    quotes: list[BatchQuote]
    errors: list[BatchError]


class ModelOut(BaseModel):
    """The model in service."""

    model_version: str
    trained_window: TrainedWindow
    data_source: DataSource
    metrics: dict[str, Any]
    loaded_at: str
    zones: int
    models_dir: str


class MapZone(BaseModel):
    """One zone on the page's map."""

    zone_id: int
    zone_name: str
    borough: str
    path: str = Field(description="SVG path data in the map's view box (even-odd fill rule)")
    x: float = Field(description="A point inside the zone, for a label")
    y: float


class ZoneMap(BaseModel):
    """The taxi zones as SVG paths, from the model bundle's zone shapes."""

    view_box: str = Field(examples=["0 0 1000 996"])
    zones: list[MapZone]


class SchedulerOut(BaseModel):
    """The daemon as its heartbeat shows it: `none` before any daemon beat on this database, `unknown` when the
    database cannot be read, `dead` without a beat for FARES_HEARTBEAT_TIMEOUT_SECONDS, `late` when no run succeeded
    for FARES_ALERT_STALE_HOURS."""

    status: Literal["ok", "late", "dead", "none", "unknown"]
    reason: str | None = None
    host: str | None = None
    pid: int | None = None
    started_at: datetime | None = None
    beat_at: datetime | None = None
    seconds_since_beat: float | None = None
    next_run_at: datetime | None = None
    last_success_at: datetime | None = None


class HealthOut(BaseModel):
    """Liveness and what works: the model, the database, the scheduler."""

    status: Literal["ok", "degraded"]
    model_loaded: bool
    model_version: str | None
    database_reachable: bool
    database_error: str | None = None
    model_error: str | None = None
    scheduler: SchedulerOut


class ReloadOut(BaseModel):
    """Result of an admin reload or promote."""

    model_version: str | None
    changed: bool


class Problem(BaseModel):
    """An error body: what went wrong, in words."""

    detail: Any
