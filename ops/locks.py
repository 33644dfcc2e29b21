"""The advisory locks: one run at a time (the pipeline lock) and one ingest at a time, held on dedicated connections."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from fares.config.warehouse import Warehouse, WarehouseError

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

# Advisory-lock keys, below 2**32 so pg_locks shows them in `objid`: "FARE" (one run at a time) and the ingest's
# own (one ingest at a time, also outside a recorded run). The migrations' key is fares.ops.schema.DDL_LOCK.
RUN_LOCK = 0x46415245
INGEST_LOCK = 7_301_947_112


class LockLostError(WarehouseError):
    """The connection holding the pipeline lock died and another process took the lock meanwhile."""


class IngestLockedError(RuntimeError):
    """Another ingest holds the lock on this database."""


class RunLock:
    """A session-level pg advisory lock on a dedicated connection, held for a whole run."""

    def __init__(self, wh: Warehouse, key: int = RUN_LOCK) -> None:
        self.wh, self.key = wh, key
        self._conn: psycopg.Connection | None = None

    def acquire(self, wait_seconds: float = 0) -> bool:
        """Take the lock; True when this process now holds it. With `wait_seconds` > 0, wait in line that long
        (PostgreSQL grants a contended lock to its waiters in the order they asked), else try once."""
        import psycopg

        conn = self.wh.connect(autocommit=True)
        try:
            if wait_seconds <= 0:
                row = conn.execute("select pg_try_advisory_lock(%s)", (self.key,)).fetchone()
                got = bool(row and row[0])
            else:
                # the wait is bounded by lock_timeout alone (not by the session's statement_timeout)
                conn.execute(f"set lock_timeout = {int(wait_seconds * 1000)}; set statement_timeout = 0")
                try:
                    conn.execute("select pg_advisory_lock(%s)", (self.key,))
                    got = True
                except psycopg.errors.LockNotAvailable:
                    got = False
                conn.execute("reset lock_timeout; reset statement_timeout")
        except BaseException:
            conn.close()
            raise
        if got:
            self._conn = conn
            return True
        conn.close()
        return False

    def verify(self) -> None:
        """Check the lock connection is alive; after a database restart take the lock again or raise LockLostError."""
        import psycopg

        if self._conn is not None:
            try:
                self._conn.execute("select 1")
                return
            except psycopg.Error:
                log.warning("the connection holding the pipeline lock died; taking the lock again")
        self._conn = None
        if not self.acquire():
            raise LockLostError("lost the pipeline lock (database restart?) and another run holds it now")

    def release(self) -> None:
        """Give the lock back (closing the connection would too)."""
        if self._conn is None:
            return
        try:
            self._conn.execute("select pg_advisory_unlock(%s)", (self.key,))
            self._conn.close()
        except Exception:
            log.debug("lock connection already gone", exc_info=True)
        self._conn = None


@contextmanager
def try_lock(wh: Warehouse, key: int) -> Iterator[bool]:
    """Hold advisory lock `key` for the block if it is free; yields whether it was got (never waits)."""
    lock = RunLock(wh, key)
    got = lock.acquire()
    try:
        yield got
    finally:
        lock.release()


@contextmanager
def ingest_lock(wh: Warehouse) -> Iterator[None]:
    """Hold the ingest lock so two ingests never write the same database at once; IngestLockedError when held."""
    with try_lock(wh, INGEST_LOCK) as got:
        if not got:
            raise IngestLockedError(f"another ingest is running on database {wh.dbname}")
        yield
