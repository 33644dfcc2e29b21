"""The Spark engine's settings and plumbing that need no JVM: loopback, folders, table DDL, SQL dialects."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fares.config.settings import Settings
from fares.config.warehouse import parse_database_url
from fares.engines import get_engine, lake_catalog
from fares.engines import spark_session as lakehouse
from fares.engines.raw_tables import FHVHV_COLUMNS, YELLOW_COLUMNS
from fares.engines.spark import SparkEngine
from fares.engines.transform import DbtFailed
from fares.ml import TrainingDataError
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
    conf = lakehouse.spark_conf(Settings(data_dir=tmp_path, engine="spark", spark_metastore="derby"))
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


def test_the_months_current_loads_for_dbts_planning_come_from_the_ledger() -> None:
    """What a plain `fares dbt build` on Spark plans from (var lake_month_loads): the ledger's loads in service, the
    newest of a month's two kinds, and no month whose current load holds no rows."""
    hvfhv = _entry("fhvhv_tripdata_2024-02.parquet", "fhvhv", "2024-02", 900, "160.0", "loaded")
    assert lake_catalog.month_loads(LEDGER) == {"2024-01": "200.5", "2024-02": "150.2"}
    assert lake_catalog.month_loads([*LEDGER, hvfhv]) == {"2024-01": "200.5", "2024-02": "160.0"}


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
    from fares.ml.sample import _month_query

    engine = get_engine(Settings(engine="spark"))
    assert engine.hash_below("trip_id", 0.25) == "pmod(xxhash64(trip_id), 1000000) < 250000"
    assert _month_query(engine, "2024-01", {"taxi": 1.0}).endswith(
        " where source_month = '2024-01' and ((service = 'taxi'))"
    )
    # both services of a month in one read (one scan of the month), each with its own share
    assert _month_query(engine, "2024-01", {"uber": 0.25, "taxi": 1.0}).endswith(
        " where source_month = '2024-01' and ((service = 'taxi')"
        " or (service = 'uber' and pmod(xxhash64(trip_id), 1000000) < 250000))"
    )
    with pytest.raises(TrainingDataError, match="unexpected stratum"):
        _month_query(engine, "2024-01'; drop", {"taxi": 1.0})


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


def test_spark_conf_for_a_cluster_leaves_loopback_and_takes_settings_through(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SPARK_CONF_DIR", raising=False)
    monkeypatch.delenv("SPARK_HOME", raising=False)
    settings = Settings(
        data_dir=tmp_path,
        engine="spark",
        spark_master="spark://10.0.0.5:7077",
        lake_url="s3a://bucket/fares",
        spark_driver_host="10.0.0.9",
        spark_conf={"spark.executor.memory": "4g", "spark.sql.shuffle.partitions": "64"},
        spark_metastore="thrift://hms.example:9083",
    )
    conf = lakehouse.spark_conf(settings)
    assert conf["spark.master"] == "spark://10.0.0.5:7077"
    assert conf["spark.driver.host"] == "10.0.0.9"
    assert "spark.driver.bindAddress" not in conf  # Spark's default: the driver host
    assert "spark.local.dir" not in conf
    assert conf["spark.sql.warehouse.dir"] == "s3a://bucket/fares/warehouse"  # reachable by every executor
    assert conf["spark.executor.memory"] == "4g" and conf["spark.sql.shuffle.partitions"] == "64"
    assert lakehouse.is_local_master("local[*]") and not lakehouse.is_local_master("yarn")


def test_spark_defaults_conf_is_honoured_below_what_fares_must_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "spark-defaults.conf").write_text(
        "# the cluster's defaults\nspark.sql.shuffle.partitions   32\nspark.master\tyarn\n\n"
        "spark.eventLog.enabled true\n"
    )
    monkeypatch.setenv("SPARK_CONF_DIR", str(conf_dir))
    conf = lakehouse.spark_conf(Settings(data_dir=tmp_path, engine="spark", spark_metastore="derby"))
    assert conf["spark.sql.shuffle.partitions"] == "32"  # beats fares' local default of 4
    assert conf["spark.eventLog.enabled"] == "true"
    assert conf["spark.master"] == "local[2]"  # FARES_SPARK_MASTER is a setting: it beats the file
    conf = lakehouse.spark_conf(
        Settings(
            data_dir=tmp_path, engine="spark", spark_metastore="derby", spark_conf={"spark.sql.shuffle.partitions": "8"}
        )
    )
    assert conf["spark.sql.shuffle.partitions"] == "8"  # FARES_SPARK_CONF beats the file


