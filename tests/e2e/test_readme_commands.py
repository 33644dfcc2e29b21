"""The README's two commands, from a clean clone: `make demo` serves a quote, `make test` runs a suite."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e
NESTED = "FARES_E2E_NESTED"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get(NESTED):
        pytest.skip("already inside the e2e clone")
    if shutil.which("make") is None:
        pytest.fail("make is not installed")
    # The clone sits beside a link to ../shared, as CI's clone does.
    root = tmp_path_factory.mktemp("clone")
    shared = (REPO_ROOT / ".." / "shared").resolve()
    if shared.exists():
        (root / "shared").symlink_to(shared)
    dest = root / "fares"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(dest)], check=True)
    return dest


def _env(clone: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FARES_", "VIRTUAL_ENV", "PYTEST"))}
    env.pop("DATABASE_URL", None)  # the quick start is the embedded default
    env.update({NESTED: "1", "FARES_DATA_DIR": str(clone / ".data")}, **extra)
    return env


def test_make_demo_serves_a_quote_then_exits(clone: Path) -> None:
    # The TLC "down" (nothing listens there): the demo says so in one line and serves the synthetic mirror.
    # tests/e2e/test_demo_tlc.py covers the TLC answering.
    port, tlc_down = _free_port(), f"http://127.0.0.1:{_free_port()}"
    env = _env(clone, FARES_DEMO_ONCE="true", FARES_API_PORT=str(port), FARES_TLC_SOURCE=tlc_down)
    log = (clone / "demo.log").open("w")
    proc = subprocess.Popen(
        ["make", "demo"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 900
        quote = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                body = {"pickup_at": "2025-02-14T18:30:00", "pickup": {"zone_id": 132}, "dropoff": {"zone_id": 230}}
                r = httpx.post(f"http://127.0.0.1:{port}/v1/quotes", json=body, timeout=5)
                if r.status_code == 200:
                    quote = r.json()
                    break
            except httpx.TransportError:
                pass
            time.sleep(2)
        assert quote is not None, "make demo never answered a quote:\n" + (clone / "demo.log").read_text()[-4000:]
        assert quote["cheaper"] in ("taxi", "uber") and quote["model_version"]
        assert quote["data_source"]["kind"] == "synthetic" and quote["data_source"]["synthetic"] is True
        assert proc.wait(timeout=60) == 0, (clone / "demo.log").read_text()[-4000:]
        out = (clone / "demo.log").read_text()
        assert "offline: the TLC is not reachable (connection refused); using the synthetic mirror instead" in out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        subprocess.run([str(clone / ".venv/bin/fares"), "db", "stop"], cwd=clone, env=_env(clone), check=False)


def test_make_test_runs_in_the_clone(clone: Path) -> None:
    # The full suite in a clean clone is what CI itself runs; nested here it would double the time,
    # so the clone runs the same `make test` on the unit tier.
    env = _env(clone, PYTEST_ADDOPTS="tests/unit -q")
    r = subprocess.run(["make", "test"], cwd=clone, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " passed" in r.stdout
