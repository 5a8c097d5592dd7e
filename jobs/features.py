"""Job: aggregate one day, then build that day's `account_features` partition from `account_daily`."""

from __future__ import annotations

import datetime as dt


from features import registry
from features.spark_features import account_features, in_window
from jobs import aggregate
from lake import catalog
from lake.config import Settings


def run(spark, settings: Settings, feature_date: dt.date) -> int:
    """Aggregate `feature_date` into account_daily, then replace its account_features partition with
    1/7/28-day windows read from account_daily only; returns the accounts written."""
    aggregate.run(spark, settings, feature_date)
    longest = max(registry.WINDOWS)
    daily = catalog.read(spark, settings, "account_daily").where(in_window(feature_date, longest))
    features = account_features(
        daily,
        catalog.read(spark, settings, "accounts"),
        catalog.read(spark, settings, "model_releases"),
        feature_date,
    )
    catalog.write_partition(features, settings, "account_features", feature_date)
    rows = catalog.read_partition(spark, settings, "account_features", feature_date).count()
    # windows silently shrink when earlier nights were never aggregated, so say how much history there was
    days_present = daily.select("event_date").distinct().count()
    print(f"features {feature_date.isoformat()}: {rows} accounts written to account_features "
          f"({registry.feature_set_version()}; {days_present} of {longest} window days present in account_daily)")
    return rows
