"""Job: one day of bronze `requests` -> that day's `account_daily` partition, on any engine."""

from __future__ import annotations

import datetime as dt

from compute import Data, Engine
from features.daily_stats import BRONZE_INPUTS
from jobs import preconditions
from lake.config import Settings
from lake.errors import MissingInputError


def run(engine: Engine[Data], settings: Settings, event_date: dt.date) -> int:
    """Aggregate `event_date` and replace its `account_daily` partition; returns the rows written."""
    preconditions.check_aggregate(settings, event_date)
    requests = engine.read_partition(settings, "requests", event_date, list(BRONZE_INPUTS))
    if not engine.has_rows(requests):
        raise MissingInputError(
            f"no bronze requests for {event_date.isoformat()} in "
            f"{settings.table_uri('requests')}; run `distillguard ingest --date "
            f"{event_date.isoformat()}` first"
        )
    daily = engine.aggregate_day(
        requests,
        engine.read_table(settings, "accounts"),
        engine.read_table(settings, "model_releases"),
        engine.read_table(settings, "asn_info"),
        event_date,
    )
    rows = engine.write_partition(daily, settings, "account_daily", event_date)
    print(f"aggregate {event_date.isoformat()}: {rows} account-day rows written to account_daily ({engine.key} engine)")
    return rows
