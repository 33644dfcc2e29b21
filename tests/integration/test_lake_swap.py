"""A lake month replaced while another process reads it: the reader sees the old month or the new one, never a mix.

Two Spark processes (tests/lake_process.py) share a Hive metastore in a fresh schema of the external PostgreSQL
(the embedded Derby metastore admits one JVM): one replaces a month again and again, alternating two versions of
different row counts, while the other counts it. Skips where Spark or the external server is missing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fares.config.warehouse import Warehouse, drop_database
from fares.engines.spark_session import spark_missing
from fares.ingestion.synthetic import write_mirror
from tests.conftest import EXTERNAL_URL, REPO_ROOT, _external_server, make_database

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(spark_missing() is not None, reason=f"Spark tier skipped: {spark_missing()}"),
]

MONTH = "2024-01"
SCRIPT = REPO_ROOT / "tests" / "lake_process.py"
POSTGRES_DRIVER = Path("/usr/share/java/postgresql.jar")
TIMEOUT = 900.0


@pytest.fixture
def server() -> Warehouse:
    found = _external_server()
    if found is None:
        pytest.skip(f"the shared metastore needs the external PostgreSQL at {EXTERNAL_URL}")
    if not POSTGRES_DRIVER.exists():
        pytest.skip(f"no PostgreSQL JDBC driver at {POSTGRES_DRIVER} for the metastore")
    return found


@pytest.fixture
def metastore(server: Warehouse) -> Iterator[str]:
    """A fresh schema for the Hive metastore (upper case: DataNucleus upper-cases the name it is given)."""
    schema = f"HIVE_{uuid.uuid4().hex[:8].upper()}"
    with server.connect(autocommit=True) as conn:
        conn.execute(f'create schema "{schema}"')
    yield schema
    with server.connect(autocommit=True) as conn:
        conn.execute(f'drop schema "{schema}" cascade')


@pytest.fixture
def ops(server: Warehouse) -> Iterator[Warehouse]:
    wh = make_database(server, "lake_swap")
    yield wh
    drop_database(server, wh.dbname)


def _start(role: str, args: list[str], log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), role, *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )


def _result(process: subprocess.Popen[str], log: Path) -> dict[str, list[int]]:
    out, _ = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, log.read_text()[-3000:]
    result: dict[str, list[int]] = json.loads(out.strip().splitlines()[-1])
    return result


def test_a_month_replaced_while_another_process_reads_it_is_old_or_new_never_a_mix(
    tmp_path: Path, server: Warehouse, metastore: str, ops: Warehouse
) -> None:
    mirror, signals = tmp_path / "mirror", tmp_path / "signals"
    write_mirror(mirror, [MONTH], rows_per_month=2_000)
    signals.mkdir()
    jdbc = f"jdbc:postgresql://{server.host}:{server.port}/{server.dbname}"
    shared = ["--jdbc-url", jdbc, "--jdbc-user", server.user, "--jdbc-password", server.password]
    shared += ["--schema", metastore, "--signals", str(signals), "--month", MONTH]
    writer = _start(
        "write",
        [*shared, "--data-dir", str(tmp_path / "writer"), "--database-url", ops.url(), "--mirror", str(mirror)],
        tmp_path / "writer.log",
    )
    deadline = time.monotonic() + TIMEOUT
    while not (signals / "ready").exists():  # the month is loaded and in the catalog
        assert writer.poll() is None, (tmp_path / "writer.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the writer never got the month in"
        time.sleep(0.5)
    reader = _start("read", [*shared, "--data-dir", str(tmp_path / "reader")], tmp_path / "reader.log")
    try:
        rows = _result(writer, tmp_path / "writer.log")["rows"]
        counts = _result(reader, tmp_path / "reader.log")["counts"]
    finally:
        for process in (writer, reader):
            if process.poll() is None:
                process.kill()
    whole, half = rows[0], rows[1]
    assert whole == 2_000 and 0 < half < whole
    assert rows == [whole, half, whole, half, whole]  # the writer's versions, as the ledger recorded them
    assert set(counts) <= {whole, half}, f"a count that is neither version: {counts}"
    assert set(counts) == {whole, half}, f"the reader never saw a swap: {counts}"
