"""A Spark standalone cluster and a Spark Thrift server from the pyspark wheel: `fares spark master|worker|thrift`.

The wheel fares installs carries what a small cluster needs (bin/spark-class, bin/spark-submit, the standalone master
and worker, the Thrift server's jars), so the compose profile `spark` and the tests start one from the same install:
a master, a worker, and a Thrift server that runs its queries on that cluster against the shared PostgreSQL
metastore, which dbt (target `spark_thrift`) talks to. Each command runs in the foreground until stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fares.config.settings import Settings

THRIFT_SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"


def spark_home() -> Path:
    """The pyspark package folder: Spark's home in a pip install (bin/, jars/)."""
    import pyspark

    return Path(pyspark.__file__).parent


@dataclass(frozen=True)
class ClusterCommand:
    """A command line and the environment it needs beside the caller's."""

    argv: list[str]
    env: dict[str, str]


def _env(host: str) -> dict[str, str]:
    home = spark_home()
    return {"SPARK_HOME": str(home), "SPARK_LOCAL_IP": host, "SPARK_NO_DAEMONIZE": "1"}


def master_command(host: str = "127.0.0.1", port: int = 7077, webui_port: int = 8081) -> ClusterCommand:
    """A standalone master on host:port (its status, JSON included, on the web UI port: /json)."""
    cls = "org.apache.spark.deploy.master.Master"
    argv = [str(spark_home() / "bin" / "spark-class"), cls, "--host", host, "--port", str(port)]
    return ClusterCommand([*argv, "--webui-port", str(webui_port)], _env(host))


def worker_command(
    master_url: str,
    host: str = "127.0.0.1",
    cores: int = 2,
    memory: str = "2g",
    webui_port: int = 8082,
    work_dir: Path | None = None,
) -> ClusterCommand:
    """A standalone worker offering `cores` and `memory` to the master at `master_url`."""
    cls = "org.apache.spark.deploy.worker.Worker"
    argv = [str(spark_home() / "bin" / "spark-class"), cls, master_url, "--host", host]
    argv += ["--cores", str(cores), "--memory", memory, "--webui-port", str(webui_port)]
    if work_dir is not None:
        argv += ["--work-dir", str(work_dir)]
    return ClusterCommand(argv, _env(host))


def thrift_command(settings: Settings, host: str | None = None, port: int | None = None) -> ClusterCommand:
    """A Spark Thrift server on `settings.spark_master` with the session settings fares uses (metastore, warehouse,
    FARES_SPARK_CONF), listening on spark_thrift_host:spark_thrift_port."""
    from fares.engines.spark_metastore import ensure_metastore, resolve_metastore
    from fares.engines.spark_session import is_local_master, spark_conf

    ensure_metastore(settings, resolve_metastore(settings))
    conf = spark_conf(settings) | {"spark.app.name": "fares-thrift"}
    folder = settings.spark_dir / "thrift"
    folder.mkdir(parents=True, exist_ok=True)
    props = folder / "spark-thrift.conf"
    props.write_text("".join(f"{key} {value}\n" for key, value in sorted(conf.items())), encoding="utf-8")
    props.chmod(0o600)
    host = host or settings.spark_thrift_host
    argv = [str(spark_home() / "bin" / "spark-submit"), "--class", THRIFT_SERVER_CLASS, "--properties-file", str(props)]
    argv += ["spark-internal", "--hiveconf", f"hive.server2.thrift.port={port or settings.spark_thrift_port}"]
    argv += ["--hiveconf", f"hive.server2.thrift.bind.host={host}"]
    env = _env(host) if is_local_master(settings.spark_master) else {"SPARK_HOME": str(spark_home())}
    return ClusterCommand(argv, env)


def exec_command(command: ClusterCommand) -> None:
    """Replace this process with `command` (a container's main process, stopped by its signals)."""
    os.execvpe(command.argv[0], command.argv, {**os.environ, **command.env})  # noqa: S606 - our own command line


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def loopback_settings(database_url: str, data_dir: Path, executor_memory: str = "1g") -> Settings:
    """Settings of a fares process using a cluster on this machine's loopback (the tests and the bench): a free master
    port, the driver bound to 127.0.0.1, one core per application (so the Thrift server and a stage's driver run side
    by side on a worker's cores), dbt through the Thrift server on a free port."""
    from fares.config.settings import Settings

    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        engine="spark",
        spark_master=f"spark://127.0.0.1:{free_port()}",
        spark_driver_host="127.0.0.1",
        spark_driver_bind_address="127.0.0.1",
        spark_conf={"spark.cores.max": "1", "spark.executor.cores": "1", "spark.executor.memory": executor_memory},
        dbt_spark_target="spark_thrift",
        spark_thrift_port=free_port(),
    )


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def master_status(status_url: str) -> dict[str, Any]:
    """The standalone master's status page as JSON (workers, active and completed applications)."""
    with urllib.request.urlopen(f"{status_url}/json", timeout=5) as reply:  # noqa: S310 - a master we started
        status: dict[str, Any] = json.load(reply)
    return status


@dataclass
class LocalCluster:
    """A standalone master and worker, and optionally a Thrift server, started by `local_cluster` on loopback."""

    master_url: str
    status_url: str
    logs: Path


class ClusterError(RuntimeError):
    """A process of the local cluster did not come up; the message holds the tails of their logs."""


@contextmanager
def local_cluster(
    settings: Settings, logs: Path, status_port: int, cores: int = 3, memory: str = "3g", thrift: bool = True
) -> Iterator[LocalCluster]:
    """Start, on 127.0.0.1, the master `settings.spark_master` names (spark://127.0.0.1:PORT), one worker with
    `cores` and `memory`, and (`thrift`) a Thrift server on spark_thrift_port; stop them all on exit. For the tests
    and bench/engines.py: a real cluster of separate JVMs on one machine, from the wheel.

    Raises:
        ClusterError: one of them exited or did not answer within four minutes.
    """
    port = int(settings.spark_master.rsplit(":", 1)[1])
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, command: ClusterCommand) -> None:
        with (logs / f"{name}.log").open("wb") as out:
            procs.append(
                subprocess.Popen(  # noqa: S603 - the wheel's own launchers
                    command.argv,
                    env={**os.environ, **command.env},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def wait_for(what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if ready():
                    return
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(1)
        tails = {f.name: f.read_text(errors="replace")[-1500:] for f in sorted(logs.glob("*.log"))}
        raise ClusterError(f"{what} did not come up; logs: {tails}")

    status_url = f"http://127.0.0.1:{status_port}"
    try:
        start("master", master_command("127.0.0.1", port, status_port))
        wait_for("the Spark master", lambda: _answers(status_port))
        worker = worker_command(
            settings.spark_master, cores=cores, memory=memory, webui_port=free_port(), work_dir=logs / "work"
        )
        start("worker", worker)
        wait_for("the Spark worker", lambda: bool(master_status(status_url)["aliveworkers"]))
        if thrift:
            start("thrift", thrift_command(settings))
            wait_for("the Spark Thrift server", lambda: _answers(settings.spark_thrift_port))
        yield LocalCluster(settings.spark_master, status_url, logs)
    finally:
        for proc in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
