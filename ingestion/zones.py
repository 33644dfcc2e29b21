"""The zone table (taxi_zone_lookup.csv) and the zone shapes (taxi_zones.zip, EPSG:2263) as raw rows."""

from __future__ import annotations

import csv
import io
import logging
import zipfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ZONE_COLUMNS = ("LocationID", "Borough", "Zone", "service_zone")
SHAPES_CRS = "EPSG:2263"


class ZoneFileError(ValueError):
    """A zone file is unreadable or has rows that are not zones."""


def read_zone_table(path: Path) -> list[dict[str, Any]]:
    """Rows of raw.zones from the lookup CSV; raise ZoneFileError naming the file and line of any junk row."""
    name = path.name
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ZoneFileError(f"{name}: cannot read: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ZONE_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ZoneFileError(f"{name}: missing column(s) {', '.join(missing)} (header: {reader.fieldnames})")
    rows: list[dict[str, Any]] = []
    seen: set[int] = set()
    for row in reader:
        line = reader.line_num
        raw_id = (row.get("LocationID") or "").strip()
        if not raw_id.isdigit() or not 1 <= int(raw_id) <= 999:
            raise ZoneFileError(f"{name} line {line}: LocationID {raw_id!r} is not a zone id")
        if int(raw_id) in seen:
            raise ZoneFileError(f"{name} line {line}: LocationID {raw_id} appears twice")
        if None in row or any(row.get(c) is None for c in ZONE_COLUMNS):
            raise ZoneFileError(f"{name} line {line}: expected {len(ZONE_COLUMNS)} fields")
        seen.add(int(raw_id))
        rows.append(
            {
                "location_id": int(raw_id),
                "borough": row["Borough"].strip(),
                "zone": row["Zone"].strip(),
                "service_zone": row["service_zone"].strip(),
            }
        )
    if not rows:
        raise ZoneFileError(f"{name}: no zones in the file")
    return rows


def _open_shapefile(zf: zipfile.ZipFile, name: str) -> Any:
    import shapefile

    members = {Path(m).suffix.lower(): m for m in zf.namelist() if not m.startswith("__MACOSX")}
    if ".shp" not in members or ".dbf" not in members:
        raise ZoneFileError(f"{name}: no .shp/.dbf inside the zip")
    shx = io.BytesIO(zf.read(members[".shx"])) if ".shx" in members else None
    return shapefile.Reader(shp=io.BytesIO(zf.read(members[".shp"])), dbf=io.BytesIO(zf.read(members[".dbf"])), shx=shx)


def read_zone_shapes(path: Path) -> list[dict[str, Any]]:
    """Rows of raw.zone_shapes: OBJECTID as location_id, WGS84 centroid and polygon WKT, from a zipped shapefile."""
    import numpy as np
    import shapely
    from pyproj import Transformer
    from shapely.geometry import shape as to_geometry

    name = path.name
    to_wgs84 = Transformer.from_crs(SHAPES_CRS, "EPSG:4326", always_xy=True)

    def project(coords: Any) -> Any:
        lon, lat = to_wgs84.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    try:
        with zipfile.ZipFile(path) as zf:
            reader = _open_shapefile(zf, name)
            fields = [f[0] for f in reader.fields[1:]]
            rows = []
            for rec, shp in zip(reader.iterRecords(), reader.iterShapes(), strict=True):
                attrs = dict(zip(fields, rec, strict=True))
                geom = to_geometry(shp.__geo_interface__)
                if not geom.is_valid:
                    geom = shapely.make_valid(geom)
                centroid = geom.centroid  # in feet: planar centroid is exact there
                clon, clat = to_wgs84.transform(centroid.x, centroid.y)
                rows.append(
                    {
                        "location_id": int(attrs["OBJECTID"]),
                        "zone": str(attrs.get("zone", "")).strip(),
                        "borough": str(attrs.get("borough", "")).strip(),
                        "centroid_lat": float(clat),
                        "centroid_lon": float(clon),
                        "geometry_wkt": shapely.to_wkt(shapely.transform(geom, project), rounding_precision=6),
                    }
                )
    except ZoneFileError:
        raise
    except Exception as exc:
        raise ZoneFileError(f"{name}: cannot read the zone shapefile: {exc}") from exc
    if not rows:
        raise ZoneFileError(f"{name}: the shapefile has no shapes")
    return rows
