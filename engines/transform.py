"""Running dbt: the command line (project, profiles, the vars that are settings) and dbt as a child process.

Both engines build their dbt command here; PostgreSQL runs it as a subprocess (`run_dbt`), Spark in its session.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fares.config.settings import Settings
from fares.config.warehouse import DBT_PROJECT_DIR, Warehouse, dbt_environment

log = logging.getLogger(__name__)


class DbtFailed(RuntimeError):
    """dbt reported a failure; the message carries dbt's own output (the failed nodes)."""


class DbtTimeout(RuntimeError):
    """dbt ran past its time limit and was stopped."""

    transient = False


def _dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def project_var(name: str) -> Any:
    """A var's default in dbt_project.yml: for rules dbt applies and Python must apply alike (the holdout fraction),
    dbt's file is the one definition."""
    import yaml

    with (DBT_PROJECT_DIR / "dbt_project.yml").open(encoding="utf-8") as project:
        return yaml.safe_load(project)["vars"][name]


def dbt_vars(settings: Settings) -> dict[str, Any]:
    """The dbt vars that are settings: `zone_pair_months` is FARES_TRAIN_MONTHS, the one training window that bounds
    the holdout, the zone-pair typicals and the Uber levels in dbt and the training sample in ml/; the holdout's
    minimums are FARES_HOLDOUT_MIN_TRIPS and FARES_HOLDOUT_MIN_CELLS."""
    return {
        "zone_pair_months": settings.train_months,
        "holdout_min_trips": settings.holdout_min_trips,
        "holdout_min_cells": settings.holdout_min_cells,
    }


def dbt_command(settings: Settings, args: list[str], extra_vars: dict[str, Any] | None = None) -> list[str]:
    """The dbt command line for `args`: the project, and `--vars` with dbt_vars(settings) plus any vars the caller
    passes (`fares dbt build --vars '{max_trip_miles: 80}'`, for an experiment) and the engine's `extra_vars` (the
    Spark lake's catalog statements).

    Raises ValueError when the caller's vars give a var that is a setting another value: set the setting instead.
    """
    rest: list[str] = []
    given: dict[str, Any] = {}
    items = iter(args)
    for arg in items:
        if arg == "--vars" or arg.startswith("--vars="):
            import yaml

            text = arg.partition("=")[2] if arg.startswith("--vars=") else next(items, "")
            given |= yaml.safe_load(text) or {}  # dbt reads --vars as YAML (JSON is YAML too)
        else:
            rest.append(arg)
    ours = dbt_vars(settings)
    clash = {k: v for k, v in given.items() if k in ours and v != ours[k]}
    if clash:
        raise ValueError(
            f"dbt var(s) {sorted(clash)} come from the settings (zone_pair_months is FARES_TRAIN_MONTHS, "
            f"{settings.train_months} now): set the setting instead, so training reads the same window"
        )
    cmd = [_dbt_executable(), *rest, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    if rest and not rest[0].startswith("-"):  # a sub-command; `dbt --version` and the like take no vars
        cmd += ["--vars", json.dumps((extra_vars or {}) | given | ours)]  # the caller's own vars beat the engine's
    return cmd


def run_dbt(
    settings: Settings,
    wh: Warehouse,
    args: list[str],
    capture: bool = True,
    timeout: float | None = None,
    cancel: list[Callable[[], None]] | None = None,
    target: str | None = None,
    env: dict[str, str] | None = None,
    extra_vars: dict[str, Any] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `dbt <args>` in dbt_project/ against `wh` (PostgreSQL) in its own process; raises DbtFailed with dbt's
    own output on failure.

    dbt writes its target/ and logs/ under `settings.dbt_dir`, never into the (possibly installed) dbt_project/, and
    gets the vars that are settings (dbt_vars).

    `timeout` (seconds) stops dbt past it (DbtTimeout): SIGINT first, so dbt cancels its queries and says what it
    did, then SIGKILL to its process group if it has not ended within STOP_GRACE_SECONDS; its output is logged either
    way. `cancel` (a run stage's cancel callbacks) gets the same stop; inside a stage dbt stays in the stage's process
    group, so stopping the stage's process group stops dbt too.

    Another engine names its profiles.yml `target` and adds to dbt's environment (`env`) and vars (`extra_vars`).
    """
    cmd = dbt_command(settings, args, extra_vars)
    if target and args and not args[0].startswith("-"):
        cmd += ["--target", target]
    log.info("running %s", " ".join(cmd))
    out = subprocess.PIPE if capture else None
    proc = subprocess.Popen(  # noqa: S603 - fixed executable, arguments from our own code
        cmd,
        cwd=DBT_PROJECT_DIR,
        env={**dbt_environment(wh, settings), **(env or {})},
        text=True,
        stdout=out,
        stderr=subprocess.STDOUT if capture else None,
        start_new_session=cancel is None,  # alone, its own group; in a stage, the stage's (stopped as one)
    )
    stop = functools.partial(_stop, proc, cancel is None)
    if cancel is not None:
        cancel.append(stop)
    timed_out = False
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        stop()
        stdout, _ = proc.communicate()
    finally:
        if cancel is not None and stop in cancel:
            cancel.remove(stop)
    for line in (stdout or "").splitlines():
        log.info("dbt: %s", line)
    if timed_out:
        raise DbtTimeout(f"dbt {' '.join(args)} timed out after {timeout:.0f} s and was stopped")
    if proc.returncode != 0:
        if proc.returncode < 0:
            raise DbtFailed(f"dbt {' '.join(args)} was stopped (signal {-proc.returncode})")
        tail = "\n".join((stdout or "").splitlines()[-40:]) if capture else ""
        raise DbtFailed(f"dbt {' '.join(args)} failed (exit {proc.returncode})\n{tail}")
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, None)


STOP_GRACE_SECONDS = 10


def _signal(proc: subprocess.Popen[str], own_group: bool, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        if own_group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)


def _stop(proc: subprocess.Popen[str], own_group: bool) -> None:
    """SIGINT to dbt (it cancels its open queries and reports), SIGKILL after STOP_GRACE_SECONDS if still running."""
    if proc.poll() is not None:
        return
    log.warning("stopping dbt (pid %d)", proc.pid)
    _signal(proc, own_group, signal.SIGINT)

    def kill_if_alive() -> None:
        if proc.poll() is None:
            log.warning("dbt (pid %d) still running %d s after SIGINT: killing it", proc.pid, STOP_GRACE_SECONDS)
            _signal(proc, own_group, signal.SIGKILL)

    timer = threading.Timer(STOP_GRACE_SECONDS, kill_if_alive)
    timer.daemon = True
    timer.start()
