"""The model registry under models_dir: a folder per version, a CURRENT pointer written atomically, promote/rollback."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import pickle
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fares.ml import RegistryError
from fares.ml.predict import CURRENT_FILE, MODEL_FILE, read_current
from fares.ml.provenance import code_version, git_commit, hyperparameters, library_versions

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
HISTORY_FILE = "history.json"


def _share(value: Any) -> str | None:
    """A fraction as a whole percentage for listings (None when missing or NaN)."""
    if value is None or value != value:
        return None
    return f"{float(value) * 100:.0f}%"


def _dollars(value: float | None) -> float | None:
    """Money rounded to cents for listings (None stays None)."""
    return None if value is None else round(float(value), 2)


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temp file in the same folder and os.replace, so readers see the old or the new file, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class Registry:
    """Versions of the fare model in `<models_dir>/<version>/` and the `<models_dir>/CURRENT` pointer."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = Path(models_dir)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise writers (a training run and a CLI promote) with an advisory file lock."""
        self.models_dir.mkdir(parents=True, exist_ok=True)
        with (self.models_dir / ".lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _history(self) -> list[dict[str, str]]:
        try:
            return json.loads((self.models_dir / HISTORY_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []

    def _set_current(self, version: str, history: list[dict[str, str]]) -> None:
        _write_atomic(self.models_dir / HISTORY_FILE, json.dumps(history, indent=1))
        _write_atomic(self.models_dir / CURRENT_FILE, version + "\n")

    def exists(self, version: str) -> bool:
        """True when `version` is a complete saved bundle."""
        return bool(version) and "/" not in version and (self.models_dir / version / MODEL_FILE).is_file()

    def current_version(self) -> str | None:
        """The version CURRENT names, or None."""
        return read_current(self.models_dir)

    def metrics(self, version: str) -> dict[str, Any]:
        """The metrics.json document of `version`."""
        path = self.models_dir / version / METRICS_FILE
        if not path.is_file():
            raise RegistryError(f"model version {version!r} not found in {self.models_dir}")
        return json.loads(path.read_text(encoding="utf-8"))

    def report_path(self, version: str) -> Path:
        """Where the HTML report of `version` is (it may be missing for a version saved without one)."""
        return self.models_dir / version / REPORT_FILE

    def versions(self) -> list[dict[str, Any]]:
        """Every saved version, oldest first: window, holdout MAE per service and vs baseline, current/promoted."""
        current, promoted = self.current_version(), {h["version"] for h in self._history()}
        rows: list[dict[str, Any]] = []
        if not self.models_dir.is_dir():
            return rows
        for folder in sorted(p for p in self.models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if not self.exists(folder.name):
                continue
            doc = self.metrics(folder.name) if (folder / METRICS_FILE).is_file() else {}
            m = doc.get("metrics", {})
            per_service: dict[str, float | str | None] = {
                f"{s}_mae": _dollars(v["model"]["mae"]) for s, v in m.get("services", {}).items()
            }
            per_service |= {f"{s}_cover": _share(v.get("interval_coverage")) for s, v in m.get("services", {}).items()}
            rare = [r for r in m.get("coverage_by_support", []) if r.get("support") in ("unseen", "1-4 trips")]
            decision = m.get("cheaper_agreement", {})
            rows.append(
                {
                    "version": folder.name,
                    "created_at": doc.get("created_at"),
                    "trained_from": doc.get("trained_from"),
                    "trained_to": doc.get("trained_to"),
                    **per_service,
                    "model_mae": _dollars(m.get("model_mae")),
                    "baseline_mae": _dollars(m.get("baseline_mae")),
                    "rare_cover": _share(
                        sum(r["coverage"] * r["n"] for r in rare) / sum(r["n"] for r in rare) if rare else None
                    ),
                    "brier": None if decision.get("brier") is None else round(float(decision["brier"]), 3),
                    "agreement": _share(decision.get("model")),
                    "current": folder.name == current,
                    "promoted": folder.name in promoted,
                    "report_path": str(self.report_path(folder.name))
                    if self.report_path(folder.name).is_file()
                    else None,
                }
            )
        return rows

    def next_version(self, fingerprint: str) -> str:
        """A new version name, sortable by time: `<UTC timestamp>-<short data fingerprint>`."""
        base = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{(fingerprint or 'nodata')[:8]}"
        name, n = base, 1
        while (self.models_dir / name).exists():
            n += 1
            name = f"{base}-{n}"
        return name

    def save(
        self,
        model: Any,
        fingerprint: str = "",
        report_html: str | None = None,
        version: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Write a complete bundle (model, metrics.json, report.html) under a new version; returns the version."""
        self.models_dir.mkdir(parents=True, exist_ok=True)
        version = version or self.next_version(fingerprint)
        model.version = version
        doc = {
            "version": version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "trained_from": model.trained_from,
            "trained_to": model.trained_to,
            "data_fingerprint": fingerprint,
            "code_version": code_version(),
            "git_commit": git_commit(),
            "libraries": library_versions(),
            "hyperparameters": hyperparameters(model),
            "metrics": model.metrics,
            **(extra or {}),
        }
        staging = self.models_dir / f".tmp-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            with (staging / MODEL_FILE).open("wb") as fh:
                pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
            (staging / METRICS_FILE).write_text(json.dumps(doc, indent=1, default=str), encoding="utf-8")
            if report_html is not None:
                (staging / REPORT_FILE).write_text(report_html, encoding="utf-8")
            os.rename(staging, self.models_dir / version)  # a reader sees no folder or a complete one
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        log.info("saved model version %s", version)
        return version

    def promote(self, version: str) -> None:
        """Make `version` the current model."""
        if not self.exists(version):
            raise RegistryError(f"model version {version!r} not found in {self.models_dir}")
        with self._locked():
            if self.current_version() == version:
                return
            history = [*self._history(), {"version": version, "at": datetime.now(UTC).isoformat(timespec="seconds")}]
            self._set_current(version, history)
        log.info("promoted model version %s", version)

    def rollback(self) -> str:
        """Make the previously current version current again; returns it. RegistryError when there is none."""
        with self._locked():
            current = self.current_version()
            history = self._history_before(current)
            if not history:
                raise RegistryError("no earlier model version to roll back to")
            previous = history[-1]["version"]
            self._set_current(previous, history)
        log.info("rolled back from %s to %s", current, previous)
        return previous

    def _history_before(self, current: str | None) -> list[dict[str, str]]:
        """The promotion history without its top entries of `current` and of versions no longer saved."""
        history = self._history()
        while history and history[-1]["version"] == current:
            history.pop()
        while history and not self.exists(history[-1]["version"]):
            history.pop()
        return history

    def previous_version(self) -> str | None:
        """The version `rollback` would return to (the one before the current in the history), or None."""
        history = self._history_before(self.current_version())
        return history[-1]["version"] if history else None

    def prune(self, keep: int, dry_run: bool = False) -> list[str]:
        """Remove every version but the newest `keep`, the current one and the one before it; returns the removed
        (with `dry_run`, what would be removed), oldest first. A folder goes by rename first, so none is half there."""
        with self._locked():
            if not self.models_dir.is_dir():
                return []
            names = sorted(p.name for p in self.models_dir.iterdir() if self.exists(p.name))
            kept = set(names[-keep:] if keep > 0 else []) | {self.current_version(), self.previous_version()}
            gone = [name for name in names if name not in kept]
            if dry_run:
                return gone
            for name in gone:
                trash = self.models_dir / f".trash-{uuid.uuid4().hex}"
                os.rename(self.models_dir / name, trash)
                shutil.rmtree(trash, ignore_errors=True)
        if gone:
            log.info("pruned model versions %s", gone)
        return gone
