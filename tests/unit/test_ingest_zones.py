"""Zone files: the errors a user sees for junk rows, a wrong header and an unusable shapefile zip."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fares.ingestion.zones import ZoneFileError, read_zone_shapes, read_zone_table

HEADER = '"LocationID","Borough","Zone","service_zone"\n'


def _csv(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "taxi_zone_lookup.csv"
    path.write_text(header + body)
    return path


def test_good_rows_become_zones(tmp_path: Path) -> None:
    rows = read_zone_table(_csv(tmp_path, '1,"EWR","Newark Airport","EWR"\n132,"Queens","JFK Airport","Airports"\n'))
    assert rows[1] == {"location_id": 132, "borough": "Queens", "zone": "JFK Airport", "service_zone": "Airports"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('1,"EWR","Newark Airport","EWR"\nabc,"x","y","z"\n', "line 3: LocationID 'abc' is not a zone id"),
        ('1,"EWR","Newark Airport","EWR"\n1,"EWR","Again","EWR"\n', "line 3: LocationID 1 appears twice"),
        ('1,"EWR","Newark Airport"\n', "line 2: expected 4 fields"),
        ("", "no zones in the file"),
    ],
)
def test_junk_rows_are_named(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ZoneFileError, match=f"taxi_zone_lookup.csv: ?{message}|taxi_zone_lookup.csv {message}"):
        read_zone_table(_csv(tmp_path, body))


def test_wrong_header_is_named(tmp_path: Path) -> None:
    with pytest.raises(ZoneFileError, match="missing column\\(s\\) service_zone"):
        read_zone_table(_csv(tmp_path, '1,"EWR","Newark Airport"\n', header='"LocationID","Borough","Zone"\n'))


def test_unusable_zip_is_named(tmp_path: Path) -> None:
    path = tmp_path / "taxi_zones.zip"
    path.write_bytes(b"PK not really a zip")
    with pytest.raises(ZoneFileError, match=re.escape("taxi_zones.zip: cannot read the zone shapefile")):
        read_zone_shapes(path)
