"""The Spark engine's settings and plumbing that need no JVM: loopback, folders, table DDL, SQL dialects."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fares.config.settings import Settings
from fares.config.warehouse import parse_database_url
from fares.engines import get_engine, lake_catalog
from fares.engines import spark_session as lakehouse
from fares.engines.raw_tables import FHVHV_COLUMNS, YELLOW_COLUMNS
from fares.engines.spark import SparkEngine
from fares.engines.transform import DbtFailed
from fares.ops.ledger import LedgerEntry, TripMonthPlan
from fares.quality.suites import training_batches

_WH = parse_database_url("postgresql://fares@127.0.0.1:5432/fares")  # never connected to: the ledger is a stand-in


def test_engine_defaults_to_postgres_and_the_lake_lives_under_the_data_folder(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.engine == "postgres"
    assert settings.lake_location == str(tmp_path / "lake")
    assert Settings(data_dir=tmp_path, lake_url="s3a://bucket/fares/").lake_location == "s3a://bucket/fares"


def test_engine_rejects_unknown_values(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="postgres"):
        Settings(data_dir=tmp_path, engine="duckdb")


def test_spark_stays_on_loopback_and_keeps_its_files_under_the_data_folder(tmp_path: Path) -> None:
    conf = lakehouse.spark_conf(Settings(data_dir=tmp_path, engine="spark"))
    assert conf["spark.driver.bindAddress"] == conf["spark.driver.host"] == "127.0.0.1"
    assert conf["spark.sql.session.timeZone"] == "UTC"  # TLC wall-clock times stay as written
    spark_dir = str((tmp_path / "spark").resolve())
    assert conf["spark.sql.warehouse.dir"].startswith(spark_dir)
    assert f"databaseName={spark_dir}/metastore_db" in conf["spark.hadoop.javax.jdo.option.ConnectionURL"]
    assert f"-Dderby.system.home={spark_dir}" in conf["spark.driver.extraJavaOptions"]


def test_lake_trip_tables_declare_every_pinned_column_and_partition_last() -> None:
    for kind, columns in (("yellow", YELLOW_COLUMNS), ("fhvhv", FHVHV_COLUMNS)):
        ddl = lake_catalog.trip_table_ddl(kind)
        names = [part.split("`")[1] for part in ddl.split(", ")]
        assert names[: len(columns)] == list(columns)
        assert names[-1] == "source_month"
        assert "`pu_location_id` bigint" in ddl and "double precision" not in ddl


def _entry(file: str, kind: str, month: str | None, rows: int | None, load_id: str | None, status: str) -> LedgerEntry:
    now = datetime(2024, 3, 1, tzinfo=UTC)
    return LedgerEntry(file, kind, month, "/tlc", 1, None, None, rows, load_id, status, now, now, None)


LEDGER = [
    _entry("taxi_zone_lookup.csv", "zones", None, 265, "100.1", "loaded"),
    _entry("yellow_tripdata_2024-01.parquet", "yellow", "2024-01", 2_000, "200.5", "loaded"),
    # reloaded, and the reload failed: the load before it stays in service
    _entry("yellow_tripdata_2024-02.parquet", "yellow", "2024-02", 1_500, "150.2", "failed"),
    _entry("yellow_tripdata_2024-03.parquet", "yellow", "2024-03", None, None, "failed"),  # never loaded
    _entry("yellow_tripdata_2024-04.parquet", "yellow", "2024-04", 0, "300.1", "loaded"),  # a load of no rows
    _entry("fhvhv_tripdata_2024-01.parquet", "fhvhv", "2024-01", None, None, "failed"),
]


def test_the_lake_catalog_is_generated_from_the_ledger_alone(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, engine="spark", lake_url="s3a://bucket/fares")
    ddl = lake_catalog.lake_ddl(settings, LEDGER)
    yellow = "s3a://bucket/fares/raw/yellow_trips"
    assert ddl[0] == "create database if not exists raw"
    assert ddl[1].startswith("create table if not exists raw.yellow_trips (`vendor_id` bigint, ")
    assert ddl[1].endswith(f"using parquet partitioned by (source_month) location '{yellow}'")
    month = "partition (source_month = '2024-01')"
    version = f"'{yellow}/source_month=2024-01/200.5'"
    assert ddl[2:4] == [
        f"alter table raw.yellow_trips add if not exists {month} location {version}",
        f"alter table raw.yellow_trips {month} set location {version}",
    ]
    month, version = "partition (source_month = '2024-02')", f"'{yellow}/source_month=2024-02/150.2'"
    assert ddl[4:6] == [  # a failed reload: the partition stays at the version it replaced
        f"alter table raw.yellow_trips add if not exists {month} location {version}",
        f"alter table raw.yellow_trips {month} set location {version}",
    ]
    assert ddl[6:8] == [  # months with nothing in service leave the table
        "alter table raw.yellow_trips drop if exists partition (source_month = '2024-03')",
        "alter table raw.yellow_trips drop if exists partition (source_month = '2024-04')",
    ]
    assert ddl[8:] == [  # no FHVHV table before a load of it; zones as before; no shapes loaded
        "create table if not exists raw.zones using parquet location 's3a://bucket/fares/raw/zones'",
        "refresh table raw.zones",
    ]
    assert not any("msck" in statement for statement in ddl)  # no listing of the lake's folders
    assert lake_catalog.lake_ddl(settings, []) == ["create database if not exists raw"]


def test_spark_counts_and_load_ids_of_raw_months_come_from_the_ledger() -> None:
    from fares.engines.spark import SparkCatalog

    class NoQueries:  # raw months are not scanned: any query fails the test
        def sql(self, text: str) -> None:
            raise AssertionError(f"queried the lake: {text}")

    cat = SparkCatalog(NoQueries(), lake_catalog.lake_months(LEDGER))
    assert cat.month_loads("raw.yellow_trips") == {"2024-01": "200.5", "2024-02": "150.2"}
    assert cat.count_month("raw.yellow_trips", "2024-02") == 1_500
    assert cat.count_month("raw.yellow_trips", "2024-03") == 0
    assert cat.count_table("raw.yellow_trips") == 3_500


def test_a_machine_without_java_gets_one_line_saying_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lakehouse.shutil, "which", lambda name: None)
    reason = lakehouse.spark_missing()
    assert reason is not None and "Java" in reason and "\n" not in reason


def test_training_window_query_is_written_for_each_engine() -> None:
    postgres = next(b for b in training_batches() if b.label == "aligned window").query or ""
    spark_agg = SparkEngine(Settings(engine="spark")).sorted_string_agg("service")
    spark = next(b for b in training_batches(services_list=spark_agg) if b.label == "aligned window").query or ""
    assert "string_agg(service, ',' order by service)" in postgres
    assert "select distinct source_month, service" in postgres and "select distinct source_month, service" in spark
    assert "string_agg" not in spark and "sort_array(collect_list(service))" in spark


def test_spark_training_strata_filter_samples_by_a_hash_of_the_trip_id() -> None:
    from fares.ml.sample import _part_query

    engine = get_engine(Settings(engine="spark"))
    assert engine.hash_below("trip_id", 0.25) == "pmod(xxhash64(trip_id), 1000000) < 250000"
    assert _part_query(engine, "2024-01", "taxi", 1.0).endswith(" where source_month = '2024-01' and service = 'taxi'")
    assert _part_query(engine, "2024-01", "uber", 0.25).endswith(
        " where source_month = '2024-01' and service = 'uber' and pmod(xxhash64(trip_id), 1000000) < 250000"
    )


def test_the_gate_planner_sql_runs_on_spark_with_its_parameters_inlined() -> None:
    from fares.engines.spark import SparkCatalog

    seen: list[str] = []

    class FakeSpark:
        def sql(self, text: str) -> FakeSpark:
            seen.append(text)
            return self

        def collect(self) -> list[tuple[str]]:
            return [("2024-01",)]

    conn = SparkCatalog(FakeSpark(), {})  # a stand-in for the two calls it makes
    sql = "select distinct source_month from t where source_month = any(%s) order by 1"
    assert conn.execute(sql, (["2024-01", "o'k"],)).fetchall() == [("2024-01",)]
    assert seen == ["select distinct source_month from t where source_month in ('2024-01', 'o\\'k') order by 1"]


def test_a_stage_timeout_cancels_the_spark_jobs_and_fails_the_dbt_nodes_not_started(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import dbt.cli.main

    cancelled: list[bool] = []
    spark = SimpleNamespace(sparkContext=SimpleNamespace(cancelAllJobs=lambda: cancelled.append(True)))
    monkeypatch.setattr(lakehouse, "get_spark", lambda settings: spark)
    monkeypatch.setattr(lakehouse, "read_ledger", lambda wh: {})
    monkeypatch.setattr(lakehouse, "register_raw_tables", lambda spark, settings, entries: [])
    cancel: list[Callable[[], None]] = []
    compiling = SimpleNamespace(info=SimpleNamespace(name="NodeCompiling"))
    seen: list[str] = []

    class Runner:  # dbt in a stage that times out after its first node
        def __init__(self, callbacks: list[Callable[[Any], None]]) -> None:
            self.callbacks = callbacks

        def invoke(self, argv: list[str]) -> Any:
            for callback in self.callbacks:
                callback(compiling)  # before the timeout: nodes run
            for stop in list(cancel):
                stop()  # what fares.chain.executor does with the stage's cancel callbacks past its deadline
            for callback in self.callbacks:
                with pytest.raises(DbtFailed, match="stopped") as refused:
                    callback(compiling)
                seen.append(str(refused.value))
            return SimpleNamespace(success=False, result=None, exception=RuntimeError("nodes failed"))

    monkeypatch.setattr(dbt.cli.main, "dbtRunner", Runner)
    with pytest.raises(DbtFailed, match="dbt build failed on Spark"):
        lakehouse.run_dbt_spark(Settings(data_dir=tmp_path, engine="spark"), _WH, ["build"], cancel=cancel)
    assert cancelled == [True]
    assert seen == ["dbt was stopped (stage timeout)"]
    assert cancel == []  # the stage's cancel list does not keep a finished dbt's stop


def test_dbt_runs_on_the_engine_of_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from fares.chain import stages
    from fares.engines import postgres, spark

    wh = _WH
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(spark, "run_dbt_spark", lambda settings, wh, args, cancel=None: calls.append(("spark", args)))
    monkeypatch.setattr(postgres, "run_dbt", lambda settings, wh, args, **kw: calls.append(("postgres", args)))
    get_engine(Settings(data_dir=tmp_path, engine="spark")).run_dbt(wh, ["docs", "generate"])
    get_engine(Settings(data_dir=tmp_path)).run_dbt(wh, ["build"])
    assert calls == [("spark", ["docs", "generate"]), ("postgres", ["build"])]

    # the transform stage builds the ledger's months (the ledger, in schema ops, stands in too) and marks them built
    plan = TripMonthPlan({"2024-02": "load-2"}, (("yellow_tripdata_2024-02.parquet", "load-2"),))
    marked: list[TripMonthPlan] = []
    monkeypatch.setattr(stages.ledger, "plan_trip_months", lambda wh: plan)
    monkeypatch.setattr(stages.ledger, "mark_months_built", lambda wh, plan: marked.append(plan))
    stages.run_transform(Settings(data_dir=tmp_path, engine="spark"), wh)
    assert calls[-1] == ("spark", ["build", "--vars", '{"trip_months": {"2024-02": "load-2"}}'])
    assert marked == [plan]

    def failing(settings: Settings, wh: object, args: list[str], cancel: object = None) -> None:
        raise DbtFailed("dbt build failed on Spark\nfct_trips: boom")

    monkeypatch.setattr(spark, "run_dbt_spark", failing)
    with pytest.raises(DbtFailed, match="dbt build failed on Spark"):
        get_engine(Settings(data_dir=tmp_path, engine="spark")).run_dbt(wh, ["build"])
    marked.clear()
    with pytest.raises(stages.StageError, match="transform: dbt build failed on Spark"):
        stages.run_transform(Settings(data_dir=tmp_path, engine="spark"), wh)
    assert marked == []  # a failed build leaves its months to build again


def test_dbt_on_spark_gets_the_settings_vars_and_keeps_its_files_under_the_data_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import dbt.cli.main

    seen: list[list[str]] = []

    class Runner:
        def __init__(self, callbacks: list[object]) -> None:
            self.callbacks = callbacks

        def invoke(self, argv: list[str]) -> object:
            seen.append(argv)
            return type("Result", (), {"success": True})()

    monkeypatch.setattr(lakehouse, "get_spark", lambda settings: None)
    monkeypatch.setattr(lakehouse, "read_ledger", lambda wh: {})
    monkeypatch.setattr(lakehouse, "register_raw_tables", lambda spark, settings, entries: [])
    monkeypatch.setattr(dbt.cli.main, "dbtRunner", Runner)
    settings = Settings(data_dir=tmp_path, engine="spark", train_months=5)
    lakehouse.run_dbt_spark(settings, _WH, ["build", "--select", "marts"])
    [argv] = seen
    assert argv[:3] == ["build", "--select", "marts"]
    assert json.loads(argv[argv.index("--vars") + 1]) == {
        "zone_pair_months": 5,
        "holdout_min_trips": 2000,
        "holdout_min_cells": 200,
    }
    assert argv[argv.index("--target") + 1] == "spark"
    assert argv[argv.index("--target-path") + 1] == str(tmp_path / "dbt" / "target")
    assert argv[argv.index("--log-path") + 1] == str(tmp_path / "dbt" / "logs")
