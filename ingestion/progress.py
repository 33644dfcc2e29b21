"""A progress display for downloads and loads on a terminal; silent when output is not a terminal."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """Thin wrapper over rich.progress that does nothing unless stderr is a terminal."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._rich: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeRemainingColumn(),
                transient=True,
            )
            self._rich.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.__exit__(*exc)
            self._rich = None

    def start(self, description: str, total: float | None) -> int | None:
        """Open a task (bytes or rows) and return its id."""
        return self._rich.add_task(description, total=total) if self._rich is not None else None

    def advance(self, task: int | None, amount: float) -> None:
        """Move a task forward."""
        if self._rich is not None and task is not None:
            self._rich.update(task, advance=amount)

    def finish(self, task: int | None) -> None:
        """Remove a finished task from the display."""
        if self._rich is not None and task is not None:
            self._rich.remove_task(task)
