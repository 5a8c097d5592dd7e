"""SIGINT and SIGTERM stop a backfill within seconds (embedded Sail shuts down on SIGINT while the Spark Connect
client would retry it for minutes), and the backfill says where it stopped and how to resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# the liveness bound: far above the interrupt watchdog's grace (jobs/interrupts.py GRACE_S); hitting it is a hang
HANG_S = 90


@pytest.fixture(scope="module")
def raw_lake(tmp_path_factory):
    lake = tmp_path_factory.mktemp("interrupt") / "lake"
    command = [sys.executable, "-m", "jobs.cli", "--lake", str(lake), "simulate", "--start", "2026-05-01"]
    subprocess.run([*command, "--days", "4", "--accounts", "300"], cwd=REPO, check=True, capture_output=True)
    return lake


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_a_backfill_and_it_says_how_to_resume(raw_lake, signum):
    job = subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "--lake", str(raw_lake), "backfill", "--from", "2026-05-01"]
        + ["--to", "2026-05-04", "--steps", "ingest", "aggregate", "--force"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen = []
    for line in job.stdout:  # wait until a step is under way on the engine
        seen.append(line)
        if "2/2 aggregate ..." in line:
            break
    job.send_signal(signum)
    try:
        _, err = job.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        job.kill()
        pytest.fail(f"still running {HANG_S} s after {signum.name}: {''.join(seen)[-500:]}")
    assert job.returncode == 128 + signum, err
    assert "backfill stopped at 2026-05-01" in err and "interrupted; resume with" in err, err
    assert "distillguard backfill --from 2026-05-01 --to 2026-05-04 --steps ingest aggregate --force" in err
    assert "Traceback" not in err
