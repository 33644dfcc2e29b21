"""The Spark engine on the embedded server (no DATABASE_URL): its Hive metastore lives in that server, reached on
127.0.0.1, so two Spark processes use the lake's catalog at once; Derby (one JVM at a time) only when asked.

Skips where Spark or Java's PostgreSQL driver is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fares.config.settings import Settings
from fares.config.warehouse import get_warehouse, start_embedded, stop_embedded
from fares.engines.spark_metastore import MetastoreError, jdbc_driver_missing, resolve_metastore
from fares.engines.spark_session import spark_missing
from tests.conftest import REPO_ROOT

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(spark_missing() is not None, reason=f"Spark tier skipped: {spark_missing()}"),
    pytest.mark.skipif(
        jdbc_driver_missing(Settings(database_url=None)) is not None,
        reason=f"no metastore in PostgreSQL: {jdbc_driver_missing(Settings(database_url=None))}",
    ),
]

# One Spark process: `hold` creates a table, says so, keeps its session until told, then counts the table again;
# `add` inserts a row into that table while the other still holds its session.
SCRIPT = """
import sys, time
from pathlib import Path
from fares.config.settings import Settings
from fares.engines.spark_session import get_spark
role, signals = sys.argv[1], Path(sys.argv[2])
spark = get_spark(Settings())
if role == "hold":
    spark.sql("create table default.shared using parquet as select 1 as x")
    (signals / "ready").touch()
    while not (signals / "done").exists():
        time.sleep(0.2)
    spark.catalog.refreshTable("default.shared")
else:
    spark.sql("insert into default.shared values (2)")
print(spark.sql("select count(*) from default.shared").collect()[0][0])
"""


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FARES_SPARK_METASTORE")}
    return env | {"FARES_DATA_DIR": str(data_dir), "FARES_ENGINE": "spark", "FARES_SPARK_MASTER": "local[1]"}


def test_two_spark_processes_share_a_metastore_kept_in_the_embedded_server(tmp_path: Path) -> None:
    data_dir, signals = tmp_path / "data", tmp_path / "signals"
    signals.mkdir()
    settings = Settings(data_dir=data_dir, engine="spark", database_url=None)
    try:
        wh = get_warehouse(settings)  # a process on the Spark engine starts the server: socket and loopback
        assert wh.is_socket and wh.loopback_port
        store = resolve_metastore(settings)  # auto
        assert store.kind == "postgres"
        assert store.jdbc_url == f"jdbc:postgresql://127.0.0.1:{wh.loopback_port}/fares?currentSchema=spark_metastore"

        hold = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, "hold", str(signals)],
            cwd=REPO_ROOT,
            env=_env(data_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 300
        while not (signals / "ready").exists():
            assert hold.poll() is None, hold.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the first Spark process never created its table"
            time.sleep(0.5)
        # the first process still holds its session (Derby would refuse this second JVM)
        add = subprocess.run(
            [sys.executable, "-c", SCRIPT, "add", str(signals)],
            cwd=REPO_ROOT,
            env=_env(data_dir),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        (signals / "done").touch()
        held_out, held_err = hold.communicate(timeout=300)
        assert add.returncode == 0, add.stderr[-3000:]
        assert hold.returncode == 0, held_err[-3000:]
        assert add.stdout.split()[-1] == "2" and held_out.split()[-1] == "2"  # one table, seen by both
        with wh.connect() as conn:
            tables = conn.execute('select "TBL_NAME" from spark_metastore."TBLS"').fetchall()
        assert ("shared",) in tables  # catalogued in PostgreSQL
        assert not (settings.spark_dir / "metastore_db").exists()  # no Derby

        # A server started by a process not on the Spark engine has no loopback listener: a clear error, not Derby.
        stop_embedded(settings)
        assert start_embedded(Settings(data_dir=data_dir, database_url=None)).loopback_port is None
        with pytest.raises(MetastoreError, match=r"without a listener on 127\.0\.0\.1.*fares db stop"):
            resolve_metastore(settings)
        assert resolve_metastore(Settings(data_dir=data_dir, engine="spark", spark_metastore="derby")).kind == "derby"
    finally:
        stop_embedded(settings)
