"""The Spark engine: one SparkSession per process (loopback, warehouse and metastore under data_dir), the lake's tables.

Raw trips live in the lake as parquet written by dlt (`<lake>/raw/<table>/source_month=YYYY-MM/<load id>/`); Spark
sees them as external tables `raw.<table>` that dbt's sources read, each month's partition at the version the ledger
says is current (`fares.engines.lake_catalog`). dbt's marts are Spark tables in the warehouse.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from fares.engines.lake_catalog import lake_ddl
from fares.engines.transform import DbtFailed, dbt_command
from fares.ops.ledger import read_ledger

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from fares.config.settings import Settings
    from fares.config.warehouse import Warehouse
    from fares.ops.ledger import LedgerEntry

log = logging.getLogger(__name__)


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


def is_local_lake(settings: Settings) -> bool:
    """True when the lake is a folder on this machine (not s3a://, gs://, abfss://, ...)."""
    return "://" not in settings.lake_location or settings.lake_location.startswith("file://")


def spark_conf(settings: Settings) -> dict[str, str]:
    """The session's configuration: loopback only, warehouse/metastore/scratch under data_dir, UTC wall clock."""
    root = settings.spark_dir.resolve()
    return {
        "spark.master": settings.spark_master,
        "spark.app.name": "fares",
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.warehouse.dir": str(root / "warehouse"),
        "spark.local.dir": str(root / "tmp"),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={root / 'derby'}",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={root / 'metastore_db'};create=true",
        # TLC times are New York wall clock without a zone: a UTC session keeps them as written (like PostgreSQL's
        # timestamp without time zone), whatever the machine's zone.
        "spark.sql.session.timeZone": "UTC",
        # Few, adaptive shuffle partitions: the cores are few, and most stages here are small.
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.sql.parquet.inferTimestampNTZ.enabled": "false",
        # toPandas through Arrow: the training sample and the lookups reach pandas without a row-by-row copy.
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }


_session: dict[str, Any] = {}


def get_spark(settings: Settings) -> SparkSession:
    """The process's SparkSession, started on first use (dbt-spark's session method then reuses it).

    Raises:
        SparkUnavailableError: pyspark or Java is missing.
    """
    why = spark_missing()
    if why:
        raise SparkUnavailableError(f"the Spark engine cannot start: {why}")
    from pyspark.sql import SparkSession

    # Kept here rather than asked of Spark: getActiveSession() is per thread, and the daemon runs stages in its own.
    running = _session.get("spark")
    if running is not None:
        if _session["dir"] != settings.spark_dir.resolve():
            raise SparkUnavailableError(
                f"a Spark session for {_session['dir']} already runs in this process; one data folder per process"
            )
        return running
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # read by the JVM launcher, before any conf
    for sub in ("warehouse", "tmp", "derby"):
        (settings.spark_dir / sub).mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.enableHiveSupport()
    for key, value in spark_conf(settings).items():
        builder = builder.config(key, value)
    log.info("starting Spark (%s), warehouse %s", settings.spark_master, settings.spark_dir / "warehouse")
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


def register_raw_tables(spark: SparkSession, settings: Settings, entries: Iterable[LedgerEntry]) -> list[str]:
    """Make the session's raw tables match the ledger's `entries` (`lake_catalog.lake_ddl`); returns the statements.

    Each trip month's partition moves to the version folder of its current load in one metastore operation, so a
    reader in this or another session sees a month's old version or its new one, never a mix.
    """
    statements = lake_ddl(settings, entries)
    for statement in statements:
        spark.sql(statement)
    return statements


def run_dbt_spark(
    settings: Settings, wh: Warehouse, args: list[str], cancel: list[Callable[[], None]] | None = None
) -> Any:
    """Run `dbt <args>` on the spark target inside this process's SparkSession (after registering the lake's tables
    as the ledger in `wh` has them).

    In-process on purpose: the Hive metastore here is an embedded Derby database that one JVM at a time may open,
    so dbt must share the session of the stage that runs it rather than start its own. Inside a run, `cancel` (the
    stage's cancel callbacks) gets one that stops dbt: Spark's running jobs are cancelled and every node not started
    yet fails at once, while the session stays usable (a second Hive session in one JVM cannot reopen Derby).

    Raises:
        DbtFailed: dbt reported a failure (message lists the failed nodes).
    """
    import threading

    from dbt.cli.main import dbtRunner

    spark = get_spark(settings)
    register_raw_tables(spark, settings, read_ledger(wh).values())
    # the same command line as on PostgreSQL (project, vars that are settings), run here; target/ and logs/ under
    # settings.dbt_dir as there (flags: this process's environment is not dbt's to change)
    argv = dbt_command(settings, args)[1:]
    if argv and not argv[0].startswith("-"):
        argv += ["--target", "spark", "--target-path", str(settings.dbt_dir / "target")]
        argv += ["--log-path", str(settings.dbt_dir / "logs")]
    stopped = threading.Event()

    def stop() -> None:
        log.warning("stopping dbt on Spark: cancelling its Spark jobs")
        stopped.set()
        spark.sparkContext.cancelAllJobs()

    def refuse_after_stop(event: Any) -> None:
        # Raised inside dbt's node runner, so the node fails before it sends any SQL to Spark.
        if stopped.is_set() and event.info.name == "NodeCompiling":
            raise DbtFailed("dbt was stopped (stage timeout)")

    log.info("running dbt %s (spark)", " ".join(args))
    if cancel is not None:
        cancel.append(stop)
    try:
        result = dbtRunner(callbacks=[refuse_after_stop]).invoke(argv)
    finally:
        if cancel is not None and stop in cancel:
            cancel.remove(stop)
    if not result.success:
        failed = []
        for node in getattr(result.result, "results", None) or []:
            if str(getattr(node, "status", "")) in ("error", "fail"):
                failed.append(f"{node.node.name}: {(node.message or '').strip()[:400]}")
        detail = "\n".join(failed) or str(result.exception or "see dbt's log")
        raise DbtFailed(f"dbt {' '.join(args)} failed on Spark\n{detail}")
    return result
