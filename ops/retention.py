"""Retention: what the nightly prune and `fares prune` remove, and what they always keep.

Kept always: a running run (its rows and folder), the newest run and the newest successful one, a run a kept run
redid, the newest validation run of each scope, open alerts, the newest heartbeat, and (through the model registry)
the current model and the one before it. A setting of 0 days keeps that kind forever.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from fares.config.settings import Settings
from fares.config.warehouse import Warehouse

log = logging.getLogger(__name__)

DAY = 86_400.0
# Where GX 1.x keeps what a validation wrote under settings.gx_dir (FilesystemStoreBackendDefaults; the site's root
# is quality.gx_run's `data_docs`): one JSON per result, one HTML page per result in the site.
GX_RESULTS = Path("uncommitted") / "validations"
GX_RESULT_PAGES = Path("data_docs") / "validations"
KINDS = (
    "run folders",
    "pipeline runs",
    "validation runs",
    "alerts",
    "heartbeats",
    "GX results",
    "GX result pages",
    "model versions",
)


class ModelVersions(Protocol):
    """What retention needs of the model registry (fares.ml.registry.Registry): passed in, ops sits below ml."""

    def prune(self, keep: int, dry_run: bool = False) -> list[str]:
        """Remove all but the newest `keep` versions, the current one and the one before it; returns the removed."""
        ...


@dataclass(frozen=True)
class Pruned:
    """What one kind lost (or, in a dry run, would lose)."""

    kind: str
    items: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PruneReport:
    """Every kind with what went, in KINDS order."""

    dry_run: bool
    kinds: list[Pruned]

    def count(self, kind: str) -> int:
        """How many of `kind` went (or would go)."""
        return next((len(p.items) for p in self.kinds if p.kind == kind), 0)

    def lines(self) -> list[str]:
        """The report as the CLI prints it: a header, then one line per kind with its count and first items."""
        verb = "would prune (dry run, nothing deleted)" if self.dry_run else "pruned"
        out = [f"{verb}: {sum(len(p.items) for p in self.kinds)} item(s)"]
        for p in self.kinds:
            shown = ", ".join(p.items[:5]) + (", ..." if len(p.items) > 5 else "")
            out.append(f"  {p.kind:<16} {len(p.items):>6}" + (f"  ({shown})" if p.items else ""))
        return out


@dataclass(frozen=True)
class _Run:
    run_id: int
    status: str
    redo_of: int | None
    ended_seconds_ago: float


def _runs(wh: Warehouse) -> list[_Run]:
    with wh.connect(autocommit=True) as conn:
        rows = conn.execute(
            "select run_id, status, redo_of, extract(epoch from now() - coalesce(finished_at, started_at))::float8"
            " from ops.pipeline_runs order by run_id"
        ).fetchall()
    return [_Run(*row) for row in rows]


def _protected(runs: list[_Run]) -> set[int]:
    """Runs kept whatever their age: running ones, the newest and the newest success."""
    keep = {r.run_id for r in runs if r.status == "running"}
    if runs:
        keep.add(runs[-1].run_id)
    succeeded = [r.run_id for r in runs if r.status == "succeeded"]
    return keep | set(succeeded[-1:])


def _old_runs(runs: list[_Run], days: float) -> list[int]:
    """Runs past `days`, minus the protected ones and any run a kept run redid (its row is referenced)."""
    if days <= 0:
        return []
    gone = {r.run_id for r in runs if r.ended_seconds_ago > days * DAY} - _protected(runs)
    changed = True
    while changed:  # a kept redo keeps what it redid, and so on up the chain
        kept_refs = {r.redo_of for r in runs if r.run_id not in gone and r.redo_of is not None}
        changed = bool(gone & kept_refs)
        gone -= kept_refs
    return sorted(gone)


def _run_folders(settings: Settings, runs: list[_Run]) -> list[Path]:
    """Folders data_dir/runs/<id> past keep_run_folders_days (by their run's end, else the folder's time)."""
    days, root = settings.keep_run_folders_days, settings.runs_dir
    if days <= 0 or not root.is_dir():
        return []
    known, protected = {r.run_id: r for r in runs}, _protected(runs)
    now, found = time.time(), []
    for folder in root.iterdir():
        if not folder.is_dir() or not folder.name.isdigit() or int(folder.name) in protected:
            continue
        run = known.get(int(folder.name))
        age = run.ended_seconds_ago if run is not None else now - folder.stat().st_mtime
        if age > days * DAY:
            found.append(folder)
    return sorted(found, key=lambda p: int(p.name))


def _old_files(root: Path, days: float) -> list[Path]:
    """Files under `root` not modified for `days`."""
    if days <= 0 or not root.is_dir():
        return []
    cutoff = time.time() - days * DAY
    return sorted(p for p in root.rglob("*") if p.is_file() and p.stat().st_mtime < cutoff)


def _old_rows(wh: Warehouse, days: float) -> dict[str, list[str]]:
    """Validation runs (not the newest of its scope), closed alerts and heartbeats (not the newest) past `days`."""
    if days <= 0:
        return {"validation runs": [], "alerts": [], "heartbeats": []}
    with wh.connect(autocommit=True) as conn:
        validations = conn.execute(
            "select run_id from ops.validation_runs v where finished_at < now() - make_interval(secs => %s)"
            " and finished_at < (select max(finished_at) from ops.validation_runs w where w.scope = v.scope)"
            " order by finished_at",
            (days * DAY,),
        ).fetchall()
        alerts = conn.execute(
            "select alert_id from ops.alerts where resolved_at is not null"
            " and sent_at < now() - make_interval(secs => %s) order by alert_id",
            (days * DAY,),
        ).fetchall()
        beats = conn.execute(
            "select host || ':' || pid from ops.scheduler_heartbeats where beat_at < now() - make_interval(secs => %s)"
            " and beat_at < (select max(beat_at) from ops.scheduler_heartbeats) order by beat_at",
            (days * DAY,),
        ).fetchall()
    return {
        "validation runs": [str(r[0]) for r in validations],
        "alerts": [str(r[0]) for r in alerts],
        "heartbeats": [str(r[0]) for r in beats],
    }


def _delete_rows(wh: Warehouse, run_ids: list[int], rows: dict[str, list[str]]) -> None:
    """Delete the chosen rows in one transaction (stage rows and check results go with their runs)."""
    beats = [b.rsplit(":", 1) for b in rows["heartbeats"]]
    with wh.connect() as conn:
        conn.execute("delete from ops.pipeline_runs where run_id = any(%s)", (run_ids,))
        conn.execute("delete from ops.validation_runs where run_id = any(%s)", (rows["validation runs"],))
        conn.execute("delete from ops.alerts where alert_id = any(%s)", ([int(a) for a in rows["alerts"]],))
        for host, pid in beats:
            conn.execute("delete from ops.scheduler_heartbeats where host = %s and pid = %s", (host, int(pid)))
        conn.commit()


def _remove(paths: list[Path], root: Path | None = None) -> None:
    """Delete `paths`; with `root`, also the folders under it they left empty (GX nests results in folders)."""
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if root is not None and root.is_dir():  # deepest first
        for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            if not any(folder.iterdir()):
                folder.rmdir()


def prune(settings: Settings, wh: Warehouse, models: ModelVersions, dry_run: bool = False) -> PruneReport:
    """Remove what the retention settings no longer keep (nothing with `dry_run`); returns what went, per kind."""
    runs = _runs(wh)
    folders = _run_folders(settings, runs)
    run_ids = _old_runs(runs, settings.keep_ops_days)
    rows = _old_rows(wh, settings.keep_ops_days)
    gx_root = settings.gx_dir
    results = _old_files(gx_root / GX_RESULTS, settings.keep_gx_days)
    pages = _old_files(gx_root / GX_RESULT_PAGES, settings.keep_gx_days)
    if not dry_run:
        _remove(folders)
        _delete_rows(wh, run_ids, rows)
        _remove(results, gx_root / GX_RESULTS)
        _remove(pages, gx_root / GX_RESULT_PAGES)
    versions = models.prune(settings.keep_model_versions, dry_run=dry_run)
    found = {
        "run folders": [p.name for p in folders],
        "pipeline runs": [str(i) for i in run_ids],
        **rows,
        "GX results": [str(p.relative_to(gx_root / GX_RESULTS)) for p in results],
        "GX result pages": [str(p.relative_to(gx_root / GX_RESULT_PAGES)) for p in pages],
        "model versions": versions,
    }
    report = PruneReport(dry_run, [Pruned(kind, found[kind]) for kind in KINDS])
    log.info("%s", "; ".join(report.lines()))
    return report
