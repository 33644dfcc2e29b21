"""Zone lookup from the model bundle's zones snapshot: by id, name, search text or point (shapely STRtree)."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

_SPACES = re.compile(r"\s+")
_SUFFIX = re.compile(r"^(?P<name>.+?)\s*(?:\((?P<b1>[^()]+)\)|,\s*(?P<b2>[^,]+))$")


class PlaceError(ValueError):
    """A pickup or dropoff that cannot be resolved to exactly one zone (shown to the caller as a 422)."""


@dataclass(frozen=True)
class ZoneInfo:
    """One TLC taxi zone as the API shows it."""

    zone_id: int
    zone_name: str
    borough: str
    service_zone: str
    is_airport: bool
    centroid_lat: float | None
    centroid_lon: float | None

    def label(self) -> str:
        """`Zone name (Borough)`, the form the web page lists."""
        return f"{self.zone_name} ({self.borough})"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "zone_id": self.zone_id,
            "zone_name": self.zone_name,
            "borough": self.borough,
            "service_zone": self.service_zone,
            "is_airport": self.is_airport,
            "centroid_lat": self.centroid_lat,
            "centroid_lon": self.centroid_lon,
        }


def _norm(text: str) -> str:
    return _SPACES.sub(" ", text.strip().casefold())


def _opt_float(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 6)


def _text(value: Any) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


class ZoneIndex:
    """Immutable lookups over one zones snapshot; built once per loaded model."""

    def __init__(self, zones: pd.DataFrame) -> None:
        import shapely

        self.zones: dict[int, ZoneInfo] = {}
        for row in zones.itertuples(index=False):
            zid = int(row.zone_id)
            self.zones[zid] = ZoneInfo(
                zone_id=zid,
                zone_name=_text(row.zone_name),
                borough=_text(row.borough),
                service_zone=_text(row.service_zone),
                is_airport=bool(row.is_airport) if not pd.isna(row.is_airport) else False,
                centroid_lat=_opt_float(row.centroid_lat),
                centroid_lon=_opt_float(row.centroid_lon),
            )
        self._by_name: dict[str, list[ZoneInfo]] = {}
        self._by_label: dict[str, list[ZoneInfo]] = {}
        for info in self.zones.values():
            self._by_name.setdefault(_norm(info.zone_name), []).append(info)
            self._by_label.setdefault(_norm(info.label()), []).append(info)
        wkts = zones["geometry_wkt"] if "geometry_wkt" in zones else pd.Series([None] * len(zones))
        has_shape = wkts.notna().to_numpy() & (wkts.astype("string").fillna("").str.len() > 0).to_numpy()
        self._shape_ids = zones["zone_id"].to_numpy()[has_shape].astype(np.int64)
        self._shapes = shapely.from_wkt(wkts[has_shape].astype(str).to_numpy(), on_invalid="ignore")
        self._tree = shapely.STRtree(self._shapes)
        self._ids_sorted = sorted(self.zones.values(), key=lambda z: (z.zone_name.casefold(), z.zone_id))

    def __len__(self) -> int:
        return len(self.zones)

    def get(self, zone_id: int) -> ZoneInfo:
        """The zone with this id, or PlaceError."""
        try:
            return self.zones[zone_id]
        except KeyError:
            raise PlaceError(
                f"unknown zone_id {zone_id}: zone ids run from {min(self.zones)} to {max(self.zones)}; "
                "see GET /v1/zones"
            ) from None

    def by_name(self, name: str) -> ZoneInfo:
        """The one zone this name means: exact name, `Name (Borough)`, or a unique part of a name."""
        key = _norm(name)
        if not key:
            raise PlaceError("zone name is empty")
        for table in (self._by_label, self._by_name):
            if key in table:
                return self._one(name, table[key])
        suffix = _SUFFIX.match(key)
        if suffix:
            borough = suffix.group("b1") or suffix.group("b2") or ""
            hits = [z for z in self._by_name.get(_norm(suffix.group("name")), []) if _norm(z.borough) == _norm(borough)]
            if hits:
                return self._one(name, hits)
        partial = [z for z in self._ids_sorted if key in _norm(z.zone_name)]
        if partial:
            return self._one(name, partial)
        close = difflib.get_close_matches(key, list(self._by_name), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(self._by_name[c][0].zone_name) for c in close)}?" if close else ""
        raise PlaceError(f"unknown zone {name!r}{hint} (search with GET /v1/zones?q=...)")

    @staticmethod
    def _one(name: str, hits: list[ZoneInfo]) -> ZoneInfo:
        if len(hits) == 1:
            return hits[0]
        shown = ", ".join(f"{z.label()} = zone_id {z.zone_id}" for z in hits[:8])
        more = f" and {len(hits) - 8} more" if len(hits) > 8 else ""
        raise PlaceError(f"zone name {name!r} is ambiguous: {shown}{more}; give a zone_id or a longer name")

    def at_point(self, lat: float, lon: float) -> ZoneInfo:
        """The zone whose shape holds (lat, lon), or PlaceError when it is outside every zone."""
        zone_id = int(self.at_points(np.array([lat]), np.array([lon]))[0])
        if zone_id < 0:
            raise PlaceError(f"the point lat={lat}, lon={lon} is outside every NYC taxi zone")
        return self.zones[zone_id]

    def at_points(self, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
        """Zone ids for many points at once (vectorised); -1 where a point is in no zone."""
        import shapely

        out = np.full(len(lats), -1, dtype=np.int64)
        if len(lats) == 0 or len(self._shapes) == 0:
            return out
        points = shapely.points(np.asarray(lons, dtype=float), np.asarray(lats, dtype=float))
        point_idx, shape_idx = self._tree.query(points, predicate="intersects")
        # Reverse so the first hit per point (lowest tree index) wins on shared borders.
        out[point_idx[::-1]] = self._shape_ids[shape_idx[::-1]]
        return out

    def search(self, query: str | None, limit: int) -> list[ZoneInfo]:
        """Zones whose name, borough or id matches `query` (all zones when empty); name prefixes first."""
        key = _norm(query or "")
        if not key:
            return self._ids_sorted[:limit]
        if key.isdigit() and int(key) in self.zones:
            return [self.zones[int(key)]]
        scored = []
        for z in self._ids_sorted:
            name, label = _norm(z.zone_name), _norm(z.label())
            if name.startswith(key):
                scored.append((0, z))
            elif key in label or key in _norm(z.service_zone):
                scored.append((1, z))
        scored.sort(key=lambda pair: pair[0])
        return [z for _, z in scored[:limit]]
