"""Admin routes (reload, promote, start a run): need the admin token (fares.api.deps.require_admin), always."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from fares.api.deps import AUTH_ERRORS, require_admin
from fares.api.schemas import Problem, ReloadOut

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)], responses=AUTH_ERRORS)


def _answer(request: Request, changed: bool) -> dict[str, Any]:
    bundle = request.app.state.store.bundle
    return {"model_version": bundle.version if bundle is not None else None, "changed": changed}


@router.post("/reload", response_model=ReloadOut, summary="Reload the registry's current model now")
async def post_reload(request: Request) -> dict[str, Any]:
    """Read CURRENT and put that model in service if it differs from the one serving."""
    changed = await run_in_threadpool(request.app.state.store.refresh, True)
    if request.app.state.store.last_error and not changed:
        raise HTTPException(503, f"reload failed: {request.app.state.store.last_error}")
    return _answer(request, changed)


@router.post(
    "/promote/{version}",
    response_model=ReloadOut,
    responses={404: {"model": Problem, "description": "No such version in the registry"}},
    summary="Make a registered version current and serve it",
)
async def post_promote(request: Request, version: str = Path(max_length=128)) -> dict[str, Any]:
    """Point the registry's CURRENT at `version`, then reload."""
    from fares.ml import RegistryError
    from fares.ml.registry import Registry

    store = request.app.state.store
    registry = Registry(store.models_dir)
    if not _VERSION.match(version) or not registry.exists(version):
        raise HTTPException(404, f"model version {version!r} is not in the registry at {store.models_dir}")
    try:
        await run_in_threadpool(registry.promote, version)
    except RegistryError as exc:
        raise HTTPException(404, f"model version {version!r} cannot be promoted: {exc}") from exc
    changed = await run_in_threadpool(store.refresh, True)
    if store.last_error and not changed:
        raise HTTPException(503, f"version {version} was promoted but did not load: {store.last_error}")
    return _answer(request, changed)


class RunIn(BaseModel):
    """What to run: months (or a range) and stages; everything optional."""

    months: list[str] | None = Field(default=None, max_length=120, description='e.g. ["2024-01..2024-03"]')
    stages: list[str] | None = Field(default=None, description="only these stages (chain order); default all")
    start: str | None = Field(default=None, alias="from", description="resume: this stage and the ones after it")
    source: str | None = Field(default=None, description="TLC base URL or folder; default FARES_TLC_SOURCE")
    force: bool = Field(default=False, description="reload files even when unchanged")


@router.post(
    "/runs",
    status_code=202,
    responses={
        400: {"model": Problem, "description": "The body is not JSON"},
        409: {"model": Problem, "description": "Another run holds the pipeline lock"},
        422: {"model": Problem, "description": "Unknown stage or bad months"},
        503: {"model": Problem, "description": "The database is unreachable"},
    },
    summary="Start a pipeline run now",
)
def post_run(request: Request, body: RunIn) -> Any:
    """Start a recorded run under the pipeline lock: while a daemon beats, its process makes it (202 `queued` with a
    request id; the run appears at /runs); without one, in the background of this process (202 with its run id)."""
    from fares.chain import pipeline
    from fares.ingestion.months import parse_months
    from fares.ops.heartbeat import assess_scheduler
    from fares.ops.runs import request_run

    if body.start and body.stages:
        raise HTTPException(422, "give `from` or `stages`, not both")
    try:
        stages = pipeline.stages_for(body.start, body.stages)
        months = parse_months(body.months) if body.months else None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    settings = request.app.state.settings
    wh = request.app.state.db.warehouse()  # schema ops prepared (or a 503 when the database is away)
    if assess_scheduler(settings, wh).status in ("ok", "late"):  # a daemon beats: its process makes the run
        asked = request_run(wh, months, body.source, list(stages), body.force, "the API (POST /v1/admin/runs)")
        return {"request_id": asked, "run_id": None, "status": "queued", "stages": list(stages), "url": "/runs"}
    job = pipeline.Run(body.source, months, stages, trigger="api", params={"force": body.force})
    row = pipeline.start_in_background(settings, job)
    if row.status == "skipped":
        raise HTTPException(409, f"run {row.run_id} {row.error}")
    return {"run_id": row.run_id, "status": row.status, "stages": list(stages), "url": f"/runs/{row.run_id}"}


@router.post(
    "/runs/{run_id}/cancel",
    status_code=202,
    responses={
        404: {"model": Problem, "description": "No such run"},
        409: {"model": Problem, "description": "The run is not running"},
        503: {"model": Problem, "description": "The database is unreachable"},
    },
    summary="Cancel a running pipeline run",
)
def post_cancel(request: Request, run_id: int) -> Any:
    """Ask a running run to stop: its running stage's process is stopped (SIGTERM, then SIGKILL after
    FARES_STAGE_GRACE_SECONDS), its database sessions ended, and it is recorded `cancelled`, never redone."""
    from fares.api.database import read_ops
    from fares.ops.runs import request_cancel

    try:
        run = read_ops(request.app.state.db, request_cancel, run_id, "the API (POST /v1/admin/runs/{id}/cancel)")
    except KeyError as exc:
        raise HTTPException(404, f"no pipeline run {run_id}") from exc
    if run.status not in ("running", "cancelled"):
        raise HTTPException(409, f"run {run_id} is not running (it {run.status.replace('_', ' ')})")
    return {"run_id": run_id, "status": run.status, "cancel_requested": True, "url": f"/runs/{run_id}"}
