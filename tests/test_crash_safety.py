"""Crash safety, bounded: a job is SIGKILLed at a few points of its writes (after each commit, and a few
milliseconds into a write). Every table must stay readable, each date partition must be either what it was
before the run or what a complete run writes (never partial), and a rerun must converge to a clean run's tables
bit for bit (less the columns a rerun writes anew: job_chain.VOLATILE)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.job_chain import (
    CHAIN,
    D1,
    SCORE_DAY,
    SCORING_CHAIN,
    copy_lake,
    lake_settings,
    run_chain,
    run_job,
    table_rows,
    write_reference_tables,
)
from tests.helpers.raw_requests import write_two_days

REPO = Path(__file__).resolve().parents[1]
KILL_POINTS = {  # job -> kill points: after each commit, and a few milliseconds into one write
    "ingest": ("after:quarantine", "after:requests", "during:requests"),
    "aggregate": ("during:account_daily", "after:account_daily"),
    "cluster": ("after:account_links", "after:account_edges", "during:account_clusters"),
    "features": ("during:account_features", "after:account_features"),
    "training_set": ("during:training_sets", "after:training_sets"),
    # score clears its marker (score_runs), writes both risk tables, then sets the marker (score_runs#2)
    "score": (
        "after:score_runs",
        "during:account_risk",
        "after:account_risk",
        "after:cluster_risk",
        "during:score_runs#2",
        "after:score_runs#2",
    ),
    "publish": ("during:risk_publications", "after:risk_publications"),
    "decisions": ("during:enforcement_labels", "after:enforcement_labels", "after:analyst_decisions"),
    # score over a day scored before: killed after each commit that precedes the marker's, the day must not look
    # scored, although the previous run's marker was there when the run began
    "rescore": ("after:score_runs", "after:account_risk", "after:cluster_risk"),
}
# decisions append: a decision recorded again after a kill adds the same rows again (same time here), so their
# tables converge as sets of rows; the standing they give the queue and training is the same
APPEND_ONLY = ("enforcement_labels", "analyst_decisions")
CLEARED_MIDWAY = ("score_runs",)  # score's marker: cleared (empty) from the run's first commit until its last


def _kill_then_rerun(spark, tmp_path: Path, chain: dict, cases: dict, complete: Path, day: dt.date) -> list[str]:
    """Kill each case's job (case -> job, the lake it starts from) at each of the case's points, all at once, one
    process each; check what the kill left, rerun the job here and compare with the clean run."""
    runs = []
    for case, (job, start) in cases.items():
        for point in KILL_POINTS[case]:
            lake = copy_lake(start, tmp_path / f"{case}-{point.replace(':', '-').replace('#', '-')}")
            command = [sys.executable, "-m", "tests.helpers.crash_worker", str(lake), job, day.isoformat(), point]
            process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            runs.append((case, job, start, point, lake, process))
    clean = {name: table_rows(complete, name, day) for names in chain.values() for name in names}
    survived = []
    for case, job, start, point, lake, process in runs:
        output = process.communicate(timeout=300)[0]
        assert process.returncode == -9, f"{case} {point} was not killed: {output[-2000:]}"
        for name in chain[job]:
            # a kill between creating a missing table and its first data commit leaves an empty table: for a
            # reader, the same rows (none) as no table
            state, was = table_rows(lake, name, day), table_rows(start, name, day) or []
            allowed = (was, clean[name], *([[]] if name in CLEARED_MIDWAY else []))
            assert (state or []) in allowed, f"{case} killed {point}: {name} holds a partial write"
        if job == "score":
            _check_score_marker(spark, lake, clean, f"{case} killed {point}")
        run_job(job, spark, lake, day)
        for name in chain[job]:
            got, want = table_rows(lake, name, day), clean[name]
            if name in APPEND_ONLY:
                got, want = sorted(set(got)), sorted(set(want))
            assert got == want, f"{case} rerun after kill {point}: {name} differs"
        survived.append(f"{case} {point}")
    return survived


def _check_score_marker(spark, lake: Path, clean: dict, killed: str) -> None:
    """The day counts as scored (for publish and backfill's skip) only when both risk tables are complete, and
    never after a kill before the marker's last commit."""
    from jobs import backfill, publish, score
    from lake.errors import MissingInputError

    settings = lake_settings(lake)
    complete = all(table_rows(lake, name, SCORE_DAY) == clean[name] for name in ("account_risk", "cluster_risk"))
    if score.scored(settings, SCORE_DAY):
        assert complete, f"{killed}: the marker is set over incomplete risk tables"
    else:
        assert not backfill.step_done(settings, "score", SCORE_DAY), f"{killed}: backfill would skip the day"
        with pytest.raises(MissingInputError, match="did not finish"):
            publish.run(spark, settings, SCORE_DAY)
    if killed.split()[-1].startswith("after:") and not killed.endswith("after:score_runs#2"):
        assert not score.scored(settings, SCORE_DAY), f"{killed}: the day looks scored"


@pytest.mark.timeout(900)
@pytest.mark.slow
def test_a_job_killed_mid_write_leaves_readable_tables_and_its_rerun_converges(spark, tmp_path):
    import features.registry  # noqa: F401 - declares the feature tables the catalog reads below

    base = tmp_path / "base"
    write_two_days(base)
    write_reference_tables(base)
    before, after = run_chain(spark, base, CHAIN, tmp_path, D1)
    cases = {job: (job, before[job]) for job in CHAIN}
    survived = _kill_then_rerun(spark, tmp_path, CHAIN, cases, after["features"], D1)
    print("kill points survived:", ", ".join(survived))


@pytest.mark.timeout(900)
@pytest.mark.slow
def test_a_scoring_job_killed_mid_write_leaves_readable_tables_and_its_rerun_converges(scoring_chain, spark, tmp_path):
    """training_set, score (whose marker must never stand over incomplete risk tables: on a new day, and on a day
    scored and published before), publish and decisions."""
    before, after = scoring_chain
    cases = {job: (job, before[job]) for job in SCORING_CHAIN}
    cases["rescore"] = ("score", after["publish"])  # the previous run's marker is there when the kill comes
    survived = _kill_then_rerun(spark, tmp_path, SCORING_CHAIN, cases, after["decisions"], SCORE_DAY)
    print("kill points survived:", ", ".join(survived))
