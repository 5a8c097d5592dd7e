"""Job: one day of bronze `requests` -> that day's `account_daily` partition."""

from __future__ import annotations

import datetime as dt


from features.spark_daily import daily_aggregate
from lake import catalog
from lake.config import Settings


def read_bronze_day(spark, settings: Settings, event_date: dt.date):
    """The bronze partition of `event_date`; an absent or empty partition is an error, never an empty day."""
    requests = catalog.read_partition(spark, settings, "requests", event_date)
    if requests.select("request_id").limit(1).count() == 0:
        raise ValueError(f"no bronze requests for {event_date.isoformat()} in {settings.table_uri('requests')}; "
                         f"run `distillguard ingest --date {event_date.isoformat()}` first")
    return requests


def run(spark, settings: Settings, event_date: dt.date) -> int:
    """Aggregate `event_date` and replace its `account_daily` partition; returns the rows written."""
    daily = daily_aggregate(
        read_bronze_day(spark, settings, event_date),
        catalog.read(spark, settings, "accounts"),
        catalog.read(spark, settings, "model_releases"),
        catalog.read(spark, settings, "asn_info"),
        event_date,
    )
    catalog.write_partition(daily, settings, "account_daily", event_date)
    rows = catalog.read_partition(spark, settings, "account_daily", event_date).count()
    print(f"aggregate {event_date.isoformat()}: {rows} account-day rows written to account_daily")
    return rows
