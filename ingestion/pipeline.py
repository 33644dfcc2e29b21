"""The ingest stage: plan which TLC files to load, fetch them, hand them to the engine's raw writer, keep the ledger."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fares.config.settings import Settings
from fares.config.warehouse import Warehouse
from fares.engines import get_engine
from fares.engines.base import LoadError
from fares.ingestion.loader import load_trip_file
from fares.ingestion.months import add_months, current_month, parse_months
from fares.ingestion.progress import Progress
from fares.ingestion.sources import DownloadError, FileInfo, Source, Unpublished, trip_file_name
from fares.ingestion.zones import ZoneFileError, read_zone_shapes, read_zone_table
from fares.ops import ledger
from fares.ops.ledger import LedgerEntry
from fares.ops.locks import ingest_lock

if TYPE_CHECKING:
    from dlt.common.schema.typing import TTableSchemaColumns

log = logging.getLogger(__name__)

KINDS = ("yellow", "fhvhv")
LOOKBACK_MONTHS = 6  # how far back "the newest published month" is searched on a URL source
_ZONE_COLUMNS: TTableSchemaColumns = {
    "location_id": {"data_type": "bigint", "nullable": False},
    "borough": {"data_type": "text"},
    "zone": {"data_type": "text"},
    "service_zone": {"data_type": "text"},
}
_SHAPE_COLUMNS: TTableSchemaColumns = {
    "location_id": {"data_type": "bigint", "nullable": False},
    "zone": {"data_type": "text"},
    "borough": {"data_type": "text"},
    "centroid_lat": {"data_type": "double"},
    "centroid_lon": {"data_type": "double"},
    "geometry_wkt": {"data_type": "text"},
}
_EXPECTED = (LoadError, ZoneFileError, DownloadError, OSError)


@dataclass
class FileResult:
    """What happened to one file: status is loaded, skipped, failed or unpublished."""

    file: str
    kind: str
    month: str | None
    status: str
    rows: int | None = None
    error: str | None = None


@dataclass
class IngestReport:
    """Every file the ingest looked at, in order."""

    source: str
    results: list[FileResult] = field(default_factory=list)

    @property
    def failed(self) -> list[FileResult]:
        """The files that failed."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def loaded(self) -> list[FileResult]:
        """The files that were (re)loaded in this run."""
        return [r for r in self.results if r.status == "loaded"]

    @property
    def rows(self) -> int:
        """Rows loaded in this run."""
        return sum(r.rows or 0 for r in self.loaded)


class _Run:
    """State of one ingest call: source, pipeline, ledger, report."""

    def __init__(
        self, settings: Settings, wh: Warehouse, source: Source, sample: float | None, progress: Progress
    ) -> None:
        self.settings, self.wh, self.source, self.sample, self.progress = settings, wh, source, sample, progress
        self.writer = get_engine(settings).raw_writer(wh)  # raw goes where the engine keeps it; the ledger to `wh`
        self.known = ledger.read_ledger(wh)
        self.report = IngestReport(source.location)

    def add(self, result: FileResult) -> None:
        log_fn = log.error if result.status == "failed" else log.info
        log_fn(
            "%s: %s%s%s",
            result.file,
            result.status,
            f" ({result.rows} rows)" if result.rows is not None else "",
            f" - {result.error}" if result.error else "",
        )
        self.report.results.append(result)

    def fetch(self, info: FileInfo) -> Any:
        return self.source.fetch(info, self.settings.downloads_dir, self.progress)

    def fail(self, file: str, kind: str, month: str | None, error: str) -> None:
        msg = error if error.startswith(file) else f"{file}: {error}"
        ledger.record_failed(self.wh, file, kind, month, self.source.location, msg)
        self.add(FileResult(file, kind, month, "failed", error=msg))


def _load_zone_table(run: _Run) -> None:
    name = "taxi_zone_lookup.csv"
    try:
        info = run.source.probe(name)
        if _unchanged(run.known.get(name), info, None):
            run.add(FileResult(name, "zones", None, "skipped", run.known[name].rows))
            return
        rows = read_zone_table(run.fetch(info))
        load_id = run.writer.write_table("zones", rows, _ZONE_COLUMNS, name)
        ledger.record_loaded(
            run.wh, name, "zones", None, run.source.location, info.size, info.etag, None, len(rows), load_id
        )
        run.add(FileResult(name, "zones", None, "loaded", len(rows)))
    except Unpublished as exc:
        known = run.known.get(name)
        if known is not None and known.loaded_at:
            log.warning("%s; keeping the zones loaded before", exc)
            run.add(FileResult(name, "zones", None, "skipped", error=str(exc)))
        else:
            run.fail(name, "zones", None, str(exc))
    except _EXPECTED as exc:
        run.fail(name, "zones", None, str(exc))


