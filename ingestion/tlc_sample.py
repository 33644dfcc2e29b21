"""A small real sample for `fares demo`: ask a TLC-shaped URL for its newest month and write a deterministic sample
of it (read with HTTP range requests) plus the zone files into a local folder that `ingest` then loads."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fares.ingestion.months import add_months, current_month
from fares.ingestion.provenance import SYNTHETIC_KEY, write_manifest

if TYPE_CHECKING:
    import httpx

    from fares.ingestion.remote_sample import RemoteSample

log = logging.getLogger(__name__)

KINDS = ("yellow", "fhvhv")
SAMPLE_ROWS = {"yellow": 100_000, "fhvhv": 200_000}  # a few hundred thousand trips: the whole demo stays in minutes
MAX_BYTES = {"yellow": 60_000_000, "fhvhv": 90_000_000}  # compressed row-group bytes read per file at most
LOOKBACK_MONTHS = 8  # the TLC publishes about two months late; look this far back for the newest month
CONNECT_SECONDS = 3.0  # offline must be known at once: short timeouts for the probe, no retries
PROBE_SECONDS = 5.0  # a HEAD that has not answered by then (a hung server) counts as offline
READ_SECONDS = 30.0  # a range read of a row group may take longer
ZONE_FILES = ("taxi_zone_lookup.csv", "taxi_zones.zip")


class SampleUnavailable(RuntimeError):
    """The source cannot give a sample now (offline, nothing published, no range support); the message says why."""


@dataclass
class SampledMonth:
    """A local TLC-shaped folder holding a sample of one remote month, and what reading it cost."""

    folder: Path
    month: str
    samples: dict[str, RemoteSample]
    synthetic: bool

    @property
    def bytes_read(self) -> int:
        """Bytes fetched for the trip files (footers + chosen row groups)."""
        return sum(s.stats.bytes_read for s in self.samples.values())

    @property
    def file_bytes(self) -> int:
        """The full size of the remote trip files."""
        return sum(s.stats.file_size for s in self.samples.values())

    @property
    def rows(self) -> int:
        """Trips kept, all kinds."""
        return sum(s.table.num_rows for s in self.samples.values())


def _offline_reason(exc: Exception) -> str:
    """One short phrase for a transport failure: no name resolution, refused, timeout."""
    import httpx

    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer in time ({type(exc).__name__})"
    if "Name or service not known" in text or "nodename nor servname" in text or "Temporary failure" in text:
        return "its name does not resolve (no network?)"
    if "refused" in text.lower():
        return "connection refused"
    return text.splitlines()[0][:160]


def _candidates(base: str, name: str) -> list[str]:
    sub = "misc" if name in ZONE_FILES else "trip-data"
    return [f"{base}/{sub}/{name}", f"{base}/{name}"]


def _find(client: httpx.Client, base: str, name: str) -> tuple[str, int] | None:
    """(URL, size) of `name` under `base`, or None when it is not published (403/404)."""
    import httpx

    for url in _candidates(base, name):
        resp = client.head(url, timeout=httpx.Timeout(PROBE_SECONDS, connect=CONNECT_SECONDS))
        if resp.status_code == 200 and resp.headers.get("content-length"):
            return url, int(resp.headers["content-length"])
        if resp.status_code not in (403, 404):
            raise SampleUnavailable(f"{url} answered HTTP {resp.status_code}")
    return None


def find_newest_month(
    client: httpx.Client, base: str, now: str | None = None
) -> tuple[str, dict[str, tuple[str, int]]]:
    """The newest month with both a yellow and an HVFHV file, and each file's (URL, size)."""
    now = now or current_month()
    for back in range(LOOKBACK_MONTHS + 1):
        month = add_months(now, -back)
        found = {}
        for kind in KINDS:
            hit = _find(client, base, f"{kind}_tripdata_{month}.parquet")
            if hit is None:
                break
            found[kind] = hit
        else:
            return month, found
    raise SampleUnavailable(
        f"no month from {add_months(now, -LOOKBACK_MONTHS)} to {now} has both yellow and HVFHV files"
    )


def _download_small(client: httpx.Client, base: str, name: str, dest: Path) -> None:
    hit = _find(client, base, name)
    if hit is None:
        raise SampleUnavailable(f"{name} is not published at {base}")
    resp = client.get(hit[0])
    resp.raise_for_status()
    (dest / name).write_bytes(resp.content)


def write_sampled_month(base: str, dest: Path, rows: dict[str, int] | None = None) -> SampledMonth:
    """Sample the newest month of `base` (a TLC-shaped http(s) URL) into `dest`: yellow and HVFHV parquet files
    holding about `rows[kind]` trips each, the zone table and shapes, and a manifest saying where they came from.

    Raises:
        SampleUnavailable: offline, nothing published, or the server cannot serve byte ranges.
    """
    import httpx
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fares.ingestion.remote_sample import RangeError, sample_remote_parquet

    base = base.rstrip("/")
    rows = rows or SAMPLE_ROWS
    dest.mkdir(parents=True, exist_ok=True)
    timeout = httpx.Timeout(READ_SECONDS, connect=CONNECT_SECONDS)
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            month, files = find_newest_month(client, base)
            samples = {}
            for kind, (url, size) in files.items():
                samples[kind] = sample_remote_parquet(client, url, size, rows[kind], MAX_BYTES[kind])
            for name in ZONE_FILES:
                _download_small(client, base, name, dest)
    except httpx.TransportError as exc:
        raise SampleUnavailable(_offline_reason(exc)) from exc
    except (httpx.HTTPStatusError, RangeError, pa.ArrowException, OSError) as exc:
        raise SampleUnavailable(str(exc).splitlines()[0][:200]) from exc
    for old in dest.glob("*_tripdata_*.parquet"):
        old.unlink()  # one month per folder: a month sampled before must not be loaded again
    for kind, sample in samples.items():
        tmp = dest / f".{kind}.part"
        pq.write_table(sample.table, tmp)
        tmp.replace(dest / f"{kind}_tripdata_{month}.parquet")
    synthetic = any(s.key_value_metadata.get(SYNTHETIC_KEY) for s in samples.values())
    write_manifest(dest, _manifest(base, month, samples, synthetic))
    return SampledMonth(dest, month, samples, synthetic)


def _manifest(base: str, month: str, samples: dict[str, RemoteSample], synthetic: bool) -> dict[str, Any]:
    return {
        "kind": "synthetic" if synthetic else "tlc",
        "location": base,
        "months": [month],
        "sample": {k: round(s.fraction, 6) for k, s in samples.items()},
        "rows": {k: s.table.num_rows for k, s in samples.items()},
        "file_rows": {k: s.total_rows for k, s in samples.items()},
        "row_groups": {k: f"{len(s.row_groups)} of {s.num_row_groups}" for k, s in samples.items()},
        "bytes_read": {k: s.stats.bytes_read for k, s in samples.items()},
        "file_bytes": {k: s.stats.file_size for k, s in samples.items()},
    }


def describe(sampled: SampledMonth) -> str:
    """One line for people: the month, trips kept, and bytes read against the files' size."""
    parts = [
        f"{s.table.num_rows:,} {'HVFHV' if k == 'fhvhv' else k} ({s.fraction:.1%})" for k, s in sampled.samples.items()
    ]
    return (
        f"{sampled.month}: {' + '.join(parts)} trips; read {sampled.bytes_read / 1e6:,.1f} MB of "
        f"{sampled.file_bytes / 1e6:,.1f} MB with HTTP range requests"
    )
