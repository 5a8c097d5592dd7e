"""The frame family of the engine interface: cuDF on a GPU, pandas on CPU, one code path
(features/frame_*.py). delta-rs lists the files of the aggregate's and the features' inputs and commits what
is written; the frame library reads and writes those Parquet files itself. Scoring reads its day through delta-rs
into Arrow, the exchange format with the rest of the project."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from features import frame_daily, frame_windows
from lake import delta_files, delta_writes, frame_engines
from lake.config import Settings
from models.config import ScoringConfig
from models.scoring import ScoreResult

# What the frame family passes between calls: Arrow tables, and lazy handles on Parquet files that the frame library
# reads in budget-sized batches.
FrameData: TypeAlias = "delta_files.PartitionFiles | pa.Table"


@dataclass
class FrameEngines:
    frames: frame_engines.FrameEngine

    @property
    def key(self) -> str:
        return self.frames.name

    def read_partition(
        self, settings: Settings, name: str, day: dt.date, columns: list[str] | None = None
    ) -> delta_files.PartitionFiles:
        """A lazy handle on the partition's Parquet files: the aggregate reads them in budget-sized batches."""
        return delta_files.partition_files(settings, name, day, columns)

    def read_window(
        self, settings: Settings, name: str, first_day: dt.date, last_day: dt.date
    ) -> delta_files.PartitionFiles:
        """A lazy handle on the window's Parquet files: the features step reads them through the frame library
        in budget-sized batches."""
        return delta_files.table_files(settings, name, first_day, last_day)

    def read_table(self, settings: Settings, name: str) -> delta_files.PartitionFiles:
        """A lazy handle on a reference table's Parquet files: the frame library reads them (on the GPU for
        cuDF) where a step needs them, as it reads the window."""
        return delta_files.table_files(settings, name)

    def from_arrow(self, table: pa.Table) -> pa.Table:
        return table

    def to_arrow(self, data: pa.Table) -> pa.Table:
        return data

    def has_rows(self, data: FrameData) -> bool:
        return (data.rows if isinstance(data, delta_files.PartitionFiles) else data.num_rows) > 0

    def dates_in(self, data: FrameData, column: str) -> set[dt.date]:
        if isinstance(data, delta_files.PartitionFiles):  # the partition values of files holding rows: nothing is read
            if column != data.partition_column:
                raise ValueError(f"{data.table} is partitioned by {data.partition_column}, not {column}")
            return {value for value, rows in zip(data.partition_values, data.file_rows) if rows and value is not None}
        return set(pc.unique(data.column(column)).to_pylist())

    def aggregate_day(
        self,
        requests: FrameData,
        accounts: FrameData,
        model_releases: FrameData,
        asn_info: FrameData,
        event_date: dt.date,
    ) -> pa.Table:
        """From the partition's files in budget-sized batches, or from rows already in memory."""
        if isinstance(requests, pa.Table):
            day = requests.filter(pc.equal(requests.column("event_date"), pa.scalar(event_date, pa.date32())))
            return frame_daily.daily_aggregate(
                self.frames, self.frames.from_arrow(day), accounts, model_releases, asn_info, event_date
            )
        return frame_daily.aggregate_partition(self.frames, requests, accounts, model_releases, asn_info, event_date)

    def account_features(
        self,
        daily: FrameData,
        accounts: FrameData,
        model_releases: FrameData,
        clusters: FrameData,
        labels: FrameData,
        feature_date: dt.date,
    ) -> pa.Table:
        features = frame_windows.account_features(
            self.frames, daily, accounts, model_releases, clusters, labels, feature_date
        )
        self.frames.note_device_usage()
        return features

    def score(self, settings: Settings, score_date: dt.date, config: ScoringConfig | None = None) -> ScoreResult:
        from models.frame_scoring import score_day

        return score_day(self.frames, settings, score_date, config)

    def write_partition(self, data: FrameData, settings: Settings, name: str, day: dt.date) -> int:
        return delta_writes.write_partition(self.frames, settings, name, data, day)


@contextlib.contextmanager
def frame_engine(settings: Settings) -> Iterator[FrameEngines]:
    with frame_engines.frame_engine(settings) as engine:
        yield FrameEngines(engine)


if TYPE_CHECKING:  # the frame family implements the engine interface (checked by mypy, costs nothing at run time)
    from compute.protocol import Engine

    _implements: type[Engine[FrameData]] = FrameEngines
