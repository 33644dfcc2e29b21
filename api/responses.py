"""JSON bodies: orjson for speed, and a scrub for values plain JSON cannot hold (NaN, infinities, giant integers)."""

from __future__ import annotations

import math
from typing import Any

import orjson
from fastapi.responses import Response
from starlette.background import BackgroundTask

_INT64 = 2**63


def json_safe(value: Any) -> Any:
    """`value` with NaN/infinities as None and integers beyond 64 bits as strings (e.g. echoed bad input)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int):
        return value if -_INT64 <= value < _INT64 else str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return json_safe(value.item())
    return value


def json_response(payload: Any, status_code: int = 200, background: BackgroundTask | None = None) -> Response:
    """Serialize once with orjson (the payload is already JSON-ready; skipping re-validation keeps quotes fast)."""
    return Response(
        orjson.dumps(payload), status_code=status_code, media_type="application/json", background=background
    )
