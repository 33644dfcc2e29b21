"""The Spark engine against PostgreSQL: the same chain on the real TLC samples, compared number by number.

One Spark chain per test session (the JVM and the dbt build are the expensive part); the PostgreSQL side is the
shared `tlc_chain`. Skips with one line where pyspark or Java is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fares.config.settings import Settings
from fares.config.warehouse import Warehouse, drop_database
from fares.engines.spark_cluster import master_status
from fares.engines.spark_session import spark_missing
from tests.conftest import TLC_MONTHS, ChainRun, InterruptedWriter, _external_server, make_database

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(spark_missing() is not None, reason=f"Spark tier skipped: {spark_missing()}"),
]

MONTHS = TLC_MONTHS


@dataclass
class SparkCluster:
    """A standalone master and worker and a Thrift server, all from the pyspark wheel, on loopback."""

    status_url: str
    settings: Settings
    wh: Warehouse


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    """Started once, for this module's tests only (stopped when they are done): a master, a worker and a Thrift server
    (the compose profile's `fares spark` commands), the metastore in a fresh database on the system server (over TCP,
    which Java's driver needs)."""
    from fares.engines.spark_cluster import free_port, local_cluster, loopback_settings
    from fares.engines.spark_metastore import jdbc_driver_missing

    missing = jdbc_driver_missing(Settings(database_url=None))
    if missing:
        pytest.skip(f"Spark cluster tier skipped: {missing}")
    server = _external_server()
    if server is None:
        pytest.skip("Spark cluster tier skipped: no PostgreSQL over TCP for the shared metastore (DATABASE_URL)")
    root = tmp_path_factory.mktemp("spark_cluster")
    wh = make_database(server, "spark_cluster")
    settings = loopback_settings(wh.url(), root / "data")
    try:
        with local_cluster(settings, root / "logs", free_port()) as cluster:
            yield SparkCluster(cluster.status_url, settings, wh)
    finally:
        drop_database(server, wh.dbname)


@pytest.fixture(scope="module")
def spark_chain(spark_cluster: SparkCluster, tlc_samples: Path) -> ChainRun:
    """ingest -> dbt build (through the Thrift server) -> validate -> train (drivers on the cluster) once, on the
    standalone cluster; ops tables and the metastore in PostgreSQL."""
    from fares.chain.pipeline import run_chain

    settings = spark_cluster.settings
    return ChainRun(settings, spark_cluster.wh, run_chain(settings, source=str(tlc_samples), months=MONTHS))


@pytest.fixture(scope="module")
def tlc_chain(embedded_tlc_chain: ChainRun) -> ChainRun:
    """The reference: the same chain on the embedded PostgreSQL (compared with one server only: the PostgreSQL tiers
    show the two servers agree)."""
    return embedded_tlc_chain


def _spark_rows(run: ChainRun, sql: str) -> list[tuple[Any, ...]]:
    from fares.engines.spark_session import get_spark

    return [tuple(r) for r in get_spark(run.settings).sql(sql).collect()]


def _pg_rows(wh: Warehouse, sql: str) -> list[tuple[Any, ...]]:
    with wh.connect() as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]


