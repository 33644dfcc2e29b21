"""The `fares` sub-commands: thin, each hands its work to the chain, the ops records or a stage's package."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fares.config.settings import Settings

if TYPE_CHECKING:
    from fares.config.warehouse import Warehouse
    from fares.ml.registry import Registry

DEMO_MONTHS = ["2025-01", "2025-02"]
_DBT_OFFLINE = ("parse", "ls", "list", "clean", "--version", "-v", "--help", "-h")  # dbt commands needing no database
EXIT_SKIPPED = 75  # EX_TEMPFAIL: another run held the pipeline lock; nothing was done, try again later
log = logging.getLogger("fares")


class UserError(RuntimeError):
    """An error the user can act on: printed without a traceback, exit status 1."""


def _warehouse(settings: Settings) -> Warehouse:
    """The database, with schema ops migrated: the CLI's process entry to it (once per command)."""
    from fares.ops.schema import prepare_warehouse

    return prepare_warehouse(settings)


def _months(args: argparse.Namespace) -> list[str] | None:
    if not getattr(args, "months", None):
        return None
    from fares.ingestion.months import parse_months

    try:
        return parse_months(args.months)
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    """Load TLC months into raw, or show what was loaded."""
    from fares.ingestion.pipeline import ingest, ingest_status

    wh = _warehouse(settings)
    if args.status:
        _print_table([asdict(entry) for entry in ingest_status(settings, wh)])
        return 0
    from fares.chain.pipeline import writer_lock

    with writer_lock(settings, ["ingest"], wait=not args.no_wait):
        report = ingest(
            settings,
            wh,
            source=args.source or settings.tlc_source,
            months=_months(args),
            sample=args.sample if args.sample is not None else settings.sample,
        )
    for r in report.results:
        line = f"{r.status:<11} {r.file:<40} {r.rows if r.rows is not None else '':>10}"
        print(line + (f"  {r.error}" if r.error else ""))
    return 1 if report.failed else 0


def cmd_stage(name: str) -> Callable[[argparse.Namespace, Settings], int]:
    """A sub-command that runs one stage as a recorded run under the pipeline lock (`train` also publishes)."""

    def run(args: argparse.Namespace, settings: Settings) -> int:
        only = ["train", "publish"] if name == "train" else [name]
        return _recorded(settings, only=only, wait=not args.no_wait)

    return run


def _recorded(
    settings: Settings,
    source: str | None = None,
    months: list[str] | None = None,
    start: str | None = None,
    only: list[str] | None = None,
    trigger: str = "cli",
    params: dict | None = None,
    wait: bool = True,
) -> int:
    """Run the chain, or part of it, as one recorded run; print it; exit status 0 only when it succeeded,
    EXIT_SKIPPED when another run held the lock."""
    from fares.chain import pipeline
    from fares.ops.render import format_run

    try:
        stages = pipeline.stages_for(start, only)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    _warehouse(settings)
    result = pipeline.run_once(settings, source, months, stages=stages, trigger=trigger, params=params, wait=wait)
    print(format_run(result))
    return {"succeeded": 0, "skipped": EXIT_SKIPPED}.get(result.status, 1)


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    """Run the quality gate (a recorded run), or build and serve the GX Data Docs."""
    if args.docs:
        from fares.quality.validate import build_data_docs

        site = build_data_docs(settings)
        print(f"Data Docs: {site}")
        return _serve_folder(site.parent if site.is_file() else site, args.port)
    code = _recorded(settings, only=["validate"], wait=not args.no_wait)
    from fares.ops.runs import list_runs
    from fares.ops.validation import validation_results

    wh = _warehouse(settings)
    [run] = list_runs(wh, limit=1)
    for found in validation_results(wh, run.validation_run_ids or []):
        print(found.summary)
    return code


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    """List model versions, or promote / roll back the current one."""
    from fares.ml import RegistryError
    from fares.ml.registry import Registry

    registry = Registry(settings.models_dir)
    try:
        return _models_action(registry, args)
    except RegistryError as exc:
        raise UserError(str(exc)) from exc