def _load_zone_shapes(run: _Run) -> None:
    name = "taxi_zones.zip"
    try:
        info = run.source.probe(name)
    except Unpublished as exc:
        log.warning("%s; zone shapes not loaded (centroids and polygons stay as they were)", exc)
        run.add(FileResult(name, "zone_shapes", None, "skipped", error=str(exc)))
        return
    except _EXPECTED as exc:
        run.fail(name, "zone_shapes", None, str(exc))
        return
    if _unchanged(run.known.get(name), info, None):
        run.add(FileResult(name, "zone_shapes", None, "skipped", run.known[name].rows))
        return
    try:
        rows = read_zone_shapes(run.fetch(info))
        load_id = run.writer.write_table("zone_shapes", rows, _SHAPE_COLUMNS, name)
        ledger.record_loaded(
            run.wh, name, "zone_shapes", None, run.source.location, info.size, info.etag, None, len(rows), load_id
        )
        run.add(FileResult(name, "zone_shapes", None, "loaded", len(rows)))
    except _EXPECTED as exc:
        run.fail(name, "zone_shapes", None, str(exc))


def _load_trip_month(run: _Run, kind: str, month: str) -> None:
    name = trip_file_name(kind, month)
    try:
        info = run.source.probe(name)
    except Unpublished as exc:
        run.add(FileResult(name, kind, month, "unpublished", error=str(exc)))
        return
    except _EXPECTED as exc:
        run.fail(name, kind, month, str(exc))
        return
    if _unchanged(run.known.get(name), info, run.sample):
        run.add(FileResult(name, kind, month, "skipped", run.known[name].rows))
        return
    try:
        path = run.fetch(info)
        rows, load_id = load_trip_file(run.writer, path, kind, month, run.sample, run.progress)
    except Unpublished as exc:
        run.add(FileResult(name, kind, month, "unpublished", error=str(exc)))
        return
    except _EXPECTED as exc:
        run.fail(name, kind, month, str(exc))
        return
    ledger.record_loaded(
        run.wh, name, kind, month, run.source.location, info.size, info.etag, run.sample, rows, load_id
    )
    if run.source.is_url:
        path.unlink(missing_ok=True)  # trip files are big; the database holds them now
    run.add(FileResult(name, kind, month, "loaded", rows))


def _unchanged(entry: LedgerEntry | None, info: FileInfo, sample: float | None) -> bool:
    return entry is not None and entry.is_version(info.size, info.etag, sample)


def plan_months(source: Source, kinds: tuple[str, ...], known: dict[str, LedgerEntry]) -> list[str]:
    """The default months: a folder's every month (unchanged ones are skipped later); for a URL, months that
    failed before plus the months after the newest loaded one up to now, or, with nothing loaded yet, the newest
    published month."""
    if not source.is_url:
        return sorted({m for kind in kinds for m in source.list_months(kind)})
    now = current_month()
    loaded = [e.month for e in known.values() if e.kind in kinds and e.status == "loaded" and e.month]
    if loaded:
        newest = max(loaded)
        retry = {e.month for e in known.values() if e.kind in kinds and e.status == "failed" and e.month}
        return sorted(retry | set(parse_months([f"{add_months(newest, 1)}..{now}"]) if newest < now else retry))
    for back in range(LOOKBACK_MONTHS + 1):
        month = add_months(now, -back)
        try:
            source.probe(trip_file_name(kinds[0], month))
        except Unpublished:
            continue
        return parse_months([f"{month}..{now}"])
    return [now]


def ingest(
    settings: Settings,
    wh: Warehouse,
    source: str | None = None,
    months: list[str] | None = None,
    kinds: tuple[str, ...] | list[str] = KINDS,
    sample: float | None = None,
    progress: bool | None = None,
) -> IngestReport:
    """Load the zone files and the requested months of each kind from `source` into schema raw.

    Args:
        source: a folder or base URL laid out like the TLC's; default settings.tlc_source.
        months: "YYYY-MM" or "YYYY-MM..YYYY-MM" items; default settings.months, else the newest not yet loaded.
        sample: keep this fraction of each file's rows (deterministic); default settings.sample.
        progress: show a progress display; default only when stderr is a terminal.

    Returns:
        An IngestReport with one result per file; a failed file never stops the others.
    """
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown kind(s) {unknown}; expected some of {list(KINDS)}")
    src = Source(
        source or settings.tlc_source,
        settings.http_timeout_seconds,
        settings.http_retries,
        settings.download_timeout_seconds,
    )
    sample = sample if sample is not None else settings.sample
    try:
        with ingest_lock(wh), Progress(progress) as shown:
            run = _Run(settings, wh, src, sample if sample is not None and sample < 1 else None, shown)
            _load_zone_table(run)
            _load_zone_shapes(run)
            wanted = parse_months(list(months or settings.months)) or plan_months(src, kinds, run.known)
            log.info("ingesting %s from %s", ", ".join(wanted) or "no new months", src.location)
            for month in wanted:
                for kind in kinds:
                    _load_trip_month(run, kind, month)
    finally:
        src.close()
    return run.report


def ingest_status(settings: Settings, wh: Warehouse) -> list[LedgerEntry]:
    """What the loader has loaded, one entry per file (the `fares ingest --status` table)."""
    return list(ledger.read_ledger(wh).values())
