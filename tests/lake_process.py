"""A Spark process for the lake tests, run as `python tests/lake_process.py write|read ...` beside another one.

Both share one Hive metastore in PostgreSQL (`--metastore`, a JDBC URL and a schema), which two JVMs may open at
once, unlike the embedded Derby one. `write` loads a month, registers it, then replaces it again and again, swapping
each new version in through the catalog; `read` counts the month over and over in its own session until the writer
is done. Each prints one JSON line on stdout; they meet through files in `--signals`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

POSTGRES_DRIVER = "/usr/share/java/postgresql.jar"
WAIT_SECONDS = 600.0


def metastore_conf(jdbc_url: str, user: str, password: str, schema: str) -> dict[str, str]:
    """Spark settings for a Hive metastore in a PostgreSQL schema.

    DataNucleus upper-cases the schema name (so it must be created quoted, upper case) and would otherwise find the
    metastore tables of any schema of the database. It creates the tables, not their foreign keys: with
    `autoCreateAll` it adds a key on a table its own open transaction has locked, and waits for itself forever.
    """
    return {
        "spark.driver.extraClassPath": POSTGRES_DRIVER,
        "spark.hadoop.javax.jdo.option.ConnectionURL": jdbc_url,
        "spark.hadoop.javax.jdo.option.ConnectionDriverName": "org.postgresql.Driver",
        "spark.hadoop.javax.jdo.option.ConnectionUserName": user,
        "spark.hadoop.javax.jdo.option.ConnectionPassword": password,
        "spark.hadoop.datanucleus.mapping.Schema": schema,
        "spark.hadoop.datanucleus.schema.autoCreateTables": "true",
        "spark.hadoop.datanucleus.schema.autoCreateColumns": "true",
        "spark.hadoop.hive.metastore.schema.verification": "false",
        "spark.hadoop.hive.metastore.try.direct.sql": "false",  # its SQL names tables without the schema
    }


def _use_metastore(args: argparse.Namespace) -> None:
    from fares.config.settings import Settings
    from fares.engines import spark_session

    own = spark_session.spark_conf
    extra = metastore_conf(args.jdbc_url, args.jdbc_user, args.jdbc_password, args.schema)

    def with_metastore(settings: Settings) -> dict[str, str]:
        return {**own(settings), **extra}

    spark_session.spark_conf = with_metastore  # this process's sessions: fares' settings, the shared metastore


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path.name} never appeared")
        time.sleep(0.2)


def write(args: argparse.Namespace) -> dict[str, Any]:
    """Load the month whole, then reload it `--swaps` times alternating half and whole; the catalog follows each."""
    from fares.config.settings import Settings
    from fares.config.warehouse import get_warehouse
    from fares.engines import get_engine
    from fares.ingestion.pipeline import ingest
    from fares.ops.ledger import read_entry

    settings = Settings(data_dir=args.data_dir, database_url=args.database_url, engine="spark")
    wh, engine = get_warehouse(settings), get_engine(settings)
    file = f"yellow_tripdata_{args.month}.parquet"
    rows: list[int] = []

    def load(sample: float | None) -> None:
        report = ingest(settings, wh, source=args.mirror, months=[args.month], kinds=["yellow"], sample=sample)
        if report.failed:
            raise RuntimeError(f"the load failed: {report.failed}")
        with engine.catalog(wh):  # registers the lake's tables as the ledger has them: the swap
            pass
        entry = read_entry(wh, file)
        rows.append(entry.rows if entry and entry.rows else 0)

    load(None)
    (args.signals / "ready").touch()
    _wait_for(args.signals / "reading")
    for swap in range(args.swaps):
        load(0.5 if swap % 2 == 0 else None)
        time.sleep(args.pause)
    (args.signals / "done").touch()
    return {"rows": rows}


def read(args: argparse.Namespace) -> dict[str, Any]:
    """Count the month until the writer is done (and once after); every count, in order."""
    from fares.config.settings import Settings
    from fares.engines.spark_session import get_spark

    spark = get_spark(Settings(data_dir=args.data_dir, engine="spark"))
    counts: list[int] = []
    sql = f"select count(*) from raw.yellow_trips where source_month = '{args.month}'"
    while True:
        finished = (args.signals / "done").exists()
        counts.append(int(spark.sql(sql).collect()[0][0]))
        (args.signals / "reading").touch()
        if finished:
            return {"counts": counts}


def main(argv: list[str] | None = None) -> int:
    """Run `write` or `read` and print its result as one JSON line."""
    parser = argparse.ArgumentParser(prog="lake_process")
    parser.add_argument("role", choices=("write", "read"))
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--jdbc-url", required=True)
    parser.add_argument("--jdbc-user", default="postgres")
    parser.add_argument("--jdbc-password", default="")
    parser.add_argument("--schema", required=True)
    parser.add_argument("--signals", type=Path, required=True)
    parser.add_argument("--month", required=True)
    parser.add_argument("--database-url")
    parser.add_argument("--mirror")
    parser.add_argument("--swaps", type=int, default=4)
    parser.add_argument("--pause", type=float, default=1.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    _use_metastore(args)
    result = write(args) if args.role == "write" else read(args)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
