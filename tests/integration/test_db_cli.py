"""`fares db start|url|stop` manage the embedded server a user sees."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.integration


def _fares(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"FARES_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "fares.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_start_url_stop(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    started = _fares(data_dir, "db", "start")
    assert started.returncode == 0, started.stderr
    url = _fares(data_dir, "db", "url").stdout.strip()
    assert url.startswith("postgresql://postgres@/fares?host=") and str(data_dir) in url
    with psycopg.connect(url) as conn:
        assert conn.execute("select current_database()").fetchone() == ("fares",)
    stopped = _fares(data_dir, "db", "stop")
    assert stopped.stdout.strip() == "stopped", stopped.stderr
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=3)
    assert _fares(data_dir, "db", "stop").stdout.strip() == "not running"


def test_stop_refuses_an_external_server(tmp_path: Path) -> None:
    env = dict(os.environ, DATABASE_URL="postgresql://postgres@127.0.0.1:5432/test", FARES_DATA_DIR=str(tmp_path))
    r = subprocess.run(
        [sys.executable, "-m", "fares.cli", "db", "stop"], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 1 and "not ours to stop" in r.stderr
