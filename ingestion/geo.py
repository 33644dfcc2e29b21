"""Great-circle distance: the one Python definition (dbt's macros/haversine_miles.sql is the SQL one that features use).

Python needs it only to generate synthetic data (ingestion.synthetic_trips, ml.simulate) and in tests; model features
read dbt's `dim_zone_pairs.centroid_distance_miles`.
"""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_MILES = 3958.8


def haversine_miles(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Great-circle distance in miles between WGS84 points (NaN where a point is unknown); arrays broadcast."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_MILES * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
