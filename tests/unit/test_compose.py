"""docker-compose.yml, the Dockerfile and .env.example agree with each other and with Settings (no Docker needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fares.config.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
ENV_EXAMPLE = REPO_ROOT / ".env.example"
_ENV_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
APP_SERVICES = ("scheduler", "api")
COMPOSE_ONLY = {"POSTGRES_PASSWORD"}  # the database container's own password (in .env, read by compose, not fares)


def _env_names() -> dict[str, str]:
    names = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if m := _ENV_LINE.match(line.strip()):
            names[m.group(1)] = m.group(2)
    return names


def _setting_for(variable: str) -> str | None:
    """The Settings field an environment variable sets, or None."""
    for name, f in Settings.model_fields.items():
        aliases = getattr(f.validation_alias, "choices", None) or ([f.validation_alias] if f.validation_alias else [])
        if variable in aliases or (not aliases and variable == f"FARES_{name.upper()}"):
            return name
    return None


def _service_env(service: str) -> dict[str, str]:
    env = COMPOSE["services"][service].get("environment") or {}
    return env if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


def test_compose_starts_the_database_the_scheduler_and_the_api() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"db", *APP_SERVICES}
    assert services["db"]["image"] == "postgres:16"
    assert services["scheduler"]["command"] == ["fares", "schedule"]
    assert services["api"]["command"][:4] == ["fares", "serve", "--host", "0.0.0.0"]
    assert services["api"]["ports"] == ["127.0.0.1:8000:8000"], "published on loopback only (a proxy serves others)"


def test_the_database_has_a_healthcheck_and_the_apps_wait_for_it() -> None:
    check = COMPOSE["services"]["db"]["healthcheck"]
    assert "pg_isready" in " ".join(check["test"]) and check["retries"] >= 5
    for service in APP_SERVICES:
        assert COMPOSE["services"][service]["depends_on"] == {"db": {"condition": "service_healthy"}}, service


def test_the_apps_share_the_model_registry_and_reach_the_compose_database() -> None:
    db_env = COMPOSE["services"]["db"]["environment"]
    expected_url = (
        f"postgresql://{db_env['POSTGRES_USER']}:{db_env['POSTGRES_PASSWORD']}@db:5432/{db_env['POSTGRES_DB']}"
    )
    for service in APP_SERVICES:
        env = _service_env(service)
        assert env["DATABASE_URL"] == expected_url, service
        mounts = {v.split(":")[1]: v.split(":")[0] for v in COMPOSE["services"][service]["volumes"]}
        assert mounts.get(env["FARES_DATA_DIR"]) == "fares-data", f"{service}: models must live on the shared volume"


def test_the_scheduler_gets_time_to_finish_its_running_stage() -> None:
    grace = COMPOSE["services"]["scheduler"]["stop_grace_period"]
    assert re.fullmatch(r"\d+m", grace) and int(grace[:-1]) >= 5


def test_every_variable_compose_uses_is_documented_and_is_a_setting() -> None:
    documented = _env_names()
    used = set(_INTERPOLATION.findall((REPO_ROOT / "docker-compose.yml").read_text()))
    for service in APP_SERVICES:
        used |= set(_service_env(service))
    assert used, "compose passes no settings at all"
    for variable in sorted(used):
        assert variable in documented, f"{variable} is used by docker-compose.yml but missing from .env.example"
        assert _setting_for(variable) or variable in COMPOSE_ONLY, f"{variable} is not a field of settings.Settings"


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    documented = {v for v in _env_names() if v not in COMPOSE_ONLY}
    mapped = {_setting_for(v) for v in documented}
    missing = sorted(set(Settings.model_fields) - mapped)
    assert not missing, f"add these Settings fields to .env.example: {missing}"
    assert None not in mapped, [v for v in documented if _setting_for(v) is None]


def test_env_example_values_are_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    active = [
        line for line in ENV_EXAMPLE.read_text().splitlines() if _ENV_LINE.match(line) and not line.startswith("#")
    ]
    (tmp_path / ".env").write_text("\n".join(active) + "\n")
    for variable in _env_names():
        monkeypatch.delenv(variable, raising=False)
    active = [line for line in active if line.split("=", 1)[0] not in COMPOSE_ONLY]
    monkeypatch.chdir(tmp_path)
    from_file, defaults = Settings(), Settings(_env_file=None)
    for line in active:
        match = _ENV_LINE.match(line)
        assert match, line
        field = _setting_for(match.group(1))
        assert field, line
        assert getattr(from_file, field) == getattr(defaults, field), f".env.example: {line}"


def test_the_image_installs_the_project_and_runs_the_api_by_default() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    # A plain install (tests/e2e/test_install.py proves one works): no editable install, no source tree to run from.
    assert "RUN pip install --no-deps /tmp/fares" in dockerfile and " -e " not in dockerfile
    assert "rm -rf /tmp/fares" in dockerfile
    assert 'CMD ["fares", "serve", "--host", "0.0.0.0"]' in dockerfile
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".data", ".env", ".git"} <= set(ignored)


def test_the_database_runs_with_real_month_settings_and_its_password_only_from_env() -> None:
    db = COMPOSE["services"]["db"]
    settings = dict(arg.split("=", 1) for arg in db["command"] if "=" in arg)
    assert db["command"][0] == "postgres"
    assert (
        settings["work_mem"] == "64MB" and settings["max_wal_size"] == "8GB" and settings["shared_buffers"] == "512MB"
    )
    assert db["shm_size"] == "1gb", "parallel workers need more than Docker's 64 MB /dev/shm"
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    assert db["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?"), "no password in the file"
    assert text.count("POSTGRES_PASSWORD:?") == 3 and ":fares@" not in text
    assert "POSTGRES_PASSWORD" in _env_names()


def test_the_scheduler_is_healthy_while_it_beats() -> None:
    check = COMPOSE["services"]["scheduler"]["healthcheck"]
    assert check["test"] == ["CMD", "fares", "schedule", "--alive"] and check["retries"] >= 2
