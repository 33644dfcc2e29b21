"""Zone lookup on the real TLC zone table and shapes: ids, names (exact, partial, ambiguous), points, search."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from api_kit import real_zones

from fares.api.zones import PlaceError, ZoneIndex

# The real TLC zone shapes (../shared) and a fitted model, served in-process or by uvicorn.
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def zones(tlc_samples) -> ZoneIndex:
    return ZoneIndex(real_zones(tlc_samples))


def test_every_zone_of_the_lookup_is_known_by_id(zones: ZoneIndex) -> None:
    assert len(zones) == 265
    assert zones.get(132).zone_name == "JFK Airport" and zones.get(132).is_airport
    with pytest.raises(PlaceError, match="unknown zone_id 999"):
        zones.get(999)


@pytest.mark.parametrize(
    ("text", "zone_id"),
    [
        ("JFK Airport", 132),
        ("jfk airport", 132),
        ("  JFK   Airport ", 132),
        ("JFK", 132),
        ("LaGuardia Airport (Queens)", 138),
        ("Times Sq", 230),
        ("Central Park", 43),
    ],
)
def test_names_resolve_to_one_zone(zones: ZoneIndex, text: str, zone_id: int) -> None:
    assert zones.by_name(text).zone_id == zone_id


def test_a_name_shared_by_two_zones_is_ambiguous_and_lists_both_ids(zones: ZoneIndex) -> None:
    with pytest.raises(PlaceError) as info:
        zones.by_name("Corona")
    assert "ambiguous" in str(info.value) and "zone_id 56" in str(info.value) and "zone_id 57" in str(info.value)


def test_an_unknown_name_suggests_close_ones(zones: ZoneIndex) -> None:
    with pytest.raises(PlaceError, match=r"unknown zone 'Midtwn'; did you mean 'Midtown"):
        zones.by_name("Midtwn")
    with pytest.raises(PlaceError, match="empty"):
        zones.by_name("   ")


def test_a_point_inside_each_shape_resolves_to_that_zone(tlc_samples, zones: ZoneIndex) -> None:
    frame = real_zones(tlc_samples).dropna(subset=["geometry_wkt"])
    inside = shapely.point_on_surface(shapely.from_wkt(frame["geometry_wkt"].to_numpy()))
    found = zones.at_points(shapely.get_y(inside), shapely.get_x(inside))
    assert (found == frame["zone_id"].to_numpy()).mean() == 1.0
    assert len(found) == 263


def test_landmarks_and_the_ocean(zones: ZoneIndex) -> None:
    assert zones.at_point(40.6413, -73.7781).zone_id == 132  # JFK terminal 4
    assert zones.at_point(40.7580, -73.9855).zone_id == 230  # Times Square
    with pytest.raises(PlaceError, match="outside every NYC taxi zone"):
        zones.at_point(40.40, -73.60)  # Atlantic, south of Long Beach
    assert zones.at_points(np.array([0.0, 40.7580]), np.array([0.0, -73.9855])).tolist() == [-1, 230]


def test_search_puts_name_prefixes_first_and_honours_the_limit(zones: ZoneIndex) -> None:
    assert [z.zone_id for z in zones.search("airport", 10)] == [132, 138, 1]
    assert [z.zone_name for z in zones.search("upper east", 5)] == ["Upper East Side North", "Upper East Side South"]
    assert len(zones.search("", 7)) == 7
    assert [z.zone_id for z in zones.search("132", 5)] == [132]
    assert zones.search("no such place", 5) == []
