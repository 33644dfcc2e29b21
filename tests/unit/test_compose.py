"""The compose files, the Dockerfile and .env.example agree with each other and with Settings (no Docker needed)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from fares.config.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SPARK_OVERRIDE = yaml.safe_load((REPO_ROOT / "docker-compose.spark.yml").read_text())
PYPROJECT = REPO_ROOT / "pyproject.toml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
_ENV_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
APP_SERVICES = ("scheduler", "api")
SPARK_SERVICES = ("spark-master", "spark-worker", "spark-thrift")
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


def _service_env(service: str, compose: dict | None = None) -> dict[str, str]:
    env = (compose or COMPOSE)["services"][service].get("environment") or {}
    return env if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


def _option(command: list[str], flag: str) -> str:
    """The value after `flag` in a service's command."""
    assert flag in command, f"{flag} missing from {command}"
    return command[command.index(flag) + 1]


def _spark_app(service: str) -> dict:
    """An app service as `docker compose -f docker-compose.yml -f docker-compose.spark.yml` sees it (maps merge)."""
    base, over = COMPOSE["services"][service], SPARK_OVERRIDE["services"][service]
    merged = {**base, **{k: v for k, v in over.items() if k not in ("environment", "depends_on")}}
    merged["environment"] = {**_service_env(service), **_service_env(service, SPARK_OVERRIDE)}
    merged["depends_on"] = {**base.get("depends_on", {}), **over.get("depends_on", {})}
    return merged


def test_compose_starts_the_database_the_scheduler_and_the_api() -> None:
    services = COMPOSE["services"]
    assert {name for name, s in services.items() if not s.get("profiles")} == {"db", *APP_SERVICES}
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
    assert text.count("POSTGRES_PASSWORD:?") == 4 and ":fares@" not in text  # the scheduler, the API, the Thrift server
    assert "POSTGRES_PASSWORD" in _env_names()


def test_the_scheduler_is_healthy_while_it_beats() -> None:
    check = COMPOSE["services"]["scheduler"]["healthcheck"]
    assert check["test"] == ["CMD", "fares", "schedule", "--alive"] and check["retries"] >= 2


def test_the_spark_image_is_the_same_build_with_java_and_the_spark_extra() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert 'ARG FARES_EXTRAS=""' in dockerfile, "the default image stays without Java and Spark"
    java = dockerfile[dockerfile.index('case ",${FARES_EXTRAS}," in *,spark,*)') : dockerfile.index("esac")]
    assert "openjdk-17-jre-headless" in java and "libpostgresql-jdbc-java" in java, (
        "Java and the JDBC driver for spark only"
    )
    assert 'CMD ["fares", "serve", "--host", "0.0.0.0"]' in dockerfile and "USER fares" in dockerfile
    spark_builds = [COMPOSE["services"][s] for s in SPARK_SERVICES] + [_spark_app(s) for s in APP_SERVICES]
    for service in spark_builds:
        assert service["build"] == {"context": ".", "args": {"FARES_EXTRAS": "spark"}}
        assert service["image"] == "fares:spark"
    assert (
        COMPOSE["services"]["scheduler"]["image"] == "fares:latest" and COMPOSE["services"]["scheduler"]["build"] == "."
    )


