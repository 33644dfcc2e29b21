"""A real local HTTP receiver for apprise's json:// alerts: it keeps every message posted to it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """The messages received so far, and the apprise URL that reaches them."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[dict] = []

    @property
    def url(self) -> str:
        """The apprise URL of this receiver."""
        return f"json://127.0.0.1:{self.port}/alerts"

    def titles(self) -> list[str]:
        """Titles of the messages received, in order."""
        return [m.get("title", "") for m in self.messages]

    def wait_for(self, count: int, timeout: float = 30) -> list[str]:
        """Wait until at least `count` messages arrived; returns the titles."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.titles()


@contextmanager
def alert_receiver() -> Iterator[Receiver]:
    """Serve a receiver on a free port of 127.0.0.1 for the block."""
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            holder["r"].messages.append(json.loads(body or b"{}"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = Receiver(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder["r"]
    finally:
        server.shutdown()
        server.server_close()
