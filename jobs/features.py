"""Job: one day's `account_features` partition (1/7/28-day windows) from `account_daily` alone, on Spark or a
frame engine. Run `aggregate` for the day first; this job refuses a day whose daily partition is missing."""

from __future__ import annotations

import datetime as dt

from jobs import preconditions
from lake.errors import MissingInputError
from features import registry
from lake import catalog
from lake.config import Settings
from lake.frames import FrameEngine


def _window_start(feature_date: dt.date) -> dt.date:
    """First day of the longest window (feature_date - 28, feature_date]."""
    return feature_date - dt.timedelta(days=max(registry.WINDOWS) - 1)


def _run_spark(spark, settings: Settings, feature_date: dt.date) -> tuple[int, int]:
    from pyspark.sql import functions as F

    from features.spark_features import account_features, in_window

    daily = catalog.read(spark, settings, "account_daily").where(in_window(feature_date, max(registry.WINDOWS)))
    if daily.where(F.col("event_date") == F.lit(feature_date)).limit(1).count() == 0:
        raise _no_daily(settings, feature_date)
    features = account_features(daily, catalog.read(spark, settings, "accounts"),
                                catalog.read(spark, settings, "model_releases"), feature_date)
    catalog.write_partition(features, settings, "account_features", feature_date)
    rows = catalog.read_partition(spark, settings, "account_features", feature_date).count()
    return rows, daily.select("event_date").distinct().count()


def _run_frames(engine: FrameEngine, settings: Settings, feature_date: dt.date) -> tuple[int, int]:
    import pyarrow.compute as pc

    from features.frame_features import account_features
    from lake import frames

    daily = frames.read_table(settings, "account_daily", filters=[
        ("event_date", ">=", _window_start(feature_date)),
        ("event_date", "<=", feature_date)])
    days = set(pc.unique(daily.column("event_date")).to_pylist())
    if feature_date not in days:
        raise _no_daily(settings, feature_date)
    features = account_features(engine, daily, frames.read_table(settings, "accounts"),
                                frames.read_table(settings, "model_releases"), feature_date)
    frames.write_partition(settings, "account_features", features, feature_date)
    engine.note_device_usage()
    return features.num_rows, len(days)


def _no_daily(settings: Settings, feature_date: dt.date) -> MissingInputError:
    return MissingInputError(f"account_daily has no rows for {feature_date.isoformat()} in "
                      f"{settings.table_uri('account_daily')}; run `distillguard aggregate --date "
                      f"{feature_date.isoformat()}` first")


def run(engine, settings: Settings, feature_date: dt.date) -> int:
    """Replace feature_date's account_features partition; returns the accounts written.
    `engine` is a SparkSession or a FrameEngine (lake/engine.py compute_engine)."""
    preconditions.check_features(settings, feature_date)
    if not catalog.exists(settings, "account_daily"):
        raise _no_daily(settings, feature_date)
    if isinstance(engine, FrameEngine):
        rows, days_present = _run_frames(engine, settings, feature_date)
    else:
        rows, days_present = _run_spark(engine, settings, feature_date)
    # windows silently shrink when earlier nights were never aggregated, so say how much history there was
    print(f"features {feature_date.isoformat()}: {rows} accounts written to account_features "
          f"({registry.feature_set_version()}; {days_present} of {max(registry.WINDOWS)} window days present in "
          f"account_daily; {settings.engine} engine)")
    return rows
