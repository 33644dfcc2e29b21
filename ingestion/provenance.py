"""Where the loaded trips came from: a manifest beside TLC-shaped files, and the data source of loaded months."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from fares.config.warehouse import Warehouse
from fares.ops.ledger import loaded_trip_files

log = logging.getLogger(__name__)

MANIFEST = "fares-source.json"  # in a folder of TLC-shaped files: where they really came from
SYNTHETIC_KEY = "fares_synthetic"  # parquet key-value metadata of the synthetic generator's files
TRIP_KINDS = ("yellow", "fhvhv")


def write_manifest(folder: Path, doc: dict[str, Any]) -> Path:
    """Write `doc` as the folder's manifest (kind 'tlc' or 'synthetic', location, months, sample fractions)."""
    path = Path(folder) / MANIFEST
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return path


def read_manifest(location: str) -> dict[str, Any] | None:
    """The manifest of a folder source, or None (a URL, no manifest, or unreadable)."""
    if location.startswith(("http://", "https://")):
        return None
    try:
        doc = json.loads((Path(location) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _kind_of(location: str, manifest: dict[str, Any] | None) -> str:
    if manifest is not None:
        return "synthetic" if manifest.get("kind") == "synthetic" else "tlc"
    return "tlc" if location.startswith(("http://", "https://")) else "files"


def describe_data_source(wh: Warehouse, months: list[str]) -> dict[str, Any]:
    """What a model trained on `months` learned from, by the ingest ledger and the sources' manifests.

    Returns:
        {"kind": "tlc" | "synthetic" | "files" | "mixed" | "unknown", "synthetic": bool, "months": [...],
         "sample": {kind: fraction of the published file} (or {} when whole files), "locations": [...], "label": str}
    """
    files = loaded_trip_files(wh, TRIP_KINDS, sorted(set(months)))
    if not files:
        return {"kind": "unknown", "synthetic": False, "months": sorted(set(months)), "sample": {}, "locations": []}
    kinds: set[str] = set()
    sample: dict[str, float] = {}
    locations: list[str] = []
    for f in files:
        manifest = read_manifest(f.source)
        kinds.add(_kind_of(f.source, manifest))
        location = (manifest or {}).get("location") or f.source
        if location not in locations:
            locations.append(location)
        fraction = ((manifest or {}).get("sample") or {}).get(f.kind) or f.sample
        if fraction is not None and fraction < 1:
            sample[f.kind] = round(min(float(fraction), sample.get(f.kind, 1.0)), 6)
    kind = next(iter(kinds)) if len(kinds) == 1 else "mixed"
    synthetic = "synthetic" in kinds
    doc = {
        "kind": kind,
        "synthetic": synthetic,
        "months": sorted({f.month for f in files if f.month}),
        "sample": sample,
        "locations": locations,
    }
    doc["label"] = label(doc)
    return doc


def label(doc: dict[str, Any]) -> str:
    """The data source in a few words, as the page and the CLI show it."""
    months = doc.get("months") or []
    span = months[0] if len(months) == 1 else (f"{months[0]}..{months[-1]}" if months else "")
    sample = doc.get("sample") or {}
    shares = ", ".join(f"{'HVFHV' if k == 'fhvhv' else k} {v:.1%}" for k, v in sorted(sample.items(), reverse=True))
    sampled = f" (sample: {shares})" if shares else ""
    kind = doc.get("kind")
    if kind == "synthetic":
        return f"synthetic TLC-shaped trips {span}: not real fares"
    if kind == "mixed":
        return f"TLC-shaped trips {span} from several sources" + (", some synthetic" if doc.get("synthetic") else "")
    if kind == "tlc":
        return f"TLC trip records {span}{sampled}"
    if kind == "files":
        return f"TLC-shaped files {span} from {', '.join(doc.get('locations') or [])}{sampled}"
    return "unknown"
