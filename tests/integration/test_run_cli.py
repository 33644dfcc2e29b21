"""`fares run` as an operator sees it: a rerun on unchanged data, and months that are nowhere to be found."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fares.cli import main
from fares.config.settings import get_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def fares(tlc_chain, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run the `fares` command against the database and data folder of the TLC chain."""
    monkeypatch.setenv("DATABASE_URL", tlc_chain.settings.database_url)
    monkeypatch.setenv("FARES_DATA_DIR", str(tlc_chain.settings.data_dir))

    def run(*argv: str) -> tuple[int, str, str]:
        get_settings.cache_clear()
        try:
            code = main(list(argv))
        finally:
            get_settings.cache_clear()
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_rerun_on_unchanged_files_loads_nothing_and_keeps_the_model(fares, tlc_chain, tlc_samples: Path) -> None:
    current = (tlc_chain.settings.models_dir / "CURRENT").read_text().strip()
    code, out, _ = fares("run", "--source", str(tlc_samples), "--months", "2020-04")
    assert code == 0, out
    assert "succeeded" in out.splitlines()[0]
    # the stage took how long, loaded 0, and says it had nothing to do
    assert re.search(r"ingest\s+succeeded\s+[\d.]+ s\s+rows out 0 \(nothing new: every file was unchanged", out), out
    assert "model published" not in out
    assert (tlc_chain.settings.models_dir / "CURRENT").read_text().strip() == current


def test_requested_months_missing_everywhere_fail_the_run_by_name(fares, tmp_path: Path) -> None:
    empty = tmp_path / "mirror"
    empty.mkdir()
    code, out, _ = fares("run", "--source", str(empty), "--months", "2031-05")
    assert code == 1
    assert "failed" in out.splitlines()[0]
    assert "yellow_tripdata_2031-05.parquet" in out and "none of the requested months is published" in out
    code, out, _err = fares("run", "--source", str(tmp_path / "nope"), "--months", "2031-05")
    assert code == 1 and "neither an http(s) URL nor an existing folder" in out
