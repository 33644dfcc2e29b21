"""Where TLC files come from: a local folder or a base URL laid out like the TLC's, with safe, retried downloads."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fares.config.settings import TLC_BASE_URL

if TYPE_CHECKING:
    import httpx

    from fares.ingestion.progress import Progress

log = logging.getLogger(__name__)

MISC_FILES = ("taxi_zone_lookup.csv", "taxi_zones.zip")
BACKOFF_SECONDS = 0.5  # first retry delay; doubles each attempt
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class Unpublished(LookupError):
    """The source does not have this file (yet): HTTP 403/404 or no such file in the folder."""


class SourceError(ValueError):
    """The source itself is unusable: no such folder, not a URL."""


class DownloadError(RuntimeError):
    """A download failed after every retry."""


class SourceUnreachable(RuntimeError):
    """The source's host does not resolve or refuses connections: the whole ingest stops at once, not month by month."""

    transient = False  # retrying the stage would only repeat the same wait


def _unreachable(exc: BaseException) -> str | None:
    """Why the host cannot be reached at all (name unknown, connection refused), or None for other errors."""
    import socket

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, socket.gaierror):
            return f"the host name does not resolve ({cur.strerror or cur})"
        if isinstance(cur, ConnectionRefusedError):
            return "the connection was refused"
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


@dataclass(frozen=True)
class FileInfo:
    """What the source says about a file before fetching it: where, how big, which version."""

    name: str
    location: str
    size: int | None
    etag: str | None


def _subdir(name: str) -> str:
    return "misc" if name in MISC_FILES else "trip-data"


class Source:
    """A TLC-shaped source: `<base>/<file>` or `<base>/trip-data|misc/<file>`, as a folder or an http(s) URL."""

    def __init__(
        self, location: str, timeout: float = 60.0, retries: int = 4, download_timeout: float | None = None
    ) -> None:
        self.location = location.rstrip("/")
        self.is_url = self.location.startswith(("http://", "https://"))
        if not self.is_url and not Path(self.location).is_dir():
            raise SourceError(f"source {location!r} is neither an http(s) URL nor an existing folder")
        self.timeout = timeout
        self.retries = retries
        self.download_timeout = download_timeout
        self._client: httpx.Client | None = None

    def __repr__(self) -> str:
        return f"Source({self.location!r})"

    def close(self) -> None:
        """Close the HTTP client, if one was opened."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _http(self) -> httpx.Client:
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout, follow_redirects=True)
        return self._client

    def _candidates(self, name: str) -> list[str]:
        sub = f"{self.location}/{_subdir(name)}/{name}"
        if self.location == TLC_BASE_URL.rstrip("/"):
            return [sub]
        return [f"{self.location}/{name}", sub]

    def probe(self, name: str) -> FileInfo:
        """Find `name` in the source and return its size/version; raise Unpublished when it is not there."""
        if not self.is_url:
            for cand in self._candidates(name):
                path = Path(cand)
                if path.is_file():
                    st = path.stat()
                    return FileInfo(name, str(path), st.st_size, f"{st.st_size}-{st.st_mtime_ns}")
            raise Unpublished(f"{name}: not found in {self.location}")
        for cand in self._candidates(name):
            resp = self._request("HEAD", cand, name)
            if resp.status_code in (403, 404):
                continue
            size = resp.headers.get("content-length")
            return FileInfo(name, cand, int(size) if size else None, resp.headers.get("etag"))
        raise Unpublished(f"{name}: not published at {self.location} (HTTP 403/404)")

    def _request(self, method: str, url: str, name: str) -> httpx.Response:
        import httpx

        for attempt in range(self.retries + 1):
            try:
                resp = self._http().request(method, url)
                if resp.status_code not in _RETRY_STATUS:
                    if resp.status_code >= 400 and resp.status_code not in (403, 404):
                        raise DownloadError(f"{name}: HTTP {resp.status_code} from {url}")
                    return resp
                problem = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                self._fail_fast(exc)
                problem = f"{type(exc).__name__}: {exc}"
            self._backoff(attempt, name, problem)
        raise DownloadError(f"{name}: {method} {url} failed after {self.retries + 1} attempts: {problem}")

    def _fail_fast(self, exc: BaseException) -> None:
        why = _unreachable(exc)
        if why is not None:
            raise SourceUnreachable(f"TLC source {self.location} is unreachable: {why}") from exc

    def _backoff(self, attempt: int, name: str, problem: str) -> None:
        if attempt < self.retries:
            delay = BACKOFF_SECONDS * 2**attempt
            log.warning("%s: %s; retrying in %.1fs", name, problem, delay)
            time.sleep(delay)

    def fetch(self, info: FileInfo, dest_dir: Path, progress: Progress | None = None) -> Path:
        """A local path to the file: the folder's own file, or a complete download into `dest_dir`."""
        if not self.is_url:
            return Path(info.location)
        dest_dir.mkdir(parents=True, exist_ok=True)
        final = dest_dir / info.name
        if final.exists() and info.size is not None and final.stat().st_size == info.size:
            log.info("%s: already downloaded", info.name)
            return final
        part = dest_dir / f".{info.name}.part"
        problem = ""
        for attempt in range(self.retries + 1):
            try:
                self._download(info, part, progress)
                os.replace(part, final)  # only a complete file ever gets the real name
                return final
            except Unpublished:
                part.unlink(missing_ok=True)
                raise
            except Exception as exc:  # noqa: BLE001 - any transfer problem is retried, then reported
                part.unlink(missing_ok=True)
                self._fail_fast(exc)
                problem = str(exc) or type(exc).__name__
                self._backoff(attempt, info.name, problem)
        raise DownloadError(
            f"{info.name}: download from {info.location} failed after {self.retries + 1} attempts: {problem}"
        )

    def _download(self, info: FileInfo, part: Path, progress: Progress | None) -> None:
        with self._http().stream("GET", info.location) as resp:
            if resp.status_code in (403, 404):
                raise Unpublished(f"{info.name}: not published at {info.location} (HTTP {resp.status_code})")
            if resp.status_code >= 400:
                raise DownloadError(f"HTTP {resp.status_code}")
            expected = int(resp.headers.get("content-length") or 0) or info.size
            task = (
                progress.start(f"download {info.name} ({(expected or 0) / 1e6:,.0f} MB)", expected)
                if progress
                else None
            )
            got = 0
            deadline = time.monotonic() + self.download_timeout if self.download_timeout else None
            with open(part, "wb") as fh:
                for chunk in resp.iter_bytes(1 << 20):
                    fh.write(chunk)
                    got += len(chunk)
                    if deadline is not None and time.monotonic() > deadline:
                        raise DownloadError(f"timed out after {self.download_timeout:.0f} s ({got:,} bytes so far)")
                    if progress and task is not None:
                        progress.advance(task, len(chunk))
            if progress and task is not None:
                progress.finish(task)
        if expected and got != expected:
            raise DownloadError(f"incomplete: got {got} of {expected} bytes")

    def list_months(self, kind: str) -> list[str]:
        """Months of `kind` present in a folder source (empty for URLs, which cannot be listed)."""
        if self.is_url:
            return []
        from fares.ingestion.months import month_of_file

        base = Path(self.location)
        found = {
            month_of_file(p.name)
            for d in (base, base / "trip-data")
            for p in (d.glob(f"{kind}_tripdata_*.parquet") if d.is_dir() else [])
        }
        return sorted(m for m in found if m)


def trip_file_name(kind: str, month: str) -> str:
    """The TLC file name of one month of one kind."""
    return f"{kind}_tripdata_{month}.parquet"