@pytest.mark.parametrize("extras", ["", "spark"])
def test_the_image_installs_the_dependencies_and_the_extras_asked_for(extras: str) -> None:
    # The dependency layer's own command, run as the build runs it (Docker joins the backslash-continued lines).
    run = next(
        line for line in (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", "").splitlines() if "tomllib" in line
    )
    command = run.removeprefix("RUN cd /tmp/fares && ").split(" > /tmp/requirements.txt")[0]
    command = command.replace("python -c", f"{sys.executable} -c", 1)
    env = {**os.environ, "FARES_EXTRAS": extras}
    out = subprocess.run(["sh", "-c", command], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    expected = project["dependencies"] + (project["optional-dependencies"]["spark"] if extras else [])
    assert out.stdout.splitlines() == expected
    assert any(r.startswith("pyspark==") for r in expected) == bool(extras)


def test_the_spark_profile_starts_a_master_a_worker_and_a_thrift_server() -> None:
    services = COMPOSE["services"]
    assert {name for name, s in services.items() if s.get("profiles") == ["spark"]} == set(SPARK_SERVICES)
    master, worker, thrift = (services[s] for s in SPARK_SERVICES)
    assert master["command"][:3] == ["fares", "spark", "master"]
    assert worker["command"][:3] == ["fares", "spark", "worker"]
    assert thrift["command"][:3] == ["fares", "spark", "thrift"] and _option(thrift["command"], "--host") == "0.0.0.0"
    # The master and the worker advertise their --host to each other and to drivers: it must be their own name.
    for name in ("spark-master", "spark-worker"):
        assert _option(services[name]["command"], "--host") == services[name]["hostname"] == name
    master_url = f"spark://spark-master:{_option(master['command'], '--port')}"
    assert worker["command"][3] == master_url
    assert _service_env("spark-thrift")["FARES_SPARK_MASTER"] == master_url
    assert worker["depends_on"] == {"spark-master": {"condition": "service_healthy"}}
    assert thrift["depends_on"]["db"] == {"condition": "service_healthy"}, "the shared metastore lives in db"
    for name in SPARK_SERVICES:
        assert services[name]["healthcheck"]["test"][:2] == ["CMD", "python"], name
        assert services[name]["restart"] == "unless-stopped", name


def test_the_spark_services_see_the_same_files_as_the_driver() -> None:
    # Executors (in the worker) read the lake the scheduler's dlt writes and write the warehouse the drivers commit.
    for name in (*SPARK_SERVICES, *APP_SERVICES):
        env = _spark_app(name)["environment"] if name in APP_SERVICES else _service_env(name)
        volumes = COMPOSE["services"][name]["volumes"]
        assert f"fares-data:{env['FARES_DATA_DIR']}" in volumes, name


def test_the_spark_override_points_the_scheduler_and_the_api_at_the_cluster() -> None:
    services = COMPOSE["services"]
    assert set(SPARK_OVERRIDE["services"]) == set(APP_SERVICES), "the override only reconfigures existing services"
    master_url = services["spark-worker"]["command"][3]
    thrift = services["spark-thrift"]
    for name in APP_SERVICES:
        app = _spark_app(name)
        env = app["environment"]
        assert env["FARES_ENGINE"] == "spark", name
        assert env["FARES_SPARK_MASTER"] == master_url, name
        assert env["FARES_DBT_SPARK_TARGET"] == "spark_thrift", name
        assert env["FARES_SPARK_THRIFT_HOST"] == thrift["hostname"] == "spark-thrift", name
        assert env["FARES_SPARK_THRIFT_PORT"] == _option(thrift["command"], "--port"), name
        assert env["FARES_SPARK_DRIVER_HOST"] == name, f"{name}: executors must reach the driver at its service name"
        assert env["FARES_SPARK_DRIVER_BIND_ADDRESS"] == "0.0.0.0", name
        assert env["DATABASE_URL"] == _service_env("spark-thrift")["DATABASE_URL"], f"{name}: one metastore"
        assert app["command"] == services[name]["command"] and app["healthcheck"] == services[name]["healthcheck"]
    depends = _spark_app("scheduler")["depends_on"]
    assert {s: depends[s]["condition"] for s in ("db", "spark-worker", "spark-thrift")} == dict.fromkeys(
        ("db", "spark-worker", "spark-thrift"), "service_healthy"
    )


def test_the_two_spark_applications_fit_on_the_worker_together() -> None:
    # A standalone master gives an application every free core unless spark.cores.max caps it: uncapped, the Thrift
    # server would hold the worker and the scheduler's session would wait for executors forever.
    worker = COMPOSE["services"]["spark-worker"]["command"]
    confs = [json.loads(_service_env("spark-thrift")["FARES_SPARK_CONF"])]
    confs.append(json.loads(_spark_app("scheduler")["environment"]["FARES_SPARK_CONF"]))
    assert sum(int(c["spark.cores.max"]) for c in confs) <= int(_option(worker, "--cores"))
    gigabytes = [int(c["spark.executor.memory"].removesuffix("g")) for c in confs]
    assert sum(gigabytes) <= int(_option(worker, "--memory").removesuffix("g"))


def test_published_ports_are_on_loopback_only() -> None:
    published = [
        (name, port)
        for compose in (COMPOSE, SPARK_OVERRIDE)
        for name, service in compose["services"].items()
        for port in service.get("ports", [])
    ]
    assert ("spark-master", "127.0.0.1:8081:8081") in published, "the master's web UI"
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_the_spark_setup_passes_only_documented_settings() -> None:
    if "spark_driver_host" not in Settings.model_fields:
        pytest.skip("issue 23's Spark settings (FARES_SPARK_DRIVER_HOST, ...) are not in settings.Settings yet")
    documented = _env_names()
    used = {v for name in ("spark-thrift",) for v in _service_env(name)}
    used |= {v for name in APP_SERVICES for v in _service_env(name, SPARK_OVERRIDE)}
    for variable in sorted(used):
        assert variable in documented, f"{variable} is used by the Spark setup but missing from .env.example"
        assert _setting_for(variable), f"{variable} is not a field of settings.Settings"
