"""The Spark engine's sessions: the settings every session gets (any master), a process's own SparkSession, and dbt
run in its own process on a Spark target.

Raw trips live in the lake as parquet written by dlt (a version folder per load of a month, `fares.engines.spark_lake`);
Spark sees them as external tables `raw.<table>` whose month partitions point at the ledger's current versions
(`fares.engines.lake_catalog.lake_ddl`). dbt's marts are Spark tables in the warehouse.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fares.engines.lake_catalog import lake_ddl, month_loads
from fares.engines.transform import run_dbt
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


def register_raw_tables(spark: SparkSession, settings: Settings, entries: Iterable[LedgerEntry]) -> list[str]:
    """Make the session's raw tables match the ledger's `entries` (`lake_catalog.lake_ddl`); returns the statements.

    Each trip month's partition moves to the version folder of its current load in one metastore operation, so a
    reader in this or another session sees a month's old version or its new one, never a mix.
    """
    statements = lake_ddl(settings, entries)
    for statement in statements:
        spark.sql(statement)
    return statements


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

    The lake's tables are registered by dbt itself (the on-run-start hook runs var `lake_ddl`), and the months' current
    loads come from the ledger too (var `lake_month_loads`, for a plain build's month planning), so dbt needs no
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
    entries = read_ledger(wh).values()
    return run_dbt(
        settings,
        wh,
        args,
        capture=capture,
        timeout=timeout,
        cancel=cancel,
        target=settings.dbt_spark_target,
        env=dbt_spark_env(settings),
        extra_vars={"lake_ddl": lake_ddl(settings, entries), "lake_month_loads": month_loads(entries)},
    )
