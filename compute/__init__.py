"""The engine interface: every job that can run on more than one engine talks to it through `Engine`.

Two families implement it, registered by the engine key of `--engine` / DG_ENGINE (lake/config.py):
  Spark engines  "embedded" (Sail in-process), "remote" (any Spark Connect URL), "jvm-local" (benchmarks only):
                 compute/spark.py over one PySpark DataFrame code path (features/spark_engine.py);
  frame engines  "cudf" (RAPIDS on a GPU) and "pandas" (the same code on CPU): compute/frames.py over
                 features/frame_*.py.
Which steps a frame engine runs is declared once, in jobs/steps.py; the others run on the Spark engine.
Jobs never ask which engine they hold.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from lake.config import FRAME_ENGINE_KEYS, Settings

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


def _open_spark(settings: Settings) -> contextlib.AbstractContextManager[Engine[Any]]:
    from compute.spark import spark_engine

    return spark_engine(settings)


def _open_frames(settings: Settings) -> contextlib.AbstractContextManager[Engine[Any]]:
    from compute.frames import frame_engine

    return frame_engine(settings)


@contextlib.contextmanager
def open_engine(settings: Settings, frame_capable: bool = True) -> Iterator[Engine[Any]]:
    """The engine a step runs on: the configured frame engine when there is one and the step supports it
    (jobs/steps.py), otherwise the configured Spark engine."""
    opener = _open_frames if frame_capable and settings.engine in FRAME_ENGINE_KEYS else _open_spark
    with opener(settings) as engine:
        yield engine
