"""Shared fixtures: real PostgreSQL databases (embedded, and the external server if it answers) and the TLC samples."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from fares.config.settings import Settings
from fares.config.warehouse import (
    Warehouse,
    WarehouseError,
    drop_database,
    ensure_database,
    parse_database_url,
    start_embedded,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from dlt.common.schema.typing import TTableSchemaColumns

    from fares.chain.pipeline import ChainResult
    from fares.engines.base import RawWriter

REPO_ROOT = Path(__file__).resolve().parents[1]
TLC_SAMPLES = (REPO_ROOT / ".." / "shared" / "data" / "tlc").resolve()
EXTERNAL_URL = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ["embedded", "external"]

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")


# A scenario of many dbt builds whose SQL and DDL are the same on any server (the planning of months, a backfill, a
# run's reports) runs on the embedded server only, the one a fresh clone uses: on both it doubled the suite's slowest
# tests. What differs by server (partitions, locks, the materialization's DDL, connections) keeps running on both.
embedded_server_only = pytest.mark.parametrize("pg_server", ["embedded"], indirect=True)


def _external_server() -> Warehouse | None:
    wh = parse_database_url(EXTERNAL_URL)
    try:
        wh.connect().close()
    except WarehouseError:
        return None
    return wh


@pytest.fixture(autouse=True)
def _unit_tier_starts_no_server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The unit tier starts no server: there, starting the embedded PostgreSQL fails, naming what the test lacks.
    (Here rather than in a tests/unit/conftest.py: the tiers import this module as `conftest`.)"""
    if (REPO_ROOT / "tests" / "unit") not in request.path.parents:
        return

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a unit test started the embedded PostgreSQL: give it a DATABASE_URL or a metastore")

    monkeypatch.setattr("fares.config.warehouse.start_embedded", refuse)


@pytest.fixture(scope="session")
def tlc_samples() -> Path:
    """The real TLC sample mirror beside the project (read-only); CI always has it, so there its absence fails."""
    if not (TLC_SAMPLES / "taxi_zone_lookup.csv").exists():
        if os.environ.get("CI"):
            pytest.fail(f"TLC samples not found at {TLC_SAMPLES}: CI lays ../shared beside the clone")
        pytest.skip(f"TLC samples not found at {TLC_SAMPLES}")
    return TLC_SAMPLES


def _embedded_server() -> Warehouse:
    data_dir = Path(os.environ.get("FARES_TEST_DATA_DIR", REPO_ROOT / ".data" / "test"))
    return start_embedded(Settings(database_url=None, data_dir=data_dir))


@pytest.fixture(scope="session", params=BACKENDS)
def pg_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    """An admin connection to a real server: the embedded one, or the external one (DATABASE_URL) when it answers."""
    if request.param == "embedded":
        return _embedded_server()
    server = _external_server()
    if server is None:
        if os.environ.get("CI") and os.environ.get("DATABASE_URL"):
            pytest.fail(f"DATABASE_URL is set but {EXTERNAL_URL} does not answer")
        pytest.skip(f"no external PostgreSQL answers at {EXTERNAL_URL}")
    return server


def make_database(server: Warehouse, label: str, migrated: bool = True) -> Warehouse:
    """A new database on `server` named after `label`: with schema ops migrated (as every fares process entry leaves
    a database before it works on it), or, with `migrated=False`, empty."""
    from fares.ops.schema import migrate

    name = f"fares_t_{label}_{uuid.uuid4().hex[:8]}"[:63]
    wh = ensure_database(server, name)
    if migrated:
        migrate(wh)
    return wh


@pytest.fixture
def fresh_db(pg_server: Warehouse) -> Iterator[Warehouse]:
    """A new database for one test (schema ops migrated, no data), dropped afterwards."""
    wh = make_database(pg_server, "fn")
    yield wh
    drop_database(pg_server, wh.dbname)


@pytest.fixture
def bare_db(pg_server: Warehouse) -> Iterator[Warehouse]:
    """An empty database for one test (not even schema ops: for the migrations' own tests), dropped afterwards."""
    wh = make_database(pg_server, "bare", migrated=False)
    yield wh
    drop_database(pg_server, wh.dbname)


def settings_for(wh: Warehouse, data_dir: Path, **overrides: Any) -> Settings:
    """Settings that point everything at `wh` and keep files under `data_dir`; schema ops is migrated, as a process
    entry (the CLI, the daemon, the API) does before it works on a database."""
    from fares.ops.schema import migrate

    migrate(wh)
    return Settings(database_url=wh.url(), data_dir=data_dir, **overrides)


@pytest.fixture
def fresh_settings(fresh_db: Warehouse, tmp_path: Path) -> Settings:
    """Settings for an empty database and a temporary data folder."""
    return settings_for(fresh_db, tmp_path / "data")


