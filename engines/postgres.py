"""The PostgreSQL engine (the default): raw partitioned by month, dbt-postgres in a child process, GX over SQL."""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from fares.config.warehouse import Warehouse
from fares.engines import pg_partitions
from fares.engines.base import FILE_ROWS, Engine, LoadError, QueryError, root_message
from fares.engines.raw_tables import LINEAGE_COLUMNS
from fares.engines.transform import run_dbt

if TYPE_CHECKING:
    import dlt
    import pandas as pd
    import psycopg
    import pyarrow as pa
    from dlt.common.schema.typing import TTableSchemaColumns

log = logging.getLogger(__name__)

DATASET = "raw"
LOAD_WORKERS = 2
_HASH_RANGE = 2**31  # hashtext() & 0x7fffffff is uniform on [0, 2^31)


class PgRawWriter:
    """dlt into schema raw of `wh`: a trip month into raw.<table>_incoming, then swapped in as the month's partition."""

    def __init__(self, settings_data_dir: str, wh: Warehouse) -> None:
        self.wh = wh
        self.pipeline = _make_pipeline(settings_data_dir, wh)

    def write_month(
        self, table: str, month: str, file: str, batches: Iterable[pa.Table], columns: TTableSchemaColumns
    ) -> tuple[int, str | None]:
        """Stream `batches` into raw.<table> as `month`'s partition, swapped in atomically (pg_partitions).

        dlt writes the month into raw.<table>_incoming; only a complete load replaces the month's partition, so a
        failed or corrupted file leaves the month as it was.
        """
        import dlt
        import psycopg

        pg_partitions.clear_incoming(self.wh, table)
        # source_file, source_month and the load id are constants of the month's partition here, not row data
        columns = {name: hint for name, hint in columns.items() if name not in LINEAGE_COLUMNS}
        counter = {"rows": 0}

        def counted() -> Iterator[pa.Table]:
            for batch in batches:
                counter["rows"] += batch.num_rows
                yield batch

        resource = dlt.resource(
            counted(),
            name=table,
            table_name=pg_partitions.incoming_table(table),
            write_disposition="replace",
            columns=columns,
        )
        try:
            info = self.pipeline.run(resource, loader_file_format="parquet")
        except Exception as exc:
            self.pipeline.abort_packages()
            raise LoadError(root_message(exc, file)) from exc
        load_id = info.loads_ids[-1] if info.loads_ids else None
        try:
            if counter["rows"] == 0:
                pg_partitions.drop_month(self.wh, table, month)
            else:
                constants = {"source_file": file, "source_month": month, "_dlt_load_id": load_id or ""}
                pg_partitions.swap_in_month(self.wh, table, month, constants)
        except psycopg.Error as exc:
            raise LoadError(f"{file}: loaded, but swapping in the {month} partition failed: {exc}") from exc
        return counter["rows"], load_id

    def write_table(
        self, table: str, rows: list[dict[str, Any]], columns: TTableSchemaColumns, file: str
    ) -> str | None:
        """Replace raw.<table> with `rows` (small tables: zones, shapes); returns the load id."""
        import dlt

        resource = dlt.resource(rows, name=table, table_name=table, write_disposition="replace", columns=columns)
        try:
            info = self.pipeline.run(resource, loader_file_format="insert_values")
        except Exception as exc:
            self.pipeline.abort_packages()
            raise LoadError(root_message(exc, file)) from exc
        return info.loads_ids[-1] if info.loads_ids else None


def _make_pipeline(data_dir: str, wh: Warehouse) -> dlt.Pipeline:
    """The dlt pipeline writing to schema raw of `wh`, working files under data_dir/dlt/<db>."""
    import dlt

    # No per-row load id: a month's partition is one load, and its load id, file and month are set as column
    # defaults when it is swapped in (pg_partitions), costing no bytes per row.
    dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = False
    dlt.config["runtime.dlthub_telemetry"] = False
    # adbc materialises a whole load file before COPY: cap the file size so a 20M-row month streams in slices,
    # and cap parallel load jobs so at most two slices are in memory at once.
    dlt.config["data_writer.file_max_items"] = FILE_ROWS
    dlt.config["load.workers"] = LOAD_WORKERS
    return dlt.pipeline(
        pipeline_name="fares_ingest",
        pipelines_dir=f"{data_dir}/dlt/{wh.dbname}",
        destination=dlt.destinations.postgres(credentials=wh.dlt_credentials()),
        dataset_name=DATASET,
    )


class PgCatalog:
    """The catalog on one psycopg connection."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run `sql` with psycopg parameters; the cursor."""
        return self.conn.execute(sql, tuple(params))

    def table_exists(self, table: str) -> bool:
        """True when `schema.table` exists."""
        row = self.conn.execute("select to_regclass(%s) is not null", (table,)).fetchone()
        return bool(row and row[0])

    def month_loads(self, table: str) -> dict[str, str] | None:
        """From one row of each month's partition (None for an unpartitioned, older layout)."""
        return pg_partitions.month_loads(self.conn, table.split(".", 1)[-1])

    def count_month(self, table: str, month: str) -> int:
        """The month's partition alone is counted."""
        return pg_partitions.count_month(self.conn, table.split(".", 1)[-1], month)


