"""The engine interface as a Protocol: what a job may ask of an engine (compute/__init__.py opens one; compute/spark.py
and compute/frames.py implement it)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Protocol, TypeVar

from lake.config import Settings

if TYPE_CHECKING:
    import pyarrow as pa

    from models.config import ScoringConfig
    from models.scoring import ScoreResult

# The engine's own form of a table: a Spark DataFrame for the Spark family; for the frame family, Arrow tables and
# lazy handles on a Delta table's Parquet files (lake/delta_files.PartitionFiles). Jobs pass it from one engine call
# to the next and never look inside, so a job typed `Engine[Data]` cannot hand one engine's data to another.
Data = TypeVar("Data")


class Engine(Protocol[Data]):
    """What a job may ask of an engine. compute/spark.py and compute/frames.py implement it; open_engine picks one."""

    @property
    def key(self) -> str:
        """The engine key it was opened with (lake/config.py ENGINE_KEYS)."""
        ...

    def read_partition(self, settings: Settings, name: str, day: dt.date, columns: list[str] | None = None) -> Data:
        """One date partition of a table, in the engine's own form (possibly lazy)."""
        ...

    def read_window(self, settings: Settings, name: str, first_day: dt.date, last_day: dt.date) -> Data:
        """The rows of a date-partitioned table with first_day <= date <= last_day."""
        ...

    def read_table(self, settings: Settings, name: str) -> Data:
        """A whole (reference) table."""
        ...

    def from_arrow(self, table: pa.Table) -> Data:
        """An Arrow table in the engine's own form (small inputs: reference tables, test fixtures)."""
        ...

    def to_arrow(self, data: Data) -> pa.Table:
        """The engine's result as an Arrow table (small results, or reading back in tests)."""
        ...

    def has_rows(self, data: Data) -> bool:
        """Whether what a read_* call returned holds at least one row."""
        ...

    def dates_in(self, data: Data, column: str) -> set[dt.date]:
        """The distinct dates of `column` (for reads that are small, such as a window of account_daily dates)."""
        ...

    def aggregate_day(
        self, requests: Data, accounts: Data, model_releases: Data, asn_info: Data, event_date: dt.date
    ) -> Data:
        """One day of bronze requests -> account_daily rows."""
        ...

    def account_features(
        self, daily: Data, accounts: Data, model_releases: Data, clusters: Data, labels: Data, feature_date: dt.date
    ) -> Data:
        """account_daily windows + registry + the day's clusters + decisions so far -> account_features rows."""
        ...

    def score(self, settings: Settings, score_date: dt.date, config: ScoringConfig | None = None) -> ScoreResult:
        """The champion over one day's features -> account_risk and cluster_risk."""
        ...

    def write_partition(self, data: Data, settings: Settings, name: str, day: dt.date) -> int:
        """Replace one date partition in one Delta commit; returns the rows it holds afterwards."""
        ...
