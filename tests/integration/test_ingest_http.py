"""Ingest from a URL laid out like the TLC's, served on 127.0.0.1: retries, unpublished months, failed downloads."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fares.config.settings import Settings
from fares.config.warehouse import get_warehouse
from fares.ingestion import sources
from fares.ingestion.months import add_months, current_month
from fares.ingestion.pipeline import ingest
from fares.ingestion.synthetic import write_mirror

pytestmark = pytest.mark.integration

ROWS = 800


class FlakyTLC:
    """A TLC-shaped server over a folder: /trip-data/<file>, /misc/<file>; the first GET of each file fails."""

    def __init__(self, root: Path, first_get: str = "503", always_fail: tuple[str, ...] = ()) -> None:
        self.root, self.first_get, self.always_fail = root, first_get, always_fail
        self.gets: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _file(self) -> Path | None:
                sub, _, name = self.path.strip("/").partition("/")
                path = root / name
                return path if sub in ("trip-data", "misc") and path.is_file() else None

            def do_HEAD(self) -> None:
                path = self._file()
                if path is None:
                    self.send_error(403)  # what the TLC's CloudFront answers for a month not yet published
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(path.stat().st_size))
                self.send_header("ETag", f'"{path.stat().st_mtime_ns}"')
                self.end_headers()

            def do_GET(self) -> None:
                path = self._file()
                if path is None:
                    self.send_error(404)
                    return
                server.gets[path.name] += 1
                data = path.read_bytes()
                if path.name in server.always_fail:
                    self.send_error(500)
                elif server.gets[path.name] == 1 and server.first_get == "503":
                    self.send_error(503)
                elif server.gets[path.name] == 1 and server.first_get == "truncate":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 3])  # the connection drops mid-download
                    self.close_connection = True
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A mirror whose newest month is two months back, as the TLC's usually is."""
    root = tmp_path_factory.mktemp("tlc_http")
    months = [add_months(current_month(), -3), add_months(current_month(), -2)]
    write_mirror(root, months, rows_per_month=ROWS)
    return root, months


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "BACKOFF_SECONDS", 0.01)


def _server(root: Path, first_get: str = "503", always_fail: tuple[str, ...] = ()) -> Iterator[FlakyTLC]:
    server = FlakyTLC(root, first_get, always_fail)
    try:
        yield server
    finally:
        server.close()


def _count(settings: Settings, table: str) -> dict[str, int]:
    with get_warehouse(settings).connect() as conn:
        return dict(conn.execute(f"select source_month, count(*) from raw.{table} group by 1").fetchall())


@pytest.mark.parametrize("first_get", ["503", "truncate"])
def test_download_retries_and_loads_the_newest_month(
    fresh_settings: Settings, published: tuple[Path, list[str]], fast_backoff: None, first_get: str
) -> None:
    root, (older, newest) = published
    for server in _server(root, first_get=first_get):
        report = ingest(fresh_settings, get_warehouse(fresh_settings), source=server.url, kinds=("yellow",))
        assert not report.failed, report.failed
        status = {r.file: r.status for r in report.results}
        assert status[f"yellow_tripdata_{newest}.parquet"] == "loaded"
        assert status[f"yellow_tripdata_{add_months(newest, 1)}.parquet"] == "unpublished"
        assert f"yellow_tripdata_{older}.parquet" not in status  # the default is the newest, not all history
        assert server.gets[f"yellow_tripdata_{newest}.parquet"] == 2
        assert _count(fresh_settings, "yellow_trips") == {newest: ROWS}
        with get_warehouse(fresh_settings).connect() as conn:
            assert conn.execute("select count(*) from raw.zone_shapes").fetchone() == (263,)
        downloads = fresh_settings.downloads_dir
        assert not list(downloads.glob(".*.part"))
        assert not (downloads / f"yellow_tripdata_{newest}.parquet").exists()  # loaded, so not kept

        again = ingest(fresh_settings, get_warehouse(fresh_settings), source=server.url, kinds=("yellow",))
        assert not again.loaded and not again.failed
        assert {r.status for r in again.results if r.month} == {"unpublished"}


def test_failed_download_fails_only_that_month(
    fresh_settings: Settings, published: tuple[Path, list[str]], fast_backoff: None
) -> None:
    root, (older, newest) = published
    broken = f"fhvhv_tripdata_{older}.parquet"
    settings = fresh_settings.model_copy(update={"http_retries": 1})
    for server in _server(root, first_get="ok", always_fail=(broken,)):
        report = ingest(settings, get_warehouse(settings), source=server.url, months=[f"{older}..{newest}"])
        assert [r.file for r in report.failed] == [broken]
        error = report.failed[0].error or ""
        assert error.startswith(f"{broken}: ") and "HTTP 500" in error
        assert server.gets[broken] == 2
        assert _count(settings, "fhvhv_trips") == {newest: ROWS}
        assert _count(settings, "yellow_trips") == {older: ROWS, newest: ROWS}
        assert not (settings.downloads_dir / broken).exists()
        assert not list(settings.downloads_dir.glob(".*.part"))

        server.always_fail = ()  # the server recovers: the next default run retries the failed month
        retry = ingest(settings, get_warehouse(settings), source=server.url)
        assert [r.file for r in retry.loaded] == [broken]
        assert _count(settings, "fhvhv_trips") == {older: ROWS, newest: ROWS}
