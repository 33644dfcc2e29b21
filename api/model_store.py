"""The model the API serves: loaded from the registry, watched for a new CURRENT version and swapped atomically."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from fares.api.zones import ZoneIndex

log = logging.getLogger(__name__)


UNKNOWN_SOURCE: dict[str, Any] = {"kind": "unknown", "synthetic": False, "label": "unknown"}


class NoModelError(RuntimeError):
    """No model is loaded yet (shown to the caller as a 503)."""


@dataclass(frozen=True)
class Bundle:
    """One loaded model with its zone index; requests take one Bundle and use only it, so a swap never tears."""

    model: Any
    zones: ZoneIndex
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def version(self) -> str:
        """The model's registry version."""
        return str(self.model.version)

    @property
    def trained_from(self) -> str:
        """First day of the training window (ISO date)."""
        return str(self.model.trained_from)

    @property
    def trained_to(self) -> str:
        """Last day of the training window (ISO date)."""
        return str(self.model.trained_to)

    @property
    def data_source(self) -> dict[str, Any]:
        """What the model learned from (bundles from before this field say "unknown")."""
        return getattr(self.model, "data_source", None) or dict(UNKNOWN_SOURCE)

    @cached_property
    def zone_map(self) -> bytes:
        """The zones as SVG paths (GET /v1/zones/map), JSON-encoded once per bundle."""
        import orjson

        from fares.api.zone_map import build_zone_map

        return orjson.dumps(build_zone_map(self.model.zones))

    @cached_property
    def window(self) -> tuple[date, date]:
        """First and last training day as dates."""
        return date.fromisoformat(self.trained_from[:10]), date.fromisoformat(self.trained_to[:10])

    @cached_property
    def known_zone_ids(self) -> np.ndarray:
        """Every zone id of the snapshot."""
        return np.array(sorted(self.zones.zones), dtype=np.int64)

    @cached_property
    def odd_zone_ids(self) -> np.ndarray:
        """Zone ids that are TLC codes for an unknown or outside location."""
        return np.array(
            [z.zone_id for z in self.zones.zones.values() if z.borough in ("Unknown", "N/A", "")], dtype=np.int64
        )


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _warm_up(bundle: Bundle) -> None:
    """Price one trip before the swap, so lazy model state is built and a broken bundle never enters service."""
    import pandas as pd

    zone = min(bundle.zones.zones)
    trip = pd.DataFrame(
        {
            "pickup_at": pd.to_datetime([bundle.trained_to[:10]]).astype("datetime64[us]"),
            "pickup_zone_id": [zone],
            "dropoff_zone_id": [zone],
        }
    )
    prices = bundle.model.predict_frame(trip)
    if len(prices) != 1:
        raise RuntimeError(f"model {bundle.version} returned {len(prices)} rows for one trip")


class ModelStore:
    """The current Bundle: `refresh()` reloads when `<models_dir>/CURRENT` moved; a thread calls it on a timer."""

    def __init__(self, models_dir: Path, poll_seconds: float = 1.0) -> None:
        self.models_dir = Path(models_dir)
        self.poll_seconds = poll_seconds
        self._bundle: Bundle | None = None
        self._seen: tuple[int, int, int] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.reloads = 0
        self.on_swap: Callable[[], None] | None = None  # called (in the loading thread) after a new model went in

    @property
    def current_path(self) -> Path:
        """The registry's pointer file."""
        return self.models_dir / "CURRENT"

    @property
    def bundle(self) -> Bundle | None:
        """The Bundle in service now (or None)."""
        return self._bundle

    def require(self) -> Bundle:
        """The Bundle in service, or NoModelError with what to do about it."""
        bundle = self._bundle
        if bundle is None:
            why = f" (last load failed: {self.last_error})" if self.last_error else ""
            raise NoModelError(
                f"no fare model is loaded yet{why}; run `fares train` (or `fares demo`) so that "
                f"{self.current_path} names a model version"
            )
        return bundle

    def refresh(self, force: bool = False) -> bool:
        """Load the registry's current model if CURRENT changed (or `force`); True when a new model is in service."""
        with self._lock:
            sig = _signature(self.current_path)
            if not force and sig == self._seen:
                return False
            self._seen = sig
            if sig is None:
                return False
            return self._load()

    def _load(self) -> bool:
        from fares.ml.predict import load_current

        started = time.perf_counter()
        try:
            model = load_current(self.models_dir)
            if model is None:
                return False
            old = self._bundle
            if old is not None and old.version == str(model.version):
                self.last_error = None
                return False
            bundle = Bundle(model=model, zones=ZoneIndex(model.zones))
            _warm_up(bundle)
        except Exception as exc:  # a broken bundle must not take down the model in service
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception(
                "loading the current model from %s failed; keeping %s",
                self.models_dir,
                self._bundle.version if self._bundle else "no model",
            )
            return False
        self._bundle = bundle  # one reference assignment: atomic for readers
        self.last_error = None
        self.reloads += 1
        log.info(
            "model %s in service (%d zones, loaded in %.2f s)",
            bundle.version,
            len(bundle.zones),
            time.perf_counter() - started,
        )
        if self.on_swap is not None:
            self.on_swap()
        return True

    def start(self) -> None:
        """Load now (unless already serving the current version), then watch CURRENT from a daemon thread."""
        self.refresh(force=self._bundle is None)
        if self._thread is None and self.poll_seconds > 0:
            self._stop.clear()
            self._thread = threading.Thread(target=self._watch, name="fares-model-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the watcher thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # keep watching whatever happens
                log.exception("model watcher failed")