def _models_action(registry: Registry, args: argparse.Namespace) -> int:
    if args.action == "promote":
        if not args.version:
            raise UserError("usage: fares models promote VERSION")
        registry.promote(args.version)
        print(f"current model: {args.version}")
    elif args.action == "rollback":
        print(f"current model: {registry.rollback()}")
    else:
        _print_table(registry.versions())
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the API and the web page."""
    from fares.api.server import serve

    serve(settings, host=args.host or settings.api_host, port=args.port or settings.api_port)
    return 0


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    """Print the database URL, or start/stop the embedded server."""
    from fares.config import warehouse

    if args.action == "stop":
        if settings.database_url:
            raise UserError("DATABASE_URL is set: the external server is not ours to stop")
        print("stopped" if warehouse.stop_embedded(settings) else "not running")
        return 0
    wh = warehouse.get_warehouse(settings)
    print(wh.display_url() if args.action == "url" else f"running: {wh.display_url()}")
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """The chain once: ingest -> transform -> validate -> train -> publish (or from a stage, or only some)."""
    start, only = getattr(args, "start", None), getattr(args, "only", None)
    if start and only:
        raise UserError("use --from or --only, not both")
    return _recorded(settings, args.source, _months(args), start=start, only=only, wait=not args.no_wait)


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    """Load and build a range of months one month at a time, each a recorded run; then validate, train, publish."""
    from fares.ingestion.months import parse_months

    try:
        months = parse_months([args.range])
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    outcome: dict[str, str] = {}
    for i, month in enumerate(months, start=1):
        print(f"[{i}/{len(months)}] {month}", flush=True)
        code = _recorded(
            settings,
            args.source,
            [month],
            only=["ingest", "transform"],
            trigger="backfill",
            params={"force": args.force},
            wait=not args.no_wait,
        )
        outcome[month] = {0: "loaded", EXIT_SKIPPED: "skipped (the lock was held)"}.get(code, "failed")
    failed = [m for m, what in outcome.items() if what != "loaded"]
    print(
        f"backfill: {len(months) - len(failed)} of {len(months)} months loaded"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    for month, what in outcome.items():
        print(f"  {month}  {what}")
    if not args.no_train and len(failed) < len(months):
        print("then: validate -> train -> publish")
        if _recorded(settings, args.source, months, start="validate", trigger="backfill", wait=not args.no_wait):
            return 1
    return 1 if failed else 0


def cmd_schedule(args: argparse.Namespace, settings: Settings) -> int:
    """The nightly daemon (or one recorded run with --once, or the next N fire times with --next N)."""
    from fares import scheduler
    from fares.chain.schedule import next_fire_times

    if args.next:
        times = next_fire_times(settings.schedule_cron, settings.schedule_timezone, args.next)
        runs = "run" if len(times) == 1 else f"{len(times)} runs"
        print(f"{settings.schedule_cron} ({settings.schedule_timezone}): the next {runs}")
        for fire in times:
            print(f"  {fire:%a %Y-%m-%d %H:%M:%S %Z (UTC%z)}")
        return 0
    if args.alive:
        return _daemon_alive(settings)
    if args.once:
        return _recorded(settings, wait=not args.no_wait)
    scheduler.start_daemon(settings)
    return 0


def _daemon_alive(settings: Settings) -> int:
    """The container healthcheck: 0 when a daemon on this host beat within FARES_HEARTBEAT_TIMEOUT_SECONDS."""
    import socket

    from fares.config.warehouse import get_warehouse
    from fares.ops.heartbeat import latest_beat

    beat = latest_beat(get_warehouse(settings), socket.gethostname())
    if beat is None:
        print(f"no daemon has beaten on {socket.gethostname()} yet")
        return 1
    if beat.seconds_since_beat > settings.heartbeat_timeout_seconds:
        print(f"the daemon (pid {beat.pid}) last beat {beat.seconds_since_beat:.0f} s ago")
        return 1
    print(f"alive: pid {beat.pid}, last beat {beat.seconds_since_beat:.0f} s ago, next run {beat.next_run_at}")
    return 0


def cmd_runs(args: argparse.Namespace, settings: Settings) -> int:
    """Pipeline run history, or one run in detail (`fares runs show ID`)."""
    from fares.ops.render import format_run, format_run_detail, format_runs_table
    from fares.ops.runs import get_run, list_runs
    from fares.ops.validation import validation_results

    wh = _warehouse(settings)
    if args.action == "cancel":
        return _cancel(wh, args.run_id)
    if args.action == "show":
        if args.run_id is None:
            raise UserError("usage: fares runs show RUN_ID")
        try:
            run = get_run(wh, args.run_id)
        except KeyError as exc:
            raise UserError(f"no pipeline run {args.run_id}") from exc
        print(format_run(run))
        print(
            format_run_detail(run, settings.run_dir(run.run_id), validation_results(wh, run.validation_run_ids or []))
        )
        return 0
    print(format_runs_table(list_runs(wh, limit=args.limit)))
    return 0


def _cancel(wh: Warehouse, run_id: int | None) -> int:
    """Ask a running run to stop; its chain stops the running stage's process and records it cancelled."""
    import getpass
    import socket

    from fares.ops.runs import request_cancel

    if run_id is None:
        raise UserError("usage: fares runs cancel RUN_ID")
    try:
        run = request_cancel(wh, run_id, f"{getpass.getuser()}@{socket.gethostname()} (fares runs cancel)")
    except KeyError as exc:
        raise UserError(f"no pipeline run {run_id}") from exc
    if run.status == "cancelled":
        print(f"run {run_id} cancelled")
    elif run.status == "running":
        print(f"run {run_id}: cancel requested; its running stage is stopped within FARES_STAGE_GRACE_SECONDS")
    else:
        raise UserError(f"run {run_id} is not running (it {run.status.replace('_', ' ')})")
    return 0


