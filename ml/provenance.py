"""What made a model: the code (a content hash, and the git commit when there is one), the libraries, the settings."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

# The files that decide what a model is: the Python code, the dbt project and the data shipped with them. The same set
# in a checkout and in an installed package (tests, benchmarks and docs are not part of it), so both hash alike.
CODE_SUFFIXES = frozenset({".py", ".sql", ".yml", ".csv"})
_SKIPPED_DIRS = frozenset({"__pycache__", "target", "logs", "dbt_packages"})
LIBRARIES = ("scikit-learn", "numpy", "pandas")


def _package_dir() -> Path:
    from fares.config.settings import PACKAGE_DIR

    return PACKAGE_DIR


def code_files(root: Path | None = None) -> list[Path]:
    """The package's code files, sorted: top-level modules, then every subpackage and dbt_project/ (recursively)."""
    root = root or _package_dir()
    files = [p for p in root.glob("*.py") if p.is_file()]
    for sub in sorted(root.iterdir()):
        if sub.is_dir() and ((sub / "__init__.py").is_file() or sub.name == "dbt_project"):
            files += [
                p
                for p in sub.rglob("*")
                if p.is_file()
                and p.suffix in CODE_SUFFIXES
                and not any(part in _SKIPPED_DIRS or part.startswith(".") for part in p.relative_to(root).parts)
            ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def code_version(root: Path | None = None) -> str:
    """A content hash of the code files (16 hex digits): equal for equal code, with or without a `.git` folder."""
    root = root or _package_dir()
    digest = hashlib.sha256()
    for path in code_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def git_commit(root: Path | None = None) -> str | None:
    """The checkout's commit (short sha), or None outside a git checkout (an installed package, the Docker image)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],  # noqa: S607 - git from PATH; none means no commit
            cwd=root or _package_dir(),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def library_versions() -> dict[str, str]:
    """Python and the versions of the libraries that fit and run the models (a pickle needs the same ones)."""
    return {"python": platform.python_version(), **{name: metadata.version(name) for name in LIBRARIES}}


def hyperparameters(model: Any) -> dict[str, dict[str, Any]]:
    """Each service's fitted estimator settings (sklearn get_params), as the fit used them; empty for other models."""
    services = getattr(model, "services", None) or {}
    return {
        name: {k: v for k, v in sorted(m.regressor.get_params().items()) if not callable(v)}
        for name, m in services.items()
        if hasattr(getattr(m, "regressor", None), "get_params")
    }
