"""The Spark engine's side of the quality gate: the planner's queries through Spark, and each batch as a dataframe."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fares.quality.suites import Batch
    from fares.settings import Settings


def _literal(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "(" + ", ".join(_literal(v) for v in value) + ")"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


class _Rows:
    """The little of a DB-API cursor the planner uses: fetchone, fetchall, iteration."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._rows)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._rows)


class SparkConnection:
    """The planner's small queries run on the process's SparkSession, with the lake's tables registered.

    `execute` takes the planner's psycopg-style SQL (%s parameters, `= any(%s)` for a list) and returns its rows.
    """

    def __init__(self, settings: Settings) -> None:
        from fares.lakehouse import get_spark, register_raw_tables

        self.spark = get_spark(settings)
        register_raw_tables(self.spark, settings)

    def table_exists(self, table: str) -> bool:
        """True when `schema.table` exists in Spark's catalog."""
        return bool(self.spark.catalog.tableExists(table))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Rows:
        """Run `sql` with its %s parameters inlined as literals; all rows (the planner's queries are small)."""
        sql = re.sub(r"=\s*any\(%s\)", "in %s", sql)
        parts = sql.split("%s")
        if len(parts) - 1 != len(params):
            raise ValueError(f"{len(params)} parameter(s) for {len(parts) - 1} placeholder(s) in {sql!r}")
        text = parts[0] + "".join(_literal(p) + rest for p, rest in zip(params, parts[1:], strict=True))
        return _Rows([tuple(r) for r in self.spark.sql(text).collect()])


def batch_frame(settings: Settings) -> Callable[[Batch], Any]:
    """A function giving each batch's rows as a dataframe: its query, or its table restricted to `where`."""
    from pyspark.sql import functions as F  # noqa: N812 - the usual name

    from fares.lakehouse import get_spark

    spark = get_spark(settings)

    def frame(batch: Batch) -> Any:
        if batch.query:
            return spark.sql(batch.query)
        df = spark.table(batch.table)
        for column, value in batch.where.items():
            df = df.where(F.col(column).isin(value) if isinstance(value, list) else F.col(column) == value)
        return df

    return frame
