"""The Spark engine: one SparkSession per process (loopback, warehouse and metastore under data_dir), the lake's tables.

Raw trips live in the lake as parquet written by dlt (`<lake>/raw/<table>/source_month=YYYY-MM/*.parquet`); Spark
sees them as external tables `raw.<table>` that dbt's sources read. dbt's marts are Spark tables in the warehouse.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fares.engines.raw_tables import LINEAGE_COLUMNS, TABLES, TRIP_COLUMNS
from fares.engines.transform import run_dbt

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from fares.config.settings import Settings
    from fares.config.warehouse import Warehouse

log = logging.getLogger(__name__)

RAW = "raw"
_SPARK_TYPES = {"int64": "bigint", "double": "double", "string": "string", "timestamp[us]": "timestamp"}
# Small tables dlt replaces whole; Spark infers their schema from the parquet files.
SMALL_TABLES = ("zones", "zone_shapes")


class SparkUnavailableError(RuntimeError):
    """The Spark engine cannot start here (pyspark or Java missing); the message says which."""


def spark_missing() -> str | None:
    """Why the Spark engine cannot run on this machine (one line), or None when it can."""
    try:
        import pyspark  # noqa: F401 - only probing that the extra is installed
    except ImportError:
        return "pyspark is not installed (pip install '.[spark]')"
    if not shutil.which("java"):
        return "no Java runtime on PATH (java); Spark needs Java 17"
    return None


def lake_path(settings: Settings, *parts: str) -> str:
    """A location inside the lake (a local folder or an object-store URL)."""
    return "/".join([settings.lake_location, *parts])


def is_local_lake(settings: Settings) -> bool:
    """True when the lake is a folder on this machine (not s3a://, gs://, abfss://, ...)."""
    return "://" not in settings.lake_location or settings.lake_location.startswith("file://")


def is_local_master(master: str) -> bool:
    """True for `local`, `local[N]`, `local[*]`, `local[N,F]`: the driver is the only JVM."""
    return master == "local" or master.startswith("local[")


def spark_defaults_file() -> Path | None:
    """The spark-defaults.conf Spark itself would read: $SPARK_CONF_DIR, else $SPARK_HOME/conf."""
    home = os.environ.get("SPARK_HOME")
    for folder in (os.environ.get("SPARK_CONF_DIR"), home and f"{home}/conf"):
        if folder and (Path(folder) / "spark-defaults.conf").is_file():
            return Path(folder) / "spark-defaults.conf"
    return None


def read_spark_defaults(path: Path | None) -> dict[str, str]:
    """`key value` lines of a spark-defaults.conf (# comments, blank lines skipped)."""
    if path is None:
        return {}
    found: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip().replace("\t", " ")
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        found[key] = value.strip()
    return found


def spark_conf(settings: Settings) -> dict[str, str]:
    """The session's Spark settings, lowest precedence first: fares' tuning defaults, spark-defaults.conf, what fares
    must have (the master, the metastore, a UTC session clock), FARES_SPARK_CONF.

    Local mode (`local[N]`) binds the driver to loopback and keeps the warehouse and scratch under data_dir with few
    shuffle partitions; on a cluster the driver's address and the warehouse are settings (Spark's defaults otherwise),
    since executors on other hosts must reach both.
    """
    from fares.engines.spark_metastore import metastore_conf, resolve_metastore

    root = settings.spark_dir.resolve()
    local = is_local_master(settings.spark_master)
    tuning = {
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.parquet.inferTimestampNTZ.enabled": "false",
        # toPandas through Arrow: the training sample and the lookups reach pandas without a row-by-row copy.
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.warehouse.dir": settings.spark_warehouse
        or (str(root / "warehouse") if local else f"{settings.lake_location}/warehouse"),
    }
    if local:
        tuning |= {
            "spark.ui.enabled": "false",
            "spark.local.dir": str(root / "tmp"),
            # Few, adaptive shuffle partitions: the cores are few, and most stages here are small.
            "spark.sql.shuffle.partitions": "4",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.driver.host": "127.0.0.1",
        }
    required = {
        "spark.master": settings.spark_master,
        "spark.app.name": "fares",
        "spark.driver.memory": settings.spark_driver_memory,
        # TLC times are New York wall clock without a zone: a UTC session keeps them as written (like PostgreSQL's
        # timestamp without time zone), whatever the machine's zone.
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        **metastore_conf(settings, resolve_metastore(settings)),
    }
    if settings.spark_driver_host:
        required["spark.driver.host"] = settings.spark_driver_host
    if settings.spark_driver_bind_address:
        required["spark.driver.bindAddress"] = settings.spark_driver_bind_address
    return tuning | read_spark_defaults(spark_defaults_file()) | required | settings.spark_conf


def write_conf_dir(settings: Settings) -> Path:
    """A SPARK_CONF_DIR holding spark_conf(settings) as spark-defaults.conf, for a child JVM (dbt's own session, a
    Thrift server): the same settings as this process's session. Readable by its owner only (it may hold the
    metastore's password)."""
    folder = settings.spark_dir / "conf"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "spark-defaults.conf"
    lines = ["# Written by fares (engines/spark_session.py) before each Spark child process; edits are overwritten."]
    lines += [f"{key} {value}" for key, value in sorted(spark_conf(settings).items())]
    tmp = folder / "spark-defaults.conf.tmp"
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(target)
    return folder


_session: dict[str, Any] = {}


def get_spark(settings: Settings) -> SparkSession:
    """The process's SparkSession, started on first use.

    Raises:
        SparkUnavailableError: pyspark or Java is missing, or the metastore cannot be used as configured.
    """
    why = spark_missing()
    if why:
        raise SparkUnavailableError(f"the Spark engine cannot start: {why}")
    from pyspark.sql import SparkSession

    from fares.engines.spark_metastore import MetastoreError, ensure_metastore, resolve_metastore

    # Kept here rather than asked of Spark: getActiveSession() is per thread, and the daemon runs stages in its own.
    running = _session.get("spark")
    if running is not None:
        if _session["dir"] != settings.spark_dir.resolve():
            raise SparkUnavailableError(
                f"a Spark session for {_session['dir']} already runs in this process; one data folder per process"
            )
        # Other processes (dbt, a Thrift server, another fares process) rewrite tables in the shared metastore: a
        # session that lives on must not read a table through the file listing it cached before (FILE_NOT_EXIST).
        running._jsparkSession.sessionState().catalog().invalidateAllCachedTables()  # noqa: SLF001 - no public call
        return running
    try:
        store = resolve_metastore(settings)
        ensure_metastore(settings, store)
    except MetastoreError as exc:
        raise SparkUnavailableError(str(exc)) from exc
    local = is_local_master(settings.spark_master)
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # read by the JVM launcher, before any conf
    for sub in ("warehouse", "tmp", "derby"):
        (settings.spark_dir / sub).mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.enableHiveSupport()
    for key, value in spark_conf(settings).items():
        builder = builder.config(key, value)
    log.info("starting Spark (%s, %s)", settings.spark_master, store.describe())
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    _session.update(spark=spark, dir=settings.spark_dir.resolve())
    return spark


def session_running() -> bool:
    """True when this process holds a SparkSession."""
    return "spark" in _session


def stop_spark() -> None:
    """Stop the process's SparkSession if one runs."""
    running = _session.pop("spark", None)
    if running is not None:
        running.stop()
    _session.clear()


def trip_table_ddl(kind: str) -> str:
    columns = {**TRIP_COLUMNS[kind], **LINEAGE_COLUMNS}
    columns.pop("source_month")
    cols = [f"`{name}` {_SPARK_TYPES[str(typ)]}" for name, typ in columns.items()]
    cols += ["`_dlt_id` string", "`_dlt_load_id` string", "`source_month` string"]
    return ", ".join(cols)


def register_raw_tables(spark: SparkSession, settings: Settings) -> list[str]:
    """Create (if missing) the external tables over the lake and pick up new month partitions; returns their names.

    A trip table is partitioned by source_month (the lake's folders); zones and shapes are plain parquet folders.
    """
    spark.sql(f"create database if not exists {RAW}")
    names: list[str] = []
    for kind, table in TABLES.items():
        location = lake_path(settings, RAW, table)
        if is_local_lake(settings) and not Path(location).exists():
            continue
        spark.sql(
            f"create table if not exists {RAW}.{table} ({trip_table_ddl(kind)}) using parquet"
            f" partitioned by (source_month) location '{location}'"
        )
        spark.sql(f"msck repair table {RAW}.{table} sync partitions")  # months added or removed since
        names.append(f"{RAW}.{table}")
    for table in SMALL_TABLES:
        location = lake_path(settings, RAW, table)
        if is_local_lake(settings) and not Path(location).exists():
            continue
        spark.sql(f"create table if not exists {RAW}.{table} using parquet location '{location}'")
        spark.sql(f"refresh table {RAW}.{table}")
        names.append(f"{RAW}.{table}")
    return names


def dbt_spark_env(settings: Settings) -> dict[str, str]:
    """What dbt's process needs beyond the ops database: the Spark settings of this process's session as its
    SPARK_CONF_DIR (target `spark`, dbt's own session), and the Thrift server's address (target `spark_thrift`)."""
    env = {
        "SPARK_CONF_DIR": str(write_conf_dir(settings).resolve()),
        "FARES_SPARK_THRIFT_HOST": settings.spark_thrift_host,
        "FARES_SPARK_THRIFT_PORT": str(settings.spark_thrift_port),
    }
    if is_local_master(settings.spark_master):
        env["SPARK_LOCAL_IP"] = "127.0.0.1"
    return env


def run_dbt_spark(
    settings: Settings,
    wh: Warehouse,
    args: list[str],
    capture: bool = True,
    timeout: float | None = None,
    cancel: list[Callable[[], None]] | None = None,
) -> Any:
    """Run `dbt <args>` on the target FARES_DBT_SPARK_TARGET names, in dbt's own process (a thin client of Spark).

    The lake's tables are registered by dbt itself (the on-run-start hook runs var `lake_ddl`), so dbt needs no
    Spark session of ours: with target `spark` it starts its own with this process's settings (SPARK_CONF_DIR), with
    `spark_thrift` it only talks to the Thrift server. A timeout or cancel stops it like dbt on PostgreSQL.

    Raises:
        DbtFailed, DbtTimeout: as fares.engines.transform.run_dbt.
    """
    from fares.engines.spark_metastore import MetastoreError, ensure_metastore, resolve_metastore

    try:
        ensure_metastore(settings, resolve_metastore(settings))
    except MetastoreError as exc:
        raise SparkUnavailableError(str(exc)) from exc
    return run_dbt(
        settings,
        wh,
        args,
        capture=capture,
        timeout=timeout,
        cancel=cancel,
        target=settings.dbt_spark_target,
        env=dbt_spark_env(settings),
        extra_vars={"lake_ddl": lake_statements(settings, wh)},
    )


def lake_statements(settings: Settings, wh: Warehouse) -> list[str]:
    """The SQL that makes the catalog see the lake as it is (dbt's on-run-start hook runs it from var `lake_ddl`)."""
    statements = [f"create database if not exists {RAW}"]
    for kind, table in TABLES.items():
        location = lake_path(settings, RAW, table)
        if is_local_lake(settings) and not Path(location).exists():
            continue
        statements.append(
            f"create table if not exists {RAW}.{table} ({trip_table_ddl(kind)}) using parquet"
            f" partitioned by (source_month) location '{location}'"
        )
        statements.append(f"msck repair table {RAW}.{table} sync partitions")
    for table in SMALL_TABLES:
        location = lake_path(settings, RAW, table)
        if is_local_lake(settings) and not Path(location).exists():
            continue
        statements.append(f"create table if not exists {RAW}.{table} using parquet location '{location}'")
        statements.append(f"refresh table {RAW}.{table}")
    return statements
