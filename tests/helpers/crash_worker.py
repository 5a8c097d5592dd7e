"""A job process that kills itself (SIGKILL, no cleanup) at a chosen point: for tests/test_crash_safety.py.

    python -m tests.helpers.crash_worker <lake> <job> <YYYY-MM-DD> <kill point>

Kill points: `after:<table>` right after that table's write committed, `during:<table>` a few milliseconds into
that write (before or after its commit, whichever the timing gives). `<table>#2` names the table's second write
in the run (score clears its marker, then sets it). Every way a job commits is watched: Spark partition writes,
delta-rs writes, and the decisions' appends.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import signal
import sys
import threading
from collections import Counter
from pathlib import Path

# the functions through which jobs commit: (module, function, position of the table name among its arguments)
WRITES = (
    ("lake.catalog", "write_partition", 2),
    ("lake.catalog", "write_arrow", 1),
    ("console.decisions", "_append", 1),
)


def main(lake: str, job: str, day: str, kill_point: str) -> None:
    from lake.engine import spark_session
    from tests.helpers.job_chain import lake_settings, run_job

    when, _, target = kill_point.partition(":")
    table, _, nth = target.partition("#")
    nth = int(nth or 1)
    writes: Counter[str] = Counter()

    def watched(write, name_at: int):
        def write_then_maybe_die(*args, **kwargs):
            name = args[name_at]
            writes[name] += 1
            here = name == table and writes[name] == nth
            if when == "during" and here:
                threading.Timer(0.02, os.kill, (os.getpid(), signal.SIGKILL)).start()
            write(*args, **kwargs)
            if when == "after" and here:
                os.kill(os.getpid(), signal.SIGKILL)

        return write_then_maybe_die

    for module_name, function, name_at in WRITES:
        module = importlib.import_module(module_name)
        setattr(module, function, watched(getattr(module, function), name_at))
    with spark_session(lake_settings(Path(lake))) as spark:
        run_job(job, spark, Path(lake), dt.date.fromisoformat(day))
    print("job finished before its kill point", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
