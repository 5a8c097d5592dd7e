"""The nightly chain on a tiny hand-written lake, for the race and kill tests: the reference tables the jobs read,
the tables each job writes in write order, and one job run as the CLI would run it."""

from __future__ import annotations

import datetime as dt
import importlib
from pathlib import Path

import pyarrow as pa

from compute.spark import SparkEngine
from lake import catalog
from lake.config import load_settings
from tests.helpers.raw_requests import TWO_DAYS

D1 = TWO_DAYS[0]
# the nightly chain, in order: job -> the tables it writes, in write order (each one commit per partition)
CHAIN = {
    "ingest": ("quarantine", "requests", "ingest_runs"),
    "aggregate": ("account_daily",),
    "cluster": ("account_links", "account_edges", "account_clusters"),
    "features": ("account_features",),
}


def lake_settings(lake: Path):
    return load_settings(lake_root=str(lake), mlflow_tracking_uri=f"sqlite:///{lake}.db")


def run_job(job: str, spark, lake: Path, day: dt.date = D1) -> None:
    """Run one job as the CLI would: frame-engine steps get an engine, the rest the SparkSession."""
    from jobs.steps import runs_on_frame_engine

    engine = SparkEngine(spark) if runs_on_frame_engine(job) else spark
    importlib.import_module(f"jobs.{job}").run(engine, lake_settings(lake), day)


def write_reference_tables(lake: Path) -> None:
    """accounts (two pairs sharing a payment fingerprint), one model release, no ASN categories."""
    settings = lake_settings(lake)
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
