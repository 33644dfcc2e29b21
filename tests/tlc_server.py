"""A TLC-shaped HTTP server over a folder for tests: /trip-data/<file> and /misc/<file>, HEAD, GET with byte ranges,
and a log of every request with the bytes it sent."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class Served:
    """One request the server answered."""

    method: str
    name: str
    status: int
    range: str | None
    bytes_sent: int


class RangeServer:
    """Serves `root` the way the TLC's CloudFront does: 403 for a file it does not have, 206 for a byte range."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log: list[Served] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _file(self) -> Path | None:
                sub, _, name = self.path.strip("/").partition("/")
                path = root / name
                return path if sub in ("trip-data", "misc") and "/" not in name and path.is_file() else None

            def _record(self, status: int, rng: str | None, sent: int) -> None:
                server.log.append(Served(self.command, self.path.rsplit("/", 1)[-1], status, rng, sent))

            def do_HEAD(self) -> None:
                path = self._file()
                if path is None:
                    self._record(403, None, 0)
                    self.send_error(403)
                    return
                self._record(200, None, 0)
                self.send_response(200)
                self.send_header("Content-Length", str(path.stat().st_size))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()

            def do_GET(self) -> None:
                path = self._file()
                if path is None:
                    self._record(404, None, 0)
                    self.send_error(404)
                    return
                data = path.read_bytes()
                rng = self.headers.get("Range")
                match = _RANGE.match(rng or "")
                if match:
                    start = int(match.group(1))
                    end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
                    body = data[start : end + 1]
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                else:
                    body = data
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self._record(206 if match else 200, rng, len(body))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def bytes_sent(self, name: str) -> int:
        """Bytes of `name` sent in all answers."""
        return sum(s.bytes_sent for s in self.log if s.name == name)

    def close(self) -> None:
        """Stop serving and free the port."""
        self.httpd.shutdown()
        self.httpd.server_close()
