"""A writer process for tests/test_concurrent_writers.py: runs a job (`ingest` unless the trial names another)
for a list of trials, each started at the same moment as the other process's (a file barrier), and records each
outcome as JSON lines.

    python tests/helpers/concurrent_writer.py <plan.json> <worker name> <results.jsonl>

plan.json: [{"trial": "t0", "lake": "...", "date": "YYYY-MM-DD", "barrier": "<dir>", "job": "ingest"}, ...]
for this worker.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

BARRIER_TIMEOUT_S = 120


def _wait_for_peer(barrier: Path, worker: str) -> None:
    barrier.mkdir(parents=True, exist_ok=True)
    (barrier / worker).touch()
    deadline = time.monotonic() + BARRIER_TIMEOUT_S
    while len(list(barrier.iterdir())) < 2:
        if time.monotonic() > deadline:
            raise TimeoutError(f"peer never reached {barrier}")
        time.sleep(0.002)


def main(plan_path: str, worker: str, results_path: str) -> None:
    import importlib

    from compute.spark import SparkEngine
    from jobs.steps import runs_on_frame_engine
    from lake.config import load_settings
    from lake.engine import spark_session
    from lake.errors import ConflictError

    plan = json.loads(Path(plan_path).read_text())
    first = load_settings(lake_root=plan[0]["lake"], mlflow_tracking_uri="sqlite:///" + plan[0]["lake"] + ".db")
    with spark_session(first) as spark, open(results_path, "a") as results:
        for trial in plan:
            settings = load_settings(lake_root=trial["lake"], mlflow_tracking_uri="sqlite:///" + trial["lake"] + ".db")
            _wait_for_peer(Path(trial["barrier"]), worker)
            try:
                job = trial.get("job", "ingest")
                engine = SparkEngine(spark) if runs_on_frame_engine(job) else spark  # as the CLI hands it
                importlib.import_module(f"jobs.{job}").run(engine, settings, dt.date.fromisoformat(trial["date"]))
                outcome = "ok"
            except ConflictError as exc:
                outcome = f"conflict: {exc}"
            except Exception as exc:
                outcome = f"error: {type(exc).__name__}: {exc}"
            results.write(json.dumps({"trial": trial["trial"], "worker": worker, "outcome": outcome}) + "\n")
            results.flush()


if __name__ == "__main__":
    main(*sys.argv[1:4])