def _literal(value: Any) -> str:
    """A SQL literal of a value from an aggregate row, typed so GX reads the column as PostgreSQL typed it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}::bigint"
    if isinstance(value, float):
        return f"{value!r}::double precision" if value == value else "'NaN'::double precision"
    if isinstance(value, (datetime, date)):
        return f"'{value.isoformat()}'::{'timestamp' if isinstance(value, datetime) else 'date'}"
    if hasattr(value, "as_tuple"):  # Decimal
        return f"{value}::numeric"
    return "'" + str(value).replace("'", "''") + "'::text"


class PostgresEngine(Engine):
    """Raw data and marts in the same PostgreSQL as the ops tables (the embedded server or DATABASE_URL)."""

    name = "postgres"
    # Each connection is a server process of its own: two of the gate's aggregates run side by side (their plans are
    # parallel already, so more at once only share the same cores: 3 measured slower than 2 on two cores).
    settle_workers = 2

    def raw_writer(self, wh: Warehouse) -> PgRawWriter:
        """dlt's postgres destination on `wh`, months swapped in as partitions."""
        return PgRawWriter(str(self.settings.data_dir), wh)

    def run_dbt(
        self,
        wh: Warehouse,
        args: list[str],
        capture: bool = True,
        timeout: float | None = None,
        cancel: list[Callable[[], None]] | None = None,
    ) -> Any:
        """dbt-postgres as a child process in its own process group (killed past `timeout` or on `cancel`)."""
        return run_dbt(self.settings, wh, args, capture=capture, timeout=timeout, cancel=cancel)

    @contextmanager
    def catalog(self, wh: Warehouse) -> Iterator[PgCatalog]:
        """One connection for the block."""
        with wh.connect() as conn:
            yield PgCatalog(conn)

    def add_gx_datasource(self, context: Any, name: str, wh: Warehouse) -> Any:
        """A SQL data source (add_sql: add_postgres rejects a Unix-socket URL)."""
        with warnings.catch_warnings():  # GX suggests add_postgres, which cannot take the embedded server's socket
            warnings.simplefilter("ignore")
            return context.data_sources.add_sql(name=name, connection_string=wh.url("psycopg2"))

    def gx_frame(self, table: str, where: dict[str, Any], query: str | None) -> Any | None:
        """None: GX queries the table or query asset itself."""
        return None

    def settle(self, wh: Warehouse, query: str) -> str:
        """The query run once here, its few result rows written into a query as literals.

        GX runs a query asset's query several times (to learn its columns, to count its rows, for the metrics): over
        a real month of ml_fare_training each run of a per-service pass reads millions of trips through the view.
        The result is a handful of rows, so GX checks exactly the same values either way. A lost connection raises
        as it is.
        """
        import psycopg

        try:
            with wh.connect() as conn:
                cur = conn.execute(query)
                names = [d.name for d in cur.description or []]
                rows = cur.fetchall()
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            raise QueryError(str(exc).splitlines()[0][:300]) from exc
        cols = ", ".join(f'"{n}"' for n in names)
        if not rows:
            nulls = ", ".join(f'null as "{n}"' for n in names)
            return f"select {nulls} where false"
        values = ", ".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)
        # the values are quoted by _literal, the names are the fixed query's own columns
        return f"select * from (values {values}) as settled ({cols})"  # noqa: S608 - see above

    def close_gx_datasource(self, datasource: Any) -> None:
        """Close pooled connections now, not at garbage collection (the daemon lives long)."""
        datasource.get_execution_engine().engine.dispose()

    def sorted_string_agg(self, column: str) -> str:
        """string_agg ordered by the column."""
        return f"string_agg({column}, ',' order by {column})"

    def hash_below(self, column: str, fraction: float) -> str:
        """hashtext(), uniform on [0, 2^31) once masked."""
        return f"(hashtext({column}) & 2147483647) < {int(fraction * _HASH_RANGE)}"

    def read_frame(self, wh: Warehouse, sql: str) -> pd.DataFrame:
        """Fetched through psycopg, so each column keeps its type."""
        import pandas as pd

        with wh.connect() as conn:
            cur = conn.execute(sql)
            return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description or ()])

    def read_bulk(self, wh: Warehouse, sql: str, dtypes: dict[str, str], dates: tuple[str, ...]) -> pd.DataFrame:
        """COPY ... to stdout as CSV, parsed by pandas: far faster and leaner than fetching rows as tuples."""
        import pandas as pd

        buf = io.BytesIO()
        with wh.connect() as conn, conn.cursor().copy(f"copy ({sql}) to stdout with (format csv, header)") as copy:
            for chunk in copy:
                buf.write(chunk)
        buf.seek(0)
        frame = pd.read_csv(buf, dtype=dtypes)
        for column in dates:
            frame[column] = pd.to_datetime(frame[column], format="ISO8601")
        return frame
