"""What a run keeps beside its stages' results: `dbt source freshness` (sources.json in the run's folder, after the
transform) and the GX Data Docs rebuilt from every validation so far (after the gate). Neither fails the run: stale
sources and a docs build that fails are logged, and the run's page shows them."""

from __future__ import annotations

import logging
from pathlib import Path

from fares.chain.executor import RunContext, StageTimeout
from fares.config.settings import Settings
from fares.engines import get_engine
from fares.engines.transform import DbtFailed, DbtTimeout
from fares.ops.render import FRESHNESS_FILE, read_freshness

log = logging.getLogger(__name__)


def check_source_freshness(ctx: RunContext) -> Path | None:
    """Run `dbt source freshness` into the run's folder; returns the file (None when dbt wrote none).

    The thresholds are the sources' (dbt_project/models/staging/_staging__sources.yml, from the TLC's publication
    delay). A source past its error threshold makes dbt exit 1: logged as a warning, the run goes on.
    """
    out = ctx.settings.run_dir(ctx.run_id) / FRESHNESS_FILE
    try:
        get_engine(ctx.settings).run_dbt(
            ctx.wh, ["source", "freshness", "--output", str(out)], timeout=ctx.remaining(), cancel=ctx.cancel
        )
    except DbtTimeout as exc:
        raise StageTimeout(str(exc)) from exc
    except DbtFailed as exc:
        if not out.is_file():
            log.warning("dbt source freshness did not run: %s", str(exc).strip().splitlines()[0])
    stale = [f"{f.source} {f.status}" for f in read_freshness(out) or [] if f.status != "pass"]
    if stale:
        log.warning("source freshness: %s", ", ".join(stale))
    return out if out.is_file() else None


def rebuild_data_docs(settings: Settings) -> Path | None:
    """Rebuild the GX Data Docs site from every stored validation result; its index.html, or None when it failed."""
    from fares.quality.validate import build_data_docs

    try:
        return build_data_docs(settings)
    except Exception:  # the docs are a view of the results, which are stored already: the run goes on
        log.exception("rebuilding the GX Data Docs failed")
        return None
