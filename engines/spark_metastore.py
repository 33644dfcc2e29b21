"""The Spark engine's Hive metastore: where the lake's tables and the marts are catalogued.

By default (`FARES_SPARK_METASTORE=auto`) it lives in PostgreSQL, in its own schema of the ops database: then the
daemon, the API, the CLI, dbt and a Spark Thrift server all share it. Java's PostgreSQL driver cannot reach a Unix
socket, so the ops database must be reached over TCP: an external server by a TCP `DATABASE_URL`, the embedded one on
127.0.0.1, where it listens when a process on the Spark engine starts it (`config.warehouse.start_embedded`). Derby
under the data folder, which one JVM at a time may open, only when asked (`derby`). `thrift://` names an external
metastore service.

Spark 4.3 ships Hive 2.3's metastore client and DataNucleus but not Hive's schema scripts. Creating the schema lazily
(`datanucleus.schema.autoCreateAll`) deadlocks on PostgreSQL: one connection holds a transaction on TBLS while another
adds a foreign key to it (seen here at the first partitioned table). So the schema is created once, up front, by
DataNucleus's SchemaTool from Hive's own `package.jdo`, under an advisory lock, and sessions never create tables.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fares.config.warehouse import Warehouse, parse_database_url

if TYPE_CHECKING:
    from fares.config.settings import Settings

log = logging.getLogger(__name__)

# Hive 2.3's metastore, as recorded in its VERSION table (hive.metastore.schema.verification is off, so Hive reads it
# without comparing; Hive's own PostgreSQL script inserts the same row).
HIVE_SCHEMA_VERSION = "2.3.0"
_LOCK_KEY = "fares.spark_metastore"


class MetastoreError(RuntimeError):
    """The metastore cannot be used as configured; the message says what to set or install."""


@dataclass(frozen=True)
class Metastore:
    """A resolved FARES_SPARK_METASTORE: kind derby | postgres | thrift, and where."""

    kind: str
    jdbc_url: str | None = None
    user: str = ""
    password: str = ""
    schema: str | None = None
    ops: Warehouse | None = None  # the PostgreSQL database holding the schema (bootstrapped by fares)
    uri: str | None = None  # thrift://

    def describe(self) -> str:
        """One line for logs and errors (no password)."""
        if self.kind == "postgres":
            return f"PostgreSQL metastore {self.jdbc_url}"
        if self.kind == "thrift":
            return f"metastore service {self.uri}"
        return "Derby metastore under the data folder (one process at a time)"


def _tcp_ops(settings: Settings) -> Warehouse:
    """The ops database over TCP: a TCP DATABASE_URL as given; the embedded server (started here if it is not
    running, listening on 127.0.0.1) on its loopback port.

    Raises:
        MetastoreError: the ops database is only reached through a Unix socket (what to do is in the message).
    """
    if settings.database_url:
        wh = parse_database_url(settings.database_url)
        if wh.is_socket:
            raise MetastoreError(
                "the Spark metastore in PostgreSQL needs the ops database over TCP (DATABASE_URL=postgresql://host:port"
                "/db), since Java's PostgreSQL driver cannot reach a Unix socket; or set FARES_SPARK_METASTORE=derby "
                "(one process at a time)"
            )
        return wh
    from fares.config.warehouse import ensure_database, start_embedded

    server = start_embedded(settings, loopback=True)
    tcp = server.over_tcp()
    if tcp is None:
        raise MetastoreError(
            f"the embedded PostgreSQL under {settings.data_dir / 'pg'} runs without a listener on 127.0.0.1 (a process "
            "not on the Spark engine started it), and the Spark metastore in PostgreSQL needs one: stop it "
            "(`fares db stop`) and the next start listens there; or set FARES_SPARK_METASTORE=derby (one process at "
            "a time)"
        )
    return ensure_database(tcp, settings.db_name)


def resolve_metastore(settings: Settings) -> Metastore:
    """The metastore FARES_SPARK_METASTORE names.

    Raises:
        MetastoreError: the ops database cannot be reached over TCP (`_tcp_ops`), or a value that is none of the forms.
    """
    choice = settings.spark_metastore.strip()
    if choice == "derby":
        return Metastore("derby")
    if choice.startswith("thrift://"):
        return Metastore("thrift", uri=choice)
    if choice.startswith("jdbc:postgresql://"):
        return Metastore("postgres", jdbc_url=choice)
    if choice not in ("auto", "postgres"):
        raise MetastoreError(
            f"FARES_SPARK_METASTORE={choice!r}: use auto, postgres, derby, a jdbc:postgresql:// URL or a thrift:// URI"
        )
    ops = _tcp_ops(settings)
    schema = settings.spark_metastore_schema
    url = f"jdbc:postgresql://{ops.host}:{ops.port}/{ops.dbname}?currentSchema={schema}"
    return Metastore("postgres", jdbc_url=url, user=ops.user, password=ops.password, schema=schema, ops=ops)


def metastore_conf(settings: Settings, store: Metastore) -> dict[str, str]:
    """The Spark settings that point a session (or a Thrift server) at `store`."""
    if store.kind == "thrift":
        return {"spark.sql.catalogImplementation": "hive", "spark.hadoop.hive.metastore.uris": str(store.uri)}
    if store.kind == "derby":
        root = settings.spark_dir.resolve()
        return {
            "spark.sql.catalogImplementation": "hive",
            "spark.driver.extraJavaOptions": f"-Dderby.system.home={root / 'derby'}",
            "spark.hadoop.javax.jdo.option.ConnectionURL": (
                f"jdbc:derby:;databaseName={root / 'metastore_db'};create=true"
            ),
        }
    return {
        "spark.sql.catalogImplementation": "hive",
        "spark.driver.extraClassPath": settings.spark_jdbc_jar,
        "spark.hadoop.javax.jdo.option.ConnectionURL": str(store.jdbc_url),
        "spark.hadoop.javax.jdo.option.ConnectionDriverName": "org.postgresql.Driver",
        "spark.hadoop.javax.jdo.option.ConnectionUserName": store.user,
        "spark.hadoop.javax.jdo.option.ConnectionPassword": store.password,
        # the schema exists (ensure_metastore); creating tables from a session deadlocks (module docstring)
        "spark.hadoop.datanucleus.schema.autoCreateAll": "false",
        "spark.hadoop.hive.metastore.schema.verification": "false",
    }


def jdbc_driver_missing(settings: Settings) -> str | None:
    """Why the PostgreSQL metastore cannot be used here (one line), or None."""
    if not Path(settings.spark_jdbc_jar).is_file():
        return (
            f"no PostgreSQL JDBC driver at {settings.spark_jdbc_jar} (Debian: apt-get install libpostgresql-jdbc-java; "
            "or set FARES_SPARK_JDBC_JAR)"
        )
    return None


def _spark_jars() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


_ready: set[str] = set()


def ensure_metastore(settings: Settings, store: Metastore) -> None:
    """Create the PostgreSQL metastore's schema and tables once (SchemaTool), under an advisory lock; a no-op for
    Derby (Spark creates it) and a metastore service (its own).

    Raises:
        MetastoreError: the JDBC driver is missing or SchemaTool failed (its output is in the message).
    """
    if store.kind != "postgres" or store.jdbc_url in _ready:
        return
    missing = jdbc_driver_missing(settings)
    if missing:
        raise MetastoreError(f"the Spark metastore in PostgreSQL cannot be used: {missing}")
    if store.ops is None:  # a jdbc: URL of the user's: its schema is theirs to create
        _ready.add(str(store.jdbc_url))
        return
    with store.ops.connect(autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(hashtext(%s))", (_LOCK_KEY,))
        try:
            conn.execute(f'create schema if not exists "{store.schema}"')
            present = conn.execute("select to_regclass(%s)", (f'"{store.schema}"."DBS"',)).fetchone()
            if not present or present[0] is None:
                log.info("creating the Spark metastore's tables in schema %s", store.schema)
                _schema_tool(settings, store)
            conn.execute(
                f'create table if not exists "{store.schema}"."VERSION" ("VER_ID" bigint primary key, '
                '"SCHEMA_VERSION" varchar(127) not null, "VERSION_COMMENT" varchar(255))'
            )
            conn.execute(
                f'insert into "{store.schema}"."VERSION" values (1, %s, %s) on conflict do nothing',  # noqa: S608 - a pattern-checked schema name
                (HIVE_SCHEMA_VERSION, "created by fares (DataNucleus SchemaTool)"),
            )
        finally:
            conn.execute("select pg_advisory_unlock(hashtext(%s))", (_LOCK_KEY,))
    _ready.add(str(store.jdbc_url))


def _schema_tool(settings: Settings, store: Metastore) -> None:
    jars = _spark_jars()
    metastore_jar = next(jars.glob("hive-metastore-*.jar"), None)
    if metastore_jar is None:
        raise MetastoreError(f"no hive-metastore jar in {jars}: is pyspark installed whole?")
    with tempfile.TemporaryDirectory(prefix="fares-metastore-") as tmp:
        with zipfile.ZipFile(metastore_jar) as jar:
            jar.extract("package.jdo", tmp)
        props = Path(tmp) / "datanucleus.properties"
        props.write_text(
            "\n".join(
                [
                    "javax.jdo.PersistenceManagerFactoryClass=org.datanucleus.api.jdo.JDOPersistenceManagerFactory",
                    f"javax.jdo.option.ConnectionURL={store.jdbc_url}",
                    "javax.jdo.option.ConnectionDriverName=org.postgresql.Driver",
                    f"javax.jdo.option.ConnectionUserName={store.user}",
                    f"javax.jdo.option.ConnectionPassword={store.password}",
                    # Hive's own DataNucleus settings (HiveConf defaults), so the tables are named as Hive expects
                    "datanucleus.identifierFactory=datanucleus1",
                    "datanucleus.rdbms.useLegacyNativeValueStrategy=true",
                    "datanucleus.schema.autoCreateAll=true",
                    "",
                ]
            )
        )
        props.chmod(0o600)
        cmd = ["java", "-cp", f"{jars}/*:{settings.spark_jdbc_jar}", "org.datanucleus.store.schema.SchemaTool"]
        cmd += ["-create", "-api", "JDO", "-props", str(props), str(Path(tmp) / "package.jdo")]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)  # noqa: S603 - fixed
    if done.returncode != 0 or "completed successfully" not in done.stdout:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise MetastoreError(f"creating the Spark metastore in {store.jdbc_url} failed:\n{tail}")
