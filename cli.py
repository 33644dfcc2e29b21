"""The `fares` command: thin, one sub-command per stage; the modules below do the work."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fares.settings import Settings, get_settings

if TYPE_CHECKING:
    from fares.ml.registry import Registry

DEMO_MONTHS = ["2025-01", "2025-02"]
log = logging.getLogger("fares")


class UserError(RuntimeError):
    """An error the user can act on: printed without a traceback, exit status 1."""


def _warehouse(settings: Settings):  # noqa: ANN202 - lazy import keeps `fares --help` fast
    from fares.warehouse import get_warehouse

    return get_warehouse(settings)


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
        rows = ingest_status(settings, wh)
        _print_table(rows)
        return 0
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
        return _recorded(settings, only=only)

    return run


def _recorded(
    settings: Settings,
    source: str | None = None,
    months: list[str] | None = None,
    start: str | None = None,
    only: list[str] | None = None,
    trigger: str = "cli",
    params: dict | None = None,
) -> int:
    """Run the chain, or part of it, as one recorded run; print it; exit status 0 only when it succeeded."""
    from fares import pipeline

    try:
        stages = pipeline.stages_for(start, only)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    result = pipeline.run_once(settings, source, months, stages=stages, trigger=trigger, params=params)
    print(format_run(result))
    return 0 if result.get("status") == "succeeded" else 1


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    """Run the quality gate (a recorded run), or build and serve the GX Data Docs."""
    if args.docs:
        from fares.quality.validate import build_data_docs

        site = build_data_docs(settings)
        print(f"Data Docs: {site}")
        return _serve_folder(site.parent if site.is_file() else site, args.port)
    code = _recorded(settings, only=["validate"])
    from fares import ops

    [run] = ops.list_runs(_warehouse(settings), limit=1)
    for found in ops.validation_results(_warehouse(settings), run.get("validation_run_ids") or []):
        print(found["summary"])
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
    from fares import warehouse

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
    return _recorded(settings, args.source, _months(args), start=start, only=only)


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    """Load and build a range of months one month at a time, each a recorded run; then validate, train, publish."""
    from fares.ingestion.months import parse_months

    try:
        months = parse_months([args.range])
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    failed: list[str] = []
    for i, month in enumerate(months, start=1):
        print(f"[{i}/{len(months)}] {month}", flush=True)
        code = _recorded(
            settings,
            args.source,
            [month],
            only=["ingest", "transform"],
            trigger="backfill",
            params={"force": args.force},
        )
        if code:
            failed.append(month)
    print(
        f"backfill: {len(months) - len(failed)} of {len(months)} months loaded"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    if not args.no_train and len(failed) < len(months):
        print("then: validate -> train -> publish")
        if _recorded(settings, args.source, months, start="validate", trigger="backfill"):
            return 1
    return 1 if failed else 0


def format_run(run: dict) -> str:
    """A recorded pipeline run as a few lines for people: status, each stage with its rows, the model published."""
    took = ""
    if run.get("started_at") and run.get("finished_at"):
        took = f" in {(run['finished_at'] - run['started_at']).total_seconds():.0f} s"
    lines = [
        f"run {run.get('run_id')} {run.get('status')}{took}"
        + (f" (months {', '.join(run['months'])})" if run.get("months") else "")
    ]
    for st in run.get("stages", []):
        rows = ", ".join(f"{k.replace('_', ' ')} {st[k]:,}" for k in ("rows_in", "rows_out") if st.get(k) is not None)
        retried = f", {st['attempts']} attempts" if (st.get("attempts") or 1) > 1 else ""
        took = f"{(st['finished_at'] - st['started_at']).total_seconds():>6.1f} s" if st.get("finished_at") else " " * 8
        lines.append(f"  {st['stage']:<10} {st['status']:<11} {took}  {rows}{retried}".rstrip())
    if run.get("model_version"):
        lines.append(f"  model published: {run['model_version']}")
    if run.get("error"):
        lines.append(f"  error: {run['error']}")
    return "\n".join(lines)


def cmd_schedule(args: argparse.Namespace, settings: Settings) -> int:
    """The nightly daemon (or one recorded run with --once)."""
    from fares import scheduler

    if args.once:
        return _recorded(settings)
    scheduler.start_daemon(settings)
    return 0


def cmd_runs(args: argparse.Namespace, settings: Settings) -> int:
    """Pipeline run history, or one run in detail (`fares runs show ID`)."""
    from fares import ops
    from fares.runs_view import format_run_detail, format_runs_table

    wh = _warehouse(settings)
    if args.action == "show":
        if args.run_id is None:
            raise UserError("usage: fares runs show RUN_ID")
        try:
            run = ops.get_run(wh, args.run_id)
        except KeyError as exc:
            raise UserError(f"no pipeline run {args.run_id}") from exc
        print(format_run(run))
        print(format_run_detail(settings, wh, run))
        return 0
    print(format_runs_table(ops.list_runs(wh, limit=args.limit)))
    return 0


def cmd_docs(args: argparse.Namespace, settings: Settings) -> int:
    """Generate the dbt docs site and serve it."""
    from fares.stages import run_dbt_for

    run_dbt_for(settings, ["docs", "generate"])
    target = settings.dbt_dir / "target"
    if args.no_serve:
        print(f"dbt docs site written to {target / 'index.html'}")
        return 0
    return _serve_folder(target, args.port)


def cmd_dbt(args: argparse.Namespace, settings: Settings) -> int:
    """Any dbt command against the database in use (e.g. `fares dbt build --select marts`)."""
    from fares.stages import run_dbt_for

    dbt_args = [a for a in args.dbt_args if a != "--"] or ["build"]
    run_dbt_for(settings, dbt_args, capture=False)
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
    from fares import pipeline

    if args.once:
        settings = settings.model_copy(update={"demo_once": True})
    source, months = _demo_source(args, settings)
    print("2/3 running the chain: ingest -> dbt build -> validate -> train -> publish")
    result = pipeline.run_once(settings, source=source, months=months)
    if result.get("status") != "succeeded":
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `fares`."""
    p = argparse.ArgumentParser(prog="fares", description="Yellow taxi or Uber: which is cheaper for this NYC trip?")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = p.add_subparsers(dest="command", required=True)

    def months_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--months", nargs="+", metavar="YYYY-MM", help="months, or a range 2024-01..2024-06")

    sp = sub.add_parser("ingest", help="load TLC months into raw (dlt)")
    sp.add_argument("--source", help="TLC base URL or a folder laid out like it (default: the TLC)")
    months_arg(sp)
    sp.add_argument("--sample", type=float, help="deterministic sample fraction, e.g. 0.05")
    sp.add_argument("--status", action="store_true", help="list what has been loaded")
    sp.set_defaults(func=cmd_ingest)
    sub.add_parser("transform", help="dbt build").set_defaults(func=cmd_stage("transform"))
    sp = sub.add_parser("validate", help="the Great Expectations gate")
    sp.add_argument("--docs", action="store_true", help="build and serve the GX Data Docs")
    sp.add_argument("--port", type=int, default=8081)
    sp.set_defaults(func=cmd_validate)
    sub.add_parser("train", help="train, judge and register both fare models").set_defaults(func=cmd_stage("train"))
    sp = sub.add_parser("models", help="list model versions; promote VERSION; rollback")
    sp.add_argument("action", nargs="?", choices=["list", "promote", "rollback"], default="list")
    sp.add_argument("version", nargs="?")
    sp.set_defaults(func=cmd_models)
    sp = sub.add_parser("serve", help="the API and web page")
    sp.add_argument("--host")
    sp.add_argument("--port", type=int)
    sp.set_defaults(func=cmd_serve)
    sp = sub.add_parser("db", help="the database in use: url | start | stop (embedded)")
    sp.add_argument("action", choices=["url", "start", "stop"])
    sp.set_defaults(func=cmd_db)
    stage_names = ["ingest", "transform", "validate", "train", "publish"]
    sp = sub.add_parser("run", help="the whole chain once (or from a stage, or only some stages)")
    sp.add_argument("--source")
    months_arg(sp)
    sp.add_argument("--from", dest="start", choices=stage_names, help="resume: run this stage and the ones after it")
    sp.add_argument("--only", nargs="+", choices=stage_names, metavar="STAGE", help="run only these stages")
    sp.set_defaults(func=cmd_run)
    sp = sub.add_parser("backfill", help="load and build months A..B one by one, then validate, train, publish")
    sp.add_argument("range", metavar="A..B", help="months, e.g. 2024-01..2024-06")
    sp.add_argument("--source")
    sp.add_argument("--force", action="store_true", help="reload files even when unchanged")
    sp.add_argument("--no-train", action="store_true", help="only load and build; no validate/train/publish")
    sp.set_defaults(func=cmd_backfill)
    sp = sub.add_parser("schedule", help="the nightly daemon (APScheduler)")
    sp.add_argument("--once", action="store_true", help="run the chain now under the same lock and record it")
    sp.set_defaults(func=cmd_schedule)
    sp = sub.add_parser("runs", help="pipeline run history; `runs show ID` for one run")
    sp.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    sp.add_argument("run_id", nargs="?", type=int)
    sp.add_argument("--limit", type=int, default=20)
    sp.set_defaults(func=cmd_runs)
    sp = sub.add_parser("docs", help="generate the dbt docs site and serve it on 127.0.0.1:8080")
    sp.add_argument("--port", type=int, default=8080)
    sp.add_argument("--no-serve", action="store_true", help="only generate")
    sp.set_defaults(func=cmd_docs)
    sp = sub.add_parser("dbt", help="run dbt against the database in use: fares dbt build --select marts")
    sp.add_argument("dbt_args", nargs=argparse.REMAINDER, help="dbt's own arguments (default: build)")
    sp.set_defaults(func=cmd_dbt)
    sp = sub.add_parser("synth", help="write a synthetic TLC-shaped mirror")
    sp.add_argument("dest")
    months_arg(sp)
    sp.add_argument("--rows", type=int, default=20_000, help="trips per file")
    sp.add_argument("--seed", type=int, default=42)
    sp.set_defaults(func=cmd_synth)
    sp = sub.add_parser("demo", help="a sample of the newest TLC month -> the whole chain -> the API (`make demo`)")
    sp.add_argument("--once", action="store_true", help="exit after the first successful quote")
    sp.add_argument("--synthetic", action="store_true", help="use the synthetic mirror without asking the TLC")
    sp.add_argument("--rows", type=int, default=20_000, help="trips per synthetic file")
    sp.add_argument(
        "--tlc-rows", type=int, default=300_000, help="trips sampled from the TLC month (1/3 yellow, 2/3 HVFHV)"
    )
    sp.set_defaults(func=cmd_demo)
    return p


