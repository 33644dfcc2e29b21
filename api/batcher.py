"""Dynamic batching of single quotes: trips that reach the event loop together share one model call.

A model call costs about the same for 1 row as for 50 (pandas and tree-walk overhead), so under concurrent load
pricing the waiting trips together raises throughput; with one request at a time it adds only a couple of event
loop turns (microseconds), never a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fares.api.model_store import Bundle
from fares.api.quotes import predict, price_rows

MAX_BATCH = 256
TURNS = 3  # event-loop turns to wait for more trips before pricing (requests already read reach the handler by then)


class QuoteBatcher:
    """Collects (bundle, time, pickup, dropoff) on one event loop and prices them per bundle in one call."""

    def __init__(
        self, max_batch: int = MAX_BATCH, turns: int = TURNS, observe: Callable[[int], None] | None = None
    ) -> None:
        self.max_batch = max_batch
        self.turns = turns
        self.observe = observe
        self._pending: list[tuple[Bundle, datetime, int, int, asyncio.Future]] = []
        self._handle: asyncio.Handle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0

    async def price(self, bundle: Bundle, pickup_at: datetime, pickup: int, dropoff: int) -> tuple[list[float], bool]:
        """The rounded price row of one trip and whether it is finite (see `api.quotes.price_rows`)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (e.g. a new test client): start clean
            self._loop, self._pending, self._handle = loop, [], None
        future: asyncio.Future = loop.create_future()
        self._pending.append((bundle, pickup_at, pickup, dropoff, future))
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif self._handle is None:
            self._handle = loop.call_soon(self._wait, self.turns)
        return await future

    def _wait(self, turns: int) -> None:
        if turns > 0 and self._loop is not None:
            self._handle = self._loop.call_soon(self._wait, turns - 1)
            return
        self._flush()

    def _flush(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        pending, self._pending = self._pending, []
        groups: dict[int, list[tuple[Bundle, datetime, int, int, asyncio.Future]]] = {}
        for item in pending:  # a reload can land mid-batch: each trip is priced by the model it started with
            groups.setdefault(id(item[0]), []).append(item)
        for items in groups.values():
            self._price_group(items)

    def _price_group(self, items: list[tuple[Bundle, datetime, int, int, Any]]) -> None:
        self.batches += 1
        if self.observe is not None:
            self.observe(len(items))
        try:
            rows, ok = price_rows(
                predict(items[0][0], [i[1] for i in items], [i[2] for i in items], [i[3] for i in items])
            )
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the error, none hangs
            for item in items:
                if not item[4].done():
                    item[4].set_exception(exc)
            return
        for k, item in enumerate(items):
            if not item[4].done():
                item[4].set_result((rows[k], bool(ok[k])))
