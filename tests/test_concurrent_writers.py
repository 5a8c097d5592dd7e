"""Concurrent writers: two real processes run a job at the same moment, several trials per case.

Each trial ends one of two ways: both runs succeed and the lake equals a serial run's, or one run fails with
a ConflictError and the lake still equals a serial run's (the loser wrote nothing the winner did not). Never
duplicates, never loss. Each job that writes is also raced against its downstream reader, which must see the
state before the job or after it, never a mix. The race depends on timing, so the two processes meet at a file
barrier before each trial.
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
from tests.helpers.job_chain import (
    CHAIN,
    SCORE_DAY,
    SCORING_CHAIN,
    copy_lake,
    lake_settings,
    read_state,
    run_chain,
    run_job,
    table_rows,
    write_reference_tables,
)
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


def _race(plans: dict[str, list[dict]], tmp_path: Path, timeout_s: int) -> dict[str, list[dict]]:
    """Start one writer process per worker with its plan of trials (tests/helpers/concurrent_writer.py); wait for
    both; return each trial's records: outcome ("ok" or "conflict: ...") and, for a reader, what it saw."""
    results = tmp_path / "results.jsonl"
    procs = []
    for worker, plan in plans.items():
        plan_file = tmp_path / f"plan-{worker}.json"
        plan_file.write_text(json.dumps(plan))
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.helpers.concurrent_writer",
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
    records: dict[str, list[dict]] = {}
    for line in results.read_text().splitlines():
        record = json.loads(line)
        records.setdefault(record["trial"], []).append(record)
    return records


def _outcomes(records: list[dict]) -> list[str]:
    got = [r["outcome"] for r in records]
    assert len(got) == 2 and all(o == "ok" or o.startswith("conflict:") for o in got), got
    return got


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

    records = _race(plans, tmp_path, timeout_s=400)
    summary = []
    for name, (case, lake, expected) in trials.items():
        got = _outcomes(records[name])
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


class Trials:
    """The two workers' plans: trials raced in one pair of processes, each on its own copy of a lake."""

    def __init__(self, tmp_path: Path, day):
        self.tmp_path, self.day = tmp_path, day
        self.plans: dict[str, list[dict]] = {"a": [], "b": []}
        self.expected_reads: dict[str, list] = {}  # reader trial -> its states in the order they may appear

    def add(self, trial: str, start: Path, task_a: dict, task_b: dict) -> Path:
        slug = trial.replace(" ", "-")
        lake = copy_lake(start, self.tmp_path / slug)
        for worker, task in (("a", task_a), ("b", task_b)):
            barrier = str(self.tmp_path / "barriers" / slug)
            self.plans[worker].append(
                {"trial": trial, "lake": str(lake), "date": self.day.isoformat(), "barrier": barrier, **task}
            )
        return lake

    def add_reader(self, spark, trial: str, writer: str, reader: str, states: list[Path]) -> None:
        """`reader` polls while `writer` runs on a copy of states[0]; it may see what it sees on each of `states`
        (before, [meanwhile,] after), in that order. Each expected read runs on a copy: publish writes its record."""
        self.add(trial, states[0], {"job": writer}, {"read": reader})
        slug = trial.replace(" ", "-")
        self.expected_reads[trial] = [
            read_state(reader, spark, copy_lake(lake, self.tmp_path / f"{slug}-{i}"), self.day)
            for i, lake in enumerate(states)
        ]
        assert len(set(map(json.dumps, self.expected_reads[trial]))) == len(states), f"{trial}: states do not differ"

    def check_reads(self, records: dict[str, list[dict]]) -> list[str]:
        summary = []
        for trial, states in self.expected_reads.items():
            by_role = {("reader" if r["seen"] is not None else "writer"): r for r in records[trial]}
            assert by_role["writer"]["outcome"] == "ok", (trial, by_role["writer"])
            assert by_role["reader"]["outcome"] == "ok", (trial, by_role["reader"])
            seen = by_role["reader"]["seen"]
            mixed = [state for state, _ in seen if state not in states]
            assert not mixed, f"{trial}: a read saw none of the states {states}: {mixed[0]}"
            order = [states.index(state) for state, _ in seen]
            assert order == sorted(order), f"{trial}: the reads went back to an earlier state: {order}"
            assert order[-1] == len(states) - 1, f"{trial}: the read after the write did not see it"
            summary.append(f"{trial}: reads by state {[sum(n for s, n in seen if s == state) for state in states]}")
        return summary