OWN_LOGGERS = ("fares", "uvicorn.error")


def _configure_logging(verbose: bool, command: str) -> None:
    """Libraries log at WARNING; our own modules at INFO for the long-running commands (or -v), so `make demo`
    and the daemon say what they do without the libraries' chatter. A run's lines carry its id ([run 12])."""
    from fares import runlog

    runlog.install()
    chatty = verbose or command in ("serve", "demo", "schedule")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format=runlog.LINE_FORMAT)
    for handler in logging.getLogger().handlers:  # a run's log file takes our INFO lines; the console only these
        handler.setLevel(logging.INFO if chatty else logging.WARNING)
    if chatty:
        for name in OWN_LOGGERS:
            logging.getLogger(name).setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `fares` console script."""
    args = build_parser().parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):  # progress lines show as they happen under `| tee` or a log file too
        sys.stdout.reconfigure(line_buffering=True)
    _configure_logging(args.verbose, args.command)
    try:
        settings = get_settings()
    except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError names the bad variable
        print(f"fares: bad configuration: {exc}", file=sys.stderr)
        return 2
    try:
        return args.func(args, settings)
    except UserError as exc:
        print(f"fares: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a stage error: say what and where, without a traceback unless -v
        if args.verbose:
            log.exception("failed")
        print(f"fares {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
