"""What the API asks the database: is it reachable (cached briefly), and the pipeline run history in ops."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from fares.settings import Settings

log = logging.getLogger(__name__)

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

    def connect(self) -> Any:
        """A psycopg autocommit connection with a short connect timeout, or DatabaseUnavailable."""
        import psycopg

        from fares.warehouse import WarehouseError, get_warehouse

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


def _exists(conn: Any, table: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", (table,)).fetchone()[0]


def _rows(cursor: Any) -> list[dict[str, Any]]:
    names = [d.name for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def list_runs(db: Database, limit: int) -> list[dict[str, Any]]:
    """Newest pipeline runs first, each with its per-stage rows; [] before the scheduler has recorded any."""
    import psycopg

    with db.connect() as conn:
        try:
            if not _exists(conn, "ops.pipeline_runs"):
                return []
            runs = _rows(
                conn.execute(
                    "select * from ops.pipeline_runs order by started_at desc nulls last, run_id desc limit %s",
                    (limit,),
                )
            )
            stages: dict[Any, list[dict[str, Any]]] = {}
            if runs and _exists(conn, "ops.stage_runs"):
                ids = [r["run_id"] for r in runs]
                for row in _rows(conn.execute("select * from ops.stage_runs where run_id = any(%s)", (ids,))):
                    stages.setdefault(row["run_id"], []).append(row)
        except psycopg.Error as exc:
            raise DatabaseUnavailable(f"ops.pipeline_runs could not be read: {str(exc).strip()}") from exc
    for run in runs:
        run["stages"] = sorted(stages.get(run["run_id"], []), key=lambda s: str(s.get("started_at") or ""))
    return runs