def _both(spark_chain: ChainRun, tlc_chain: ChainRun, sql: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    return sorted(_spark_rows(spark_chain, sql)), sorted(_pg_rows(tlc_chain.wh, sql))


def test_raw_lake_holds_the_same_rows_per_month(spark_chain: ChainRun, tlc_chain: ChainRun) -> None:
    for table in ("raw.yellow_trips", "raw.fhvhv_trips"):
        spark, pg = _both(spark_chain, tlc_chain, f"select source_month, count(*) from {table} group by source_month")
        assert spark == pg, table
    spark, _ = _both(spark_chain, tlc_chain, "select count(*) from raw.yellow_trips")
    assert spark == [(40_000,)]


def _location(run: ChainRun, table: str, month: str) -> str:
    """Where the catalog's partition of `month` points (the partition's row comes before the table's)."""
    rows = _spark_rows(run, f"describe formatted {table} partition (source_month = '{month}')")
    return next(str(value) for name, value, _ in rows if name == "Location")


def _month_plan(dbt_output: str) -> dict[str, dict[str, str]]:
    """The months `dbt run-operation show_trip_months` printed: {month: {"raw": load id, "built": load id}}."""
    line = next(line for line in dbt_output.splitlines() if "trip months: {" in line)
    plan: dict[str, dict[str, str]] = json.loads(line.split("trip months: ", 1)[1])
    return plan


def _load_id(run: ChainRun, file: str) -> str:
    [(load_id,)] = _pg_rows(run.wh, f"select load_id from ops.ingested_files where file = '{file}'")
    return str(load_id)


def test_lake_is_parquet_partitioned_by_kind_month_and_load(spark_chain: ChainRun) -> None:
    raw = Path(spark_chain.settings.lake_location) / "raw"
    months = sorted(p.name for p in (raw / "yellow_trips").iterdir())
    assert months == [f"source_month={m}" for m in MONTHS]
    assert [p.name for p in (raw / "fhvhv_trips").iterdir()] == ["source_month=2020-04"]
    for month in MONTHS:  # each month's partition is the folder of the load the ledger has for it
        load_id = _load_id(spark_chain, f"yellow_tripdata_{month}.parquet")
        version = raw / "yellow_trips" / f"source_month={month}" / load_id
        assert list(version.glob("*.parquet"))
        assert _location(spark_chain, "raw.yellow_trips", month) == f"file:{version}"


def test_cleaning_counts_per_month_and_rule_are_equal(spark_chain: ChainRun, tlc_chain: ChainRun) -> None:
    sql = (
        "select source_month, service, rule_name, trips_removed, trips_flagged, raw_trips, kept_trips"
        " from marts.cleaning_rule_counts"
    )
    spark, pg = _both(spark_chain, tlc_chain, sql)
    rules = len({row[2] for row in pg})
    assert rules == 14
    assert len(pg) == (4 + 3) * rules  # taxi in four months, uber/lyft/via in April; every rule each
    assert spark == pg
    assert any(row[3] > 0 for row in pg if row[2] == "fare_per_mile_outlier")  # the percentile rule removes trips


def test_training_mart_row_counts_are_equal(spark_chain: ChainRun, tlc_chain: ChainRun) -> None:
    sql = "select source_month, service, count(*) from marts.ml_fare_training group by source_month, service"
    spark, pg = _both(spark_chain, tlc_chain, sql)
    assert spark == pg
    assert {r[1] for r in pg} == {"taxi", "uber"}


def test_marts_agree_on_values_not_only_counts(spark_chain: ChainRun, tlc_chain: ChainRun) -> None:
    sql = (
        "select service, pickup_zone_id, dropoff_zone_id, pickup_hour, trips, median_rider_fare, p90_rider_fare"
        " from marts.zone_pair_hourly_fares"
    )
    spark, pg = _both(spark_chain, tlc_chain, sql)
    assert spark == pg
    sql = (
        "select pickup_dow, is_weekend, count(*), round(sum(centroid_distance_miles))"
        " from marts.ml_fare_training group by 1, 2"
    )
    spark, pg = _both(spark_chain, tlc_chain, sql)
    assert spark == pg


def _close(spark: list[tuple[Any, ...]], pg: list[tuple[Any, ...]]) -> bool:
    """Same rows, floats equal to 1e-9 relative (sums and weighted means may add up in another order)."""

    def same(x: Any, y: Any) -> bool:
        return x == pytest.approx(y, rel=1e-9, abs=1e-9) if isinstance(y, float) else x == y

    return len(spark) == len(pg) and all(
        len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True)) for a, b in zip(spark, pg, strict=True)
    )


def test_tariff_lookups_and_holdout_agree(spark_chain: ChainRun, tlc_chain: ChainRun) -> None:
    spark, pg = _both(spark_chain, tlc_chain, "select * from marts.ml_holdout_window")
    assert len(pg) == 1 and spark == pg
    spark, pg = _both(spark_chain, tlc_chain, "select * from marts.taxi_tariff_periods")
    assert len(pg) > 1 and spark == pg
    spark, pg = _both(spark_chain, tlc_chain, "select * from marts.dim_zone_pairs")
    assert len(pg) == 265 * 265 and spark == pg  # centroid distances rounded to 3 decimals the same way
    spark, pg = _both(spark_chain, tlc_chain, "select * from marts.uber_monthly_price_levels")
    assert pg and _close(spark, pg)
    spark, pg = _both(spark_chain, tlc_chain, "select * from marts.zone_pair_hourly_typicals")
    assert pg and _close(spark, pg)
    sql = "select service, source_month, count(*), sum(meter_fare) from marts.ml_fare_training group by 1, 2"
    spark, pg = _both(spark_chain, tlc_chain, sql)
    assert _close(spark, pg)


def test_quality_gate_runs_the_same_suites_with_the_same_outcome(spark_chain: ChainRun, tlc_chain: ChainRun) -> None:
    def outcomes(run: ChainRun) -> list[tuple[Any, ...]]:
        reports = run.result.stages["validate"]
        return sorted(
            (r.table, r.batch, r.check, r.success, r.unexpected_count) for rep in reports for r in rep.results
        )

    spark, pg = outcomes(spark_chain), outcomes(tlc_chain)
    assert len(spark) > 60
    assert spark == pg


