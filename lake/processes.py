"""Child processes started on loopback and stopped by their process group: the engine server `distillguard engine
serve` starts for a DAG run (jobs/engine_server.py), and the Spark servers the tests and benchmarks start
(tests/helpers/spark_servers.py).

Every process runs in its own session, logs to a file, and is stopped by its process id (SIGTERM to its process
group, then SIGKILL), also when the caller fails. A process that exits or does not listen in time raises with the
tail of its log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ManagedProcess:
    """A child process in its own session, its log file, and how to stop it by its id."""

    name: str
    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, grace_s: float = 30) -> None:
        """SIGTERM to the process group (JVM shutdown hooks stop executors and Python workers), then SIGKILL."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # whatever of the group is left (executor JVMs, workers)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


def start(name: str, command: list[str], log_dir: Path, env: Mapping[str, str]) -> ManagedProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
            start_new_session=True,
        )
    return ManagedProcess(name, process, log_path)


def wait_for_port(managed: ManagedProcess, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if managed.process.poll() is not None:
            raise RuntimeError(
                f"{managed.name} exited with {managed.process.returncode} before listening on "
                f"{port}; log {managed.log_path}:\n{managed.log_tail()}"
            )
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(
        f"{managed.name} did not listen on {port} within {timeout_s:.0f}s; "
        f"log {managed.log_path}:\n{managed.log_tail()}"
    )
