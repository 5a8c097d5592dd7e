"""Crash safety, bounded: a job is SIGKILLed at a few points of its writes (after a commit, and a few
milliseconds into a write). Every table must stay readable, each date partition must be either what it was
before the run or what a complete run writes (never partial), and a rerun must converge to a clean run's tables
bit for bit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lake import catalog
from tests.helpers.job_chain import CHAIN, D1, run_job, write_reference_tables
from tests.helpers.raw_requests import write_two_days

REPO = Path(__file__).resolve().parents[1]
KILL_POINTS = {  # job -> kill points: after each commit, and a few milliseconds into one write
    "ingest": ("after:quarantine", "after:requests", "during:requests"),
    "aggregate": ("during:account_daily", "after:account_daily"),
    "cluster": ("after:account_links", "after:account_edges", "during:account_clusters"),
    "features": ("during:account_features", "after:account_features"),
}
TABLES = CHAIN


def _partition(lake: Path, name: str) -> list[str] | None:
    """The date partition's rows as sorted JSON, or None when the table does not exist yet."""
    uri = str(lake / name)
    if not DeltaTable.is_deltatable(uri):
        return None
    column = catalog.table(name).partition_by[0]
    rows = DeltaTable(uri).to_pyarrow_table(filters=[(column, "=", D1)]).to_pylist()  # raises if unreadable
    return sorted(json.dumps(r, default=str, sort_keys=True) for r in rows)


@pytest.mark.timeout(900)
@pytest.mark.slow
def test_a_job_killed_mid_write_leaves_readable_tables_and_its_rerun_converges(spark, tmp_path):
    import features.registry  # noqa: F401 - declares the feature tables the catalog reads below

    base = tmp_path / "base"
    write_two_days(base)
    write_reference_tables(base)
    before = {}  # job -> the lake it starts from: every earlier job of the chain run cleanly
    state = base
    for job in CHAIN:
        before[job] = state
        state = tmp_path / f"clean-{job}"
        shutil.copytree(before[job], state)
        run_job(job, spark, state)
    complete = {name: _partition(state, name) for names in TABLES.values() for name in names}

    runs = []
    for job, points in KILL_POINTS.items():
        for point in points:
            lake = tmp_path / f"{job}-{point.replace(':', '-')}"
            shutil.copytree(before[job], lake)
            runs.append(
                (
                    job,
                    point,
                    lake,
                    subprocess.Popen(
                        [
                            sys.executable,
                            str(REPO / "tests" / "helpers" / "crash_worker.py"),
                            str(lake),
                            job,
                            D1.isoformat(),
                            point,
                        ],
                        cwd=REPO,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        text=True,
                    ),
                )
            )
    survived = []
    for job, point, lake, process in runs:
        output = process.communicate(timeout=300)[0]
        assert process.returncode == -9, f"{job} {point} was not killed: {output[-2000:]}"
        previous = {name: _partition(before[job], name) for name in TABLES[job]}
        for name in TABLES[job]:
            # a kill between creating a missing table and its first data commit leaves an empty table: for a
            # reader, the same rows (none) as no table
            state, was = _partition(lake, name), previous[name] or []
            assert (state or []) in (was, complete[name]), f"{job} killed {point}: {name} holds a partial write"
        run_job(job, spark, lake)
        for name in TABLES[job]:
            assert _partition(lake, name) == complete[name], f"{job} rerun after kill {point}: {name} differs"
        survived.append(f"{job} {point}")
    print("kill points survived:", ", ".join(survived))