def test_models_trained_through_spark_score_like_postgres(spark_chain: ChainRun, tlc_chain: ChainRun) -> None:
    spark = spark_chain.result.stages["train"].metrics["services"]
    pg = tlc_chain.result.stages["train"].metrics["services"]
    for service in ("taxi", "uber"):
        assert abs(spark[service]["model"]["mae"] - pg[service]["model"]["mae"]) < 0.05, service
    assert spark_chain.result.promoted
    assert (spark_chain.settings.models_dir / "CURRENT").read_text().strip() == spark_chain.result.model_version


def test_ops_tables_stay_in_postgres(spark_chain: ChainRun) -> None:
    rows = _pg_rows(spark_chain.wh, "select status, rows_out from ops.pipeline_runs")
    assert rows[0][0] == "succeeded"
    trained = _spark_rows(spark_chain, "select count(*) from marts.ml_fare_training")[0][0]
    assert rows[0][1] == trained
    ledger = _pg_rows(spark_chain.wh, "select count(*) from ops.ingested_files where status = 'loaded'")
    assert ledger == [(7,)]  # two zone files, four yellow months, one FHVHV month
    assert _pg_rows(spark_chain.wh, "select to_regclass('raw.yellow_trips')") == [(None,)]


def test_seeds_and_source_freshness_need_no_adapter_switch(spark_chain: ChainRun) -> None:
    """The seeds' text columns are inferred as Spark's string beside the decimal and date types both adapters accept,
    and `dbt source freshness` (after the transform) reads the lake's load ids through the dispatched
    epoch_to_timestamp: loaded minutes ago, so it passes."""
    from fares.ops.render import FRESHNESS_FILE, read_freshness

    described = _spark_rows(spark_chain, "describe table marts.hvfhv_charges")
    assert {row[0]: row[1] for row in described if row[0] and not row[0].startswith("#")} == {
        "charge": "string",
        "amount": "decimal(10,5)",
        "unit": "string",
        "effective_from": "date",
        "effective_to": "date",
        "source": "string",
    }
    run_id = _pg_rows(spark_chain.wh, "select min(run_id) from ops.pipeline_runs")[0][0]
    found = {f.source: f for f in read_freshness(spark_chain.settings.run_dir(run_id) / FRESHNESS_FILE) or []}
    for source in ("tlc.yellow_trips", "tlc.fhvhv_trips"):
        assert found[source].status == "pass", found.get(source)
        assert 0 <= (found[source].age_seconds or -1) < 3 * 3600, found[source]


def test_the_lake_hook_runs_the_statements_it_is_given_in_order(spark_chain: ChainRun) -> None:
    """fares_register_lake (on-run-start) runs each statement of the var lake_ddl before any model, in order."""
    import json

    from fares.engines import get_engine

    ddl = [
        "create database if not exists lake_probe",
        "create table if not exists lake_probe.registered (source_month string) using parquet",
        "insert into lake_probe.registered values ('2020-01')",
    ]
    get_engine(spark_chain.settings).run_dbt(
        spark_chain.wh, ["run", "--select", "int_months_aligned", "--vars", json.dumps({"lake_ddl": ddl})]
    )
    assert _spark_rows(spark_chain, "select * from lake_probe.registered") == [("2020-01",)]
    _spark_rows(spark_chain, "drop database lake_probe cascade")


def test_the_chain_ran_on_the_cluster_and_dbt_through_the_thrift_server(
    spark_chain: ChainRun, spark_cluster: SparkCluster
) -> None:
    assert {"ingest", "transform", "validate", "train"} <= set(spark_chain.result.stages)  # run_chain raises on failure
    status = master_status(spark_cluster.status_url)
    finished = [app for app in status["completedapps"] if app["name"] == "fares"]
    assert finished and all(app["state"] == "FINISHED" for app in finished)  # the stages' drivers, done
    running = [app["name"] for app in status["activeapps"]]
    assert "fares-thrift" in running  # dbt's queries ran in the Thrift server's application
    assert status["workers"][0]["coresused"] >= 1  # ... on the worker's executors
    log = (spark_chain.settings.data_dir / "runs").rglob("*.log")
    assert any("--target spark_thrift" in f.read_text() for f in log)


