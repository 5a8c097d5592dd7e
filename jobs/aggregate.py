"""Job: one day of bronze `requests` -> that day's `account_daily` partition, on Spark or a frame engine."""

from __future__ import annotations

import datetime as dt

from jobs import preconditions
from lake.errors import MissingInputError
from lake import catalog
from lake.config import Settings
from lake.frames import FrameEngine


def _no_bronze(settings: Settings, event_date: dt.date) -> MissingInputError:
    return MissingInputError(f"no bronze requests for {event_date.isoformat()} in {settings.table_uri('requests')}; "
                      f"run `distillguard ingest --date {event_date.isoformat()}` first")


def read_bronze_day(spark, settings: Settings, event_date: dt.date):
    """The bronze partition of `event_date`; an absent or empty partition is an error, never an empty day."""
    requests = catalog.read_partition(spark, settings, "requests", event_date)
    if requests.select("request_id").limit(1).count() == 0:
        raise _no_bronze(settings, event_date)
    return requests


def _run_spark(spark, settings: Settings, event_date: dt.date) -> int:
    from features.spark_daily import daily_aggregate

    daily = daily_aggregate(
        read_bronze_day(spark, settings, event_date),
        catalog.read(spark, settings, "accounts"),
        catalog.read(spark, settings, "model_releases"),
        catalog.read(spark, settings, "asn_info"),
        event_date,
    )
    catalog.write_partition(daily, settings, "account_daily", event_date)
    return catalog.read_partition(spark, settings, "account_daily", event_date).count()


def _run_frames(engine: FrameEngine, settings: Settings, event_date: dt.date) -> int:
    from features.frame_daily import REQUEST_COLUMNS, aggregate_partition
    from lake import frames

    files = frames.partition_files(settings, "requests", event_date, REQUEST_COLUMNS)
    if files.rows == 0:
        raise _no_bronze(settings, event_date)
    daily = aggregate_partition(engine, files, frames.read_table(settings, "accounts"),
                                frames.read_table(settings, "model_releases"),
                                frames.read_table(settings, "asn_info"), event_date)
    frames.write_partition(settings, "account_daily", daily, event_date)
    return daily.num_rows


def run(engine, settings: Settings, event_date: dt.date) -> int:
    """Aggregate `event_date` and replace its `account_daily` partition; returns the rows written.
    `engine` is a SparkSession or a FrameEngine (lake/engine.py compute_engine)."""
    preconditions.check_aggregate(settings, event_date)
    if isinstance(engine, FrameEngine):
        rows = _run_frames(engine, settings, event_date)
    else:
        rows = _run_spark(engine, settings, event_date)
    print(f"aggregate {event_date.isoformat()}: {rows} account-day rows written to account_daily "
          f"({settings.engine} engine)")
    return rows
