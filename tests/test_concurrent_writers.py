"""Concurrent writers: two real processes ingest at the same moment, several trials per case.

Each trial ends one of two ways: both runs succeed and the lake equals a serial run's, or one run fails with
a ConflictError and the lake still equals a serial run's (the loser wrote nothing the winner did not). Never
duplicates, never loss. The race depends on timing, so every case runs several trials; the two processes
meet at a file barrier before each one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from jobs import ingest
from lake import catalog
from tests.helpers.job_chain import CHAIN, lake_settings, run_job, write_reference_tables
from tests.helpers.raw_requests import TWO_DAYS, write_two_days

D1, D2 = TWO_DAYS
TRIALS_PER_CASE = 3
CASES = {  # case -> (dates ingested before the race, date of worker a, date of worker b)
    "fresh lake, same date": ((), D1, D1),
    "fresh lake, different dates": ((), D1, D2),
    "existing lake, same date": ((D1,), D1, D1),
}
WRITTEN_TABLES = ("requests", "quarantine", "ingest_runs")
REPO = Path(__file__).resolve().parents[1]


def _race(plans: dict[str, list[dict]], tmp_path: Path, timeout_s: int) -> dict[str, list[str]]:
    """Start one writer process per worker with its plan of trials (tests/helpers/concurrent_writer.py); wait for
    both; return each trial's outcomes ("ok" or "conflict: ...")."""
    results = tmp_path / "results.jsonl"
    procs = []
    for worker, plan in plans.items():
        plan_file = tmp_path / f"plan-{worker}.json"
        plan_file.write_text(json.dumps(plan))
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(REPO / "tests" / "helpers" / "concurrent_writer.py"),
                    str(plan_file),
                    worker,
                    str(results),
                ],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    logs = [p.communicate(timeout=timeout_s)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(log[-3000:] for log in logs)
    outcomes: dict[str, list[str]] = {}
    for line in results.read_text().splitlines():
        record = json.loads(line)
        outcomes.setdefault(record["trial"], []).append(record["outcome"])
    return outcomes


def _contents(lake: Path) -> dict[str, list[str]]:
    out = {}
    for name in WRITTEN_TABLES:
        uri = str(lake / name)
        rows = DeltaTable(uri).to_pyarrow_table().to_pylist() if DeltaTable.is_deltatable(uri) else []
        out[name] = sorted(json.dumps(r, default=str, sort_keys=True) for r in rows)
    return out


@pytest.mark.timeout(420)
@pytest.mark.slow
def test_two_processes_ingesting_at_once_never_duplicate_or_lose_rows(spark, tmp_path):
    template = tmp_path / "template"
    write_two_days(template)

    # serial references, made with the test's own engine: after D1, and after D1 then D2
    after: dict[tuple, Path] = {(): template}
    for days in ((D1,), (D1, D2)):
        lake = tmp_path / ("serial-" + "-".join(d.isoformat() for d in days))
        shutil.copytree(after[days[:-1]], lake)
        ingest.run(spark, lake_settings(lake), days[-1])
        after[days] = lake

    plans: dict[str, list[dict]] = {"a": [], "b": []}
    trials = {}
    for c, (case, (before, date_a, date_b)) in enumerate(CASES.items()):
        expected = _contents(after[tuple(sorted({*before, date_a, date_b}))])
        for t in range(TRIALS_PER_CASE):
            name = f"case{c}-trial{t}"
            lake = tmp_path / name
            shutil.copytree(after[before], lake)  # a copied lake is a lake: Delta paths are relative
            trials[name] = (case, lake, expected)
            for worker, day in (("a", date_a), ("b", date_b)):
                plans[worker].append(
                    {
                        "trial": name,
                        "lake": str(lake),
                        "date": day.isoformat(),
                        "barrier": str(tmp_path / "barriers" / name),
                    }
                )

    outcomes = _race(plans, tmp_path, timeout_s=400)
    summary = []
    for name, (case, lake, expected) in trials.items():
        got = outcomes[name]
        assert len(got) == 2 and all(o == "ok" or o.startswith("conflict:") for o in got), (name, got)
        assert any(o == "ok" for o in got), (name, got)
        assert _contents(lake) == expected, f"{name} ({case}): lake differs from a serial run; outcomes {got}"
        summary.append(f"{name} ({case}): {', '.join(o.split(':')[0] for o in got)}")
    print("\n".join(summary))


def test_a_second_creator_finds_the_table_and_creates_nothing(tmp_path):
    """The creating commit is published put-if-absent: a creator that lost the race leaves version 0 alone."""
    from lake.table_creation import _publish_first_commit, create_empty_table

    settings = lake_settings(tmp_path / "lake")
    decl = catalog.table("ingest_runs")
    create_empty_table(settings, "ingest_runs", decl.schema, list(decl.partition_by))
    first = (tmp_path / "lake" / "ingest_runs" / "_delta_log" / "00000000000000000000.json").read_bytes()
    late = tmp_path / "late-creator"  # a creator that found no table a moment ago and staged its own
    DeltaTable.create(str(late), schema=decl.schema, partition_by=list(decl.partition_by))
    assert _publish_first_commit(late, tmp_path / "lake" / "ingest_runs") is False
    log_dir = tmp_path / "lake" / "ingest_runs" / "_delta_log"
    assert sorted(p.name for p in log_dir.iterdir()) == ["00000000000000000000.json"]
    assert (log_dir / "00000000000000000000.json").read_bytes() == first
    assert DeltaTable(str(tmp_path / "lake" / "ingest_runs")).schema().to_arrow().names == decl.schema.names
    assert not (tmp_path / "lake" / "_staging").exists()


RACED = ("aggregate", "cluster", "features")


@pytest.mark.timeout(600)
@pytest.mark.slow
def test_each_nightly_job_raced_against_itself_ends_as_a_serial_run(spark, tmp_path):
    """Two processes run the same job for the same day at the same moment, for every job after ingest: both
    finish (or one reports a conflict and wrote nothing), and the day's partitions equal one serial run's."""
    import features.registry  # noqa: F401 - declares the feature tables the catalog reads below

    base = tmp_path / "base"
    write_two_days(base)
    write_reference_tables(base)
    before, state = {}, base
    for job in CHAIN:
        before[job] = state
        state = tmp_path / f"serial-{job}"
        shutil.copytree(before[job], state)
        run_job(job, spark, state)
    plans: dict[str, list[dict]] = {"a": [], "b": []}
    for job in RACED:
        lake = tmp_path / f"race-{job}"
        shutil.copytree(before[job], lake)
        for worker in plans:
            plans[worker].append(
                {
                    "trial": job,
                    "lake": str(lake),
                    "date": D1.isoformat(),
                    "barrier": str(tmp_path / "b" / job),
                    "job": job,
                }
            )
    outcomes = _race(plans, tmp_path, timeout_s=500)
    for job in RACED:
        got = outcomes[job]
        assert len(got) == 2 and all(o == "ok" or o.startswith("conflict:") for o in got), (job, got)
        for name in CHAIN[job]:
            assert _day_rows(tmp_path / f"race-{job}", name) == _day_rows(state, name), f"{job}: {name} differs"


def _day_rows(lake: Path, name: str) -> list[str]:
    column = catalog.table(name).partition_by[0]
    rows = DeltaTable(str(lake / name)).to_pyarrow_table(filters=[(column, "=", D1)]).to_pylist()
    return sorted(json.dumps(r, default=str, sort_keys=True) for r in rows)
