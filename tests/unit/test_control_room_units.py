"""Pieces of the control room that need no database: fail-fast sources, stage selection, the runs table, run logs."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fares.chain import runlog
from fares.chain.executor import is_transient
from fares.chain.stages import DEFAULT_STAGES, select_stages
from fares.config.settings import Settings
from fares.ingestion.sources import Source, SourceUnreachable
from fares.ops.render import ERROR_WIDTH, format_runs_table
from fares.ops.runs import RunRecord, StageRecord


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("location", "why"),
    [
        (f"http://127.0.0.1:{_closed_port()}", "the connection was refused"),
        ("http://nonexistent.invalid", "the host name does not resolve"),
    ],
)
def test_an_unreachable_source_fails_at_the_first_request_without_retrying(
    location: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    source = Source(location, timeout=5, retries=4)
    with pytest.raises(SourceUnreachable) as caught:
        source.probe("taxi_zone_lookup.csv")
    assert str(caught.value).startswith(f"TLC source {location} is unreachable: {why}")
    assert "retrying" not in caplog.text
    assert not is_transient(caught.value), "the chain must not retry the stage either"


def test_stages_from_a_point_or_only_some_keep_the_chain_order() -> None:
    assert list(select_stages(DEFAULT_STAGES, start="validate")) == ["validate", "train", "publish"]
    assert list(select_stages(DEFAULT_STAGES, only=["publish", "ingest"])) == ["ingest", "publish"]
    with pytest.raises(ValueError, match="unknown stage 'deploy'; the stages are ingest, transform"):
        select_stages(DEFAULT_STAGES, start="deploy")


def test_the_runs_table_fits_a_terminal_whatever_the_error() -> None:
    start = datetime(2025, 1, 2, 3, 0, tzinfo=UTC)
    stages = [
        StageRecord(7, name, start, start, status, 1, None, None, None)
        for name, status in (("ingest", "succeeded"), ("transform", "failed"))
    ]
    rows = [
        RunRecord(
            run_id=7,
            status="failed",
            started_at=start,
            finished_at=start + timedelta(seconds=42),
            trigger="daemon",
            months=["2024-01", "2024-02", "2024-03"],
            stages=stages,
            error="transform failed: dbt build failed (exit 1)\n" + "Failure in test " * 200,
            source=None,
            model_version=None,
            rows_in=None,
            rows_out=None,
            pid=None,
            host=None,
            redo_of=None,
            stages_requested=None,
            log_path=None,
            validation_run_ids=None,
        )
    ]
    lines = format_runs_table(rows).splitlines()
    assert lines[0].split() == ["run", "status", "started", "took", "by", "months", "stages", "error"]
    # the duration as fares.ops.render writes it everywhere a run is shown (the CLI's table wrote "42s" before)
    assert lines[1].split()[:2] == ["7", "failed"] and "42.0 s" in lines[1] and "2024-01..2024-03" in lines[1]
    assert "ingest:ok transform:FAIL" in lines[1] and lines[1].endswith("transform failed: dbt build failed (exit 1)")
    assert max(len(line) for line in lines) < 60 + 60 + ERROR_WIDTH
    assert format_runs_table([]) == "(no runs yet)"


def test_a_runs_log_lines_carry_its_id_and_land_in_its_file(tmp_path: Path) -> None:
    settings = Settings(database_url=None, data_dir=tmp_path)
    logger = logging.getLogger("fares.test_run_log")
    with runlog.run_logging(settings, 41) as path:
        logger.info("loading 2024-01")
        logging.getLogger("some.library").warning("disk nearly full")
        logging.getLogger("some.library").info("chatter")
    logger.info("after the run")
    text = path.read_text()
    assert path == tmp_path / "runs" / "41" / "run.log"
    assert "fares.test_run_log: [run 41] loading 2024-01" in text
    assert "some.library: [run 41] disk nearly full" in text
    assert "chatter" not in text and "after the run" not in text
