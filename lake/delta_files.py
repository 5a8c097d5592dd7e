"""Reading Delta tables for the frame engines: delta-rs gives the file list and the protocol check, then the frame
library reads the Parquet files itself (cuDF decodes on the GPU).

Tables whose protocol needs a reader feature we do not implement (deletion vectors, column mapping, ...) are
refused with a clear message instead of being read wrongly.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import os
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from lake import catalog
from lake.config import Settings
from lake.errors import MissingTableError

log = logging.getLogger(__name__)

# Reader features whose files we read correctly as plain Parquet. Anything else (deletionVectors,
# columnMapping, typeWidening, ...) changes what the files mean and is refused.
SUPPORTED_READER_FEATURES = frozenset({"timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"})
MAX_READER_VERSION = 3


class UnsupportedTableError(ValueError):
    """A Delta table uses a protocol feature the frame engines cannot read correctly."""


def check_readable(table_uri: str) -> None:
    """Refuse tables whose protocol needs reader support the frame engines do not have."""
    from deltalake import DeltaTable

    table = DeltaTable(table_uri)
    protocol = table.protocol()
    unsupported = sorted(set(protocol.reader_features or ()) - SUPPORTED_READER_FEATURES)
    if protocol.min_reader_version > MAX_READER_VERSION or unsupported:
        raise UnsupportedTableError(
            f"{table_uri}: Delta reader version {protocol.min_reader_version} with reader features "
            f"{unsupported or 'none'} is not supported by the frame engines (supported: reader version <= "
            f"{MAX_READER_VERSION}, features {sorted(SUPPORTED_READER_FEATURES)}); run this step on Spark"
        )
    mapping = (table.metadata().configuration or {}).get("delta.columnMapping.mode", "none")
    if mapping != "none":
        raise UnsupportedTableError(
            f"{table_uri}: column mapping mode {mapping!r} is not supported by the frame "
            "engines (Parquet column names differ from the table's); run this step on Spark"
        )


@dataclass(frozen=True)
class PartitionFiles:
    """The active Parquet files of some date partitions of a Delta table (of all of an unpartitioned one), with
    what sizing and reading them needs from their footers and from the Delta log."""

    table: str
    paths: tuple[str, ...]
    file_bytes: tuple[int, ...]  # uncompressed bytes of the wanted columns, per file
    file_rows: tuple[int, ...]
    partition_column: str | None  # None: the table is not partitioned
    partition_values: tuple[dt.date | None, ...]  # per file: the partition column is not stored in the file

    @property
    def rows(self) -> int:
        return sum(self.file_rows)

    @property
    def total_bytes(self) -> int:
        return sum(self.file_bytes)

    def subset(self, indices: list[int]) -> PartitionFiles:
        def pick(values: tuple) -> tuple:
            return tuple(values[i] for i in indices)

        return PartitionFiles(
            self.table,
            pick(self.paths),
            pick(self.file_bytes),
            pick(self.file_rows),
            self.partition_column,
            pick(self.partition_values),
        )


def _readable_uri(settings: Settings, name: str) -> str:
    """The table's URI once it exists and passes the protocol check."""
    uri = settings.table_uri(name)
    if not catalog.exists(settings, name):
        raise MissingTableError(f"Delta table {name!r} not found at {uri}; run the job that produces it first")
    check_readable(uri)
    return uri