def cmd_prune(args: argparse.Namespace, settings: Settings) -> int:
    """Remove what the retention settings no longer keep (`--dry-run`: list it, delete nothing)."""
    from fares.ml.registry import Registry
    from fares.ops.retention import prune

    report = prune(settings, _warehouse(settings), Registry(settings.models_dir), dry_run=args.dry_run)
    print("\n".join(report.lines()))
    return 0


def cmd_docs(args: argparse.Namespace, settings: Settings) -> int:
    """Generate the dbt docs site and serve it."""
    from fares.chain.pipeline import writer_lock
    from fares.engines import get_engine

    _warehouse(settings)
    with writer_lock(settings, ["dbt docs generate"], wait=not args.no_wait) as wh:
        get_engine(settings).run_dbt(wh, ["docs", "generate"])
    target = settings.dbt_dir / "target"
    if args.no_serve:
        print(f"dbt docs site written to {target / 'index.html'}")
        return 0
    return _serve_folder(target, args.port)


def cmd_spark(args: argparse.Namespace, settings: Settings) -> int:
    """Become a Spark standalone master, worker or Thrift server (the compose profile `spark` runs these)."""
    from fares.engines import spark_cluster
    from fares.engines.spark_session import spark_missing

    why = spark_missing()
    if why:
        raise UserError(f"cannot start Spark: {why}")
    if args.role == "master":
        command = spark_cluster.master_command(args.host, args.port, args.webui_port)
    elif args.role == "worker":
        command = spark_cluster.worker_command(args.master_url, args.host, args.cores, args.memory, args.webui_port)
    else:
        _warehouse(settings)  # the metastore lives in the ops database: it must be reachable first
        command = spark_cluster.thrift_command(settings, args.host, args.port)
    spark_cluster.exec_command(command)
    return 0  # not reached: exec replaced this process


def cmd_dbt(args: argparse.Namespace, settings: Settings) -> int:
    """Any dbt command against the database in use (e.g. `fares dbt build --select marts`)."""
    from fares.chain.pipeline import writer_lock
    from fares.engines import get_engine

    dbt_args = [a for a in args.dbt_args if a != "--"] or ["build"]
    if dbt_args[0] in _DBT_OFFLINE:  # reads only the project: no database, no lock
        from fares.config.warehouse import parse_database_url

        get_engine(settings).run_dbt(parse_database_url(settings.database_url or "postgresql:///"), dbt_args, False)
        return 0
    _warehouse(settings)
    with writer_lock(settings, [" ".join(["dbt", *dbt_args])], wait=not args.no_wait) as wh:
        get_engine(settings).run_dbt(wh, dbt_args, capture=False)
    return 0


