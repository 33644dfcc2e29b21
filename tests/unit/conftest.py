"""The unit tier starts no server: a test that would start the embedded PostgreSQL fails, naming what it needs."""

from __future__ import annotations

from typing import NoReturn

import pytest


@pytest.fixture(autouse=True)
def _no_embedded_server(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("a unit test started the embedded PostgreSQL: give it a DATABASE_URL or a metastore")

    monkeypatch.setattr("fares.config.warehouse.start_embedded", refuse)
