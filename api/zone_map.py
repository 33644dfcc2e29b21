"""The taxi zones as SVG paths for the web page's map, drawn from the model bundle's zone shapes (no tiles, no
network): an equirectangular projection at New York's latitude, simplified to a few metres."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

WIDTH = 1000.0  # SVG user units across the map; the height follows from the zones' extent
SIMPLIFY_DEGREES = 0.0002  # ~20 m: invisible at city scale, and it makes the page's shapes ~5x smaller
_NYC_LAT = 40.7


def _rings(geom: Any) -> list[Any]:
    polygons = list(geom.geoms) if hasattr(geom, "geoms") else [geom]
    rings = []
    for poly in polygons:
        if poly.is_empty or not hasattr(poly, "exterior"):
            continue
        rings.append(poly.exterior)
        rings.extend(poly.interiors)
    return rings


def build_zone_map(zones: pd.DataFrame) -> dict[str, Any]:
    """{"view_box": "0 0 W H", "zones": [{"zone_id", "zone_name", "borough", "path", "x", "y"}]} for every zone with a
    shape; `path` is SVG path data (holes use the even-odd rule), (x, y) a label point inside the zone."""
    import shapely

    if "geometry_wkt" not in zones:
        return {"view_box": f"0 0 {WIDTH:g} {WIDTH:g}", "zones": []}
    shaped = zones[zones["geometry_wkt"].notna() & (zones["geometry_wkt"].astype(str).str.len() > 0)]
    geoms = shapely.from_wkt(shaped["geometry_wkt"].astype(str).to_numpy(), on_invalid="ignore")
    keep = [g is not None and not g.is_empty for g in geoms]
    shaped, geoms = shaped[keep], geoms[keep]
    if not len(geoms):
        return {"view_box": f"0 0 {WIDTH:g} {WIDTH:g}", "zones": []}
    geoms = shapely.simplify(geoms, SIMPLIFY_DEGREES, preserve_topology=True)
    min_x, min_y, max_x, max_y = shapely.total_bounds(geoms)
    x_scale = math.cos(math.radians(_NYC_LAT))
    scale = WIDTH / ((max_x - min_x) * x_scale)
    height = (max_y - min_y) * scale

    def xy(lon: float, lat: float) -> str:
        return f"{(lon - min_x) * x_scale * scale:.1f} {(max_y - lat) * scale:.1f}"

    out = []
    for row, geom in zip(shaped.itertuples(index=False), geoms, strict=True):
        parts = []
        for ring in _rings(geom):
            coords = list(ring.coords)[:-1]
            if len(coords) >= 3:
                parts.append("M" + "L".join(xy(lon, lat) for lon, lat in coords) + "Z")
        point = shapely.point_on_surface(geom)
        px, py = xy(point.x, point.y).split()
        out.append(
            {
                "zone_id": int(row.zone_id),
                "zone_name": str(row.zone_name),
                "borough": str(row.borough),
                "path": "".join(parts),
                "x": float(px),
                "y": float(py),
            }
        )
    return {"view_box": f"0 0 {WIDTH:g} {height:.0f}", "zones": out}
