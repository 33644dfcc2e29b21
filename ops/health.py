"""The pipeline's figures for monitoring (/metrics, /health): each stage's last success, status and duration."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from fares.config.warehouse import Warehouse


@dataclass(frozen=True)
class StageHealth:
    """One stage across every recorded run: when it last succeeded, and how its newest attempt went."""

    stage: str
    last_success_at: datetime | None
    last_status: str  # the newest stage row's status: running | succeeded | failed | interrupted | timed_out ...
    last_seconds: float | None  # how long the newest one took (None while it runs)


@dataclass(frozen=True)
class PipelineHealth:
    """The newest run and the newest successful run of the chain, with every stage's figures."""

    last_success_at: datetime | None
    last_run_id: int | None
    last_status: str | None  # of the newest run that was not skipped
    last_seconds: float | None
    stages: list[StageHealth] = field(default_factory=list)


def read_pipeline_health(wh: Warehouse) -> PipelineHealth:
    """The figures from ops.pipeline_runs and ops.stage_runs (two small aggregate queries)."""
    with wh.connect(autocommit=True) as conn:
        stage_rows = conn.execute(
            "select stage, max(finished_at) filter (where status = 'succeeded'),"
            " (array_agg(status order by started_at desc))[1],"
            " (array_agg(extract(epoch from finished_at - started_at)::float8 order by started_at desc))[1]"
            " from ops.stage_runs group by stage order by stage"
        ).fetchall()
        run = conn.execute(
            "select (select max(finished_at) from ops.pipeline_runs where status = 'succeeded'), run_id, status,"
            " extract(epoch from finished_at - started_at)::float8"
            " from ops.pipeline_runs where status <> 'skipped' order by run_id desc limit 1"
        ).fetchone()
    stages = [StageHealth(*row) for row in stage_rows]
    if run is None:
        return PipelineHealth(None, None, None, None, stages)
    return PipelineHealth(run[0], run[1], run[2], run[3], stages)
