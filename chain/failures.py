"""How a stage fails, as the chain records it and decides whether to retry: timeouts, stops, a child's failure."""

from __future__ import annotations

from dataclasses import dataclass

from fares.config.warehouse import WarehouseError, caused_by


class StageTimeout(RuntimeError):
    """A stage ran past its limit (FARES_STAGE_TIMEOUT_SECONDS / FARES_STAGE_TIMEOUTS / FARES_RUN_TIMEOUT_SECONDS)."""

    transient = False


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying (the database or the network went away), never for bad data.

    An error that says `transient = False` (an unreachable source, a timeout) is final whatever caused it.
    """
    import httpx
    import psycopg
    import psycopg2
    from sqlalchemy.exc import OperationalError as SAOperationalError

    cur: BaseException | None = exc
    while cur is not None:
        said = getattr(cur, "transient", None)
        if said is not None:  # an error that knows (one from a stage's process, a timeout) is taken at its word
            return bool(said)
        cur = cur.__cause__ or cur.__context__
    kinds = (
        psycopg.OperationalError,
        psycopg2.OperationalError,
        SAOperationalError,
        httpx.TransportError,
        WarehouseError,
        ConnectionError,
    )
    return caused_by(exc, kinds)


@dataclass(frozen=True)
class Failure:
    """An exception as it crosses the process boundary: what the record and the retry rule need of it."""

    message: str  # as the run's record shows it
    transient: bool
    timed_out: bool


class StageFailed(RuntimeError):
    """A stage's child process failed; the message is the record's."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.transient = failure.transient
        self.timed_out = failure.timed_out


class StageStopped(RuntimeError):
    """The stage was stopped (its time limit, a cancel, a shutdown) before it finished."""

    transient = False

    def __init__(self, message: str, timed_out: bool = False, cancelled: bool = False) -> None:
        super().__init__(message)
        self.timed_out, self.cancelled = timed_out, cancelled


def failure_of(exc: BaseException) -> Failure:
    """What the record and the retry rule need of an exception raised in a stage's process."""
    # StageError already names the stage; anything else gets its type, which says a lot (KeyError, ...)
    named = getattr(exc, "stage", None) or isinstance(exc, StageTimeout | StageStopped)
    message = str(exc) if named else f"{type(exc).__name__}: {exc}"
    timed_out = isinstance(exc, StageTimeout) or caused_by(exc, StageTimeout) or getattr(exc, "timed_out", False)
    return Failure(message, is_transient(exc), bool(timed_out))
