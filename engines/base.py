"""What every engine provides: the one seam between fares and the place its raw data and marts live.

An engine is chosen once per process from the settings (`fares.engines.get_engine`); stages, ingestion, quality and
ml ask it and never look at `settings.engine` themselves. A new engine is one new module with a subclass of `Engine`
and one line in `fares.engines.ENGINES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Protocol

from fares.config.settings import Settings
from fares.config.warehouse import Warehouse

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from dlt.common.schema.typing import TTableSchemaColumns


FILE_ROWS = 500_000  # rows per dlt load file, on every engine (one COPY job each on PostgreSQL)


class LoadError(RuntimeError):
    """A file could not be stored in raw; the message names the file and the problem.

    Errors raised while the file's rows are read (a bad file, a schema mismatch) subclass it, so the message a
    user sees is theirs and not the loader library's wrapping.
    """


class QueryError(RuntimeError):
    """A query failed for a reason of its own (bad SQL, bad data), not because the database went away."""


def root_message(exc: BaseException, file: str) -> str:
    """The innermost error message of a failed load, prefixed with the file name (a LoadError's own message wins)."""
    inner: BaseException = exc
    while True:
        nxt = inner.__cause__ or inner.__context__
        if nxt is None or nxt is inner:
            break
        inner = nxt
        if isinstance(inner, LoadError):
            break
    msg = str(inner).strip() or type(inner).__name__
    return msg if msg.startswith(file) else f"{file}: {msg}"


class RawWriter(Protocol):
    """Writes raw tables: a trip month replaces the month's old rows in one step; small tables are replaced whole."""

    def write_month(
        self, table: str, month: str, file: str, batches: Iterable[pa.Table], columns: TTableSchemaColumns
    ) -> tuple[int, str | None]:
        """Store `batches` (the month's conformed rows, with `_dlt_id`) as raw.<table>'s `month`; a failed write
        leaves the month as it was. Returns (rows stored, load id). Raises LoadError."""
        ...

    def write_table(
        self, table: str, rows: list[dict[str, Any]], columns: TTableSchemaColumns, file: str
    ) -> str | None:
        """Replace raw.<table> with `rows` (zones, shapes); returns the load id. Raises LoadError."""
        ...


class Rows(Protocol):
    """The little of a DB-API cursor the planners use: fetchone, fetchall, iteration."""

    def fetchone(self) -> tuple[Any, ...] | None: ...

    def fetchall(self) -> list[tuple[Any, ...]]: ...

    def __iter__(self) -> Iterator[tuple[Any, ...]]: ...


class Catalog(Protocol):
    """Small queries on the analytics tables: existence, month loads and counts, planner queries."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        """Run psycopg-style SQL (%s parameters, `= any(%s)` for a list) and return its rows."""
        ...

    def table_exists(self, table: str) -> bool:
        """True when `schema.table` exists."""
        ...

    def month_loads(self, table: str) -> dict[str, str] | None:
        """{month: load id} of raw.<table> without scanning it, or None when only a scan can tell."""
        ...

    def count_month(self, table: str, month: str) -> int:
        """Rows of `month` in raw.<table>."""
        ...


class Engine(ABC):
    """Where raw data and the marts live, and how each layer reaches them. Ops records stay in PostgreSQL (`wh`)."""

    name: str

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def forks_stages(self) -> bool:
        """True when a stage can run in a process forked from this one (fares.chain.stage_process)."""
        return True

    def tag_work(self, tag: str, cancel: list[Callable[[], None]]) -> AbstractContextManager[None]:
        """Within the block, this thread's work on the engine carries `tag`, and `cancel` gets a callback that stops
        it (Spark: session tags). Nothing to do by default: dbt and queries are stopped through their processes."""
        return nullcontext()

    # raw storage
    @abstractmethod
    def raw_writer(self, wh: Warehouse) -> RawWriter:
        """A writer of raw tables for one ingest (`wh` is the ops database; on PostgreSQL also where raw lives)."""

    # dbt
    @abstractmethod
    def run_dbt(
        self,
        wh: Warehouse,
        args: list[str],
        capture: bool = True,
        timeout: float | None = None,
        cancel: list[Callable[[], None]] | None = None,
    ) -> Any:
        """`dbt <args>` on this engine's target. Raises fares.engines.transform.DbtFailed or DbtTimeout.

        `cancel` (a run stage's cancel callbacks) gets one that stops dbt while it runs.
        """

    # counts and catalog
    @abstractmethod
    def catalog(self, wh: Warehouse) -> AbstractContextManager[Catalog]:
        """The analytics tables' catalog for the block."""

    def count_rows(self, wh: Warehouse, tables: tuple[str, ...]) -> int | None:
        """Rows in those of `tables` that exist; None when none does."""
        with self.catalog(wh) as cat:
            present = [t for t in tables if cat.table_exists(t)]
            counts = [cat.execute(f"select count(*) from {t}").fetchone() for t in present]  # noqa: S608 - our names
        return sum(int(c[0]) for c in counts if c) if present else None

    # Great Expectations
    @abstractmethod
    def add_gx_datasource(self, context: Any, name: str, wh: Warehouse) -> Any:
        """Register this engine as a GX data source named `name` in `context`."""

    @abstractmethod
    def gx_frame(self, table: str, where: dict[str, Any], query: str | None) -> Any | None:
        """The batch's rows as a dataframe for a dataframe data source, or None where GX queries a SQL asset."""

    #: How many `settle` calls the gate may run at once, each on its own connection (fares.quality.gx_run.Settler).
    settle_workers: int = 1

    @abstractmethod
    def settle(self, wh: Warehouse, query: str) -> str:
        """An aggregate query whose result GX reads several times: run it once and return a query of its literal
        rows, or the query itself where that saves nothing. Raises QueryError when the query itself fails."""

    def close_gx_datasource(self, datasource: Any) -> None:  # noqa: B027 - nothing to close by default
        """Release what the data source holds (pooled connections)."""

    # SQL that differs between engines (the planners' and the sampler's few queries)
    @abstractmethod
    def sorted_string_agg(self, column: str) -> str:
        """An aggregate joining `column`'s values sorted, with commas."""

    @abstractmethod
    def hash_below(self, column: str, fraction: float) -> str:
        """A predicate keeping a deterministic `fraction` of rows by a hash of `column`."""

    # reading marts into pandas (training)
    @abstractmethod
    def read_frame(self, wh: Warehouse, sql: str) -> pd.DataFrame:
        """A small query's result (lookups) with its columns' types."""

    @abstractmethod
    def read_bulk(self, wh: Warehouse, sql: str, dtypes: dict[str, str], dates: tuple[str, ...]) -> pd.DataFrame:
        """A large query's result (a training sample) read as fast as the engine allows, typed as `dtypes`, with
        `dates` parsed as timestamps."""
