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

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from compute.spark import SparkEngine
from jobs import aggregate, ingest
from lake import catalog
from lake.config import load_settings
from tests.helpers.raw_requests import TWO_DAYS, write_two_days

D1 = TWO_DAYS[0]
REPO = Path(__file__).resolve().parents[1]
KILL_POINTS = {  # job -> kill points; ingest writes quarantine, requests, ingest_runs in that order
    "ingest": ("after:quarantine", "after:requests", "during:requests"),
    "aggregate": ("during:account_daily",),
}
TABLES = {"ingest": ("quarantine", "requests", "ingest_runs"), "aggregate": ("account_daily",)}


def _settings(lake: Path):
    return load_settings(lake_root=str(lake), mlflow_tracking_uri=f"sqlite:///{lake}.db")


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


def _partition(lake: Path, name: str) -> list[str] | None:
    """The date partition's rows as sorted JSON, or None when the table does not exist yet."""
    uri = str(lake / name)
    if not DeltaTable.is_deltatable(uri):
        return None
    column = catalog.table(name).partition_by[0]
    rows = DeltaTable(uri).to_pyarrow_table(filters=[(column, "=", D1)]).to_pylist()  # raises if unreadable
    return sorted(json.dumps(r, default=str, sort_keys=True) for r in rows)


@pytest.mark.timeout(400)
@pytest.mark.slow
def test_a_job_killed_mid_write_leaves_readable_tables_and_its_rerun_converges(spark, tmp_path):
    base = tmp_path / "base"
    write_two_days(base)
    _reference_tables(base)
    before = {"ingest": base}
    ingested = tmp_path / "ingested"  # the state aggregate starts from
    shutil.copytree(base, ingested)
    ingest.run(spark, _settings(ingested), D1)
    before["aggregate"] = ingested
    clean = tmp_path / "clean"
    shutil.copytree(ingested, clean)
    aggregate.run(SparkEngine(spark), _settings(clean), D1)
    complete = {name: _partition(clean, name) for names in TABLES.values() for name in names}

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
            state = _partition(lake, name)
            assert state in (previous[name], complete[name]), f"{job} killed {point}: {name} holds a partial write"
        job_module = {"ingest": ingest, "aggregate": aggregate}[job]
        job_module.run(spark if job == "ingest" else SparkEngine(spark), _settings(lake), D1)
        for name in TABLES[job]:
            assert _partition(lake, name) == complete[name], f"{job} rerun after kill {point}: {name} differs"
        survived.append(f"{job} {point}")
    print("kill points survived:", ", ".join(survived))