def cmd_synth(args: argparse.Namespace, settings: Settings) -> int:
    """Write a synthetic TLC-shaped mirror into a folder."""
    from fares.ingestion.synthetic import write_mirror

    paths = write_mirror(Path(args.dest), _months(args) or DEMO_MONTHS, rows_per_month=args.rows, seed=args.seed)
    for p in paths:
        print(p)
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """A sample of the TLC's newest month (or, offline, the synthetic mirror) -> the whole chain -> the API."""
    from fares.chain import pipeline
    from fares.ops.render import format_run

    if args.once:
        settings = settings.model_copy(update={"demo_once": True})
    source, months = _demo_source(args, settings)
    print("2/3 running the chain: ingest -> dbt build -> validate -> train -> publish")
    _warehouse(settings)
    result = pipeline.run_once(settings, source=source, months=months)
    if result.status != "succeeded":
        print(format_run(result))
        raise UserError("the demo chain failed; see above")
    url = f"http://{settings.api_host}:{settings.api_port}"
    print(
        f"3/3 serving the API and the web page on {url}/ (Ctrl+C to stop; the embedded PostgreSQL keeps running"
        " until `.venv/bin/fares db stop`)"
    )
    trip = {"pickup_at": f"{months[-1]}-14T18:30:00", "pickup": {"zone": "JFK Airport"}, "dropoff": {"zone_id": 230}}
    body = json.dumps(trip)
    print(f"    try: curl -s {url}/v1/quotes -H 'content-type: application/json' -d '{body}'")
    return cmd_serve(argparse.Namespace(host=None, port=None), settings)


def _demo_source(args: argparse.Namespace, settings: Settings) -> tuple[str, list[str]]:
    """Where the demo's trips come from: a range-read sample of the TLC's newest month when the TLC answers,
    else (saying why, in one line) the synthetic mirror."""
    from fares.ingestion.synthetic import write_mirror
    from fares.ingestion.tlc_sample import SampleUnavailable, describe, write_sampled_month

    tlc = settings.tlc_source
    if not args.synthetic and tlc.startswith(("http://", "https://")):
        print(f"1/3 asking {tlc} for the newest published month of yellow and HVFHV trips")
        try:
            rows = {"yellow": args.tlc_rows // 3, "fhvhv": args.tlc_rows - args.tlc_rows // 3}
            sampled = write_sampled_month(tlc, settings.data_dir / "demo-tlc-sample", rows)
        except SampleUnavailable as exc:
            print(f"    offline: the TLC is not reachable ({exc}); using the synthetic mirror instead")
        else:
            print(f"    {describe(sampled)}")
            return str(sampled.folder), [sampled.month]
    mirror = settings.data_dir / "demo-tlc"
    print(f"1/3 writing a synthetic TLC mirror ({', '.join(DEMO_MONTHS)}) to {mirror}: quotes will NOT be real fares")
    write_mirror(mirror, DEMO_MONTHS, rows_per_month=args.rows, seed=42)
    return str(mirror), DEMO_MONTHS


def _serve_folder(folder: Path, port: int) -> int:
    import functools
    import http.server

    class _Quiet(http.server.ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):  # a browser gave up
                super().handle_error(request, client_address)

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    with _Quiet(("127.0.0.1", port), handler) as httpd:
        print(f"serving {folder} on http://127.0.0.1:{port}/ (Ctrl+C to stop)")
        with contextlib.suppress(KeyboardInterrupt):
            httpd.serve_forever()
    return 0


def _print_table(rows: Sequence[dict]) -> None:
    if not rows:
        print("(nothing yet)")
        return
    cols = list(rows[0].keys())
    cells = [{c: "" if r.get(c) is None else str(r[c]) for c in cols} for r in rows]
    widths = {c: max(len(c), *(len(cell[c]) for cell in cells)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols).rstrip())
    for cell in cells:
        print("  ".join(cell[c].ljust(widths[c]) for c in cols).rstrip())
