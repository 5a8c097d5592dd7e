"""Daily aggregation + account features over a lake's Parquet files: the stage both Spark engines run.

Classic JVM PySpark cannot read or write Delta here (delta-spark's jars come from Maven, which this
environment cannot reach), so to compare Sail with JVM Spark on identical work, both run this module:

  * inputs are the *active* Parquet files of the Delta tables, listed from the Delta log by delta-rs.
    Delta keeps partition values in the log, not in the files, so a day's files are read and the
    day's event_date is added as a literal date column, which is what a Delta reader does with the
    log's partitionValues. (Not `option("basePath", root)` with partition discovery from the
    `event_date=...` directory names: JVM Spark 4.0 returns event_date as a date that way, but Sail
    0.7 does no partition discovery on a list of files and fails with "event_date is missing from
    the schema". The literal column gives both engines identical input.);
  * per day: `features.spark_engine.daily_aggregate` -> Parquet `<out>/account_daily/<day>/`, then
    `features.spark_engine.account_features` over the window's aggregated days ->
    `<out>/account_features/<day>/` -- the same transforms, in the same order, as jobs/aggregate.py and
    jobs/features.py, with Parquet instead of Delta on both ends.

Outputs go to a scratch directory, one directory per day, each written with mode("overwrite"), which
every engine supports (Sail 0.7 has no dynamic partition overwrite).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from features import registry
from features.spark_engine import account_features, daily_aggregate, in_window
from lake import catalog

PARTITION_COLUMN = "event_date"
REFERENCE_TABLES = ("accounts", "model_releases", "asn_info")


def active_files(table_uri: str, event_date: dt.date | None = None, column: str = PARTITION_COLUMN) -> list[str]:
    """The Parquet files of the table's current Delta version (of one date partition if given); none when the
    table does not exist."""
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(table_uri):
        return []
    table = DeltaTable(table_uri)
    if event_date is None:
        return sorted(table.file_uris())
    return sorted(table.file_uris(file_pruning_predicate=[(column, "=", event_date.isoformat())]))


def read_table_files(spark, table_uri: str, event_date: dt.date | None = None, column: str = PARTITION_COLUMN):
    """An unpartitioned Delta table, or one date partition of a partitioned one, read as plain Parquet; a
    partition read gets its date back as a date column."""
    from pyspark.sql import functions as F

    files = active_files(table_uri, event_date, column)
    if not files:
        where = f" for {column}={event_date.isoformat()}" if event_date else ""
        raise FileNotFoundError(f"no active Parquet files in {table_uri}{where}")
    frame = spark.read.parquet(*files)
    if event_date is None:
        return frame
    return frame.withColumn(column, F.lit(event_date))


def _day_dir(out_dir: Path, table_name: str, day: dt.date) -> str:
    return str(out_dir / table_name / day.isoformat())


def run(spark, lake_root: str, dates: list[dt.date], out_dir: str | Path) -> dict:
    """Aggregate then featurize each day of `dates` (in order); returns rows written and seconds per phase."""
    out_dir = Path(out_dir)
    lake_root = lake_root.rstrip("/")
    reference = {name: read_table_files(spark, f"{lake_root}/{name}") for name in REFERENCE_TABLES}
    longest = max(registry.WINDOWS)
    written_daily: list[dt.date] = []
    per_day = []
    for day in dates:
        began = time.perf_counter()
        requests = read_table_files(spark, f"{lake_root}/requests", day)
        daily = daily_aggregate(
            requests, reference["accounts"], reference["model_releases"], reference["asn_info"], day
        )
        daily.write.mode("overwrite").parquet(_day_dir(out_dir, "account_daily", day))
        written_daily.append(day)
        aggregated = time.perf_counter()

        # the window: days this stage aggregated, and before them the lake's own account_daily (the history a
        # benchmark lake is prepared with)
        window = [day - dt.timedelta(days=i) for i in range(longest)]
        parts = [spark.read.parquet(_day_dir(out_dir, "account_daily", d)) for d in window if d in written_daily]
        parts += [
            read_table_files(spark, f"{lake_root}/account_daily", d)
            for d in window
            if d not in written_daily and active_files(f"{lake_root}/account_daily", d)
        ]
        history = parts[0]
        for part in parts[1:]:
            history = history.unionByName(part)
        # the day's link graph and the decisions, when the lake has them, as the real features job reads them
        clusters = (
            read_table_files(spark, f"{lake_root}/account_clusters", day, "feature_date")
            if active_files(f"{lake_root}/account_clusters", day, "feature_date")
            else spark.createDataFrame([], catalog.spark_ddl("account_clusters"))
        )
        labels = (
            read_table_files(spark, f"{lake_root}/enforcement_labels")
            if active_files(f"{lake_root}/enforcement_labels")
            else spark.createDataFrame(
                [],
                "account_id string, label string, decided_at timestamp, campaign_id string, source string, note string",
            )
        )
        features = account_features(
            history.where(in_window(day, longest)),
            reference["accounts"],
            reference["model_releases"],
            clusters,
            labels,
            day,
        )
        features.write.mode("overwrite").parquet(_day_dir(out_dir, "account_features", day))
        featurized = time.perf_counter()
        per_day.append(
            {"date": day.isoformat(), "aggregate_s": aggregated - began, "features_s": featurized - aggregated}
        )
    # Row counts after the timed work, from the written files, so they cost the stage nothing.
    for entry, day in zip(per_day, dates):
        entry["account_daily_rows"] = spark.read.parquet(_day_dir(out_dir, "account_daily", day)).count()
        entry["account_features_rows"] = spark.read.parquet(_day_dir(out_dir, "account_features", day)).count()
    return {
        "days": per_day,
        "aggregate_s": sum(d["aggregate_s"] for d in per_day),
        "features_s": sum(d["features_s"] for d in per_day),
    }
