"""Per-run logs: every log line written during a run carries its run id, and each run keeps its own log file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fares.config.settings import Settings

LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(run)s%(message)s"
_state: dict[str, int | None] = {"run_id": None}  # one run at a time per process (the run lock sees to it)
_base_factory = logging.getLogRecordFactory()


def _record(*args: object, **kwargs: object) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    run_id = _state["run_id"]
    record.run = f"[run {run_id}] " if run_id is not None else ""
    return record


def install() -> None:
    """Give every log record a `run` attribute ("[run 12] " during a run, "" otherwise) for LINE_FORMAT."""
    if logging.getLogRecordFactory() is not _record:
        logging.setLogRecordFactory(_record)


def run_dir(settings: Settings, run_id: int) -> Path:
    """The folder of one run's files (run.log, dbt's run_results.json: `Settings.run_dir`), created here."""
    folder = settings.run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def run_logging(settings: Settings, run_id: int) -> Iterator[Path]:
    """During the block, tag log lines with `run_id` and copy our INFO lines and everyone's warnings to run.log."""
    install()
    path = run_dir(settings, run_id) / "run.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LINE_FORMAT))
    handler.setLevel(logging.INFO)
    root, ours = logging.getLogger(), logging.getLogger("fares")
    old_level = ours.level
    if ours.getEffectiveLevel() > logging.INFO:
        ours.setLevel(logging.INFO)  # the console handler keeps its own level; the file gets our INFO lines
    root.addHandler(handler)
    _state["run_id"] = run_id
    try:
        yield path
    finally:
        _state["run_id"] = None
        root.removeHandler(handler)
        handler.close()
        ours.setLevel(old_level)
