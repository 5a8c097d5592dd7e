"""The Spark family of the engine interface: one PySpark DataFrame code path for every Spark Connect engine."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features import spark_engine as compiled
from lake import catalog
from lake.config import Settings
from lake.engine import spark_session
from models.config import ScoringConfig
from models.scoring import ScoreResult


@dataclass
class SparkEngine:
    spark: SparkSession  # Spark Connect, or classic for the jvm-local baseline
    key: str = "embedded"

    def read_partition(
        self, settings: Settings, name: str, day: dt.date, columns: list[str] | None = None
    ) -> DataFrame:
        rows = catalog.read_partition(self.spark, settings, name, day)
        return rows.select(*columns) if columns else rows

    def read_window(self, settings: Settings, name: str, first_day: dt.date, last_day: dt.date) -> DataFrame:
        column = catalog.table(name).partition_by[0]
        return catalog.read(self.spark, settings, name).where(
            (F.col(column) >= F.lit(first_day)) & (F.col(column) <= F.lit(last_day))
        )

    def read_table(self, settings: Settings, name: str) -> DataFrame:
        return catalog.read(self.spark, settings, name)

    def from_arrow(self, table: pa.Table) -> DataFrame:
        if table.num_rows == 0:  # Spark cannot take an empty Arrow table; give it the schema as DDL instead
            ddl = ", ".join(f"{f.name} {catalog.spark_type(f.type)}" for f in table.schema)
            return self.spark.createDataFrame([], ddl)
        return self.spark.createDataFrame(table)

    def to_arrow(self, data: DataFrame) -> pa.Table:
        return data.toArrow()

    def has_rows(self, data: DataFrame) -> bool:
        return data.limit(1).count() > 0

    def dates_in(self, data: DataFrame, column: str) -> set[dt.date]:
        return {row[column] for row in data.select(column).distinct().collect()}

    def aggregate_day(
        self,
        requests: DataFrame,
        accounts: DataFrame,
        model_releases: DataFrame,
        asn_info: DataFrame,
        event_date: dt.date,
    ) -> DataFrame:
        return compiled.daily_aggregate(requests, accounts, model_releases, asn_info, event_date)

    def account_features(
        self,
        daily: DataFrame,
        accounts: DataFrame,
        model_releases: DataFrame,
        clusters: DataFrame,
        labels: DataFrame,
        feature_date: dt.date,
    ) -> DataFrame:
        return compiled.account_features(daily, accounts, model_releases, clusters, labels, feature_date)

    def score(self, settings: Settings, score_date: dt.date, config: ScoringConfig | None = None) -> ScoreResult:
        from models.scoring import score_day

        return score_day(self.spark, settings, score_date, config)

    def write_partition(self, data: DataFrame, settings: Settings, name: str, day: dt.date) -> int:
        catalog.write_partition(data, settings, name, day)
        return catalog.read_partition(self.spark, settings, name, day).count()


@contextlib.contextmanager
def spark_engine(settings: Settings) -> Iterator[SparkEngine]:
    with spark_session(settings) as spark:
        yield SparkEngine(spark, key=settings.engine)


if TYPE_CHECKING:  # the Spark family implements the engine interface (checked by mypy, costs nothing at run time)
    from compute.protocol import Engine

    _implements: type[Engine[DataFrame]] = SparkEngine
