"""The `fares` command: thin, one sub-command per stage; the modules below do the work."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from fares.settings import Settings, get_settings

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
    """A sub-command that runs one stage of the chain."""

    def run(args: argparse.Namespace, settings: Settings) -> int:
        from fares import scheduler

        if name == "train":  # on its own, `fares train` publishes a model that is not worse at once
            from fares.ml.train import train_models

            outcome = train_models(settings, _warehouse(settings), publish=True)
        else:
            outcome = scheduler.run_transform(settings, _warehouse(settings))
        if name == "transform":
            print(outcome.stdout.strip().splitlines()[-1] if outcome.stdout else "dbt build done")
        else:
            _print_train(outcome)
        return 0

    return run


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    """Run the quality gate, or build and serve the GX Data Docs."""
    if args.docs:
        from fares.quality.validate import build_data_docs

        site = build_data_docs(settings)
        print(f"Data Docs: {site}")
        return _serve_folder(site.parent if site.is_file() else site, args.port)
    from fares import scheduler

    reports = scheduler.run_validate(settings, _warehouse(settings))
    for report in reports:
        print(report.summary() if hasattr(report, "summary") else report)
    return 0


def _print_train(outcome: object) -> None:
    summary = getattr(outcome, "summary", None)
    print(summary() if callable(summary) else outcome)


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    """List model versions, or promote / roll back the current one."""
    from fares.ml import RegistryError
    from fares.ml.registry import Registry

    registry = Registry(settings.models_dir)
    try:
        return _models_action(registry, args)
    except RegistryError as exc:
        raise UserError(str(exc)) from exc


def _models_action(registry: object, args: argparse.Namespace) -> int:
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
    """The chain once: ingest -> transform -> validate -> train -> publish."""
    from fares import scheduler

    result = scheduler.run_once(settings, source=args.source, months=_months(args))
    print(format_run(result))
    return 0 if result.get("status") == "succeeded" else 1


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
        lines.append(f"  {st['stage']:<10} {st['status']:<11} {rows}{retried}")
    if run.get("model_version"):
        lines.append(f"  model published: {run['model_version']}")
    if run.get("error"):
        lines.append(f"  error: {run['error']}")
    return "\n".join(lines)


def cmd_schedule(args: argparse.Namespace, settings: Settings) -> int:
    """The nightly daemon (or one recorded run with --once)."""
    from fares import scheduler

    if args.once:
        return cmd_run(argparse.Namespace(source=None, months=None), settings)
    scheduler.start_daemon(settings)
    return 0


def cmd_runs(args: argparse.Namespace, settings: Settings) -> int:
    """Pipeline run history."""
    from fares import scheduler

    _print_table(scheduler.list_runs(settings, _warehouse(settings), limit=args.limit))
    return 0


def cmd_docs(args: argparse.Namespace, settings: Settings) -> int:
    """Generate the dbt docs site and serve it."""
    from fares import scheduler

    scheduler.run_dbt_for(settings, ["docs", "generate"])
    target = Path(scheduler.DBT_PROJECT_DIR) / "target"
    if args.no_serve:
        print(f"dbt docs site written to {target / 'index.html'}")
        return 0
    return _serve_folder(target, args.port)


def cmd_dbt(args: argparse.Namespace, settings: Settings) -> int:
    """Any dbt command against the database in use (e.g. `fares dbt build --select marts`)."""
    from fares import scheduler

    dbt_args = [a for a in args.dbt_args if a != "--"] or ["build"]
    scheduler.run_dbt_for(settings, dbt_args, capture=False)
    return 0


def cmd_synth(args: argparse.Namespace, settings: Settings) -> int:
    """Write a synthetic TLC-shaped mirror into a folder."""
    from fares.ingestion.synthetic import write_mirror

    paths = write_mirror(Path(args.dest), _months(args) or DEMO_MONTHS, rows_per_month=args.rows, seed=args.seed)
    for p in paths:
        print(p)
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Synthetic mirror -> the whole chain on the embedded defaults -> the API."""
    from fares.ingestion.synthetic import write_mirror

    from fares import scheduler

    if args.once:
        settings = settings.model_copy(update={"demo_once": True})
    mirror = settings.data_dir / "demo-tlc"
    print(f"1/3 writing a synthetic TLC mirror ({', '.join(DEMO_MONTHS)}) to {mirror}")
    write_mirror(mirror, DEMO_MONTHS, rows_per_month=args.rows, seed=42)
    print("2/3 running the chain: ingest -> dbt build -> validate -> train -> publish")
    result = scheduler.run_once(settings, source=str(mirror), months=DEMO_MONTHS)
    if result.get("status") != "succeeded":
        print(format_run(result))
        raise UserError("the demo chain failed; see above")
    url = f"http://{settings.api_host}:{settings.api_port}"
    print(
        f"3/3 serving the API and the web page on {url}/ (Ctrl+C to stop; the embedded PostgreSQL keeps running"
        " until `.venv/bin/fares db stop`)"
    )
    print(
        f"    try: curl -s {url}/v1/quotes -H 'content-type: application/json' -d "
        '\'{"pickup_at": "2025-02-14T18:30:00", "pickup": {"zone": "JFK Airport"}, "dropoff": {"zone_id": 230}}\''
    )
    return cmd_serve(argparse.Namespace(host=None, port=None), settings)


def _serve_folder(folder: Path, port: int) -> int:
    import functools
    import http.server

    class _Quiet(http.server.ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):  # a browser gave up
                super().handle_error(request, client_address)

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    with _Quiet(("127.0.0.1", port), handler) as httpd:
        print(f"serving {folder} on http://127.0.0.1:{port}/ (Ctrl+C to stop)")
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass
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
    sp = sub.add_parser("run", help="the whole chain once")
    sp.add_argument("--source")
    months_arg(sp)
    sp.set_defaults(func=cmd_run)
    sp = sub.add_parser("schedule", help="the nightly daemon (APScheduler)")
    sp.add_argument("--once", action="store_true", help="run the chain now under the same lock and record it")
    sp.set_defaults(func=cmd_schedule)
    sp = sub.add_parser("runs", help="pipeline run history")
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
    sp = sub.add_parser("demo", help="synthetic data -> the whole chain -> the API (what `make demo` runs)")
    sp.add_argument("--once", action="store_true", help="exit after the first successful quote")
    sp.add_argument("--rows", type=int, default=20_000, help="trips per file")
    sp.set_defaults(func=cmd_demo)
    return p


OWN_LOGGERS = ("fares", "cli", "scheduler", "runs", "warehouse", "ingestion", "quality", "ml", "api", "uvicorn.error")


def _configure_logging(verbose: bool, command: str) -> None:
    """Libraries log at WARNING; our own modules at INFO for the long-running commands (or -v), so `make demo`
    and the daemon say what they do without the libraries' chatter."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if verbose or command in ("serve", "demo", "schedule"):
        for name in OWN_LOGGERS:
            logging.getLogger(name).setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `fares` console script."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose, args.command)
    try:
        settings = get_settings()
    except Exception as exc:  # pydantic's ValidationError names the bad variable
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
