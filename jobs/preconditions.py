"""Upstream completeness checks, one per job, each called on the first line of the job's `run`.

A job refuses (MissingInputError, exit 4) a day whose inputs are missing or do not add up, instead of
computing from a half-written or doubled upstream partition. The checks read only Delta logs (per-file row
counts in the add actions) and the one-row `ingest_runs` record, never the data, so they cost milliseconds at
any scale.
"""

from __future__ import annotations

import datetime as dt

from lake import catalog
from lake.config import Settings
from lake.errors import MissingInputError


def partition_rows(settings: Settings, name: str, partition_value: dt.date) -> int | None:
    """Rows in one date partition from the Delta log's file statistics; None when the table does not exist."""
    import pyarrow as pa
    from deltalake import DeltaTable

    uri = settings.table_uri(name)
    if not DeltaTable.is_deltatable(uri):
        return None
    column = f"partition.{catalog.table(name).partition_by[0]}"
    actions = pa.table(DeltaTable(uri).get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return 0
    total = 0
    for value, records, path in zip(
        actions.column(column).to_pylist(),
        actions.column("num_records").to_pylist(),
        actions.column("path").to_pylist(),
    ):
        if value != partition_value:
            continue
        if records is None:  # a writer that kept no statistics: count that file
            import pyarrow.parquet as pq

            records = pq.ParquetFile(f"{uri}/{path}").metadata.num_rows
        total += records
    return total


def _require_rows(settings: Settings, name: str, day: dt.date, run_first: str) -> int:
    rows = partition_rows(settings, name, day)
    if not rows:
        where = "does not exist" if rows is None else f"has no rows for {day.isoformat()}"
        raise MissingInputError(
            f"{name} {where} ({settings.table_uri(name)}); run `distillguard {run_first} "
            f"--date {day.isoformat()}` first"
        )
    return rows


def check_aggregate(settings: Settings, event_date: dt.date) -> None:
    """The day's ingest run is recorded, and bronze + quarantine hold exactly the rows it recorded."""
    import pyarrow.compute as pc

    day = event_date.isoformat()
    rerun = f"rerun `distillguard ingest --date {day}`"
    if not catalog.exists(settings, "ingest_runs"):
        raise MissingInputError(f"no ingest run is recorded for {day} (ingest_runs does not exist); {rerun}")
    runs = catalog.read_arrow(settings, "ingest_runs").filter(pc.field("event_date") == event_date).to_pylist()
    if len(runs) != 1:
        raise MissingInputError(
            f"{len(runs)} ingest run records for {day} in ingest_runs, expected 1 "
            f"(the ingest did not finish, or the record is doubled); {rerun}"
        )
    record = runs[0]
    bronze = partition_rows(settings, "requests", event_date) or 0
    quarantined = partition_rows(settings, "quarantine", event_date) or 0
    if (bronze, quarantined) != (record["bronze_rows"], record["quarantined_rows"]) or record[
        "raw_rows"
    ] != bronze + quarantined:
        raise MissingInputError(
            f"ingest of {day} is inconsistent: its run {record['ingest_run_id']} recorded {record['raw_rows']} raw = "
            f"{record['bronze_rows']} bronze + {record['quarantined_rows']} quarantined, but the tables hold "
            f"{bronze} bronze and {quarantined} quarantined rows; {rerun}"
        )


def check_features(settings: Settings, feature_date: dt.date) -> None:
    _require_rows(settings, "account_daily", feature_date, "aggregate")


def check_cluster(settings: Settings, feature_date: dt.date) -> None:
    _require_rows(settings, "account_daily", feature_date, "aggregate")
    if not catalog.exists(settings, "accounts"):
        raise MissingInputError(f"the raw accounts table does not exist ({settings.table_uri('accounts')})")


def check_campaigns(settings: Settings, day: dt.date) -> None:
    """The day is aggregated and the cluster job has run (a day without linked accounts writes no rows, so the
    table is checked, not the partition)."""
    _require_rows(settings, "account_daily", day, "aggregate")
    if not catalog.exists(settings, "account_clusters"):
        raise MissingInputError(
            f"account_clusters does not exist ({settings.table_uri('account_clusters')}); run `distillguard cluster "
            f"--date {day.isoformat()}` first"
        )


def check_score(settings: Settings, score_date: dt.date) -> None:
    _require_rows(settings, "account_features", score_date, "features")
