"""SIGINT and SIGTERM stop a job within seconds, whatever it is waiting on.

The handler raises JobInterruptedError in the main thread, so `finally` blocks close engines and a backfill says
where it stopped. That is not always enough: the Spark Connect client retries a lost server for minutes and
can swallow the exception inside a gRPC call (embedded Sail also shuts down on SIGINT). So the first signal also
starts a watchdog: if the process is still alive `GRACE_S` later, the stop callbacks run (a backfill prints its
resume command) and the process exits 128 + signal. A second signal exits at once the same way. Every step
commits atomically (Delta), so an exit mid-step leaves the previous version of each table.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator

from lake.errors import JobInterruptedError

GRACE_S = 10.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_callbacks: list[Callable[[int], None]] = []
_lock = threading.Lock()
_received: list[int] = []


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Route SIGINT and SIGTERM to this module for the duration of one CLI command, then restore the previous
    handlers. Only in the main thread (signals are delivered there), and never over a handler someone else set:
    a host such as an Airflow worker that calls the CLI in-process keeps its own."""
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    replaced = {}
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            previous = signal.getsignal(signum)
            if previous in (defaults[signum], signal.SIG_DFL):
                replaced[signum] = previous
                signal.signal(signum, _handle)
    try:
        yield
    finally:
        for signum, previous in replaced.items():
            signal.signal(signum, previous)


def _handle(signum: int, frame) -> None:
    if _received:
        _exit_now(signum, "a second signal")
    _received.append(signum)
    threading.Thread(target=_watchdog, args=(signum,), name="interrupt-watchdog", daemon=True).start()
    raise JobInterruptedError(signum, f"stopped by {signal.Signals(signum).name}")


def _watchdog(signum: int) -> None:
    time.sleep(GRACE_S)
    _exit_now(signum, f"cleanup still running after {GRACE_S:g} s")


def _exit_now(signum: int, why: str) -> None:
    run_callbacks(signum)
    print(f"distillguard: stopped by {signal.Signals(signum).name} ({why}); exiting", file=sys.stderr, flush=True)
    os._exit(128 + signum)


def run_callbacks(signum: int) -> None:
    """Run each registered stop callback once (from the main thread's handler or the watchdog, whichever first)."""
    with _lock:
        pending = list(_callbacks)
        _callbacks.clear()
    for callback in pending:
        with contextlib.suppress(Exception):
            callback(signum)


@contextlib.contextmanager
def on_stop(callback: Callable[[int], None]) -> Iterator[Callable[[int], None]]:
    """Run `callback(signum)` if a stop signal ends the job while inside this block. The caller may also call
    `run_callbacks` itself when it handles JobInterruptedError; each callback runs once."""
    with _lock:
        _callbacks.append(callback)
    try:
        yield callback
    finally:
        with _lock:
            if callback in _callbacks:
                _callbacks.remove(callback)
