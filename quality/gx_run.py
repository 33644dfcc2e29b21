"""Run the suites with Great Expectations (imported here only) and build the GX Data Docs under data_dir/gx.

The GX context is ephemeral (the data source with its connection string lives only in memory, and so do the
validation definitions that name its assets), but its stores for suites and validation results are folders under
`settings.data_dir / "gx"`, so Data Docs can be rebuilt later in another process from everything validated so far.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fares.ops.validation import CheckResult
from fares.quality.suites import Batch, Check

if TYPE_CHECKING:
    from great_expectations.data_context import AbstractDataContext

    from fares.config.settings import Settings
    from fares.config.warehouse import Warehouse
    from fares.engines.base import Engine

log = logging.getLogger(__name__)

DATASOURCE = "warehouse"
SITE = "local_site"
DETAIL_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 5}


def gx_root(settings: Settings) -> Path:
    """The folder holding GX suites, validation results and the Data Docs site."""
    return settings.gx_dir


def open_context(settings: Settings) -> AbstractDataContext:
    """An ephemeral GX context whose suites, results and Data Docs are kept under data_dir/gx."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        FilesystemStoreBackendDefaults,
        ProgressBarsConfig,
    )

    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO lines are internal chatter
    root = gx_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    stores = FilesystemStoreBackendDefaults(root_directory=str(root))
    # Validation definitions name data assets that exist only in this process's ephemeral data source: keep them
    # in memory, or a later process would try (and fail) to load one naming an asset it never added.
    for name in (stores.validation_definition_store_name, stores.checkpoint_store_name):
        stores.stores[name]["store_backend"] = {"class_name": "InMemoryStoreBackend"}
    config = DataContextConfig(
        store_backend_defaults=stores,
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
        data_docs_sites={
            SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(root / "data_docs"),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _row_condition(where: dict[str, str | list[str]]) -> Any:
    """The batch's restriction as a GX row condition (None for the whole table)."""
    from great_expectations.expectations.row_conditions import Column

    condition: Any = None
    for column, value in where.items():
        part = Column(column).is_in(value) if isinstance(value, list) else Column(column) == value
        condition = part if condition is None else condition & part
    return condition


def _expectation(check: Check, where: dict[str, str | list[str]]) -> Any:
    import great_expectations.expectations as gxe

    cls = getattr(gxe, check.expectation)
    extra = {}
    if where and "row_condition" in cls.__fields__:  # table-level metadata checks (columns) take none
        extra["row_condition"] = _row_condition(where)
    return cls(**check.kwargs, **extra, severity=check.severity, notes=check.description, meta={"check": check.name})


def _text(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, float):
        return f"{value:g}"
    return "null" if value is None else str(value)


def _observed(result: dict[str, Any]) -> str | None:
    observed = result.get("observed_value")
    if isinstance(observed, dict) and "quantiles" in observed:
        pairs = zip(observed["quantiles"], observed.get("values", []), strict=False)
        return ", ".join(f"q{round(q * 100)}={_text(v)}" for q, v in pairs)
    if isinstance(observed, list):
        return f"{len(observed)} columns"
    return None if observed is None else _text(observed)


def _examples(result: dict[str, Any]) -> list[str]:
    missing = ((result.get("details") or {}).get("mismatched") or {}).get("missing")
    if missing:
        return [f"missing column {c}" for c in missing]
    return [_text(v) for v in (result.get("partial_unexpected_list") or [])]


def _error(exception_info: Any) -> str | None:
    """The first exception message GX caught while evaluating (its info is flat or keyed by metric)."""
    if not isinstance(exception_info, dict):
        return None
    infos = [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    for info in infos:
        if isinstance(info, dict) and info.get("raised_exception"):
            return str(info.get("exception_message") or "error").splitlines()[0][:300]
    return None


def _to_result(batch: Batch, check: Check, gx_result: Any) -> CheckResult:
    result = dict(gx_result.result or {})
    error = _error(gx_result.exception_info)
    return CheckResult(
        table=batch.table,
        batch=batch.label,
        check=check.name,
        expectation_type=gx_result.expectation_config.type,
        severity=check.severity,
        success=bool(gx_result.success) and error is None,
        description=check.description,
        element_count=result.get("element_count"),
        unexpected_count=result.get("unexpected_count"),
        unexpected_percent=result.get("unexpected_percent"),
        observed_value=_observed(result),
        examples=_examples(result),
        error=error,
        kwargs=check.kwargs,
    )


def _failed_batch(batch: Batch, message: str) -> list[CheckResult]:
    return [
        CheckResult(
            batch.table,
            batch.label,
            c.name,
            c.expectation,
            c.severity,
            False,
            c.description,
            error=message,
            kwargs=c.kwargs,
        )
        for c in batch.checks
    ]


def _lost_connection(exc: BaseException) -> bool:
    from sqlalchemy.exc import OperationalError

    from fares.config.warehouse import caused_by

    return caused_by(exc, OperationalError)


def _validate(
    context: AbstractDataContext,
    definition: Any,
    name: str,
    batch: Batch,
    checks: list[Check],
    result_format: dict[str, Any],
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run `checks` as suite `name` on one batch definition; GX results keyed by check name."""
    import great_expectations as gx

    suite = context.suites.add_or_update(
        gx.ExpectationSuite(name=name, expectations=[_expectation(c, batch.where) for c in checks])
    )
    validation = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=definition, suite=suite)
    )
    outcome = validation.run(batch_parameters=params or None, result_format=result_format)
    return {r.expectation_config.meta["check"]: r for r in outcome.results if r.expectation_config}


def _asset(datasource: Any, name: str, batch: Batch) -> Any:
    """A table asset (restricted per expectation by row conditions) or, for aggregates, a query asset.

    Table assets matter for cost: GX learns a query asset's columns by running the whole query and fetching
    every row; for a table it asks the catalog.
    """
    if batch.query:
        return datasource.add_query_asset(name=name, query=batch.query)
    schema, table = batch.table.split(".", 1)
    return datasource.add_table_asset(name=name, table_name=table, schema_name=schema)


def _verdicts_and_details(
    context: AbstractDataContext,
    datasource: Any,
    batch: Batch,
    frame: Any | None,
    tally_frame: Any | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """GX results by check name: the first verdict of each check, and the details of those that failed.

    Two passes keep the SQL cheap: first every check with BOOLEAN_ONLY (GX bundles these into a few aggregate
    queries), then only the failed checks again for row counts and example values. A batch with a tally takes its
    verdicts from the tally's one row; its second pass runs the failed row checks and the untallied ones.
    """
    name = f"{batch.table}.{batch.label.replace(' ', '_')}"

    def definition(asset_name: str, part: Batch, part_frame: Any | None) -> tuple[Any, dict[str, Any], Batch]:
        if part_frame is None:
            return _asset(datasource, asset_name, part).add_batch_definition_whole_table("b"), {}, part
        # a dataframe data source: the batch is a dataframe already restricted (Engine.gx_frame)
        asset = datasource.add_dataframe_asset(name=asset_name)
        return asset.add_batch_definition_whole_dataframe("b"), {"dataframe": part_frame}, replace(part, where={})

    if batch.tally is None:
        rows_def, params, rows = definition(name, batch, frame)
        verdicts = _validate(context, rows_def, name, rows, rows.checks, {"result_format": "BOOLEAN_ONLY"}, params)
        again = [c for c in rows.checks if c.name in verdicts and not verdicts[c.name].success]
    else:
        counted = Batch(batch.table, batch.label, batch.tally.checks, query=batch.tally.query)
        tally_def, tally_params, _ = definition(f"{name}.tally", counted, tally_frame)
        verdicts = _validate(
            context,
            tally_def,
            f"{name}.tally",
            counted,
            counted.checks,
            {"result_format": "BOOLEAN_ONLY"},
            tally_params,
        )
        tallied = {c.name for c in counted.checks}
        again = [
            c for c in batch.checks if c.name not in tallied or (c.name in verdicts and not verdicts[c.name].success)
        ]
    if not again:
        return verdicts, {}
    if batch.tally is not None:  # the month's rows are asked for only when a row check has to run
        rows_def, params, rows = definition(name, replace(batch, tally=None), frame)
    return verdicts, _validate(context, rows_def, f"{name}.failures", rows, again, DETAIL_FORMAT, params)


def run_batch(
    context: AbstractDataContext,
    datasource: Any,
    batch: Batch,
    frame: Any | None = None,
    tally_frame: Any | None = None,
) -> list[CheckResult]:
    """Validate one batch against its checks (see `_verdicts_and_details`); a batch that cannot be read fails
    every check. `frame` (and `tally_frame`, a tally's query) are the dataframes of a dataframe data source."""
    try:
        verdicts, details = _verdicts_and_details(context, datasource, batch, frame, tally_frame)
    except Exception as exc:  # GX wraps SQL errors in many types; the message is what the user needs
        if _lost_connection(exc):
            raise  # the database went away: let the scheduler retry rather than blame the data
        log.warning("batch %s.%s could not be validated: %s", batch.table, batch.label, exc)
        return _failed_batch(batch, str(exc).splitlines()[0][:300])
    results = []
    for check in batch.checks:
        gx_result = details.get(check.name) or verdicts.get(check.name)
        if gx_result is None:
            results.extend(_failed_batch(Batch(batch.table, batch.label, [check]), "no result from GX"))
        else:
            result = _to_result(batch, check, gx_result)
            if batch.tally is not None and check.name not in details:  # decided by its tally: store what it checks
                result.expectation_type = _snake(check.expectation)
            results.append(result)
    for r in results:
        r.fingerprint = batch.fingerprint
    return results


def _snake(name: str) -> str:
    """GX's type of an expectation class (ExpectColumnValuesToNotBeNull -> expect_column_values_to_not_be_null)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Settler:
    """The batches' aggregate queries and tallies (`Engine.settle`), started in the batches' order, up to the
    engine's `settle_workers` at a time, each on a connection of its own, while GX checks what is settled already.

    On PostgreSQL every connection is a server process, so the month's aggregates run side by side on the server's
    cores instead of one after another: the training mart's per-service passes (a month of Uber trips through
    the view's joins) no longer wait for the raw tallies. `settle(query)` returns what `Engine.settle` would,
    raising what it would. Closing it drops the queries not started yet (a gate stopped by a failure) and waits for
    those running.
    """

    def __init__(self, engine: Engine, wh: Warehouse, batches: list[Batch]) -> None:
        queries = [q for b in batches for q in (b.query, b.tally.query if b.tally else None) if q]
        self._pool = ThreadPoolExecutor(max(1, engine.settle_workers), thread_name_prefix="settle")
        self._futures = {q: self._pool.submit(engine.settle, wh, q) for q in dict.fromkeys(queries)}
        self._engine, self._wh = engine, wh

    def settle(self, query: str) -> str:
        """The settled form of `query` (run now if it was not among the batches')."""
        future = self._futures.get(query)
        return future.result() if future else self._engine.settle(self._wh, query)

    def close(self) -> None:
        """Drop the queries not started; wait for the running ones (their connections close with them)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Settler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_batches(
    settings: Settings, wh: Warehouse, batches: list[Batch], settler: Settler | None = None
) -> list[CheckResult]:
    """Validate every batch in one ephemeral context, on the engine's data source; one CheckResult per check.

    An aggregate batch (or a tally) is settled first (`Engine.settle`: run once, handed to GX as its literal rows;
    by `settler`, which may have started them with other scopes' queries, else by one started here); one the
    database rejects fails its checks with the database's message, a lost connection raises (the run retries). A
    tally the database rejects (a column missing from the table) leaves its batch to the row checks.
    """
    from fares.engines import get_engine
    from fares.engines.base import QueryError

    if not batches:
        return []
    engine = get_engine(settings)
    if settler is None:
        with Settler(engine, wh, batches) as own:
            return run_batches(settings, wh, batches, own)
    context = open_context(settings)
    datasource = engine.add_gx_datasource(context, DATASOURCE, wh)
    results: list[CheckResult] = []
    try:
        for batch in batches:
            try:
                if batch.query:
                    batch = replace(batch, query=settler.settle(batch.query))  # noqa: PLW2901 - the settled form
                # Spark analyses a batch's query when its dataframe is made
                frame = engine.gx_frame(batch.table, batch.where, batch.query)
            except QueryError as exc:
                log.warning("batch %s.%s could not be validated: %s", batch.table, batch.label, exc)
                results.extend(_failed_batch(batch, str(exc)))
                continue
            tally_frame = None
            if batch.tally is not None:
                try:
                    settled = replace(batch.tally, query=settler.settle(batch.tally.query))
                    tally_frame = engine.gx_frame(batch.table, {}, settled.query)
                    batch = replace(batch, tally=settled)  # noqa: PLW2901 - the settled form
                except QueryError as exc:  # e.g. a column missing from the table: the row checks say which
                    log.warning("the tally of %s.%s failed (%s): checking its rows", batch.table, batch.label, exc)
                    batch = replace(batch, tally=None)  # noqa: PLW2901 - the row checks decide
            results.extend(run_batch(context, datasource, batch, frame, tally_frame))
    finally:
        engine.close_gx_datasource(datasource)
    return results


def build_data_docs(settings: Settings) -> Path:
    """Build the GX Data Docs site from every stored suite and result; returns the path of its index.html."""
    context = open_context(settings)
    context.build_data_docs(site_names=[SITE])
    index = gx_root(settings) / "data_docs" / "index.html"
    log.info("GX Data Docs at %s", index)
    return index
