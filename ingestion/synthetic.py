"""A synthetic TLC-shaped mirror (trip parquet files, zone lookup, zone shapefile) for `make demo` and tests."""

from __future__ import annotations

import csv
import io
import logging
import zipfile
from pathlib import Path

import numpy as np

from fares.ingestion.months import parse_months
from fares.ingestion.provenance import SYNTHETIC_KEY, write_manifest
from fares.ingestion.synthetic_trips import SEED_FILE, make_fhvhv_month, make_yellow_month

log = logging.getLogger(__name__)

# The real file's projection text (NAD83 / New York Long Island, US feet = EPSG:2263).
PRJ_WKT = (
    'PROJCS["NAD_1983_StatePlane_New_York_Long_Island_FIPS_3104_Feet",GEOGCS["GCS_North_American_1983",'
    'DATUM["D_North_American_1983",SPHEROID["GRS_1980",6378137.0,298.257222101]],PRIMEM["Greenwich",0.0],'
    'UNIT["Degree",0.0174532925199433]],PROJECTION["Lambert_Conformal_Conic"],PARAMETER["False_Easting",984250.0],'
    'PARAMETER["False_Northing",0.0],PARAMETER["Central_Meridian",-74.0],'
    'PARAMETER["Standard_Parallel_1",40.66666666666666],PARAMETER["Standard_Parallel_2",41.03333333333333],'
    'PARAMETER["Latitude_Of_Origin",40.16666666666666],UNIT["Foot_US",0.3048006096012192]]'
)
# The real shapefile's LocationID quirk (OBJECTID is the reliable id): 57 says 56, 104 and 105 say 103.
_LOCATION_ID_QUIRK = {57: 56, 104: 103, 105: 103}


def _seed_rows() -> list[dict[str, str]]:
    with SEED_FILE.open(newline="") as fh:
        return list(csv.DictReader(fh))


def write_zone_lookup(dest: Path) -> Path:
    """taxi_zone_lookup.csv as the TLC publishes it (265 rows, quoted)."""
    path = dest / "taxi_zone_lookup.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_NONNUMERIC)
        writer.writerow(["LocationID", "Borough", "Zone", "service_zone"])
        for row in _seed_rows():
            writer.writerow([int(row["location_id"]), row["borough"], row["zone"], row["service_zone"]])
    return path


def _polygon(rng: np.random.Generator, x: float, y: float, radius: float) -> list[list[float]]:
    """A closed, clockwise, irregular polygon around (x, y) in feet."""
    corners = int(rng.integers(7, 12))
    angles = np.sort(rng.uniform(0, 2 * np.pi, corners))[::-1]  # descending angle = clockwise ring
    radii = radius * rng.uniform(0.75, 1.2, corners)
    ring = [[float(x + r * np.cos(a)), float(y + r * np.sin(a))] for a, r in zip(angles, radii, strict=True)]
    return [*ring, ring[0]]


def write_zone_shapes(dest: Path, seed: int = 42) -> Path:
    """taxi_zones.zip: a shapefile in EPSG:2263 with one plausible polygon per zone around its real centroid."""
    import shapefile
    from pyproj import Transformer

    to_feet = Transformer.from_crs("EPSG:4326", "EPSG:2263", always_xy=True)
    rng = np.random.default_rng([seed, 2263])
    shp, shx, dbf = io.BytesIO(), io.BytesIO(), io.BytesIO()
    with shapefile.Writer(shp=shp, shx=shx, dbf=dbf, shapeType=shapefile.POLYGON) as writer:
        writer.field("OBJECTID", "N", 9, 0)
        writer.field("Shape_Leng", "F", 19, 11)
        writer.field("Shape_Area", "F", 19, 11)
        writer.field("zone", "C", 254)
        writer.field("LocationID", "N", 4, 0)
        writer.field("borough", "C", 254)
        for row in _seed_rows():
            if not row["centroid_lat"]:
                continue  # 264/265 (unknown / outside NYC) have no shape, as in the real file
            zone_id = int(row["location_id"])
            x, y = to_feet.transform(float(row["centroid_lon"]), float(row["centroid_lat"]))
            radius = float(row["radius_ft"])
            writer.poly([_polygon(rng, x, y, radius)])
            writer.record(
                zone_id,
                2 * np.pi * radius,
                np.pi * radius**2,
                row["zone"],
                _LOCATION_ID_QUIRK.get(zone_id, zone_id),
                row["borough"],
            )
    path = dest / "taxi_zones.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for ext, buf in (("shp", shp), ("shx", shx), ("dbf", dbf)):
            zf.writestr(f"taxi_zones/taxi_zones.{ext}", buf.getvalue())
        zf.writestr("taxi_zones/taxi_zones.prj", PRJ_WKT)
    return path


def write_mirror(
    dest: Path, months: list[str], rows_per_month: int = 20_000, seed: int = 42, row_group_size: int = 250_000
) -> list[Path]:
    """Write a TLC-shaped mirror into `dest`: yellow and fhvhv parquet per month, the zone lookup and shapes.

    Every trip file says it is synthetic in its parquet metadata, and the folder's manifest says so too, so a model
    trained on it is labelled synthetic wherever the files travel (a folder, or an HTTP server).

    Args:
        months: "YYYY-MM" items or ranges ("2024-01..2024-03").
        rows_per_month: trips per month and kind.
        seed: same seed, same files (each month draws from its own stream, whatever else is requested).
        row_group_size: rows per parquet row group (small ones make a many-row-group file for range-read tests).

    Returns:
        The paths written.
    """
    import pyarrow.parquet as pq

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = [write_zone_lookup(dest), write_zone_shapes(dest, seed)]
    wanted = parse_months(months)
    for month in wanted:
        for kind, make in (("yellow", make_yellow_month), ("fhvhv", make_fhvhv_month)):
            path = dest / f"{kind}_tripdata_{month}.parquet"
            tmp = path.with_name(f".{path.name}.part")
            table = make(month, rows_per_month, seed)
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), SYNTHETIC_KEY.encode(): b"1"})
            pq.write_table(table, tmp, row_group_size=row_group_size)
            tmp.replace(path)
            written.append(path)
    write_manifest(dest, {"kind": "synthetic", "location": str(dest), "months": wanted, "seed": seed})
    log.info("wrote a synthetic TLC mirror of %d file(s) to %s", len(written), dest)
    return written
