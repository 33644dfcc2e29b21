"""When the chain runs: FARES_SCHEDULE_CRON read as crontab(5) reads it (croniter), as an APScheduler trigger.

croniter does the crontab arithmetic: ranges (`0-4` is Sunday to Thursday), steps, names, 0 and 7 for Sunday, the
day-of-month/day-of-week "or" rule when both are restricted, the @daily-style nicknames. This module only refuses what
croniter accepts beyond crontab (a year field, `L`, `#`, `?`, `H`, ranges that run backwards), keeps the sixth,
leading seconds field fares has always accepted, and applies cron's rule for daylight saving time to fixed-time
schedules: a wall time the clocks skip runs when they jump, a wall time they repeat runs once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger

CRON_VARIABLE = "FARES_SCHEDULE_CRON"
TIMEZONE_VARIABLE = "FARES_SCHEDULE_TIMEZONE"
FIELDS = ("minute", "hour", "day of month", "month", "day of week")
NICKNAMES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_BOUNDS = {"second": (0, 59), "minute": (0, 59), "hour": (0, 23), "day of month": (1, 31), "month": (1, 12)}
_BOUNDS["day of week"] = (0, 7)  # 0 and 7 are both Sunday
_NAMES = {
    "month": ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    "day of week": ("sun", "mon", "tue", "wed", "thu", "fri", "sat"),
}
# One element of a crontab list: `*`, a value or a range of values (numbers or three-letter names), optional `/step`.
_ELEMENT = re.compile(r"^(?:\*|(?P<low>\d+|[a-z]{3})(?:-(?P<high>\d+|[a-z]{3}))?)(?:/\d+)?$")


class ScheduleError(ValueError):
    """FARES_SCHEDULE_CRON or FARES_SCHEDULE_TIMEZONE is not a schedule; the message says which and why."""


@dataclass(frozen=True)
class Crontab:
    """A checked crontab expression: `expression` as given, `seconds_first` when it has the sixth, leading field."""

    expression: str
    seconds_first: bool
    fixed_time: bool  # minute and hour both name times (neither starts with `*`): cron's daylight-saving rule applies


def parse_crontab(expression: str) -> Crontab:
    """Check `expression` against crontab(5) (plus a leading seconds field); ScheduleError says what is wrong."""
    fields = expression.split()
    text = " ".join(fields).lower()
    if len(fields) == 1 and text in NICKNAMES:
        return _checked(Crontab(text, seconds_first=False, fixed_time=text != "@hourly"))
    if len(fields) not in (5, 6):
        raise ScheduleError(
            f"{CRON_VARIABLE}={expression!r}: a crontab needs 5 fields (minute hour day-of-month month day-of-week), "
            f"or 6 with seconds first, or one of {', '.join(NICKNAMES)}; got {len(fields)} field(s)"
        )
    named = dict(zip(("second", *FIELDS) if len(fields) == 6 else FIELDS, fields, strict=True))
    for name, value in named.items():
        _check_field(expression, name, value)
    fixed = not (named["minute"].startswith("*") or named["hour"].startswith("*"))
    text = " ".join(fields).lower()
    return _checked(Crontab(text, seconds_first=len(fields) == 6, fixed_time=fixed))


def _check_field(expression: str, name: str, value: str) -> None:
    """Refuse what crontab(5) does not have in a field, naming the field: syntax, names, bounds, backward ranges."""
    for element in value.split(","):
        found = _ELEMENT.match(element.lower())
        if found is None:
            raise ScheduleError(
                f"{CRON_VARIABLE}={expression!r}: {name} field {value!r}: {element!r} is not crontab syntax "
                "(a number, a range a-b, * or a list of them, each with an optional /step; names for months and "
                "weekdays)"
            )
        low, high = found.group("low"), found.group("high")
        first, last = _BOUNDS[name]
        for token in (t for t in (low, high) if t):
            if not token.isdigit() and token not in _NAMES.get(name, ()):
                names = _NAMES.get(name)
                raise ScheduleError(
                    f"{CRON_VARIABLE}={expression!r}: {name} field {value!r}: {token!r} is not "
                    + (f"a {name} name ({names[0]}..{names[-1]})" if names else f"a number ({first}-{last})")
                )
            if token.isdigit() and not first <= int(token) <= last:
                raise ScheduleError(
                    f"{CRON_VARIABLE}={expression!r}: {name} field {value!r}: {token} is out of range ({first}-{last})"
                )
        if "/" in element and int(element.rpartition("/")[2]) == 0:
            raise ScheduleError(f"{CRON_VARIABLE}={expression!r}: {name} field {value!r}: a step of 0 never moves")
        if low and high and _number(name, low, False) > _number(name, high, True):
            raise ScheduleError(
                f"{CRON_VARIABLE}={expression!r}: {name} field {value!r}: the range {element.split('/')[0]!r} "
                "runs backwards; crontab ranges go from low to high (write two ranges: e.g. 5-6,0-2)"
            )


def _number(field: str, token: str, range_end: bool) -> int:
    """A field value as a number for ordering a range (`sun` ends a weekday range as 7, as croniter reads it)."""
    if token.isdigit():
        return int(token)
    names = _NAMES[field]
    number = names.index(token) + (1 if field == "month" else 0)
    return 7 if (field == "day of week" and range_end and number == 0) else number


def _checked(tab: Crontab) -> Crontab:
    """Let croniter parse it and find a first fire time: its message, else 'never fires' (e.g. 30 February)."""
    from croniter import CroniterBadDateError, CroniterError, croniter

    try:
        croniter(tab.expression, datetime(2000, 1, 1), second_at_beginning=tab.seconds_first).get_next(datetime)
    except CroniterBadDateError as exc:
        raise ScheduleError(f"{CRON_VARIABLE}={tab.expression!r} never fires: no date matches it") from exc
    except (CroniterError, ValueError, KeyError) as exc:
        raise ScheduleError(f"{CRON_VARIABLE}={tab.expression!r}: {exc}") from exc
    return tab


def load_timezone(name: str) -> ZoneInfo:
    """The schedule's time zone, or ScheduleError naming FARES_SCHEDULE_TIMEZONE."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"{TIMEZONE_VARIABLE}={name!r} is not an IANA time zone (e.g. America/New_York)") from exc


