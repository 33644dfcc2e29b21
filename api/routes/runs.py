"""The runs dashboard (/runs, /runs/{id}) and what it links to: the run's log and dbt results, the training report,
the GX Data Docs and the dbt docs, all served by the API itself; plus GET /v1/runs and /v1/runs/{id}. Every one of
them needs the admin token (fares.api.deps.require_ops)."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response

from fares.api import dashboard
from fares.api.database import list_runs, read_ops
from fares.api.deps import AUTH_ERRORS, require_ops
from fares.api.schemas import Problem
from fares.ops.render import FRESHNESS_FILE, read_freshness

if TYPE_CHECKING:
    from fares.ops.runs import RunRecord
    from fares.ops.validation import ValidationRunSummary

# Every route here is an ops page: the admin token (or FARES_OPS_PUBLIC), checked once for the router.
router = APIRouter(tags=["runs"], dependencies=[Depends(require_ops)], responses=AUTH_ERRORS)

LOG_TAIL_LINES = 300
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DBT_DOCS_FILES = ("index.html", "manifest.json", "catalog.json")
NO_DATABASE: dict[int | str, dict[str, Any]] = {503: {"model": Problem, "description": "The database is unreachable"}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "No such run"}, **NO_DATABASE}


def _run(request: Request, run_id: int) -> RunRecord:
    from fares.ops import runs

    try:
        return read_ops(request.app.state.db, runs.get_run, run_id)
    except KeyError as exc:
        raise HTTPException(404, f"no pipeline run {run_id}") from exc


def _run_dir(request: Request, run_id: int) -> Path:
    return request.app.state.settings.run_dir(run_id)


def _log_path(request: Request, run: RunRecord) -> Path:
    return Path(run.log_path) if run.log_path else _run_dir(request, run.run_id) / "run.log"


def _validation(request: Request, run: RunRecord) -> list[ValidationRunSummary]:
    from fares.ops.validation import validation_results

    return read_ops(request.app.state.db, validation_results, run.validation_run_ids or [])


@router.get("/runs", response_class=HTMLResponse, include_in_schema=False)
def get_runs_page(request: Request, limit: int = 50) -> HTMLResponse:
    """Recent runs with their stages, and the two charts."""
    from fares.ml.registry import Registry
    from fares.ops.ledger import rows_loaded_per_month
    from fares.ops.runs import list_runs

    db = request.app.state.db
    runs = read_ops(db, list_runs, max(1, min(limit, 500)))
    loaded = read_ops(db, rows_loaded_per_month)
    versions = Registry(request.app.state.settings.models_dir).versions()
    return HTMLResponse(dashboard.runs_page(runs, dashboard.charts(loaded, versions)))


@router.get("/runs/{run_id}", response_class=HTMLResponse, include_in_schema=False)
def get_run_page(request: Request, run_id: int) -> HTMLResponse:
    """One run: stages, error, dbt results, validation results, the end of its log, links."""
    run = _run(request, run_id)
    validation = _validation(request, run)
    log = _log_path(request, run)
    tail = (
        "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:])
        if log.is_file()
        else ""
    )
    run_dir = _run_dir(request, run_id)
    freshness = read_freshness(run_dir / FRESHNESS_FILE)
    page = dashboard.run_page(run, tail, run_dir / "run_results.json", validation, freshness)
    return HTMLResponse(page)


@router.get("/runs/{run_id}/log", response_class=PlainTextResponse, include_in_schema=False)
def get_run_log(request: Request, run_id: int) -> Response:
    """The run's whole log file."""
    log = _log_path(request, _run(request, run_id))
    if not log.is_file():
        raise HTTPException(404, f"run {run_id} has no log file")
    return FileResponse(log, media_type="text/plain; charset=utf-8")


@router.get("/runs/{run_id}/dbt", include_in_schema=False)
def get_run_dbt(request: Request, run_id: int) -> Response:
    """dbt's run_results.json of the run's transform stage."""
    _run(request, run_id)
    path = _run_dir(request, run_id) / "run_results.json"
    if not path.is_file():
        raise HTTPException(404, f"run {run_id} kept no dbt results")
    return FileResponse(path, media_type="application/json")


@router.get("/v1/runs", responses=NO_DATABASE, summary="Pipeline run history")
def get_runs(request: Request, limit: int = Query(default=20, ge=1, le=500)) -> list[dict[str, Any]]:
    """Newest runs of the scheduler's stage chain with their stages; empty before the first recorded run."""
    return jsonable_encoder([run.to_dict() for run in list_runs(request.app.state.db, limit)])


@router.get("/runs/{run_id}/freshness", include_in_schema=False)
def get_run_freshness(request: Request, run_id: int) -> Response:
    """dbt's sources.json of the run's `dbt source freshness` (after its transform)."""
    _run(request, run_id)
    path = _run_dir(request, run_id) / FRESHNESS_FILE
    if not path.is_file():
        raise HTTPException(404, f"run {run_id} checked no source freshness")
    return FileResponse(path, media_type="application/json")


@router.get("/v1/runs/{run_id}", responses=NOT_FOUND, summary="One pipeline run")
def get_run(request: Request, run_id: int) -> Any:
    """A run with its stages, as in GET /v1/runs, plus its validation results."""
    run = _run(request, run_id)
    return jsonable_encoder({**run.to_dict(), "validation": [asdict(v) for v in _validation(request, run)]})


@router.get("/reports/{version}", response_class=HTMLResponse, include_in_schema=False)
async def get_report(request: Request, version: str) -> Response:
    """The training report of a registered model version."""
    from fares.ml.registry import Registry

    registry = Registry(request.app.state.settings.models_dir)
    path = registry.report_path(version) if _VERSION.match(version) else None
    if path is None or not await run_in_threadpool(path.is_file):
        raise HTTPException(404, f"no training report for model version {version!r}")
    return FileResponse(path, media_type="text/html")


def _inside(base: Path, rel: str) -> Path:
    """`rel` under `base`, or 404 (no way out of the folder)."""
    path = (base / (rel or "index.html")).resolve()
    if not path.is_relative_to(base.resolve()) or not path.is_file():
        raise HTTPException(404, f"{rel or 'index.html'} not found (build it first)")
    return path


@router.get("/data-docs/{rel:path}", include_in_schema=False)
def get_data_docs(request: Request, rel: str) -> Response:
    """The GX Data Docs site that `fares validate --docs` builds under data_dir/gx."""
    base = request.app.state.settings.data_dir / "gx" / "data_docs"
    return FileResponse(_inside(base, rel))


@router.get("/dbt-docs", include_in_schema=False)
def get_dbt_docs_root() -> Response:
    """The dbt docs site lives under /dbt-docs/."""
    return RedirectResponse("/dbt-docs/")


@router.get("/dbt-docs/{rel:path}", include_in_schema=False)
def get_dbt_docs(request: Request, rel: str) -> Response:
    """The dbt docs site (`fares docs --no-serve` writes it under data_dir/dbt): its three files, never compiled SQL."""
    if (rel or "index.html") not in _DBT_DOCS_FILES:
        raise HTTPException(404, f"{rel} is not part of the dbt docs site")
    return FileResponse(_inside(request.app.state.settings.dbt_dir / "target", rel))
