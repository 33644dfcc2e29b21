"""Configuration flows env -> Settings, and the CLI parses what the README shows."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fares.cli import build_parser, main
from fares.settings import Settings, get_settings


def test_env_reaches_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h:1/d")
    monkeypatch.setenv("FARES_API_PORT", "9001")
    monkeypatch.setenv("FARES_MONTHS", '["2024-01"]')
    get_settings.cache_clear()
    try:
        s = get_settings()
        assert (s.database_url, s.api_port, s.months) == ("postgresql://u@h:1/d", 9001, ["2024-01"])
    finally:
        get_settings.cache_clear()


def test_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FARES_API_PORT", "eighty")
    get_settings.cache_clear()
    try:
        assert main(["db", "url"]) == 2
    finally:
        get_settings.cache_clear()
    assert "api_port" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["ingest", "--source", "../shared/data/tlc", "--months", "2020-04"],
        ["ingest", "--months", "2024-01..2024-06", "--sample", "0.05"],
        ["ingest", "--status"],
        ["run", "--source", "/data/tlc", "--months", "2024-01", "2024-02"],
        ["serve", "--host", "0.0.0.0", "--port", "8001"],
        ["models", "promote", "v1"],
        ["db", "url"],
        ["schedule", "--once"],
        ["demo", "--once"],
        ["dbt", "build", "--select", "marts"],
    ],
)
def test_readme_commands_parse(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert callable(args.func)


def test_help_starts_without_heavy_imports() -> None:
    code = (
        "import sys; from fares import cli; cli.build_parser().format_help(); "
        "heavy = [m for m in ('great_expectations', 'sklearn', 'dbt', 'dlt', 'pandas') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_settings_defaults_point_at_the_tlc() -> None:
    s = Settings(database_url=None)
    assert s.tlc_source == "https://d37ci6vzurychx.cloudfront.net"
    assert s.api_host == "127.0.0.1" and s.api_port == 8000


def test_dbt_arguments_pass_through_untouched() -> None:
    args = build_parser().parse_args(["dbt", "test", "--select", "stg_tlc__zones", "--fail-fast"])
    assert args.dbt_args == ["test", "--select", "stg_tlc__zones", "--fail-fast"]
