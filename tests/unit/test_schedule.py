"""FARES_SCHEDULE_CRON means what crontab(5) means: fire times from a fixed start, the messages for what is not one."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from fares import scheduler
from fares.chain.schedule import CrontabTrigger, ScheduleError, next_fire_times
from fares.config.settings import Settings

NY = ZoneInfo("America/New_York")
WED = datetime(
    2025, 3, 5, 12, 0, tzinfo=NY
)  # Wednesday 5 March 2025, noon; New York's clocks spring forward on the 9th
TUE = datetime(2025, 3, 25, tzinfo=NY)  # the week before 1 April, a Tuesday
SPRING = datetime(2025, 3, 8, 12, tzinfo=NY)  # the day before 02:00-03:00 is skipped
FALL = datetime(2025, 11, 1, 12, tzinfo=NY)  # the day before 01:00-02:00 happens twice
FARES = Path(sys.executable).with_name("fares")


def _fires(cron: str, start: datetime, count: int = 3, tz: str = "America/New_York", shape: str = "%H:%M") -> str:
    """The trigger's next `count` fire times, as the scheduler chains them (each from the one before)."""
    trigger = CrontabTrigger(cron, tz)
    shown, previous = [], None
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, start)
        assert fire is not None
        shown.append(fire.strftime(f"%a %Y-%m-%d {shape} %Z"))
        previous = fire
    return ", ".join(shown)


@pytest.mark.parametrize(
    ("cron", "start", "expected"),
    [
        # a range across Sunday: 0-4 is Sunday to Thursday (APScheduler's own CronTrigger rejects it as sun-thu)
        ("0 3 * * 0-4", WED, "Thu 2025-03-06 03:00 EST, Sun 2025-03-09 03:00 EDT, Mon 2025-03-10 03:00 EDT"),
        ("0 3 * * sun-thu", WED, "Thu 2025-03-06 03:00 EST, Sun 2025-03-09 03:00 EDT, Mon 2025-03-10 03:00 EDT"),
        ("0 3 * * mon-fri", WED, "Thu 2025-03-06 03:00 EST, Fri 2025-03-07 03:00 EST, Mon 2025-03-10 03:00 EDT"),
        ("0 3 * * 5-7", WED, "Fri 2025-03-07 03:00 EST, Sat 2025-03-08 03:00 EST, Sun 2025-03-09 03:00 EDT"),
        ("0 3 * * 7", WED, "Sun 2025-03-09 03:00 EDT, Sun 2025-03-16 03:00 EDT, Sun 2025-03-23 03:00 EDT"),
        # steps: every other hour; every other weekday counted from Sunday (0, 2, 4, 6)
        ("0 */2 * * *", WED, "Wed 2025-03-05 12:00 EST, Wed 2025-03-05 14:00 EST, Wed 2025-03-05 16:00 EST"),
        ("0 3 * * */2", WED, "Thu 2025-03-06 03:00 EST, Sat 2025-03-08 03:00 EST, Sun 2025-03-09 03:00 EDT"),
        ("15 4 1 JAN *", WED, "Thu 2026-01-01 04:15 EST, Fri 2027-01-01 04:15 EST, Sat 2028-01-01 04:15 EST"),
        # day of month and day of week both restricted: either one (the 1st, and every Monday)
        ("0 3 1 * 1", TUE, "Mon 2025-03-31 03:00 EDT, Tue 2025-04-01 03:00 EDT, Mon 2025-04-07 03:00 EDT"),
        ("0 3 */10 * 1", WED, "Mon 2025-03-10 03:00 EDT, Tue 2025-03-11 03:00 EDT, Mon 2025-03-17 03:00 EDT"),
        ("@weekly", WED, "Sun 2025-03-09 00:00 EST, Sun 2025-03-16 00:00 EDT, Sun 2025-03-23 00:00 EDT"),
        # New York's clocks: 02:30 does not exist on 9 March (runs when they jump), 01:30 happens twice on 2 November
        ("30 2 * * *", SPRING, "Sun 2025-03-09 03:00 EDT, Mon 2025-03-10 02:30 EDT, Tue 2025-03-11 02:30 EDT"),
        ("30 1 * * *", FALL, "Sun 2025-11-02 01:30 EDT, Mon 2025-11-03 01:30 EST, Tue 2025-11-04 01:30 EST"),
        (
            "*/30 * * * *",
            datetime(2025, 11, 2, 0, 40, tzinfo=NY),
            "Sun 2025-11-02 01:00 EDT, Sun 2025-11-02 01:30 EDT, Sun 2025-11-02 01:00 EST",
        ),
        ("0 3 * * *", FALL, "Sun 2025-11-02 03:00 EST, Mon 2025-11-03 03:00 EST, Tue 2025-11-04 03:00 EST"),
    ],
)
def test_crontab_expressions_fire_when_cron_would(cron: str, start: datetime, expected: str) -> None:
    assert _fires(cron, start) == expected