def table_files(
    settings: Settings,
    name: str,
    first_day: dt.date | None = None,
    last_day: dt.date | None = None,
    columns: list[str] | None = None,
) -> PartitionFiles:
    """The active Parquet files of the date partitions first_day..last_day (of every file when the table is not
    partitioned, and then no dates are given), after the protocol check (files of a table with deletion vectors or
    column mapping do not mean what they hold), with each file's partition value and row count and the
    uncompressed size of `columns` (all columns when None) from the Parquet footers, which is what sizing the
    buckets needs."""
    import urllib.parse

    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    uri = _readable_uri(settings, name)
    partition_by = catalog.table(name).partition_by
    column = partition_by[0] if partition_by else None
    if (column is None) != (first_day is None) or (first_day is None) != (last_day is None):
        raise ValueError(
            f"{name}: a date range is needed for a partitioned table and refused for an unpartitioned "
            f"one (partitioned by {list(partition_by)}, range {first_day}..{last_day})"
        )
    table = DeltaTable(uri)
    actions = pa.table(table.get_add_actions(flatten=True))
    relatives = actions.column("path").to_pylist()
    values = actions.column(f"partition.{column}").to_pylist() if column else [None] * len(relatives)
    root = table.table_uri.rstrip("/")
    wanted = set(columns) if columns else None
    chosen: list[tuple[str, dt.date | None]] = []
    for relative, value in zip(relatives, values):
        if column is None or (value is not None and first_day <= value <= last_day):
            # the log holds paths percent-encoded once more than the file names on storage
            path = urllib.parse.unquote(relative)
            full = path if "://" in path or path.startswith("/") else f"{root}/{path}"
            chosen.append((local_path(full) or full, value))
    chosen.sort(key=lambda c: c[0])
    file_bytes, file_rows = [], []
    for path, _ in chosen:
        meta = pq.ParquetFile(path).metadata
        file_rows.append(meta.num_rows)
        file_bytes.append(
            sum(
                meta.row_group(g).column(c).total_uncompressed_size
                for g in range(meta.num_row_groups)
                for c in range(meta.row_group(g).num_columns)
                if wanted is None or meta.row_group(g).column(c).path_in_schema.split(".")[0] in wanted
            )
        )
    return PartitionFiles(
        table=name,
        paths=tuple(p for p, _ in chosen),
        file_bytes=tuple(file_bytes),
        file_rows=tuple(file_rows),
        partition_column=column,
        partition_values=tuple(v for _, v in chosen),
    )


def partition_files(
    settings: Settings, name: str, partition_value: dt.date, columns: list[str] | None = None
) -> PartitionFiles:
    """The active Parquet files of one date partition (see `table_files`)."""
    return table_files(settings, name, partition_value, partition_value, columns)


def file_batches(files: PartitionFiles, max_bytes: int) -> list[PartitionFiles]:
    """Group files into reads of at most `max_bytes` uncompressed (a single larger file is its own batch)."""
    batches: list[list[int]] = []
    current: list[int] = []
    current_bytes = 0
    for index, size in enumerate(files.file_bytes):
        if current and current_bytes + size > max_bytes:
            batches.append(current)
            current, current_bytes = [], 0
        current.append(index)
        current_bytes += size
    if current:
        batches.append(current)
    return [files.subset(batch) for batch in batches]


def bucket_count(estimated_bytes: int, budget_bytes: int) -> int:
    return max(1, math.ceil(estimated_bytes / max(budget_bytes, 1)))


def read_table(settings: Settings, name: str, filters=None) -> pa.Table:
    """A (small) table, or the rows `filters` keep, as Arrow after the protocol check."""
    _readable_uri(settings, name)
    return catalog.read_arrow(settings, name, filters=filters)


def dates_as_timestamps(table: pa.Table, column: str) -> pa.Table:
    """A date column as timestamp[s]: the form `FrameEngine.read_files` gives a date partition column in (cuDF has
    no day-resolution type)."""
    index = table.schema.get_field_index(column)
    return table.set_column(index, column, table.column(column).cast(pa.timestamp("s")))


def micros_as_timestamps(table: pa.Table, columns: tuple[str, ...]) -> pa.Table:
    for name in columns:
        index = table.schema.get_field_index(name)
        micros = pc.cast(table.column(name), pa.int64())
        table = table.set_column(index, name, pc.cast(micros, pa.timestamp("us", tz="UTC")))
    return table


def nan_to_null(table: pa.Table) -> pa.Table:
    """Float NaN -> null. Spark writes null for an undefined ratio; pandas produces NaN for the same thing."""
    for index, column in enumerate(table.schema):
        if pa.types.is_floating(column.type):
            values = table.column(index)
            table = table.set_column(
                index, column.name, pc.if_else(pc.is_nan(values), pa.nulls(1, column.type)[0], values)
            )
    return table


def arrow_backed_lists(arrow_type: pa.DataType):
    """pandas' type for an Arrow column in `FrameEngine.from_arrow`: lists stay Arrow-backed, the rest default."""
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        import pandas

        return pandas.ArrowDtype(arrow_type)
    return None


PARQUET_COMPRESSION = "zstd"
EPOCH_DATE = dt.date(1970, 1, 1)


def local_path(uri: str) -> str | None:
    if uri.startswith("file://"):
        return uri[len("file://") :]
    return None if "://" in uri else uri


def filesystem(uri: str):
    from pyarrow import fs

    return fs.FileSystem.from_uri(uri)[0]


def remove_file(path: str) -> None:
    local = local_path(path)
    with contextlib.suppress(OSError, FileNotFoundError):
        if local:
            os.remove(local)
        else:
            filesystem(path).delete_file(path.split("://", 1)[1])
