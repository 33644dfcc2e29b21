"""A plain `pip install .` (no -e), as the image does: the CLI, dbt and the code version work from site-packages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from fares.ml.provenance import code_version

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e
# dbt parse needs a profile but never connects: a port where nothing listens proves it.
NOWHERE = "postgresql://postgres@127.0.0.1:9/fares"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding a non-editable install of this tree; the project venv's packages serve as dependencies."""
    venv = tmp_path_factory.mktemp("install") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # A .pth line adds the project venv's site-packages (already downloaded dependencies) but not its editable finder.
    (Path(purelib) / "fares-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-build-isolation"]
    r = subprocess.run(
        [*pip, str(REPO_ROOT)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return venv


def _run(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FARES_", "DBT_", "VIRTUAL_ENV"))}
    # dbt's own executable lives with the dependencies, in the project venv.
    path = os.pathsep.join([str(venv / "bin"), str(Path(sys.executable).parent), env["PATH"]])
    env.update(DATABASE_URL=NOWHERE, PATH=path)
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _installed_package(venv: Path, cwd: Path) -> Path:
    r = _run(venv, cwd, str(venv / "bin" / "python"), "-c", "import fares; print(fares.__file__)")
    assert r.returncode == 0, r.stderr
    return Path(r.stdout.strip()).parent


def test_the_installed_cli_answers_help_from_site_packages(installed: Path, tmp_path: Path) -> None:
    r = _run(installed, tmp_path, str(installed / "bin" / "fares"), "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: fares") and "transform" in r.stdout
    package = _installed_package(installed, tmp_path)
    assert package.is_relative_to(installed) and not package.is_relative_to(REPO_ROOT)


def test_installed_dbt_parses_and_writes_only_under_the_data_folder(installed: Path, tmp_path: Path) -> None:
    r = _run(installed, tmp_path, str(installed / "bin" / "fares"), "dbt", "parse")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    manifest = json.loads((tmp_path / ".data" / "dbt" / "target" / "manifest.json").read_text())
    assert "model.fares.ml_fare_training" in manifest["nodes"]
    assert (tmp_path / ".data" / "dbt" / "logs" / "dbt.log").is_file()
    shipped = _installed_package(installed, tmp_path) / "dbt_project"
    assert not (shipped / "target").exists() and not (shipped / "logs").exists()
    # Every file of the project's dbt folder ships (a new kind of file must be added to pyproject's package-data),
    # except dbt's output folders and hidden lint-only tooling (.sqlfluff, .sqlfluff_libs/ for sqlfluff's templater).
    source = REPO_ROOT / "dbt_project"
    skipped = {"target", "logs", "dbt_packages"}

    def ships(parts: tuple[str, ...]) -> bool:
        return not skipped & set(parts) and not any(part.startswith(".") for part in parts)

    wanted = {
        p.relative_to(source).as_posix()
        for p in source.rglob("*")
        if p.is_file() and ships(p.relative_to(source).parts)
    }
    have = {p.relative_to(shipped).as_posix() for p in shipped.rglob("*") if p.is_file()}
    assert wanted - have == set()


def test_the_installed_code_version_equals_the_checkouts_without_git(installed: Path, tmp_path: Path) -> None:
    script = "from fares.ml.provenance import code_version, git_commit; print(code_version(), git_commit())"
    r = _run(installed, tmp_path, str(installed / "bin" / "python"), "-c", script)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [code_version(), "None"]
