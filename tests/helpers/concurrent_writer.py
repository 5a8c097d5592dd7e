"""A writer (or reader) process for tests/test_concurrent_writers.py: runs a job of tests/helpers/job_chain.py
(`ingest` unless the trial names another) for a list of trials, each started at the same moment as the other
process's (a file barrier), and records each outcome as JSON lines.

    python -m tests.helpers.concurrent_writer <plan.json> <worker name> <results.jsonl>

plan.json: [{"trial": "t0", "lake": "...", "date": "YYYY-MM-DD", "barrier": "<dir>", "job": "ingest"}, ...]
for this worker. A trial with "read": "<reader>" instead of "job" runs that downstream reader (job_chain.READERS)
over and over while the peer writes, until the peer has finished and it has read once more; it records what it
saw, in order, as [state, times seen in a row] pairs.
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


def _finished(barrier: Path) -> Path:
    return barrier.parent / f"{barrier.name}.finished"


def _read_while_peer_writes(spark, trial: dict, day: dt.date) -> list[list]:
    from tests.helpers.job_chain import read_state

    seen: list[list] = []
    deadline = time.monotonic() + BARRIER_TIMEOUT_S
    while time.monotonic() < deadline:
        peer_done = _finished(Path(trial["barrier"])).exists()
        state = read_state(trial["read"], spark, Path(trial["lake"]), day)
        if seen and seen[-1][0] == state:
            seen[-1][1] += 1
        else:
            seen.append([state, 1])
        if peer_done:  # this read started after the writer's last commit
            return seen
    raise TimeoutError(f"the writer of {trial['lake']} did not finish in {BARRIER_TIMEOUT_S} s")


def main(plan_path: str, worker: str, results_path: str) -> None:
    from lake.engine import spark_session
    from lake.errors import ConflictError
    from tests.helpers.job_chain import lake_settings, run_job

    plan = json.loads(Path(plan_path).read_text())
    with spark_session(lake_settings(Path(plan[0]["lake"]))) as spark, open(results_path, "a") as results:
        for trial in plan:
            day, barrier, seen = dt.date.fromisoformat(trial["date"]), Path(trial["barrier"]), None
            _wait_for_peer(barrier, worker)
            try:
                if "read" in trial:
                    seen = _read_while_peer_writes(spark, trial, day)
                else:
                    run_job(trial.get("job", "ingest"), spark, Path(trial["lake"]), day)
                outcome = "ok"
            except ConflictError as exc:
                outcome = f"conflict: {exc}"
            except Exception as exc:
                outcome = f"error: {type(exc).__name__}: {exc}"
            finally:
                _finished(barrier).touch()
            record = {"trial": trial["trial"], "worker": worker, "outcome": outcome, "seen": seen}
            results.write(json.dumps(record) + "\n")
            results.flush()


if __name__ == "__main__":
    main(*sys.argv[1:4])
