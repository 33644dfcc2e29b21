"""Read-only routes: zone search, the model in service, health (open), and Prometheus metrics (an ops page)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response

from fares.api.deps import require_ops
from fares.api.metrics import PipelineView, PipelineWatch, model_age_seconds
from fares.api.quotes import source_of, window_of
from fares.api.responses import json_response, json_safe
from fares.api.schemas import HealthOut, ModelOut, Problem, ZoneMap, ZoneOut

router = APIRouter(tags=["info"])

NO_MODEL: dict[int | str, dict[str, Any]] = {503: {"model": Problem, "description": "No model is loaded yet"}}


@router.get("/v1/zones", response_model=list[ZoneOut], responses=NO_MODEL, summary="Search taxi zones")
async def get_zones(
    request: Request,
    q: str | None = Query(default=None, max_length=200, description="Part of a zone or borough name, or a zone id"),
    limit: int = Query(default=20, ge=1, le=300),
) -> Response:
    """Zones whose name starts with or contains `q` (all zones when `q` is empty), names first."""
    bundle = request.app.state.store.require()
    return json_response([z.as_dict() for z in bundle.zones.search(q, limit)])


@router.get("/v1/zones/map", response_model=ZoneMap, responses=NO_MODEL, summary="The zones as SVG paths")
async def get_zone_map(request: Request) -> Response:
    """Every zone with a shape as SVG path data, drawn from the model bundle (the web page's map)."""
    bundle = request.app.state.store.require()
    content = await run_in_threadpool(lambda: bundle.zone_map)
    return Response(content, media_type="application/json", headers={"Cache-Control": "max-age=300"})


@router.get("/v1/model", response_model=ModelOut, responses=NO_MODEL, summary="The model in service")
async def get_model(request: Request) -> Response:
    """Version, training window, evaluation metrics and load time of the model answering quotes."""
    store = request.app.state.store
    bundle = store.require()
    return json_response(
        jsonable_encoder(
            {
                "model_version": bundle.version,
                "trained_window": window_of(bundle),
                "data_source": source_of(bundle),
                "metrics": json_safe(getattr(bundle.model, "metrics", {}) or {}),
                "loaded_at": bundle.loaded_at.isoformat(),
                "zones": len(bundle.zones),
                "models_dir": str(store.models_dir),
            }
        )
    )


@router.get("/health", response_model=HealthOut, summary="Model loaded, database reachable, scheduler alive")
async def get_health(request: Request) -> Response:
    """Always 200 while the process serves: `degraded` says what does not work (quotes need only the model).

    A dead or late scheduler (see `scheduler`) makes it `degraded` too, and is alerted once."""
    state = request.app.state
    reachable, db_error = await _db_status(state.db)
    view = await _pipeline(state.pipeline) if reachable else None
    scheduler = _scheduler_out(view)
    bundle = state.store.bundle
    ok = bundle is not None and reachable and scheduler["status"] not in ("dead", "late")
    return json_response(
        jsonable_encoder(
            {
                "status": "ok" if ok else "degraded",
                "model_loaded": bundle is not None,
                "model_version": bundle.version if bundle is not None else None,
                "database_reachable": reachable,
                "database_error": db_error,
                "model_error": state.store.last_error,
                "scheduler": scheduler,
            }
        )
    )


async def _db_status(db: Any) -> tuple[bool, str | None]:
    if db.fresh():
        return db.status()
    return await run_in_threadpool(db.status)


async def _pipeline(watch: PipelineWatch) -> PipelineView | None:
    if watch.fresh():
        return watch.view()
    return await run_in_threadpool(watch.view)


def _scheduler_out(view: PipelineView | None) -> dict[str, Any]:
    """The `scheduler` part of /health."""
    if view is None:
        return {"status": "unknown", "reason": "the database cannot be read"}
    beat = view.scheduler.heartbeat
    facts = {} if beat is None else asdict(beat)
    return {
        "status": view.scheduler.status,
        "reason": view.scheduler.reason,
        **facts,
        "last_success_at": view.health.last_success_at,
    }


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(require_ops)])
async def get_metrics(request: Request) -> Response:
    """Prometheus text format: the API's own figures, the model's age and the pipeline's (from schema ops)."""
    state = request.app.state
    bundle = state.store.bundle
    state.metrics.model_loaded.set(1 if bundle is not None else 0)
    state.metrics.model_reloads.set(state.store.reloads)
    state.metrics.model_info.clear()
    if bundle is not None:
        state.metrics.model_info.labels(bundle.version).set(1)
    reachable, _ = await _db_status(state.db)
    view = await _pipeline(state.pipeline) if reachable else None
    version = bundle.version if bundle is not None else None
    body = await run_in_threadpool(state.metrics.render, view, model_age_seconds(state.store.models_dir, version))
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
