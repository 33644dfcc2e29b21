"""The stage chain ingest -> transform -> validate -> train -> publish, and the APScheduler daemon that runs it."""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from settings import Settings, get_settings
from warehouse import DBT_PROJECT_DIR, Warehouse, dbt_environment, get_warehouse

log = logging.getLogger(__name__)

STAGES = ("ingest", "transform", "validate", "train", "publish")


class StageError(RuntimeError):
    """A stage failed; the stages after it do not run."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage


@dataclass
class ChainResult:
    """What one run of the chain did, stage by stage."""

    stages: dict[str, Any] = field(default_factory=dict)
    model_version: str | None = None
    promoted: bool = False


def _dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def run_dbt(wh: Warehouse, args: list[str], capture: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `dbt <args>` in dbt_project/ against `wh`; raises StageError with dbt's own output on failure."""
    cmd = [_dbt_executable(), *args, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    log.info("running %s", " ".join(cmd))
    result = subprocess.run(  # noqa: S603 - fixed executable, arguments from our own code
        cmd, cwd=DBT_PROJECT_DIR, env=dbt_environment(wh), text=True, capture_output=capture, check=False
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout or "").splitlines()[-40:]) if capture else ""
        raise StageError("transform", f"dbt {' '.join(args)} failed (exit {result.returncode})\n{tail}")
    return result


def run_ingest(settings: Settings, wh: Warehouse, source: str | None = None, months: list[str] | None = None) -> Any:
    """Load TLC files into raw; a failed file fails the stage after the other months have loaded."""
    from ingestion.pipeline import ingest

    report = ingest(settings, wh, source=source or settings.tlc_source, months=months or settings.months or None,
                    sample=settings.sample)
    if report.failed:
        raise StageError("ingest", "; ".join(f"{r.file}: {r.error}" for r in report.failed))
    return report


def run_transform(settings: Settings, wh: Warehouse) -> subprocess.CompletedProcess[str]:
    """`dbt build`: models, tests and unit tests."""
    return run_dbt(wh, ["build"])


def run_validate(settings: Settings, wh: Warehouse) -> Any:
    """The Great Expectations gate on raw data and the training mart; raises on a critical failure."""
    from quality import QualityGateError
    from quality.validate import run_validation

    try:
        return [run_validation(settings, wh, scope) for scope in ("raw", "training")]
    except QualityGateError as exc:
        raise StageError("validate", str(exc)) from exc


def run_train(settings: Settings, wh: Warehouse) -> Any:
    """Train both fare models from the marts and register them (promoted only if not worse)."""
    from ml.train import train_models

    return train_models(settings, wh)


def run_chain(settings: Settings | None = None, source: str | None = None, months: list[str] | None = None) -> ChainResult:
    """Run every stage once, in order; the first failing stage stops the chain."""
    settings = settings or get_settings()
    wh = get_warehouse(settings)
    result = ChainResult()
    result.stages["ingest"] = run_ingest(settings, wh, source, months)
    result.stages["transform"] = run_transform(settings, wh)
    result.stages["validate"] = run_validate(settings, wh)
    outcome = run_train(settings, wh)
    result.stages["train"] = outcome
    result.model_version = getattr(outcome, "version", None)
    result.promoted = bool(getattr(outcome, "promoted", False))
    return result
