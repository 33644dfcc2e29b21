"""The Spark engine (FARES_ENGINE=spark): raw months as parquet in a lake, dbt-spark in the process's session, GX
over Spark dataframes. Ops records stay in PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from fares.config.warehouse import Warehouse
from fares.engines.base import Engine, QueryError
from fares.engines.lake_catalog import LakeMonth, lake_months
from fares.engines.spark_lake import LakeWriter, make_lake_sink
from fares.engines.spark_session import get_spark, register_raw_tables, run_dbt_spark, session_running
from fares.ops.ledger import read_ledger

if TYPE_CHECKING:
    import pandas as pd

_HASH_BUCKETS = 1_000_000


def _literal(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "(" + ", ".join(_literal(v) for v in value) + ")"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


class _Rows:
    """The little of a DB-API cursor the planners use: fetchone, fetchall, iteration."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._rows)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._rows)


class SparkCatalog:
    """The planners' small queries on the process's SparkSession, with the lake's tables registered; the raw trip
    months' loads and rows come from the ledger, as the catalog's partitions do."""

    def __init__(self, spark: Any, months: dict[str, dict[str, LakeMonth]]) -> None:
        self.spark, self.months = spark, months

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Rows:
        """Run psycopg-style `sql` with its %s parameters inlined as literals; all rows (the queries are small)."""
        sql = re.sub(r"=\s*any\(%s\)", "in %s", sql)
        parts = sql.split("%s")
        if len(parts) - 1 != len(params):
            raise ValueError(f"{len(params)} parameter(s) for {len(parts) - 1} placeholder(s) in {sql!r}")
        text = parts[0] + "".join(_literal(p) + rest for p, rest in zip(params, parts[1:], strict=True))
        return _Rows([tuple(r) for r in self.spark.sql(text).collect()])

    def table_exists(self, table: str) -> bool:
        """True when `schema.table` exists in Spark's catalog."""
        return bool(self.spark.catalog.tableExists(table))

    def month_loads(self, table: str) -> dict[str, str] | None:
        """{month: load id} of a raw trip table's partitions: the ledger's current load of each month in service."""
        return {month: lake.load_id for month, lake in sorted(self.months.get(table, {}).items())}

    def count_month(self, table: str, month: str) -> int:
        """Rows of a raw trip table's `month`: what its current load stored, as the ledger recorded it."""
        lake = self.months.get(table, {}).get(month)
        return lake.rows if lake else 0

    def count_table(self, table: str) -> int | None:
        """Rows of `table`: a raw trip table's from the ledger, another's by count(*); None when it does not exist."""
        if table in self.months:
            return sum(lake.rows for lake in self.months[table].values())
        if not self.table_exists(table):
            return None
        row = self.execute(f"select count(*) from {table}").fetchone()  # noqa: S608 - our table names
        return int(row[0]) if row else 0


class SparkEngine(Engine):
    """Raw data in a parquet lake (settings.lake_location), marts as Spark tables, all through one SparkSession."""

    name = "spark"

    def forks_stages(self) -> bool:
        """Not while this process holds a Spark session: a forked child would share its JVM gateway, and the embedded
        Derby metastore admits one JVM at a time. Then stages run in a thread of this process (the session's)."""
        return not session_running()

    @contextmanager
    def tag_work(self, tag: str, cancel: list[Callable[[], None]]) -> Iterator[None]:
        """The thread's Spark jobs carry `tag` (SparkSession.addTag); `cancel` gets interruptTag for them. Only where
        this process holds a session (a stage in a thread of it); a forked stage is stopped with its process."""
        if not session_running():
            yield
            return
        spark = get_spark(self.settings)
        spark.addTag(tag)

        def interrupt() -> None:
            spark.interruptTag(tag)

        cancel.append(interrupt)
        try:
            yield
        finally:
            spark.removeTag(tag)
            if interrupt in cancel:
                cancel.remove(interrupt)

    def raw_writer(self, wh: Warehouse) -> LakeWriter:
        """dlt's filesystem destination into the lake (`wh` keeps only the ledger, which says each month's version)."""
        return LakeWriter(make_lake_sink(self.settings), wh)

    def run_dbt(
        self,
        wh: Warehouse,
        args: list[str],
        capture: bool = True,
        timeout: float | None = None,
        cancel: list[Callable[[], None]] | None = None,
    ) -> Any:
        """dbt on the target FARES_DBT_SPARK_TARGET names, in its own process: `timeout` and `cancel` stop it as on
        PostgreSQL."""
        return run_dbt_spark(self.settings, wh, args, capture=capture, timeout=timeout, cancel=cancel)

    @contextmanager
    def catalog(self, wh: Warehouse) -> Iterator[SparkCatalog]:
        """The session's catalog, with the lake's raw tables registered as the ledger in `wh` has them."""
        spark = get_spark(self.settings)
        entries = list(read_ledger(wh).values())
        register_raw_tables(spark, self.settings, entries)
        yield SparkCatalog(spark, lake_months(entries))

    def count_rows(self, wh: Warehouse, tables: tuple[str, ...]) -> int | None:
        """Rows in those of `tables` that exist: raw trip tables' from the ledger (no scan of the lake's history),
        others' by count(*) (parquet answers it from file footers)."""
        with self.catalog(wh) as cat:
            counts = [n for n in (cat.count_table(t) for t in tables) if n is not None]
        return sum(counts) if counts else None

    def add_gx_datasource(self, context: Any, name: str, wh: Warehouse) -> Any:
        """A GX Spark data source (dataframes are passed per batch, not cached)."""
        return context.data_sources.add_spark(name=name, persist=False)

    def gx_frame(self, table: str, where: dict[str, Any], query: str | None) -> Any:
        """The batch's query, or its table restricted to `where`, as a dataframe."""
        from pyspark.sql import functions as F  # noqa: N812 - the usual name

        spark = get_spark(self.settings)
        if query:
            from pyspark.errors import AnalysisException

            try:
                return spark.sql(query)  # analysed now: a missing column or table fails here
            except AnalysisException as exc:
                raise QueryError(str(exc).splitlines()[0][:300]) from exc
        df = spark.table(table)
        for column, value in where.items():
            df = df.where(F.col(column).isin(value) if isinstance(value, list) else F.col(column) == value)
        return df

    def settle(self, wh: Warehouse, query: str) -> str:
        """Spark gets each batch as one dataframe: nothing to settle."""
        return query

    def sorted_string_agg(self, column: str) -> str:
        """concat_ws over the sorted collected values."""
        return f"concat_ws(',', sort_array(collect_list({column})))"

    def hash_below(self, column: str, fraction: float) -> str:
        """xxhash64 into a million buckets (a sampled stratum keeps other trips than on PostgreSQL)."""
        return f"pmod(xxhash64({column}), {_HASH_BUCKETS}) < {int(fraction * _HASH_BUCKETS)}"

    def read_frame(self, wh: Warehouse, sql: str) -> pd.DataFrame:
        """toPandas through Arrow."""
        frame: Any = get_spark(self.settings).sql(sql).toPandas()
        return frame

    def read_bulk(self, wh: Warehouse, sql: str, dtypes: dict[str, str], dates: tuple[str, ...]) -> pd.DataFrame:
        """toPandas through Arrow, then the pandas types the PostgreSQL reader gives."""
        import pandas as pd

        frame: Any = get_spark(self.settings).sql(sql).toPandas()
        frame = frame.astype(dtypes)
        for column in dates:
            frame[column] = pd.to_datetime(frame[column])
        return frame
