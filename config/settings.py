"""The one Settings object: environment variables (or `.env`) -> Settings -> everything else."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Where the code and dbt_project/ live: the repository in a checkout, site-packages/fares in an installed package.
PACKAGE_DIR = Path(__file__).resolve().parents[1]
TLC_BASE_URL = "https://d37ci6vzurychx.cloudfront.net"


class Settings(BaseSettings):
    """Every knob of fares; read once from the environment with the `FARES_` prefix (DATABASE_URL as is)."""

    model_config = SettingsConfigDict(
        env_prefix="FARES_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # Where the data lives.
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "FARES_DATABASE_URL"),
        description="An external PostgreSQL; unset means the embedded server under data_dir.",
    )
    data_dir: Path = Field(
        default_factory=lambda: Path.cwd() / ".data",
        description="Embedded database, models, reports, downloads (default: .data in the working directory).",
    )
    db_name: str = Field(default="fares", description="Database created on the embedded server.")

    # The analytics engine: PostgreSQL (default) or Apache Spark over a parquet lake (ops tables stay in PostgreSQL).
    engine: Literal["postgres", "spark"] = Field(default="postgres", description="Where raw data and the marts live.")
    lake_url: str | None = Field(
        default=None, description="Spark engine: the raw parquet lake (a folder or s3a://, gs://, abfss:// URL)."
    )
    spark_master: str = Field(
        default="local[2]",
        description="Spark engine: the master URL (local[N], spark://host:port, yarn, k8s://...).",
    )
    spark_driver_memory: str = Field(default="2g", description="Spark engine: driver memory (local mode: all of it).")
    spark_conf: dict[str, str] = Field(
        default_factory=dict,
        description=(
            'Spark engine: any Spark setting, passed through (JSON, e.g. {"spark.executor.memory": "4g"}); beats '
            "spark-defaults.conf and fares' own defaults."
        ),
    )
    spark_driver_host: str | None = Field(
        default=None, description="Spark engine: the address executors reach the driver at (local[N]: 127.0.0.1)."
    )
    spark_driver_bind_address: str | None = Field(
        default=None, description="Spark engine: the address the driver listens on (local[N]: 127.0.0.1)."
    )
    spark_warehouse: str | None = Field(
        default=None,
        description=(
            "Spark engine: where the marts' tables are stored; every executor must reach it (default: under "
            "data_dir for local[N], beside the lake otherwise)."
        ),
    )
    spark_metastore: str = Field(
        default="auto",
        description=(
            "Spark engine: the Hive metastore. auto (= postgres): schema spark_metastore_schema of the ops database, "
            "over TCP (a TCP DATABASE_URL, or the embedded server, which then also listens on 127.0.0.1) with the "
            "PostgreSQL JDBC driver; derby: one process at a time, under data_dir; a jdbc:postgresql:// URL; a "
            "thrift:// metastore service."
        ),
    )
    spark_metastore_schema: str = Field(
        default="spark_metastore", pattern=r"^[a-z_][a-z0-9_]*$", description="Spark engine: the metastore's schema."
    )
    spark_jdbc_jar: str = Field(
        default="/usr/share/java/postgresql.jar",
        description="Spark engine: the PostgreSQL JDBC driver (Debian: libpostgresql-jdbc-java) for the metastore.",
    )
    dbt_spark_target: Literal["spark", "spark_thrift", "databricks"] = Field(
        default="spark",
        description=(
            "Spark engine: dbt's target in profiles.yml. spark: dbt's own Spark session (method session); "
            "spark_thrift: a Spark Thrift server (spark_thrift_host/port), for a cluster; databricks: dbt-databricks."
        ),
    )
    spark_thrift_host: str = Field(default="127.0.0.1", description="Spark engine: the Thrift server dbt talks to.")
    spark_thrift_port: int = Field(default=10000, ge=1, le=65535)

    # Ingestion.
    tlc_source: str = Field(default=TLC_BASE_URL, description="TLC base URL or a folder laid out like it.")
    months: list[str] = Field(default_factory=list, description="Months to ingest; empty means the newest not loaded.")
    sample: float | None = Field(default=None, gt=0, le=1, description="Deterministic row sample fraction.")
    http_retries: int = Field(default=4, ge=0)
    http_timeout_seconds: float = Field(default=60.0, gt=0)

    # Quality gate.
    row_count_band: float = Field(default=0.5, ge=0, le=1, description="Allowed relative change vs the previous month.")

    # Models.
    promotion_margin: float = Field(
        default=0.0, ge=0, description="A new model may be this much worse (MAE $) and still win."
    )
    train_months: int = Field(
        default=3,
        ge=1,
        description=(
            "Newest months the training sample is drawn from (each service from its own months in them); also dbt's "
            "var zone_pair_months (the holdout, zone-pair typicals and Uber levels), passed by "
            "fares.engines.transform.dbt_vars."
        ),
    )
    holdout_min_trips: int = Field(
        default=2000,
        ge=1,
        description=(
            "The holdout grows backwards until it holds this many trips of each service (dbt's var holdout_min_trips, "
            "passed by fares.engines.transform.dbt_vars)."
        ),
    )
    holdout_min_cells: int = Field(
        default=200,
        ge=1,
        description=(
            "... and this many route x hour cells with both services, for calibration (dbt's var holdout_min_cells)."
        ),
    )
    train_rows_per_service: int = Field(
        default=300_000,
        ge=100,
        description=(
            "At most this many training trips of each service in all, shared evenly among its months in the window "
            "(a hash sample), so the nightly fit costs the same however many months are loaded."
        ),
    )
    train_threads: int | None = Field(
        default=None,
        ge=1,
        description="OpenMP threads for the fit; unset uses the cores the machine's load leaves free.",
    )

    # API.
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    admin_token: str | None = Field(
        default=None, description="Bearer token (or /login) for the ops pages and admin endpoints; unset closes them."
    )
    ops_public: bool = Field(
        default=False,
        description="Open the ops pages (runs, logs, docs sites, metrics) without the token, on a private network.",
    )
    cors_origins: list[str] = Field(default_factory=list)
    demo_once: bool = Field(default=False, description="`make demo` exits after the first successful quote.")

    # Scheduler.
    schedule_cron: str = Field(default="0 3 * * *", description="Crontab (minute hour day month weekday).")
    schedule_timezone: str = "America/New_York"
    misfire_grace_seconds: int = Field(default=6 * 3600, ge=1)
    stage_retries: int = Field(default=2, ge=0)
    stage_backoff_seconds: float = Field(default=10.0, ge=0, description="First retry delay; doubles each retry.")

    # Timeouts: a stage past its limit is stopped, recorded `timed_out` and alerted; the run lock is released.
    stage_timeout_seconds: float = Field(default=4 * 3600, gt=0, description="Longest any one stage may run.")
    stage_timeouts: dict[str, float] = Field(
        default_factory=dict, description='Per-stage limits overriding stage_timeout_seconds, e.g. {"transform": 1800}.'
    )
    run_timeout_seconds: float = Field(default=8 * 3600, gt=0, description="Longest a whole run may take.")
    statement_timeout_seconds: float = Field(
        default=3600, ge=0, description="PostgreSQL statement_timeout for our connections and dbt's; 0 = none."
    )
    download_timeout_seconds: float = Field(default=1800, gt=0, description="Longest one file download may take.")
    stage_grace_seconds: float = Field(
        default=30, ge=0, description="A stopped stage's process gets SIGTERM, then SIGKILL after this many seconds."
    )
    lock_wait_seconds: float = Field(
        default=6 * 3600,
        ge=0,
        description="How long a run waits in line for the pipeline lock (0: not at all) before it is recorded skipped.",
    )
    redo_max_age_hours: float = Field(
        default=24, ge=0, description="The daemon redoes a crashed run younger than this once; older ones it leaves."
    )

    # Alerts (apprise URLs: slack://..., mailto://..., json://host/path, ...).
    alert_urls: list[str] = Field(default_factory=list, description="Where alerts go; empty means only ops.alerts.")
    alert_stale_hours: float = Field(default=48, gt=0, description="Alert when no run succeeded for this long.")

    # Health: the daemon's heartbeat (ops.scheduler_heartbeats), which the API watches.
    heartbeat_seconds: float = Field(default=30, gt=0, description="How often the daemon writes its heartbeat.")
    request_poll_seconds: float = Field(
        default=5, gt=0, description="How often the daemon looks for runs asked for through the API."
    )
    heartbeat_timeout_seconds: float = Field(
        default=300, gt=0, description="The API reports the scheduler dead (and alerts once) past this without a beat."
    )

    # Retention: what the nightly prune (and `fares prune`) keeps; 0 days keeps forever. Running runs, the newest run,
    # the current model and the one before it are always kept.
    keep_run_folders_days: float = Field(
        default=30, ge=0, description="Days a run's folder (data_dir/runs/ID) is kept."
    )
    keep_ops_days: float = Field(
        default=180,
        ge=0,
        description="Days ops rows are kept: pipeline and stage runs, validation runs, closed alerts.",
    )
    keep_gx_days: float = Field(default=30, ge=0, description="Days GX validation results (data_dir/gx) are kept.")
    keep_model_versions: int = Field(
        default=10, ge=1, description="Newest model versions kept, besides the current one and the one before it."
    )
    prune_hour: int = Field(
        default=5, ge=0, le=23, description="Hour of the day (schedule_timezone) the daemon prunes."
    )

    @property
    def models_dir(self) -> Path:
        """Folder of the model registry."""
        return self.data_dir / "models"

    @property
    def dbt_dir(self) -> Path:
        """dbt's target/ and logs/: under the data folder, never inside an installed package."""
        return self.data_dir / "dbt"

    @property
    def lake_location(self) -> str:
        """Where the Spark engine's raw parquet lake lives: lake_url, else a folder under data_dir."""
        return (self.lake_url or str(self.data_dir / "lake")).rstrip("/")

    @property
    def spark_dir(self) -> Path:
        """Spark engine: the local warehouse (marts), metastore and scratch folders."""
        return self.data_dir / "spark"

    @property
    def embedded_loopback(self) -> bool:
        """Whether the embedded server, when this process starts it, also listens on 127.0.0.1: on the Spark engine
        with its metastore in that server, which Java's PostgreSQL driver reaches over TCP only."""
        return self.engine == "spark" and self.spark_metastore.strip() in ("auto", "postgres")

    @property
    def runs_dir(self) -> Path:
        """Folder of the per-run folders (run.log, dbt's run_results.json)."""
        return self.data_dir / "runs"

    def run_dir(self, run_id: int) -> Path:
        """The folder of one run's files (not created here: `fares.chain.runlog` creates it when the run starts)."""
        return self.runs_dir / str(run_id)

    @property
    def gx_dir(self) -> Path:
        """Great Expectations' folder: suites, validation results and the Data Docs site."""
        return self.data_dir / "gx"

    @property
    def downloads_dir(self) -> Path:
        """Folder for files fetched from a URL source."""
        return self.data_dir / "downloads"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide Settings (cached; call `get_settings.cache_clear()` after changing the env)."""
    return Settings()