class InterruptedWriter:
    """An engine's raw writer fed trip files whose reading fails after the first batch (a connection dropped)."""

    def __init__(self, writer: RawWriter) -> None:
        self.writer = writer

    def write_month(
        self, table: str, month: str, file: str, batches: Iterable[pa.Table], columns: TTableSchemaColumns
    ) -> tuple[int, str | None]:
        """The first batch, then OSError("connection reset ...") from inside the writer's loop."""

        def cut() -> Iterator[pa.Table]:
            yield next(iter(batches))
            raise OSError("connection reset while reading the file")

        return self.writer.write_month(table, month, file, cut(), columns)

    def write_table(
        self, table: str, rows: list[dict[str, Any]], columns: TTableSchemaColumns, file: str
    ) -> str | None:
        """As the writer does."""
        return self.writer.write_table(table, rows, columns, file)


class ChainRun:
    """A database on which the whole chain ran once, with the Settings that point at it."""

    def __init__(self, settings: Settings, wh: Warehouse, result: ChainResult) -> None:
        self.settings, self.wh, self.result = settings, wh, result


def _run_chain(server: Warehouse, label: str, data_dir: Path, source: Path, months: list[str]) -> ChainRun:
    from fares.chain.pipeline import run_chain

    wh = make_database(server, label)
    settings = settings_for(wh, data_dir)
    return ChainRun(settings, wh, run_chain(settings, source=str(source), months=months))


TLC_MONTHS = ["2020-01", "2020-02", "2020-03", "2020-04"]


@pytest.fixture(scope="session")
def embedded_tlc_chain(tlc_samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainRun]:
    """The chain on the TLC samples (2020-01..2020-04) on the embedded server, once per test session: `tlc_chain`'s
    embedded case, and the reference the Spark tier compares with (it takes no server parameter, so its module's
    tests stay together and its cluster starts once)."""
    server = _embedded_server()
    run = _run_chain(server, "tlc", tmp_path_factory.mktemp("tlc_chain"), tlc_samples, TLC_MONTHS)
    yield run
    drop_database(server, run.wh.dbname)


@pytest.fixture(scope="session")
def tlc_chain(
    request: pytest.FixtureRequest, pg_server: Warehouse, tlc_samples: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChainRun]:
    """The chain (ingest -> dbt build -> validate -> train) once per server on the TLC samples, 2020-01..2020-04."""
    if pg_server.embedded:
        yield request.getfixturevalue("embedded_tlc_chain")
        return
    run = _run_chain(pg_server, "tlc", tmp_path_factory.mktemp("tlc_chain"), tlc_samples, TLC_MONTHS)
    yield run
    drop_database(pg_server, run.wh.dbname)


@pytest.fixture(scope="session")
def synthetic_mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic TLC-shaped mirror (two months, 20k trips per file), written once per test session."""
    from fares.ingestion.synthetic import write_mirror

    dest = tmp_path_factory.mktemp("synthetic_tlc")
    write_mirror(dest, ["2025-01", "2025-02"], rows_per_month=20_000, seed=7)
    return dest


@pytest.fixture(scope="session")
def synthetic_chain(
    pg_server: Warehouse, synthetic_mirror: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChainRun]:
    """The chain once per server on the synthetic mirror (2025-01, 2025-02)."""
    run = _run_chain(pg_server, "syn", tmp_path_factory.mktemp("syn_chain"), synthetic_mirror, ["2025-01", "2025-02"])
    yield run
    drop_database(pg_server, run.wh.dbname)


@dataclass
class Built:
    """A database after ingest + `dbt build` (no training), and where dbt wrote its artifacts."""

    wh: Warehouse
    target: Path

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run a query and return every row."""
        with self.wh.connect() as conn:
            return conn.execute(sql, params).fetchall()


def _ingest_and_build(server: Warehouse, label: str, source: Path, months: list[str], tmp: Path) -> Built:
    from fares.engines.transform import run_dbt
    from fares.ingestion.pipeline import ingest

    wh = make_database(server, label)
    settings = settings_for(wh, tmp / "data")
    report = ingest(settings, wh, source=str(source), months=months, progress=False)
    assert not report.failed, report.failed
    # A private target path: the developer's own dbt target (docs site) is left alone.
    run_dbt(settings, wh, ["build", "--target-path", str(tmp / "target")])
    return Built(wh, tmp / "target")


@pytest.fixture(scope="session")
def tlc_built(pg_server: Warehouse, tlc_samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """The real TLC samples (yellow 2020-01..04, FHVHV 2020-04) ingested and built, once per server; tests that
    use it must not change it (train into their own data folder)."""
    built = _ingest_and_build(pg_server, "tlc_built", tlc_samples, ["2020-01..2020-04"], tmp_path_factory.mktemp("tlc"))
    yield built
    drop_database(pg_server, built.wh.dbname)


@pytest.fixture(scope="session")
def synthetic_built(pg_server: Warehouse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """A small synthetic mirror (2024-01..02, 4,000 trips per kind and month) ingested and built, once per server."""
    from fares.ingestion.synthetic import write_mirror

    tmp = tmp_path_factory.mktemp("synthetic")
    write_mirror(tmp / "mirror", ["2024-01..2024-02"], rows_per_month=4_000)
    built = _ingest_and_build(pg_server, "syn_built", tmp / "mirror", ["2024-01..2024-02"], tmp)
    yield built
    drop_database(pg_server, built.wh.dbname)
