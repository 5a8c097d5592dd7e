"""Concurrent writers: two real processes ingest at the same moment, several trials per case.

Each trial ends one of two ways: both runs succeed and the lake equals a serial run's, or one run fails with
a ConflictError and the lake still equals a serial run's (the loser wrote nothing the winner did not). Never
duplicates, never loss. The race depends on timing, so every case runs several trials; the two processes
meet at a file barrier before each one.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from compute.spark import SparkEngine
from jobs import ingest
from lake import catalog
from lake.config import load_settings

D1, D2 = dt.date(2026, 6, 1), dt.date(2026, 6, 2)
UTC = dt.UTC
TRIALS_PER_CASE = 3
CASES = {  # case -> (dates ingested before the race, date of worker a, date of worker b)
    "fresh lake, same date": ((), D1, D1),
    "fresh lake, different dates": ((), D1, D2),
    "existing lake, same date": ((D1,), D1, D1),
}
WRITTEN_TABLES = ("requests", "quarantine", "ingest_runs")
REPO = Path(__file__).resolve().parents[1]


def _raw_rows() -> list[dict]:
    rows = []
    for day in (D1, D2):
        for i in range(12):
            rows.append(
                dict(
                    request_id=f"{day}-r{i}",
                    event_ts=dt.datetime(day.year, day.month, day.day, i, tzinfo=UTC),
                    event_date=day,
                    account_id=f"acct-{i % 4}",
                    model="m-1",
                    client_ip="203.0.113.7" if i % 5 else "not-an-ip",
                    input_tokens=10,
                    output_tokens=-1 if i == 3 else 100,
                    max_tokens=1024,
                    prompt_prefix="explain",
                )
            )
    return rows


def _settings(lake: Path):
    return load_settings(lake_root=str(lake), mlflow_tracking_uri=f"sqlite:///{lake}.db")


# the nightly chain, in order: job -> the tables it writes, in write order (each one commit per partition)
CHAIN = {
    "ingest": ("quarantine", "requests", "ingest_runs"),
    "aggregate": ("account_daily",),
    "cluster": ("account_links", "account_clusters"),
    "features": ("account_features",),
}


def _run(job: str, spark, lake: Path) -> None:
    """Run one job as the CLI would: frame-engine steps get an engine, the rest the SparkSession."""
    import importlib

    from jobs.steps import runs_on_frame_engine

    engine = SparkEngine(spark) if runs_on_frame_engine(job) else spark
    importlib.import_module(f"jobs.{job}").run(engine, _settings(lake), D1)


def _reference_tables(lake: Path) -> None:
    import datetime as dt

    settings = _settings(lake)
    catalog.write_arrow(
        settings,
        "accounts",
        pa.Table.from_pylist(
            [
                dict(
                    account_id=f"acct-{i}",
                    org_id=None,
                    created_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
                    signup_country="US",
                    payment_fingerprint=f"pf-{i % 2}",
                    verification="card",
                    program="standard",
                )
                for i in range(4)
            ],
            catalog.table("accounts").schema,
        ),
    )
    catalog.write_arrow(
        settings,
        "model_releases",
        pa.Table.from_pylist(
            [dict(model="m-1", released_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))],
            catalog.table("model_releases").schema,
        ),
    )
    catalog.write_arrow(settings, "asn_info", pa.Table.from_pylist([], catalog.table("asn_info").schema))


def _write_raw(lake: Path) -> None:
    schema = pa.schema([f for f in catalog.table("api_requests").schema if f.name in _raw_rows()[0]])
    write_deltalake(
        str(lake / "api_requests"), pa.Table.from_pylist(_raw_rows(), schema=schema), partition_by=["event_date"]
    )


def _contents(lake: Path) -> dict[str, list[str]]:
    out = {}
    for name in WRITTEN_TABLES:
        uri = str(lake / name)
        rows = DeltaTable(uri).to_pyarrow_table().to_pylist() if DeltaTable.is_deltatable(uri) else []
        out[name] = sorted(json.dumps(r, default=str, sort_keys=True) for r in rows)
    return out


@pytest.mark.timeout(420)
def test_two_processes_ingesting_at_once_never_duplicate_or_lose_rows(spark, tmp_path):
    template = tmp_path / "template"
    _write_raw(template)

    # serial references, made with the test's own engine: after D1, and after D1 then D2
    after: dict[tuple, Path] = {(): template}
    for days in ((D1,), (D1, D2)):
        lake = tmp_path / ("serial-" + "-".join(d.isoformat() for d in days))
        shutil.copytree(after[days[:-1]], lake)
        ingest.run(spark, _settings(lake), days[-1])
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

    results = tmp_path / "results.jsonl"
    procs = []
    for worker, plan in plans.items():
        plan_file = tmp_path / f"plan-{worker}.json"
        plan_file.write_text(json.dumps(plan))
        procs.append(
            subprocess.Popen(
                [sys.executable, str(REPO / "tests" / "concurrent_writer.py"), str(plan_file), worker, str(results)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    logs = [p.communicate(timeout=400)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(log[-3000:] for log in logs)

    outcomes: dict[str, list[str]] = {}
    for line in results.read_text().splitlines():
        record = json.loads(line)
        outcomes.setdefault(record["trial"], []).append(record["outcome"])
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

    settings = _settings(tmp_path / "lake")
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
def test_each_nightly_job_raced_against_itself_ends_as_a_serial_run(spark, tmp_path):
    """Two processes run the same job for the same day at the same moment, for every job after ingest: both
    finish (or one reports a conflict and wrote nothing), and the day's partitions equal one serial run's."""
    import features.registry  # noqa: F401 - declares the feature tables the catalog reads below

    base = tmp_path / "base"
    _write_raw(base)
    _reference_tables(base)
    before, state = {}, base
    for job in CHAIN:
        before[job] = state
        state = tmp_path / f"serial-{job}"
        shutil.copytree(before[job], state)
        _run(job, spark, state)
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
    results = tmp_path / "results.jsonl"
    procs = []
    for worker, plan in plans.items():
        plan_file = tmp_path / f"plan-{worker}.json"
        plan_file.write_text(json.dumps(plan))
        procs.append(
            subprocess.Popen(
                [sys.executable, str(REPO / "tests" / "concurrent_writer.py"), str(plan_file), worker, str(results)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    logs = [p.communicate(timeout=500)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(log[-3000:] for log in logs)
    outcomes: dict[str, list[str]] = {}
    for line in results.read_text().splitlines():
        record = json.loads(line)
        outcomes.setdefault(record["trial"], []).append(record["outcome"])
    for job in RACED:
        got = outcomes[job]
        assert len(got) == 2 and all(o == "ok" or o.startswith("conflict:") for o in got), (job, got)
        for name in CHAIN[job]:
            assert _day_rows(tmp_path / f"race-{job}", name) == _day_rows(state, name), f"{job}: {name} differs"


def _day_rows(lake: Path, name: str) -> list[str]:
    column = catalog.table(name).partition_by[0]
    rows = DeltaTable(str(lake / name)).to_pyarrow_table(filters=[(column, "=", D1)]).to_pylist()
    return sorted(json.dumps(r, default=str, sort_keys=True) for r in rows)