def test_the_metastore_is_postgres_where_the_ops_database_is_reached_over_tcp(tmp_path: Path) -> None:
    from fares.engines.spark_metastore import MetastoreError, resolve_metastore

    tcp = Settings(data_dir=tmp_path, engine="spark", database_url="postgresql://fares:pw@db.example:5433/ops")
    store = resolve_metastore(tcp)
    assert store.kind == "postgres"
    assert store.jdbc_url == "jdbc:postgresql://db.example:5433/ops?currentSchema=spark_metastore"
    conf = lakehouse.spark_conf(tcp)
    assert conf["spark.hadoop.javax.jdo.option.ConnectionURL"] == store.jdbc_url
    assert conf["spark.hadoop.javax.jdo.option.ConnectionPassword"] == "pw"
    assert conf["spark.driver.extraClassPath"] == "/usr/share/java/postgresql.jar"
    assert conf["spark.hadoop.datanucleus.schema.autoCreateAll"] == "false"  # created once, up front
    socket = "postgresql://postgres@/fares?host=/tmp/pg"
    for choice in ("auto", "postgres"):  # Derby only when asked: a socket-only external server is an error
        with pytest.raises(MetastoreError, match=r"over TCP.*FARES_SPARK_METASTORE=derby"):
            resolve_metastore(Settings(data_dir=tmp_path, database_url=socket, spark_metastore=choice))
    assert resolve_metastore(Settings(data_dir=tmp_path, database_url=socket, spark_metastore="derby")).kind == "derby"
    thrift = resolve_metastore(Settings(data_dir=tmp_path, spark_metastore="thrift://hms:9083"))
    assert thrift.uri == "thrift://hms:9083"
    with pytest.raises(MetastoreError, match="use auto"):
        resolve_metastore(Settings(data_dir=tmp_path, spark_metastore="mysql"))


def test_dbt_on_spark_is_its_own_process_on_the_target_of_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wh = parse_database_url("postgresql://fares@127.0.0.1:5432/fares")  # never connected to
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(lakehouse, "run_dbt", lambda settings, wh, args, **kw: calls.append({"args": args, **kw}))
    monkeypatch.setattr(lakehouse, "read_ledger", lambda wh: {})  # an empty ledger: the raw database only
    cancel: list[Callable[[], None]] = []
    settings = Settings(
        data_dir=tmp_path,
        engine="spark",
        dbt_spark_target="spark_thrift",
        spark_thrift_port=10123,
        spark_metastore="derby",  # nothing to create up front (a unit test reaches no server)
    )
    lakehouse.run_dbt_spark(settings, wh, ["build"], timeout=60, cancel=cancel)
    [call] = calls
    assert call["target"] == "spark_thrift" and call["timeout"] == 60 and call["cancel"] is cancel
    assert call["env"]["FARES_SPARK_THRIFT_PORT"] == "10123"
    assert call["extra_vars"]["lake_ddl"][0] == "create database if not exists raw"
    assert call["extra_vars"]["lake_month_loads"] == {}  # the ledger's (empty here), so dbt reads no rows to plan
    written = Path(call["env"]["SPARK_CONF_DIR"]) / "spark-defaults.conf"
    assert "spark.sql.session.timeZone UTC" in written.read_text()  # dbt's own session gets ours
    assert oct(written.stat().st_mode & 0o777) == "0o600"


def test_dbt_runs_on_the_engine_of_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from fares.chain import stages
    from fares.engines import postgres, spark

    wh = _WH
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(spark, "run_dbt_spark", lambda settings, wh, args, **kw: calls.append(("spark", args)))
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
    assert calls[-1] == (
        "spark",
        ["build", "--exclude-resource-type", "unit_test", "--vars", '{"trip_months": {"2024-02": "load-2"}}'],
    )
    assert marked == [plan]

    def failing(settings: Settings, wh: object, args: list[str], **kw: object) -> None:
        raise DbtFailed("dbt build failed on Spark\nfct_trips: boom")

    monkeypatch.setattr(spark, "run_dbt_spark", failing)
    with pytest.raises(DbtFailed, match="dbt build failed on Spark"):
        get_engine(Settings(data_dir=tmp_path, engine="spark")).run_dbt(wh, ["build"])
    marked.clear()
    with pytest.raises(stages.StageError, match="transform: dbt build failed on Spark"):
        stages.run_transform(Settings(data_dir=tmp_path, engine="spark"), wh)
    assert marked == []  # a failed build leaves its months to build again


def test_the_cluster_commands_come_from_the_wheel_and_the_thrift_server_gets_the_session_settings(
    tmp_path: Path,
) -> None:
    from fares.cli.main import build_parser
    from fares.engines import spark_cluster

    master = spark_cluster.master_command("0.0.0.0", 7077, 8081)
    assert Path(master.argv[0]).name == "spark-class" and Path(master.argv[0]).is_file()
    assert master.argv[1:] == ["org.apache.spark.deploy.master.Master", "--host", "0.0.0.0", "--port", "7077",
                               "--webui-port", "8081"]  # fmt: skip
    worker = spark_cluster.worker_command("spark://m:7077", cores=4, memory="8g")
    assert worker.argv[1:4] == ["org.apache.spark.deploy.worker.Worker", "spark://m:7077", "--host"]
    assert worker.argv[worker.argv.index("--cores") + 1] == "4"
    settings = Settings(
        data_dir=tmp_path, engine="spark", spark_master="spark://m:7077", spark_metastore="thrift://hms:9083",
        spark_thrift_port=10555, spark_conf={"spark.executor.memory": "3g"},
    )  # fmt: skip
    thrift = spark_cluster.thrift_command(settings)
    assert thrift.argv[thrift.argv.index("--class") + 1] == spark_cluster.THRIFT_SERVER_CLASS
    assert "hive.server2.thrift.port=10555" in thrift.argv
    props = Path(thrift.argv[thrift.argv.index("--properties-file") + 1]).read_text()
    assert "spark.master spark://m:7077" in props and "spark.executor.memory 3g" in props
    assert "spark.hadoop.hive.metastore.uris thrift://hms:9083" in props
    args = build_parser().parse_args(["spark", "worker", "spark://m:7077", "--cores", "1"])
    assert (args.role, args.master_url, args.cores) == ("worker", "spark://m:7077", 1)
