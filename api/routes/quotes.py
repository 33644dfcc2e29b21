"""POST /v1/quotes and /v1/quotes/batch: price trips with the model in service."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.background import BackgroundTask

from fares.api.quotes import NOT_FINITE, build_quote, prepare_quote, quote_batch, quote_columns
from fares.api.responses import json_response
from fares.api.schemas import MAX_BATCH, BatchRequest, BatchResponse, Problem, QuoteRequest, QuoteResponse
from fares.api.zones import PlaceError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["quotes"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The body could not be read (not UTF-8 JSON)"},
    413: {"model": Problem, "description": "Request body too large"},
    422: {"model": Problem, "description": "A place, time or field that cannot be used, and why"},
    503: {"model": Problem, "description": "No model is loaded yet"},
}


def _first_quote_hook(request: Request) -> BackgroundTask | None:
    """With demo_once, the first successful quote asks the server to exit once the response has gone out."""
    state = request.app.state
    if not state.settings.demo_once or state.first_quote_done:
        return None
    state.first_quote_done = True
    log.info("demo_once: first quote answered; asking the server to stop")
    return BackgroundTask(state.on_first_quote)


@router.post("/quotes", response_model=QuoteResponse, responses=ERRORS, summary="Taxi or Uber for one trip")
async def post_quote(body: QuoteRequest, request: Request) -> Response:
    """Both fares with their ranges, which is cheaper and by how much, the model version and its data window."""
    state = request.app.state
    bundle = state.store.require()
    try:
        pickup_at, pickup, dropoff = prepare_quote(bundle, body)
        row, finite = await state.batcher.price(bundle, pickup_at, pickup, dropoff)
        if not finite:
            raise PlaceError(NOT_FINITE)
    except PlaceError:
        state.metrics.quote_errors.inc()
        raise
    quote = build_quote(bundle, pickup_at, pickup, dropoff, row)
    state.metrics.quotes.labels(quote["cheaper"]).inc()
    return json_response(quote, background=_first_quote_hook(request))


@router.post(
    "/quotes/batch", response_model=BatchResponse, responses=ERRORS, summary=f"Up to {MAX_BATCH:,} trips in one call"
)
async def post_quote_batch(body: BatchRequest, request: Request) -> Response:
    """Price many trips in one vectorised model call; trips that cannot be priced are listed in `errors`."""
    state = request.app.state
    bundle = state.store.require()
    if body.columns is not None:
        cols = body.columns
        result = await run_in_threadpool(
            quote_columns, bundle, cols.pickup_at, cols.pickup_zone_id, cols.dropoff_zone_id
        )
    else:
        result = await run_in_threadpool(quote_batch, bundle, body.trips or [])
    state.metrics.quotes.labels("uber").inc(result.uber_cheaper)
    state.metrics.quotes.labels("taxi").inc(result.count - result.uber_cheaper)
    if result.errors:
        state.metrics.quote_errors.inc(result.errors)
    return Response(result.body, media_type="application/json")