def test_dbt_in_its_own_process_works_beside_a_live_session(spark_chain: ChainRun) -> None:
    """As beside a daemon that ran the chain and keeps its session: this test process holds one (on the cluster),
    and `fares dbt test` runs dbt in its own Spark session (local mode) on the shared PostgreSQL metastore."""
    assert _spark_rows(spark_chain, "select count(*) from marts.ml_fare_training")[0][0] > 0  # our session is up
    env = {
        **os.environ,
        "DATABASE_URL": spark_chain.settings.database_url or "",
        "FARES_DATA_DIR": str(spark_chain.settings.data_dir / "cli"),
        "FARES_ENGINE": "spark",
        "FARES_LAKE_URL": spark_chain.settings.lake_location,
        "FARES_SPARK_MASTER": "local[1]",
        "FARES_DBT_SPARK_TARGET": "spark",
    }
    done = subprocess.run(
        [str(Path(sys.executable).with_name("fares")), "dbt", "test", "--select", "marts"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _spark_rows(spark_chain, "select count(*) from marts.ml_fare_training")[0][0] > 0  # ours still works


def test_a_reloaded_month_is_rebuilt_alone_by_partition_overwrite(spark_chain: ChainRun, tlc_samples: Path) -> None:
    """Last in the file: reloads 2020-02 with the same rows, so the comparisons above hold before and after."""
    from fares.chain.stages import run_ingest
    from fares.engines import get_engine

    summary = "select source_month, service, raw_trips, kept_trips from intermediate.int_months_summarised"
    counts = "select source_month, service, count(*) from marts.fct_trips group by 1, 2"
    before = sorted(_spark_rows(spark_chain, summary)), sorted(_spark_rows(spark_chain, counts))
    folder = Path(spark_chain.settings.lake_location) / "raw" / "yellow_trips" / "source_month=2020-02"
    old = _load_id(spark_chain, "yellow_tripdata_2020-02.parquet")
    run_ingest(spark_chain.settings, spark_chain.wh, str(tlc_samples), ["2020-02"], force=True)
    new = _load_id(spark_chain, "yellow_tripdata_2020-02.parquet")
    assert sorted(p.name for p in folder.iterdir()) == sorted([old, new])  # written beside the version in service
    engine = get_engine(spark_chain.settings)
    # the plan of a plain build, from the ledger's loads (no row read): only the reloaded month is new
    plan = _month_plan(engine.run_dbt(spark_chain.wh, ["run-operation", "show_trip_months"]).stdout)
    assert [m for m, loads in plan.items() if loads["raw"] != loads["built"]] == ["2020-02"]
    assert plan["2020-02"]["raw"] == new and plan["2020-02"]["built"] < new
    engine.run_dbt(spark_chain.wh, ["build"])
    assert _location(spark_chain, "raw.yellow_trips", "2020-02") == f"file:{folder / new}"  # swapped in
    # dbt run by hand (no ledger var) reads the same loads off the catalog's partition folders; nothing left to build
    ledger = {m: loads["raw"] for m, loads in plan.items()}
    given = ["--vars", "{lake_month_loads: null}"]
    plan = _month_plan(engine.run_dbt(spark_chain.wh, ["run-operation", "show_trip_months", *given]).stdout)
    assert {m: loads["raw"] for m, loads in plan.items()} == ledger
    assert all(loads["raw"] == loads["built"] for loads in plan.values())
    builds = _spark_rows(
        spark_chain,
        "select planned_at, collect_list(source_month) from intermediate.trip_month_builds where built"
        " group by planned_at order by planned_at",
    )
    assert [sorted(months) for _, months in builds] == [MONTHS, ["2020-02"]]  # the second build planned one month
    # One row per month and service still: the month's partitions were overwritten, not appended to.
    assert (sorted(_spark_rows(spark_chain, summary)), sorted(_spark_rows(spark_chain, counts))) == before
    assert ("2020-02", "taxi", 10_000) in [row[:3] for row in before[0]]


def test_a_failed_write_leaves_the_month_in_service_readable(spark_chain: ChainRun, tlc_samples: Path) -> None:
    """After the reload above: a write that fails midway, and the files of a writer killed mid-write, leave the
    month's partition where it was and its rows as they were."""
    import shutil

    from fares.engines import get_engine
    from fares.engines.base import LoadError
    from fares.ingestion.loader import load_trip_file

    engine = get_engine(spark_chain.settings)
    folder = Path(spark_chain.settings.lake_location) / "raw" / "yellow_trips" / "source_month=2020-03"
    in_service = folder / _load_id(spark_chain, "yellow_tripdata_2020-03.parquet")
    shutil.copytree(in_service, folder / "9999999999.1")  # a newer load never finished: files, no ledger entry
    writer = InterruptedWriter(engine.raw_writer(spark_chain.wh))
    with pytest.raises(LoadError, match="connection reset"):
        load_trip_file(writer, tlc_samples / "yellow_tripdata_2020-03.parquet", "yellow", "2020-03")
    with engine.catalog(spark_chain.wh) as cat:
        rows = cat.execute("select count(*) from raw.yellow_trips where source_month = '2020-03'").fetchall()
    assert rows == [(10_000,)]  # read from the lake, not the ledger
    assert _location(spark_chain, "raw.yellow_trips", "2020-03") == f"file:{in_service}"
    assert engine.count_rows(spark_chain.wh, ("raw.yellow_trips",)) == 40_000
