"""Configuration flows env -> Settings, and the CLI parses what the README shows."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from fares.cli import build_parser, main
from fares.config.settings import Settings, get_settings


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


def _readme_commands() -> list[list[str]]:
    """Every `fares ...` command in the README, as argv: the shell blocks (comments dropped) and the inline examples
    in the text (`fares run --from validate`; usage templates with [options], A|B or PLACEHOLDERS are left out)."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            code = line.split(" #", 1)[0]
            found = re.search(r"(?:^|\s)(?:\.venv/bin/)?fares (.+)$", code.strip())
            if found and "$(" not in code:
                commands.append(shlex.split(found.group(1)))
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for inline in re.findall(r"`(?:\.venv/bin/)?fares ([^`]+)`", prose):
        argv = shlex.split(inline)
        if not re.search(r"[\[\]|]", inline) and not any(re.fullmatch(r"[A-Z]+", a) for a in argv):
            commands.append(argv)
    return commands


README_COMMANDS = _readme_commands()


def test_the_readme_shows_fares_commands() -> None:
    assert len(README_COMMANDS) >= 8 and ["ingest", "--status"] in README_COMMANDS


@pytest.mark.parametrize("argv", README_COMMANDS, ids=" ".join)
def test_readme_commands_parse(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)  # a command the parser does not know exits (SystemExit: the test fails)
    assert callable(args.func)


def test_help_starts_without_heavy_imports() -> None:
    code = (
        "import sys; from fares import cli; cli.build_parser().format_help(); "
        "heavy = [m for m in ('great_expectations', 'sklearn', 'dbt', 'dlt', 'pandas') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def _readme_defaults() -> dict[str, str | None]:
    """The README's configuration table: variable -> the default it shows (None for "unset")."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    shown: dict[str, str | None] = {}
    for row in re.findall(r"^\| (`[A-Z_]+`.*?) \| (.*?) \|", table, re.M):
        names, defaults = re.findall(r"`([A-Z_]+)`", row[0]), re.findall(r"`([^`]+)`", row[1])
        shown.update(zip(names, [None] * len(names) if row[1].startswith("unset") else defaults, strict=True))
    return shown


def test_the_readme_configuration_table_shows_the_real_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = _readme_defaults()
    assert len(shown) >= 10 and "FARES_TLC_SOURCE" in shown
    for variable in [*shown, "FARES_DATA_DIR"]:
        monkeypatch.delenv(variable, raising=False)
    defaults = Settings(_env_file=None)
    for variable, text in shown.items():
        value = getattr(
            defaults, "database_url" if variable == "DATABASE_URL" else variable.removeprefix("FARES_").lower()
        )
        if isinstance(value, Path):
            assert value == Path.cwd() / str(text), variable
        elif text is None or isinstance(value, str):
            assert value == text, variable
        else:
            assert value == json.loads(text), variable


def test_dbt_arguments_pass_through_untouched() -> None:
    args = build_parser().parse_args(["dbt", "test", "--select", "stg_tlc__zones", "--fail-fast"])
    assert args.dbt_args == ["test", "--select", "stg_tlc__zones", "--fail-fast"]


def test_output_lines_reach_a_pipe_as_they_are_printed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import io

    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="utf-8"))  # a pipe: block-buffered
    assert main(["synth", str(tmp_path / "mirror"), "--rows", "200", "--months", "2024-01"]) == 0
    printed = raw.getvalue().decode()  # not flushed: only what line buffering wrote through
    assert "yellow_tripdata_2024-01.parquet" in printed and printed.endswith("\n")
