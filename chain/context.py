"""What a stage gets and gives: its RunContext and its StageResult (a stage is `StageFn`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fares.config.settings import Settings
from fares.config.warehouse import Warehouse


@dataclass
class RunContext:
    """What a stage gets: the settings, the database, what this run covers and what earlier stages returned."""

    settings: Settings
    wh: Warehouse
    source: str | None
    months: list[str] | None
    run_id: int
    results: dict[str, StageResult] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # e.g. force=True: reload unchanged files
    deadline: float | None = None  # time.monotonic() by which the running stage must end
    limit: float | None = None  # the running stage's limit in seconds
    cancel: list[Callable[[], None]] = field(default_factory=list)  # what stops the running stage's work (dbt, ...)

    def remaining(self) -> float | None:
        """Seconds left for the running stage (None: no limit)."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())


@dataclass(frozen=True)
class StageResult:
    """What a stage returns to the chain: its own result (`value`: an IngestReport, a TrainOutcome, ...) and the rows
    it read and wrote, for its record."""

    value: Any = None
    rows_in: int | None = None
    rows_out: int | None = None
    note: str | None = None  # e.g. "nothing to publish": a stage with nothing to do says so in its record


StageFn = Callable[[RunContext], StageResult]
