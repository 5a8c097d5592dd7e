"""A job process that kills itself (SIGKILL, no cleanup) at a chosen point: for tests/test_crash_safety.py.

    python tests/helpers/crash_worker.py <lake> <job> <YYYY-MM-DD> <kill point>

Kill points: `after:<table>` right after that table's partition write committed, `during:<table>` a few
milliseconds into that write (before or after its commit, whichever the timing gives).
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import signal
import sys
import threading


def main(lake: str, job: str, day: str, kill_point: str) -> None:
    from lake import catalog
    from lake.config import load_settings
    from lake.engine import spark_session

    when, _, target = kill_point.partition(":")
    write = catalog.write_partition

    def write_then_maybe_die(df, settings, name, partition_value):
        if when == "during" and name == target:
            threading.Timer(0.02, os.kill, (os.getpid(), signal.SIGKILL)).start()
        write(df, settings, name, partition_value)
        if when == "after" and name == target:
            os.kill(os.getpid(), signal.SIGKILL)

    catalog.write_partition = write_then_maybe_die
    settings = load_settings(lake_root=lake, mlflow_tracking_uri=f"sqlite:///{lake}.db")
    from compute.spark import SparkEngine
    from jobs.steps import runs_on_frame_engine

    with spark_session(settings) as spark:
        engine = SparkEngine(spark) if runs_on_frame_engine(job) else spark  # what the CLI hands each job
        importlib.import_module(f"jobs.{job}").run(engine, settings, dt.date.fromisoformat(day))
    print("job finished before its kill point", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
