"""`distillguard engine serve`: one Sail Spark Connect server that many commands share, and how a scheduler starts
and stops one around a run.

Every `distillguard <step>` without `--remote` starts an embedded engine of its own, which costs each process its
start-up. A server started once serves every step that connects with `--remote sc://127.0.0.1:PORT`:

    distillguard engine serve --port 15002 &
    distillguard --remote sc://127.0.0.1:15002 ingest --date 2026-03-02
    ...
    kill %1

`start_detached` and `stop` are what the Airflow DAGs' setup and teardown tasks call (airflow_dags/): the server
outlives the task that started it, in a process group of its own, and is stopped by that process id. A deployment
with a configured Spark Connect URL (a cluster) never starts one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lake.errors import InputError

SERVE_COMMAND = ("engine", "serve")
# a server on a busy 2-core machine listens within seconds; a minute means it is not coming up
START_TIMEOUT_S = 60.0
STOP_GRACE_S = 30.0


def serve(ip: str, port: int) -> None:
    """Run a Sail Spark Connect server in this process until SIGTERM or SIGINT."""
    from pysail.spark import SparkConnectServer

    server = SparkConnectServer(ip=ip, port=port)
    server.start(background=True)
    host, bound = server.listening_address
    print(f"Spark Connect server (Sail) on sc://{host}:{bound}; connect with --remote sc://{host}:{bound}", flush=True)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    stopping.wait()
    server.stop()


@dataclass(frozen=True)
class StartedServer:
    url: str
    pid: int
    log_path: str


def start_detached(log_dir: Path, timeout_s: float = START_TIMEOUT_S) -> StartedServer:
    """`distillguard engine serve` on a free loopback port, in a new session (it outlives the caller); returns
    once it listens. A server that exits or does not listen in time is stopped and raises with its log's tail."""
    from lake.processes import free_port, start, wait_for_port

    port = free_port()
    command = [str(Path(sys.executable).with_name("distillguard")), *SERVE_COMMAND, "--port", str(port)]
    managed = start(f"distillguard-engine-{port}", command, log_dir, {})
    try:
        wait_for_port(managed, port, timeout_s)
    except BaseException:
        managed.stop()
        raise
    return StartedServer(f"sc://127.0.0.1:{port}", managed.pid, str(managed.log_path))


def _is_engine_server(pid: int) -> bool:
    """Whether `pid` is still a `distillguard engine serve` process (a reused pid is never signalled)."""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(
        arguments[i : i + len(SERVE_COMMAND)] == [part.encode() for part in SERVE_COMMAND]
        for i in range(len(arguments))
    )


def _gone(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):  # our own child (one process runs setup and teardown): reap it
        os.waitpid(pid, os.WNOHANG)
    return not _is_engine_server(pid)


def stop(pid: int, grace_s: float = STOP_GRACE_S) -> bool:
    """Stop the server `start_detached` started as `pid` (SIGTERM to its process group, SIGKILL after grace_s);
    False when no such server was running."""
    if not _is_engine_server(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not _gone(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        time.sleep(0.2)
        _gone(pid)
    return True


def _cmd_serve(args) -> None:
    if args.port < 0 or args.port > 65535:
        raise InputError(f"--port must be 0-65535, got {args.port}")
    serve(args.ip, args.port)


def add_subcommands(sub) -> None:
    p = sub.add_parser("engine", help="run a Spark Connect server (Sail) that steps share with --remote")
    engine = p.add_subparsers(dest="engine_command", required=True)
    help_text = "serve Spark Connect on IP:PORT until stopped; steps connect with --remote sc://IP:PORT"
    serve_parser = engine.add_parser("serve", help=help_text, description=help_text)
    serve_parser.add_argument("--ip", default="127.0.0.1", help="address to listen on (default: loopback only)")
    serve_parser.add_argument("--port", type=int, default=15002, help="port (0: any free one; default 15002)")
    serve_parser.set_defaults(func=_cmd_serve)
