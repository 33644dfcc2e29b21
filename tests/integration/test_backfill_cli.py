"""`fares backfill`, `fares runs show` and recorded single stages, as an operator runs them on a real PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fares.cli import main
from fares.config.settings import get_settings
from fares.config.warehouse import Warehouse
from fares.ops import runs
from tests.conftest import embedded_server_only

pytestmark = pytest.mark.integration


@pytest.fixture
def fares(fresh_db: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run the `fares` command against an empty database and data folder; returns (exit code, stdout)."""
    monkeypatch.setenv("DATABASE_URL", fresh_db.url())
    monkeypatch.setenv("FARES_DATA_DIR", str(tmp_path / "data"))

    def run(*argv: str) -> tuple[int, str]:
        get_settings.cache_clear()
        try:
            code = main(list(argv))
        finally:
            get_settings.cache_clear()
        return code, capsys.readouterr().out

    return run


@embedded_server_only
def test_backfill_of_three_months_with_one_corrupt_file_loads_the_other_two(
    fares, fresh_db: Warehouse, tmp_path: Path
) -> None:
    from fares.ingestion.synthetic import write_mirror

    mirror = tmp_path / "mirror"
    write_mirror(mirror, ["2024-01..2024-03"], rows_per_month=1_500)
    corrupt = next(mirror.rglob("yellow_tripdata_2024-02.parquet"))
    corrupt.write_bytes(b"PAR1 this is not a parquet file")

    code, out = fares("backfill", "2024-01..2024-03", "--source", str(mirror), "--no-train")
    assert code == 1
    assert "[1/3] 2024-01" in out and "[3/3] 2024-03" in out
    assert "backfill: 2 of 3 months loaded; failed: 2024-02" in out
    assert "yellow_tripdata_2024-02.parquet" in out
    history = list(reversed(runs.list_runs(fresh_db)))
    assert [(r.months, r.status, r.trigger) for r in history] == [
        (["2024-01"], "succeeded", "backfill"),
        (["2024-02"], "failed", "backfill"),
        (["2024-03"], "succeeded", "backfill"),
    ]
    with fresh_db.connect() as conn:
        loaded = conn.execute(
            "select month, count(*) from ops.ingested_files where kind = 'yellow' and status = 'loaded' group by month"
        ).fetchall()
        months_in_raw = conn.execute("select distinct source_month from raw.yellow_trips order by 1").fetchall()
    assert sorted(loaded) == [("2024-01", 1), ("2024-03", 1)]
    assert months_in_raw == [("2024-01",), ("2024-03",)]

    code, out = fares("backfill", "2024-01", "--source", str(mirror), "--no-train", "--force")
    assert code == 0 and re.search(r"ingest\s+succeeded\s+[\d.]+ s\s+rows out [1-9]", out), out  # reloaded


def test_a_single_stage_is_a_recorded_run_with_its_own_log(fares, fresh_db: Warehouse, tmp_path: Path) -> None:
    code, out = fares("run", "--only", "publish")
    assert code == 0 and "publish    succeeded" in out
    [run] = runs.list_runs(fresh_db)
    assert (run.trigger, run.stages_requested) == ("cli", ["publish"])
    code, out = fares("runs", "show", str(run.run_id))
    assert code == 0
    assert f"log: {tmp_path / 'data' / 'runs' / str(run.run_id) / 'run.log'}" in out
    assert f"[run {run.run_id}] no model trained in this run: nothing to publish" in out
    code, out = fares("runs", "show", "999")
    assert code == 1
    code, out = fares("run", "--from", "validate", "--only", "train")
    assert code == 1
