"""Run the API under uvicorn (`fares serve`, `fares demo`); with demo_once the server exits after the first quote."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fares.config.settings import Settings

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)


def build_server(
    settings: Settings, host: str | None = None, port: int | None = None, access_log: bool = True
) -> uvicorn.Server:
    """A configured `uvicorn.Server` for the app (not started); its `should_exit` is wired to demo_once."""
    import uvicorn

    from fares.api.app import create_app

    app = create_app(settings, freeze_gc=True)
    config = uvicorn.Config(
        app,
        host=host or settings.api_host,
        port=port or settings.api_port,
        access_log=access_log,
        log_level="info",
        proxy_headers=False,
        server_header=False,
    )
    server = uvicorn.Server(config)

    def _stop_after_first_quote() -> None:
        log.info("demo_once: stopping the server after the first quote")
        server.should_exit = True

    app.state.on_first_quote = _stop_after_first_quote
    return server


def serve(settings: Settings, host: str | None = None, port: int | None = None, access_log: bool = True) -> None:
    """Serve the API on host:port (defaults from settings) until interrupted, or the first quote with demo_once."""
    server = build_server(settings, host, port, access_log)
    log.info("serving fares on http://%s:%s", server.config.host, server.config.port)
    server.run()