class CrontabTrigger(BaseTrigger):
    """An APScheduler 3 trigger that fires when crontab(5) would, in `timezone`; picklable, with a stable repr."""

    __slots__ = ("crontab", "timezone")

    def __init__(self, expression: str, timezone: str | ZoneInfo) -> None:
        self.crontab = parse_crontab(expression)
        self.timezone = timezone if isinstance(timezone, ZoneInfo) else load_timezone(timezone)

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        """The first fire time at or after `now`, and after `previous_fire_time` (APScheduler's contract)."""
        start = now if previous_fire_time is None else min(now, previous_fire_time + timedelta(microseconds=1))
        if previous_fire_time is not None and start <= previous_fire_time:
            start = previous_fire_time + timedelta(microseconds=1)
        return next(fire_times(self.crontab, self.timezone, start), None)

    def __getstate__(self) -> dict[str, Any]:
        return {"version": 1, "expression": self.crontab.expression, "timezone": self.timezone.key}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("version") != 1:
            raise ValueError(f"cannot restore a CrontabTrigger of state version {state.get('version')}")
        self.crontab = parse_crontab(state["expression"])
        self.timezone = load_timezone(state["timezone"])

    def __str__(self) -> str:
        return f"crontab {self.crontab.expression!r} ({self.timezone.key})"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} ({self.crontab.expression!r}, timezone={self.timezone.key!r})>"


def fire_times(tab: Crontab, zone: tzinfo, start: datetime) -> Any:
    """Yield the fire times at or after `start` (aware), in `zone`, for ever (a generator; take what you need)."""
    from croniter import croniter

    begin = start.astimezone(zone) - timedelta(microseconds=1)  # croniter's next is strictly after its start
    times = croniter(tab.expression, begin, day_or=True, second_at_beginning=tab.seconds_first)
    while True:
        fire: datetime = times.get_next(datetime)
        if tab.fixed_time and _repeated(fire, zone):
            continue  # clocks went back: this wall time already ran an hour ago, and cron runs it once
        yield fire.astimezone(zone)


def _repeated(fire: datetime, zone: tzinfo) -> bool:
    """True for the second pass of a wall time that the clocks go back over (the later of its two instants)."""
    wall = fire.replace(tzinfo=None)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return first < second and fire.astimezone(UTC) == second


def next_fire_times(expression: str, timezone: str, count: int, start: datetime | None = None) -> list[datetime]:
    """The next `count` fire times of the schedule from `start` (default now), in its time zone."""
    zone = load_timezone(timezone)
    times = fire_times(parse_crontab(expression), zone, start or datetime.now(zone))
    return [next(times) for _ in range(count)]
