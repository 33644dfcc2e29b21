"""`fares demo` against a local TLC-shaped server with range support: it samples the newest month from there with
ranged reads and serves quotes that say so; with the server down it falls back to the synthetic mirror at once."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from tlc_server import RangeServer

from fares.ingestion.months import add_months, current_month
from fares.ingestion.provenance import SYNTHETIC_KEY

pytestmark = pytest.mark.e2e
REPO_ROOT = Path(__file__).resolve().parents[2]
FARES = Path(sys.executable).with_name("fares")
MONTH = add_months(current_month(), -2)
FILE_ROWS, GROUP_ROWS, DEMO_ROWS = 60_000, 5_000, 15_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tlc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RangeServer]:
    """TLC-shaped files as the TLC publishes them (12 row groups per file, no synthetic marker), served on loopback."""
    from fares.ingestion.synthetic import write_mirror

    root = tmp_path_factory.mktemp("tlc_site")
    write_mirror(root, [MONTH], rows_per_month=FILE_ROWS, seed=11, row_group_size=GROUP_ROWS)
    for path in root.glob("*_tripdata_*.parquet"):
        table = pq.read_table(path)
        meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != SYNTHETIC_KEY.encode()}
        pq.write_table(table.replace_schema_metadata(meta), path, row_group_size=GROUP_ROWS)
    (root / "fares-source.json").unlink()
    server = RangeServer(root)
    yield server
    server.close()


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """The demo's data folder, in the project's own .data (the embedded PostgreSQL runs as another OS user and must
    traverse every parent: pytest's private temp root, re-locked by any other pytest session, is no place for it)."""
    path = REPO_ROOT / ".data" / f"e2e-demo-{uuid.uuid4().hex[:8]}"
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _env(data_dir: Path, source: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FARES_", "PYTEST"))}
    env.pop("DATABASE_URL", None)  # the demo's embedded default
    env.update(FARES_DATA_DIR=str(data_dir), FARES_TLC_SOURCE=source, FARES_API_PORT=str(port), FARES_DEMO_ONCE="true")
    # Printed lines and logged warnings reach the pipe as they happen, in the order they happen (as on a terminal).
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _stop(proc: subprocess.Popen, env: dict[str, str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    subprocess.run([str(FARES), "db", "stop"], env=env, check=False, capture_output=True)


def test_demo_samples_the_newest_month_with_range_requests_and_says_so(
    tlc: RangeServer, data_dir: Path, tmp_path: Path
) -> None:
    port = _free_port()
    env = _env(data_dir, tlc.url, port)
    log_path = tmp_path / "demo.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(FARES), "demo", "--once", "--tlc-rows", str(DEMO_ROWS)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        quote, deadline = None, time.monotonic() + 600
        while quote is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                body = {"pickup_at": f"{MONTH}-14T18:30:00", "pickup": {"zone_id": 132}, "dropoff": {"zone_id": 230}}
                r = httpx.post(f"http://127.0.0.1:{port}/v1/quotes", json=body, timeout=5)
                quote = r.json() if r.status_code == 200 else None
            except httpx.TransportError:
                pass
            time.sleep(2)
        out = log_path.read_text()
        assert quote is not None, "the demo never answered a quote:\n" + out[-4000:]
        assert proc.wait(timeout=60) == 0, out[-4000:]
    finally:
        _stop(proc, env)

    assert f"1/3 asking {tlc.url} for the newest published month" in out
    assert f"{MONTH}: 5,000 yellow (8.3%) + 10,000 HVFHV (16.7%) trips; read " in out, out
    assert "synthetic" not in out.split("2/3")[0]  # it never fell back
    source = quote["data_source"]
    assert source["kind"] == "tlc" and source["synthetic"] is False and source["months"] == [MONTH]
    assert source["sample"] == pytest.approx({"yellow": 5_000 / FILE_ROWS, "fhvhv": 10_000 / FILE_ROWS}, abs=1e-5)
    assert source["label"] == f"TLC trip records {MONTH} (sample: yellow 8.3%, HVFHV 16.7%)"
    for kind in ("yellow", "fhvhv"):
        name = f"{kind}_tripdata_{MONTH}.parquet"
        gets = [s for s in tlc.log if s.name == name and s.method == "GET"]
        assert gets and all(s.status == 206 for s in gets), gets  # ranged reads only, never the whole file
        size = (tlc.root / name).stat().st_size
        assert tlc.bytes_sent(name) < size * 0.4, (name, tlc.bytes_sent(name), size)  # 3 of 12 row groups + footer


def test_with_the_server_down_the_demo_falls_back_to_synthetic_at_once(data_dir: Path) -> None:
    down = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    env = _env(data_dir, down, _free_port())
    proc = subprocess.Popen(
        [str(FARES), "demo", "--once"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None  # stdout=PIPE
        for line in proc.stdout:
            lines.append(line.rstrip())
            if "writing a synthetic TLC mirror" in line:
                break
    finally:
        _stop(proc, env)
    asked = next((i for i, line in enumerate(lines) if line.startswith(f"1/3 asking {down} ")), None)
    assert asked is not None, lines
    # The download path would retry with back-off (a warning per attempt); the demo's probe gives up on the first
    # refused connection: the answer to the question is the fallback, with nothing in between.
    assert lines[asked + 1 :] == [
        "    offline: the TLC is not reachable (connection refused); using the synthetic mirror instead",
        lines[-1],
    ], lines
    assert lines[-1].startswith("1/3 writing a synthetic TLC mirror (2025-01, 2025-02)"), lines
