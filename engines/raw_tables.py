"""The raw layer's contract: the raw trip table of each TLC kind and its pinned columns (Arrow types).

Every file, old or new, is cast to exactly these by ingestion (`fares.ingestion.schema.conform`); each engine stores
them as they are (PostgreSQL partitions, the Spark lake's parquet tables).
"""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("us")

# Pinned column types: every file, old or new, is cast to exactly these (no dlt variant columns).
YELLOW_COLUMNS: dict[str, pa.DataType] = {
    "vendor_id": pa.int64(),
    "tpep_pickup_datetime": TS,
    "tpep_dropoff_datetime": TS,
    "passenger_count": pa.float64(),
    "trip_distance": pa.float64(),
    "ratecode_id": pa.float64(),
    "store_and_fwd_flag": pa.string(),
    "pu_location_id": pa.int64(),
    "do_location_id": pa.int64(),
    "payment_type": pa.int64(),
    "fare_amount": pa.float64(),
    "extra": pa.float64(),
    "mta_tax": pa.float64(),
    "tip_amount": pa.float64(),
    "tolls_amount": pa.float64(),
    "improvement_surcharge": pa.float64(),
    "total_amount": pa.float64(),
    "congestion_surcharge": pa.float64(),
    "airport_fee": pa.float64(),
    "cbd_congestion_fee": pa.float64(),
}

FHVHV_COLUMNS: dict[str, pa.DataType] = {
    "hvfhs_license_num": pa.string(),
    "dispatching_base_num": pa.string(),
    "originating_base_num": pa.string(),
    "request_datetime": TS,
    "on_scene_datetime": TS,
    "pickup_datetime": TS,
    "dropoff_datetime": TS,
    "pu_location_id": pa.int64(),
    "do_location_id": pa.int64(),
    "trip_miles": pa.float64(),
    "trip_time": pa.int64(),
    "base_passenger_fare": pa.float64(),
    "tolls": pa.float64(),
    "bcf": pa.float64(),
    "sales_tax": pa.float64(),
    "congestion_surcharge": pa.float64(),
    "airport_fee": pa.float64(),
    "tips": pa.float64(),
    "driver_pay": pa.float64(),
    "cbd_congestion_fee": pa.float64(),
    "shared_request_flag": pa.string(),
    "shared_match_flag": pa.string(),
    "access_a_ride_flag": pa.string(),
    "wav_request_flag": pa.string(),
    "wav_match_flag": pa.string(),
}

LINEAGE_COLUMNS: dict[str, pa.DataType] = {"source_file": pa.string(), "source_month": pa.string()}

TRIP_COLUMNS: dict[str, dict[str, pa.DataType]] = {"yellow": YELLOW_COLUMNS, "fhvhv": FHVHV_COLUMNS}

TABLES = {"yellow": "yellow_trips", "fhvhv": "fhvhv_trips"}
