"""What the API asks the database: is it reachable (cached briefly), and the pipeline run history in ops."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from fares.config.settings import Settings

if TYPE_CHECKING:
    from fares.ops.runs import RunRecord

log = logging.getLogger(__name__)
T = TypeVar("T")

CONNECT_TIMEOUT_SECONDS = 2


class DatabaseUnavailable(RuntimeError):
    """The database did not answer (shown to the caller as a 503)."""


class Database:
    """Short-timeout connections to the project's warehouse; the reachability answer is cached for `ttl` seconds."""

    def __init__(self, settings: Settings, ttl: float = 5.0) -> None:
        self.settings = settings
        self.ttl = ttl
        self._wh: Any = None
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._status: tuple[bool, str | None] = (False, "not checked yet")
        self._migrated = False

    def connect(self) -> Any:
        """A psycopg autocommit connection with a short connect timeout, or DatabaseUnavailable."""
        import psycopg

        from fares.config.warehouse import WarehouseError, get_warehouse

        try:
            if self._wh is None:
                self._wh = get_warehouse(self.settings)
            return psycopg.connect(autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS, **self._wh.conninfo())
        except (WarehouseError, psycopg.Error, OSError) as exc:
            where = self._wh.display_url() if self._wh is not None else "the configured database"
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatabaseUnavailable(f"database unreachable at {where}: {first_line}") from exc

    def fresh(self) -> bool:
        """True while the cached reachability answer is young enough to return without I/O."""
        return time.monotonic() - self._checked_at < self.ttl

    def status(self) -> tuple[bool, str | None]:
        """(reachable, error) — checked at most once per ttl; never raises."""
        if self.fresh():
            return self._status
        with self._lock:
            if self.fresh():
                return self._status
            try:
                with self.connect() as conn:
                    conn.execute("select 1")
                self._status = (True, None)
            except DatabaseUnavailable as exc:
                self._status = (False, str(exc))
            except Exception as exc:  # noqa: BLE001 - health must answer whatever the driver does
                self._status = (False, f"{type(exc).__name__}: {exc}")
            self._checked_at = time.monotonic()
            return self._status

    def warehouse(self) -> Any:
        """The Warehouse of the configured database, its schema ops migrated on first use (the API's process entry to
        the database: it starts, and quotes, without one); DatabaseUnavailable when it cannot be had."""
        from fares.ops.schema import migrate

        self.connect().close()
        if not self._migrated:
            try:
                migrate(self._wh)
            except Exception as exc:
                raise DatabaseUnavailable(f"schema ops could not be prepared: {exc}") from exc
            self._migrated = True
        return self._wh


def read_ops(db: Database, read: Callable[..., T], *args: Any) -> T:
    """Call a fares.ops reader with the API's warehouse; a database problem becomes DatabaseUnavailable (503)."""
    import psycopg

    from fares.config.warehouse import WarehouseError

    wh = db.warehouse()
    try:
        return read(wh, *args)
    except (psycopg.Error, WarehouseError) as exc:
        raise DatabaseUnavailable(f"the ops schema could not be read: {str(exc).strip()}") from exc


def list_runs(db: Database, limit: int) -> list[RunRecord]:
    """Newest pipeline runs first, each with its stages (fares.ops.runs.list_runs, the one the CLI reads too)."""
    from fares.ops import runs

    return read_ops(db, runs.list_runs, limit)
