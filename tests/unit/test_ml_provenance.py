"""The code version: a content hash of the package's code files that needs no .git and ignores what is not code."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fares.ml.provenance import code_files, code_version, git_commit


def _tree(root: Path) -> Path:
    files = {
        "settings.py": "A = 1\n",
        "ml/__init__.py": "",
        "ml/train.py": "def fit(): ...\n",
        "dbt_project/dbt_project.yml": "name: fares\n",
        "dbt_project/models/marts/ml_fare_training.sql": "select 1\n",
        "dbt_project/seeds/tlc_rate_card.csv": "fare,1\n",
        "dbt_project/models/docs.md": "docs\n",
        "dbt_project/target/compiled.sql": "select 2\n",
        "dbt_project/logs/dbt.log": "log\n",
        "ml/__pycache__/train.cpython-311.pyc": "",
        "tests/test_x.py": "def test(): ...\n",
        "bench/api.py": "print(1)\n",
        "docker-compose.yml": "services: {}\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_only_code_files_are_hashed(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    assert [p.relative_to(root).as_posix() for p in code_files(root)] == [
        "dbt_project/dbt_project.yml",
        "dbt_project/models/marts/ml_fare_training.sql",
        "dbt_project/seeds/tlc_rate_card.csv",
        "ml/__init__.py",
        "ml/train.py",
        "settings.py",
    ]


def test_a_code_change_changes_the_version_and_nothing_else_does(tmp_path: Path) -> None:
    root = _tree(tmp_path / "a")
    before = code_version(root)
    assert len(before) == 16 and int(before, 16) >= 0
    for not_code in (
        "tests/test_x.py",
        "bench/api.py",
        "dbt_project/target/compiled.sql",
        "dbt_project/models/docs.md",
    ):
        (root / not_code).write_text("changed\n")
    (root / ".git").mkdir()  # a checkout and an installed copy (no .git) of the same code agree
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert code_version(root) == before
    (root / "dbt_project/models/marts/ml_fare_training.sql").write_text("select 1 as fare\n")
    changed = code_version(root)
    assert changed != before
    (root / "dbt_project/models/marts/ml_fare_training.sql").rename(root / "dbt_project/models/marts/renamed.sql")
    assert code_version(root) not in (before, changed)


def test_the_same_code_elsewhere_has_the_same_version(tmp_path: Path) -> None:
    root = _tree(tmp_path / "a")
    copy = shutil.copytree(root, tmp_path / "site-packages" / "fares")
    assert code_version(copy) == code_version(root)


def test_no_git_commit_outside_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # git must not find a checkout above the temp folder (pytest's --basetemp may lie inside one).
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_commit(tmp_path) is None
