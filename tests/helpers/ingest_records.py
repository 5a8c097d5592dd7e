"""For tests that write bronze by hand instead of running ingest: record the ingest run aggregate requires."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa

from jobs.preconditions import partition_rows
from lake import catalog


def record_ingest_run(settings, event_date: dt.date) -> None:
    """An `ingest_runs` row agreeing with the day's bronze and quarantine partitions, as ingest would write."""
    bronze = partition_rows(settings, "requests", event_date) or 0
    quarantined = partition_rows(settings, "quarantine", event_date) or 0
    record = dict(
        ingest_run_id=f"hand-written-{event_date.isoformat()}",
        event_date=event_date,
        raw_table_version=0,
        raw_rows=bronze + quarantined,
        bronze_rows=bronze,
        quarantined_rows=quarantined,
        quarantine_reasons=json.dumps({}),
    )
    catalog.write_arrow(
        settings,
        "ingest_runs",
        pa.Table.from_pylist([record], catalog.table("ingest_runs").schema),
        partition_value=event_date,
    )