RACED = ("aggregate", "cluster", "features")


@pytest.mark.timeout(600)
@pytest.mark.slow
def test_each_nightly_job_raced_against_itself_ends_as_a_serial_run(spark, tmp_path):
    """Two processes run the same job for the same day at the same moment, for every job after ingest: both
    finish (or one reports a conflict and wrote nothing), and the day's partitions equal one serial run's. And
    features, a reader of account_daily, polls while aggregate writes the day: it refuses (no rows yet) or
    writes what it writes after a serial aggregate, never anything else."""
    import features.registry  # noqa: F401 - declares the feature tables the catalog reads below

    base = tmp_path / "base"
    write_two_days(base)
    write_reference_tables(base)
    before, after = run_chain(spark, base, CHAIN, tmp_path, D1)
    trials = Trials(tmp_path, D1)
    raced = {job: trials.add(job, before[job], {"job": job}, {"job": job}) for job in RACED}
    trials.add_reader(
        spark, "features reads aggregate", "aggregate", "features", [before["aggregate"], after["aggregate"]]
    )
    records = _race(trials.plans, tmp_path, timeout_s=500)
    for job, lake in raced.items():
        _outcomes(records[job])
        for name in CHAIN[job]:
            assert table_rows(lake, name, D1) == table_rows(after[job], name, D1), f"{job}: {name}"
    print("\n".join(trials.check_reads(records)))


# the scoring chain's writers, each raced against itself, and against the job downstream that reads what it writes
SELF_RACED = ("training_set", "score", "publish", "decisions")
READ_WHILE_WRITTEN = {"training_set": "fit", "score": "publish", "decisions": "training_set"}  # writer -> reader


@pytest.mark.timeout(600)
@pytest.mark.slow
def test_each_scoring_job_raced_against_itself_and_against_its_reader(spark, scoring_chain, tmp_path):
    """training_set, score, publish and decisions (a cluster decision), twice at once on one day: both finish (or
    one reports a conflict and wrote nothing) and the tables equal a serial run's; two decisions at once equal
    two in a row. Then each writer with its reader (fit reading the stored training set, publish reading score's
    tables, the training set reading enforcement_labels) polling while it writes: every read sees the state
    before the write or after it (or, while a day is rescored, publish refusing it), in that order, and the read
    after the write sees it."""
    before, after = scoring_chain
    twice = copy_lake(before["decisions"], tmp_path / "serial-decisions-twice")
    for _ in range(2):
        run_job("decisions", spark, twice, SCORE_DAY)
    serial = {**after, "decisions": twice}
    trials = Trials(tmp_path, SCORE_DAY)
    raced = {job: trials.add(f"{job} twice", before[job], {"job": job}, {"job": job}) for job in SELF_RACED}
    for writer, reader in READ_WHILE_WRITTEN.items():
        trials.add_reader(spark, f"{reader} reads {writer}", writer, reader, [before[writer], after[writer]])
    # score again over a published day: publish may see the first scores or the second, never a mix of the two;
    # while the rescore runs the day has no marker, and publish refuses as on a day never scored
    rescored = copy_lake(after["publish"], tmp_path / "serial-rescore")
    run_job("score", spark, rescored, SCORE_DAY)
    trials.add_reader(
        spark, "publish reads a rescore", "score", "publish", [after["publish"], before["score"], rescored]
    )

    records = _race(trials.plans, tmp_path, timeout_s=500)
    summary = []
    for job, lake in raced.items():
        got = _outcomes(records[f"{job} twice"])
        if job == "decisions":
            assert got == ["ok", "ok"], "a decision is an append: it never loses a race"
        for name in SCORING_CHAIN[job]:
            assert table_rows(lake, name, SCORE_DAY) == table_rows(serial[job], name, SCORE_DAY), f"{job}: {name}"
        summary.append(f"{job} twice: {', '.join(o.split(':')[0] for o in got)}")
    print("\n".join(summary + trials.check_reads(records)))
