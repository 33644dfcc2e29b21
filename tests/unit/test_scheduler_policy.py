"""The daemon's timetable and retry policy, without a database."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from fares import scheduler
from fares.chain import executor
from fares.chain.stages import StageError
from fares.config.settings import Settings
from fares.config.warehouse import WarehouseError

NY = ZoneInfo("America/New_York")


def _trigger(cron: str, tz: str = "America/New_York"):
    return scheduler.build_trigger(Settings(database_url=None, schedule_cron=cron, schedule_timezone=tz))


def test_the_default_schedule_is_nightly_at_three_new_york_time() -> None:
    fire = _trigger(Settings.model_fields["schedule_cron"].default).get_next_fire_time(
        None, datetime(2025, 7, 1, 4, 0, tzinfo=NY)
    )
    assert fire == datetime(2025, 7, 2, 3, 0, tzinfo=NY)


def test_crontab_weekdays_count_from_sunday_as_in_cron() -> None:
    fire = _trigger("30 3 * * 0").get_next_fire_time(None, datetime(2025, 3, 5, 12, 0, tzinfo=NY))  # a Wednesday
    assert fire == datetime(2025, 3, 9, 3, 30, tzinfo=NY)  # Sunday 3:30, the day clocks change
    fire = _trigger("0 6 * * 1-5").get_next_fire_time(None, datetime(2025, 3, 8, 12, 0, tzinfo=NY))  # Saturday
    assert fire == datetime(2025, 3, 10, 6, 0, tzinfo=NY)  # Monday
    fire = _trigger("0 6 * * */2").get_next_fire_time(None, datetime(2025, 3, 8, 12, 0, tzinfo=NY))
    assert fire is not None  # a step is not a weekday number


def test_a_sixth_leading_field_is_seconds() -> None:
    fire = _trigger("*/10 * * * * *", "UTC").get_next_fire_time(
        None, datetime(2025, 1, 1, 0, 0, 1, tzinfo=ZoneInfo("UTC"))
    )
    assert fire == datetime(2025, 1, 1, 0, 0, 10, tzinfo=ZoneInfo("UTC"))


def test_a_malformed_schedule_says_what_is_expected() -> None:
    with pytest.raises(ValueError, match="needs 5 fields"):
        _trigger("0 3 *")


def test_only_connection_and_network_errors_are_transient() -> None:
    assert executor.is_transient(WarehouseError("cannot connect"))
    assert executor.is_transient(psycopg.OperationalError("server closed the connection"))
    assert executor.is_transient(httpx.ConnectError("refused"))
    wrapped = RuntimeError("dlt load failed")
    wrapped.__cause__ = psycopg.OperationalError("terminating connection due to administrator command")
    assert executor.is_transient(wrapped)
    assert not executor.is_transient(ValueError("3 rows have a negative fare"))
    assert not executor.is_transient(StageError("transform", "dbt build failed"))
    assert not executor.is_transient(psycopg.errors.UniqueViolation("duplicate key"))