def test_a_start_exactly_on_a_fire_time_fires_then() -> None:
    assert _fires("0 3 * * *", datetime(2025, 1, 1, 3, 0, tzinfo=NY), 1) == "Wed 2025-01-01 03:00 EST"


def test_a_sixth_leading_field_is_seconds() -> None:
    utc_start = datetime(2025, 1, 1, 0, 0, 1, tzinfo=ZoneInfo("UTC"))
    fires = _fires("*/10 * * * * *", utc_start, 2, tz="UTC", shape="%H:%M:%S")
    assert fires == "Wed 2025-01-01 00:00:10 UTC, Wed 2025-01-01 00:00:20 UTC"


def test_the_second_pass_of_a_repeated_hour_does_not_run_a_nightly_job_twice() -> None:
    after_first = datetime(2025, 11, 2, 1, 45, tzinfo=NY)  # 01:45 EDT: 01:30 EDT has run, 01:30 EST is still to come
    assert _fires("30 1 * * *", after_first, 1) == "Mon 2025-11-03 01:30 EST"


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 3 *", "FARES_SCHEDULE_CRON='0 3 *': a crontab needs 5 fields (minute hour day-of-month month day-of-week)"),
        ("0 3 * * * * 2026", "or 6 with seconds first, or one of @yearly"),
        ("0 3 * * 8", "FARES_SCHEDULE_CRON='0 3 * * 8': day of week field '8': 8 is out of range (0-7)"),
        ("0 24 * * *", "hour field '24': 24 is out of range (0-23)"),
        ("0 3 * foo *", "month field 'foo': 'foo' is not a month name (jan..dec)"),
        ("0 3 * * 5-2", "day of week field '5-2': the range '5-2' runs backwards"),
        ("0 3 L * *", "day of month field 'L': 'L' is not crontab syntax"),
        ("0 3 * * mon#2", "day of week field 'mon#2': 'mon#2' is not crontab syntax"),
        ("*/0 * * * *", "minute field '*/0': a step of 0 never moves"),
        ("0 3 30 2 *", "FARES_SCHEDULE_CRON='0 3 30 2 *' never fires: no date matches it"),
        ("@reboot", "got 1 field(s)"),
    ],
)
def test_what_is_not_a_crontab_is_named_with_its_variable(cron: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=re.escape(message)):
        CrontabTrigger(cron, "America/New_York")


def test_an_unknown_time_zone_names_its_variable() -> None:
    with pytest.raises(ScheduleError, match=re.escape("FARES_SCHEDULE_TIMEZONE='Mars/Olympus' is not an IANA time")):
        next_fire_times("0 3 * * *", "Mars/Olympus", 1)


def test_the_trigger_survives_the_job_store_and_keeps_its_repr() -> None:
    trigger = scheduler.build_trigger(Settings(database_url=None, schedule_cron="0 3 * * 0-4"))
    stored = pickle.loads(pickle.dumps(trigger))  # noqa: S301 - our own bytes, as the job store reads them
    assert repr(stored) == repr(trigger) == "<CrontabTrigger ('0 3 * * 0-4', timezone='America/New_York')>"
    assert stored.get_next_fire_time(None, WED) == trigger.get_next_fire_time(None, WED)
    changed = scheduler.build_trigger(Settings(database_url=None, schedule_cron="0 4 * * 0-4"))
    assert repr(changed) != repr(trigger)


def _fares(*argv: str, cron: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARES_") and k != "DATABASE_URL"}
    env.update(
        FARES_SCHEDULE_CRON=cron,
        FARES_SCHEDULE_TIMEZONE="America/New_York",
        FARES_DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL="postgresql://postgres@127.0.0.1:9/none",  # the daemon must refuse before it needs a database
    )
    return subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "command",
    [[str(FARES), "schedule"], [str(FARES), "schedule", "--next", "3"], [sys.executable, "-m", "fares.scheduler"]],
    ids=["fares schedule", "fares schedule --next 3", "python -m fares.scheduler"],
)
def test_the_daemon_exits_with_the_message_on_a_malformed_schedule(command: list[str], tmp_path: Path) -> None:
    done = _fares(*command, cron="0 3 * * 8", tmp_path=tmp_path)
    assert done.returncode == 2
    assert "FARES_SCHEDULE_CRON='0 3 * * 8': day of week field '8': 8 is out of range (0-7)" in done.stderr
    assert "Traceback" not in done.stderr


def test_schedule_next_prints_the_fire_times_in_the_schedules_zone(tmp_path: Path) -> None:
    done = _fares(str(FARES), "schedule", "--next", "4", cron="0 3 * * 0-4", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    assert header == "0 3 * * 0-4 (America/New_York): the next 4 runs"
    assert len(lines) == 4
    for line in lines:
        assert re.fullmatch(r"  (Sun|Mon|Tue|Wed|Thu) \d{4}-\d\d-\d\d 03:00:00 E[SD]T \(UTC-0[45]00\)", line), line
