"""Sample a remote TLC parquet file over HTTP range requests: the footer, then only the row groups the sample needs."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import httpx
    import pyarrow as pa
    import pyarrow.parquet as pq

log = logging.getLogger(__name__)

TAIL_BYTES = 64 * 1024  # one request for the end of the file: the footer (schema + row-group index) usually fits
MIN_ROW_GROUPS = 3  # a month is roughly in time order: a few groups spread over it see more days than one
SAMPLE_SEED = 20_240_101


class RangeError(RuntimeError):
    """The server cannot serve byte ranges of this file (no 206 answer), or a range came back short."""


@dataclass
class RangeStats:
    """What a ranged read cost: requests made and bytes fetched, against the file's size."""

    file_size: int
    requests: int = 0
    bytes_read: int = 0
    ranges: list[tuple[int, int]] = field(default_factory=list)


class RangeFile(io.RawIOBase):
    """A read-only, seekable file over HTTP: every read is a `Range` request, served from prefetched blocks when they
    cover it. pyarrow reads the footer and the chosen row groups' column chunks through it."""

    def __init__(self, client: httpx.Client, url: str, size: int) -> None:
        super().__init__()
        self.client, self.url = client, url
        self.stats = RangeStats(size)
        self._pos = 0
        self._blocks: list[tuple[int, bytes]] = []

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.stats.file_size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def size(self) -> int:
        """The file's length in bytes."""
        return self.stats.file_size

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]  # io's buffer protocol type
        data = self.read_at(self._pos, len(buffer))
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def read(self, n: int = -1) -> bytes:
        n = self.stats.file_size - self._pos if n is None or n < 0 else n
        data = self.read_at(self._pos, n)
        self._pos += len(data)
        return data

    def read_at(self, start: int, n: int) -> bytes:
        """`n` bytes from `start` (fewer at the end of the file): from a prefetched block, else one range request."""
        end = min(start + n, self.stats.file_size)
        if end <= start:
            return b""
        for block_start, block in self._blocks:
            if block_start <= start and end <= block_start + len(block):
                return block[start - block_start : end - block_start]
        return self._fetch(start, end)

    def prefetch(self, start: int, end: int) -> None:
        """Fetch bytes [start, end) in one request and keep them for the reads that fall inside."""
        start, end = max(0, start), min(end, self.stats.file_size)
        if end > start:
            self._blocks.append((start, self._fetch(start, end)))

    def _fetch(self, start: int, end: int) -> bytes:
        resp = self.client.get(self.url, headers={"Range": f"bytes={start}-{end - 1}"})
        if resp.status_code != 206:
            raise RangeError(f"{self.url}: asked for bytes {start}-{end - 1}, got HTTP {resp.status_code} (no ranges)")
        data = resp.content
        if len(data) != end - start:
            raise RangeError(f"{self.url}: bytes {start}-{end - 1} came back as {len(data)} bytes")
        self.stats.requests += 1
        self.stats.bytes_read += len(data)
        self.stats.ranges.append((start, end))
        return data


def choose_row_groups(metadata: pq.FileMetaData, target_rows: int, max_bytes: int) -> list[int]:
    """Row groups spread evenly over the file until they hold `target_rows` (at least MIN_ROW_GROUPS, so the sample
    sees more than one stretch of the month), within `max_bytes` of data; always at least one.

    The same file always gives the same choice.
    """
    n = metadata.num_row_groups
    if n == 0:
        return []
    rows = np.array([metadata.row_group(i).num_rows for i in range(n)])
    sizes = np.array([metadata.row_group(i).total_byte_size for i in range(n)])
    wanted = int(np.clip(max(MIN_ROW_GROUPS, np.ceil(target_rows / max(rows.mean(), 1))), 1, n))
    while True:
        picks = sorted({round(x) for x in np.linspace(0, n - 1, wanted).tolist()})
        if wanted == 1 or sizes[picks].sum() <= max_bytes:
            return picks
        wanted -= 1


def _row_group_span(metadata: pq.FileMetaData, index: int) -> tuple[int, int]:
    """The byte range [start, end) that holds every column chunk of one row group."""
    rg = metadata.row_group(index)
    starts, ends = [], []
    for j in range(rg.num_columns):
        col = rg.column(j)
        first = col.dictionary_page_offset if col.has_dictionary_page and col.dictionary_page_offset else None
        start = min(x for x in (first, col.data_page_offset) if x is not None)
        starts.append(start)
        ends.append(start + col.total_compressed_size)
    return min(starts), max(ends)


@dataclass
class RemoteSample:
    """Rows sampled from one remote parquet file, with what it cost to read them."""

    table: pa.Table
    total_rows: int
    row_groups: list[int]
    num_row_groups: int
    stats: RangeStats
    key_value_metadata: dict[str, str]

    @property
    def fraction(self) -> float:
        """Rows kept as a fraction of the whole file."""
        return self.table.num_rows / self.total_rows if self.total_rows else 0.0


def sample_remote_parquet(
    client: httpx.Client, url: str, size: int, target_rows: int, max_bytes: int = 150_000_000
) -> RemoteSample:
    """Read the footer of the parquet file at `url`, then only the row groups needed for about `target_rows` rows
    (each row group fetched in one range request), and keep a deterministic `target_rows` of them.

    Args:
        size: the file's length (from a HEAD request).
        max_bytes: cap on the compressed bytes of the chosen row groups (at least one is always read).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    remote = RangeFile(client, url, size)
    remote.prefetch(size - TAIL_BYTES, size)
    pf = pq.ParquetFile(pa.PythonFile(remote, mode="r"))
    meta = pf.metadata
    picks = choose_row_groups(meta, target_rows, max_bytes)
    for i in picks:
        remote.prefetch(*_row_group_span(meta, i))
    table = pf.read_row_groups(picks) if picks else pf.schema_arrow.empty_table()
    if table.num_rows > target_rows:
        keep = np.sort(np.random.default_rng(SAMPLE_SEED).choice(table.num_rows, target_rows, replace=False))
        table = table.take(pa.array(keep))
    kv = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in (meta.metadata or {}).items()}
    log.info(
        "%s: %d of %d row groups, %d of %d rows, %.1f of %.1f MB in %d range requests",
        url.rsplit("/", 1)[-1],
        len(picks),
        meta.num_row_groups,
        table.num_rows,
        meta.num_rows,
        remote.stats.bytes_read / 1e6,
        size / 1e6,
        remote.stats.requests,
    )
    return RemoteSample(table, meta.num_rows, picks, meta.num_row_groups, remote.stats, kv)
