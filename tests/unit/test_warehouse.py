"""The URL forms each tool needs, from one DATABASE_URL or the embedded server's socket."""

from __future__ import annotations

import pytest

from fares.config.settings import Settings
from fares.config.warehouse import Warehouse, WarehouseError, get_warehouse, parse_database_url


def test_tcp_url_round_trips_to_every_form() -> None:
    wh = parse_database_url("postgresql://alice:s3cr%40t@db.example:6543/fares")
    assert (wh.host, wh.port, wh.user, wh.password, wh.dbname) == ("db.example", 6543, "alice", "s3cr@t", "fares")
    assert wh.url("psycopg") == "postgresql+psycopg://alice:s3cr%40t@db.example:6543/fares"
    assert wh.dlt_credentials() == "postgresql://alice:s3cr%40t@db.example:6543/fares"
    assert wh.dbt_env()["FARES_DB_PASSWORD"] == "s3cr@t"
    assert "s3cr" not in wh.display_url()


def test_socket_url_puts_the_directory_where_each_tool_wants_it() -> None:
    wh = parse_database_url("postgresql://postgres:@/postgres?host=/srv/fares/.data/pg")
    assert wh.is_socket and wh.host == "/srv/fares/.data/pg" and wh.port == 5432
    # dlt needs host and password fields, the socket dir URL-encoded in the host position (STACK.md)
    assert wh.dlt_credentials() == "postgresql://postgres:@%2Fsrv%2Ffares%2F.data%2Fpg:5432/postgres"
    assert wh.url("psycopg2") == "postgresql+psycopg2://postgres@/postgres?host=/srv/fares/.data/pg&port=5432"
    assert wh.dbt_env()["FARES_DB_HOST"] == "/srv/fares/.data/pg"
    assert parse_database_url(wh.url()) == wh


def test_dlt_form_parses_back() -> None:
    wh = Warehouse("/tmp/sock dir", 5432, "postgres", "", "fares")
    assert parse_database_url(wh.dlt_credentials()).host == "/tmp/sock dir"


def test_database_url_wins_over_embedded(tmp_path) -> None:
    settings = Settings(database_url="postgresql://postgres@127.0.0.1:5432/test", data_dir=tmp_path)
    wh = get_warehouse(settings)
    assert (wh.host, wh.dbname, wh.embedded) == ("127.0.0.1", "test", False)
    assert not (tmp_path / "pg").exists(), "the embedded server must not start when DATABASE_URL is set"


def test_wrong_scheme_is_a_clear_error() -> None:
    with pytest.raises(WarehouseError, match="postgresql://"):
        parse_database_url("mysql://root@localhost/test")


def test_caused_by_follows_the_cause_chain_and_survives_cycles() -> None:
    from fares.config.warehouse import caused_by

    outer = RuntimeError("stage failed")
    outer.__cause__ = ConnectionResetError("server closed the connection")
    assert caused_by(outer, ConnectionError)
    assert not caused_by(outer, ValueError)
    looped = ValueError("a")
    looped.__context__ = KeyError("b")
    looped.__context__.__context__ = looped
    assert not caused_by(looped, OSError)
