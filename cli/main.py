"""The `fares` command line: the parser, logging for people, and the entry point of the console script."""

from __future__ import annotations

import argparse
import io
import logging
import sys
from collections.abc import Sequence

from fares.chain.pipeline import LockBusy
from fares.chain.schedule import ScheduleError
from fares.chain.stages import STAGES
from fares.cli.commands import (
    EXIT_SKIPPED,
    UserError,
    cmd_backfill,
    cmd_db,
    cmd_dbt,
    cmd_demo,
    cmd_docs,
    cmd_ingest,
    cmd_models,
    cmd_prune,
    cmd_run,
    cmd_runs,
    cmd_schedule,
    cmd_serve,
    cmd_spark,
    cmd_stage,
    cmd_synth,
    cmd_validate,
)
from fares.config.settings import get_settings

log = logging.getLogger("fares")


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `fares`."""
    p = argparse.ArgumentParser(prog="fares", description="Yellow taxi or Uber: which is cheaper for this NYC trip?")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = p.add_subparsers(dest="command", required=True)

    def months_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--months", nargs="+", metavar="YYYY-MM", help="months, or a range 2024-01..2024-06")

    def no_wait(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--no-wait",
            action="store_true",
            help=f"if another run holds the pipeline lock, exit at once (status {EXIT_SKIPPED}, recorded skipped)"
            " instead of waiting in line (FARES_LOCK_WAIT_SECONDS)",
        )

    sp = sub.add_parser("ingest", help="load TLC months into raw (dlt)")
    sp.add_argument("--source", help="TLC base URL or a folder laid out like it (default: the TLC)")
    months_arg(sp)
    sp.add_argument("--sample", type=float, help="deterministic sample fraction, e.g. 0.05")
    sp.add_argument("--status", action="store_true", help="list what has been loaded")
    no_wait(sp)
    sp.set_defaults(func=cmd_ingest)
    sp = sub.add_parser("transform", help="dbt build")
    no_wait(sp)
    sp.set_defaults(func=cmd_stage("transform"))
    sp = sub.add_parser("validate", help="the Great Expectations gate")
    no_wait(sp)
    sp.add_argument("--docs", action="store_true", help="build and serve the GX Data Docs")
    sp.add_argument("--port", type=int, default=8081)
    sp.set_defaults(func=cmd_validate)
    sp = sub.add_parser("train", help="train, judge and register both fare models")
    no_wait(sp)
    sp.set_defaults(func=cmd_stage("train"))
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
    stage_names = list(STAGES)
    sp = sub.add_parser("run", help="the whole chain once (or from a stage, or only some stages)")
    sp.add_argument("--source")
    months_arg(sp)
    sp.add_argument("--from", dest="start", choices=stage_names, help="resume: run this stage and the ones after it")
    sp.add_argument("--only", nargs="+", choices=stage_names, metavar="STAGE", help="run only these stages")
    no_wait(sp)
    sp.set_defaults(func=cmd_run)
    sp = sub.add_parser("backfill", help="load and build months A..B one by one, then validate, train, publish")
    sp.add_argument("range", metavar="A..B", help="months, e.g. 2024-01..2024-06")
    sp.add_argument("--source")
    sp.add_argument("--force", action="store_true", help="reload files even when unchanged")
    sp.add_argument("--no-train", action="store_true", help="only load and build; no validate/train/publish")
    no_wait(sp)
    sp.set_defaults(func=cmd_backfill)
    sp = sub.add_parser("schedule", help="the nightly daemon (APScheduler)")
    sp.add_argument("--once", action="store_true", help="run the chain now under the same lock and record it")
    no_wait(sp)
    sp.add_argument(
        "--next", type=_positive, metavar="N", help="print the next N fire times in the schedule's time zone, then exit"
    )
    sp.add_argument(
        "--alive", action="store_true", help="exit 0 when a daemon on this host beat recently (a healthcheck)"
    )
    sp.set_defaults(func=cmd_schedule)
    sp = sub.add_parser("runs", help="pipeline run history; `runs show ID` for one run; `runs cancel ID` stops one")
    sp.add_argument("action", nargs="?", choices=["list", "show", "cancel"], default="list")
    sp.add_argument("run_id", nargs="?", type=int)
    sp.add_argument("--limit", type=int, default=20)
    sp.set_defaults(func=cmd_runs)
    sp = sub.add_parser("prune", help="remove old run folders, ops rows, GX results and model versions (retention)")
    sp.add_argument("--dry-run", action="store_true", help="print what would be removed; delete nothing")
    sp.set_defaults(func=cmd_prune)
    sp = sub.add_parser("docs", help="generate the dbt docs site and serve it on 127.0.0.1:8080")
    sp.add_argument("--port", type=int, default=8080)
    sp.add_argument("--no-serve", action="store_true", help="only generate")
    no_wait(sp)
    sp.set_defaults(func=cmd_docs)
    sp = sub.add_parser("dbt", help="run dbt against the database in use: fares dbt build --select marts")
    no_wait(sp)
    sp.add_argument("dbt_args", nargs=argparse.REMAINDER, help="dbt's own arguments (default: build)")
    sp.set_defaults(func=cmd_dbt)
    sp = sub.add_parser("spark", help="a Spark standalone master, worker or Thrift server (foreground), from the wheel")
    role = sp.add_subparsers(dest="role", required=True)
    r = role.add_parser("master", help="a standalone master")
    r.add_argument("--host", default="127.0.0.1", help="address to bind and advertise (0.0.0.0 in a container)")
    r.add_argument("--port", type=int, default=7077)
    r.add_argument("--webui-port", type=int, default=8081, help="its status page; JSON at /json")
    r = role.add_parser("worker", help="a standalone worker")
    r.add_argument("master_url", help="spark://host:port")
    r.add_argument("--host", default="127.0.0.1")
    r.add_argument("--cores", type=int, default=2)
    r.add_argument("--memory", default="2g")
    r.add_argument("--webui-port", type=int, default=8082)
    r = role.add_parser(
        "thrift", help="a Spark Thrift server on FARES_SPARK_MASTER with the shared metastore (dbt target spark_thrift)"
    )
    r.add_argument("--host", help="bind address (default FARES_SPARK_THRIFT_HOST)")
    r.add_argument("--port", type=int, help="port (default FARES_SPARK_THRIFT_PORT)")
    sp.set_defaults(func=cmd_spark)
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
    from fares.chain import runlog

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
    except LockBusy as exc:
        print(f"fares {args.command}: {exc} (recorded as run {exc.run.run_id})", file=sys.stderr)
        return EXIT_SKIPPED
    except ScheduleError as exc:  # bad configuration, like a bad variable above: the daemon must not crash-loop on it
        print(f"fares {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a stage error: say what and where, without a traceback unless -v
        if args.verbose:
            log.exception("failed")
        print(f"fares {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
