"""Job: one day's `account_features` partition from `account_daily` (1/7/28-day windows), the account registry
and the day's `account_clusters`, on any engine. Run `aggregate` and `cluster` for the day first; this job refuses
a day whose daily partition or clusters are missing."""

from __future__ import annotations

import datetime as dt

from compute import Data, Engine
from features import registry
from jobs import preconditions
from lake import catalog
from lake.config import Settings
from lake.errors import MissingInputError


def window_start(feature_date: dt.date) -> dt.date:
    """First day of the longest window (feature_date - 28, feature_date]."""
    return feature_date - dt.timedelta(days=max(registry.WINDOWS) - 1)


def run(engine: Engine[Data], settings: Settings, feature_date: dt.date) -> int:
    """Replace feature_date's account_features partition; returns the accounts written."""
    preconditions.check_features(settings, feature_date)
    day = feature_date.isoformat()
    if not catalog.exists(settings, "account_daily"):
        raise MissingInputError(
            f"account_daily does not exist in {settings.lake_root}; run `distillguard aggregate --date {day}` first"
        )
    daily = engine.read_window(settings, "account_daily", window_start(feature_date), feature_date)
    days_present = engine.dates_in(daily, "event_date")
    if feature_date not in days_present:
        raise MissingInputError(
            f"account_daily has no rows for {day} in {settings.table_uri('account_daily')}; "
            f"run `distillguard aggregate --date {day}` first"
        )
    if not catalog.exists(settings, "account_clusters"):
        raise MissingInputError(
            f"account_clusters does not exist in {settings.lake_root}; run `distillguard cluster "
            f"--date {day}` first (features read the day's clusters)"
        )
    clusters = engine.read_window(settings, "account_clusters", feature_date, feature_date)
    # decisions taken by the end of the day feed the cluster features; none yet is a valid state of a new lake
    labels = (
        engine.read_table(settings, "enforcement_labels")
        if catalog.exists(settings, "enforcement_labels")
        else engine.from_arrow(catalog.table("enforcement_labels").schema.empty_table())
    )
    features = engine.account_features(
        daily,
        engine.read_table(settings, "accounts"),
        engine.read_table(settings, "model_releases"),
        clusters,
        labels,
        feature_date,
    )
    rows = engine.write_partition(features, settings, "account_features", feature_date)
    # windows silently shrink when earlier nights were never aggregated, so say how much history there was
    print(
        f"features {day}: {rows} accounts written to account_features ({registry.feature_set_version()}; "
        f"{len(days_present)} of {max(registry.WINDOWS)} window days present in account_daily; "
        f"{engine.key} engine)"
    )
    return rows
