"""Sampling a TLC month over HTTP range requests: only the footer and the chosen row groups travel; offline is told
at once in one line."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tlc_server import RangeServer

from fares.ingestion.months import add_months, current_month
from fares.ingestion.provenance import MANIFEST
from fares.ingestion.synthetic import write_mirror
from fares.ingestion.tlc_sample import SampleUnavailable, describe, write_sampled_month

ROWS = 40_000
MONTH = add_months(current_month(), -3)


@pytest.fixture(scope="module")
def tlc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RangeServer]:
    """Synthetic TLC-shaped files with 16 row groups each, served with range support."""
    root = tmp_path_factory.mktemp("tlc_files")
    write_mirror(root, [add_months(MONTH, -1), MONTH], rows_per_month=ROWS, seed=3, row_group_size=2_500)
    server = RangeServer(root)
    yield server
    server.close()


def test_the_sample_reads_only_the_row_groups_it_needs(tlc: RangeServer, tmp_path: Path) -> None:
    sampled = write_sampled_month(tlc.url, tmp_path / "sample", rows={"yellow": 3_000, "fhvhv": 4_000})

    assert sampled.month == MONTH  # the newest month with both kinds
    for kind, rows in (("yellow", 3_000), ("fhvhv", 4_000)):
        name = f"{kind}_tripdata_{MONTH}.parquet"
        size = (tlc.root / name).stat().st_size
        gets = [s for s in tlc.log if s.name == name and s.method == "GET"]
        assert gets and all(s.status == 206 and s.range for s in gets), gets  # every read was a byte range
        assert tlc.bytes_sent(name) < size / 3, (tlc.bytes_sent(name), size)  # 3 of 16 row groups + the footer
        local = pq.read_table(tmp_path / "sample" / name)
        assert local.num_rows == rows
        assert local.schema.names == pq.read_schema(tlc.root / name).names  # TLC columns, as published
    manifest = json.loads((tmp_path / "sample" / MANIFEST).read_text())
    assert manifest["months"] == [MONTH] and manifest["kind"] == "synthetic"  # the files said they are synthetic
    assert manifest["sample"] == {"yellow": 0.075, "fhvhv": 0.1}
    assert (tmp_path / "sample" / "taxi_zone_lookup.csv").is_file() and (
        tmp_path / "sample" / "taxi_zones.zip"
    ).exists()
    assert describe(sampled).startswith(f"{MONTH}: 3,000 yellow (7.5%) + 4,000 HVFHV (10.0%) trips; read ")


def test_same_source_same_sample(tlc: RangeServer, tmp_path: Path) -> None:
    rows = {"yellow": 2_000, "fhvhv": 2_000}
    write_sampled_month(tlc.url, tmp_path / "a", rows=rows)
    write_sampled_month(tlc.url, tmp_path / "b", rows=rows)
    name = f"fhvhv_tripdata_{MONTH}.parquet"
    assert pq.read_table(tmp_path / "a" / name).equals(pq.read_table(tmp_path / "b" / name))


def test_refused_connection_is_one_line_at_once(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    with pytest.raises(SampleUnavailable) as err:
        write_sampled_month(f"http://127.0.0.1:{port}", tmp_path)
    assert "\n" not in str(err.value) and "refused" in str(err.value)


def test_a_server_that_never_answers_times_out_on_the_short_probe(tmp_path: Path, monkeypatch) -> None:
    from fares.ingestion import tlc_sample

    monkeypatch.setattr(tlc_sample, "PROBE_SECONDS", 0.5)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections (the kernel does) but never answers a byte
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
    try:
        with pytest.raises(SampleUnavailable) as err:
            write_sampled_month(f"http://127.0.0.1:{silent.getsockname()[1]}", tmp_path)
    finally:
        silent.close()
        for conn in accepted:
            conn.close()
    assert "no answer" in str(err.value)


def test_nothing_published_says_which_months_were_tried(tmp_path: Path) -> None:
    server = RangeServer(tmp_path)  # an empty folder: every file answers 403
    try:
        with pytest.raises(SampleUnavailable, match="has both yellow and HVFHV files"):
            write_sampled_month(server.url, tmp_path / "out")
    finally:
        server.close()
