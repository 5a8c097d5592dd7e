"""The frame-module handle: the one place that knows whether frame code runs on cuDF (GPU) or pandas (CPU).

features/frame_*.py and models/frame_scoring.py are written once against the API cuDF and pandas share
(groupby/agg, merge, sort_values, shift, where, str.contains, explode, ...). They get their module from
`FrameEngine.xp` and call back into this module only where the two libraries differ: reading Parquet,
Arrow conversion, 64-bit hashing and per-key sorted sets.

Choosing the engine is explicit (`--engine cudf` / `--engine pandas`, DG_ENGINE). `cudf` without cuDF or
without a visible CUDA GPU is an error, never a quiet CPU fallback: a GPU node that silently ran pandas
would miss its nightly window without anyone knowing why.

Delta access goes through delta-rs for the file list and the protocol check, then the frame library reads
the Parquet files itself (cuDF decodes on the GPU). Tables whose protocol needs a reader feature we do not
implement (deletion vectors, column mapping, ...) are refused with a clear message instead of being read
wrongly.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType

import pyarrow as pa
import pyarrow.compute as pc

from lake import catalog
from lake.config import Settings
from lake.errors import EngineUnavailableError, MissingTableError

log = logging.getLogger(__name__)

# Reader features whose files we read correctly as plain Parquet. Anything else (deletionVectors,
# columnMapping, typeWidening, ...) changes what the files mean and is refused.
SUPPORTED_READER_FEATURES = frozenset({"timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"})
MAX_READER_VERSION = 3
# Share of free GPU memory the engine takes as its budget when none is configured.
DEFAULT_BUDGET_SHARE_OF_FREE = 0.8


class UnsupportedTableError(ValueError):
    """A Delta table uses a protocol feature the frame engines cannot read correctly."""


@dataclass
class FrameEngine:
    """A frame library plus the budget the jobs must stay within."""

    name: str  # "cudf" | "pandas"
    xp: ModuleType  # the cudf or pandas module
    memory_budget_bytes: int  # what one processing step may hold in (GPU) memory at once
    device: str  # e.g. "cuda:0 NVIDIA H100 80GB HBM3" or "cpu"
    _peak_device_bytes: int | None = field(default=None, repr=False)

    @property
    def on_gpu(self) -> bool:
        return self.name == "cudf"

    # --- where cuDF and pandas differ ---------------------------------------------------------------

    def from_arrow(self, table: pa.Table):
        if self.on_gpu:
            return self.xp.DataFrame.from_arrow(table)
        # list columns stay columnar (pandas' Arrow-backed list dtype): as one Python object per row they made
        # the window roll-up about 1.6x slower when it was last measured, and explode() works on either
        return table.to_pandas(types_mapper=_arrow_backed_lists)

    def to_arrow(self, frame) -> pa.Table:
        if self.on_gpu:
            return frame.to_arrow(preserve_index=False)
        return pa.Table.from_pandas(frame, preserve_index=False)

    def read_files(self, files: PartitionFiles, columns: list[str]):
        """`columns` of a Delta table's files (from `table_files`) as one frame; cuDF decodes them on the GPU in
        one read_parquet. A partitioned table's Parquet files do not hold the partition column: when `columns`
        names it, it is added back from each file's partition value (as datetime64[s]). An unpartitioned (reference)
        table is read the same way, all of its files."""
        if not files.paths:  # no partition in range: no rows, but the columns and types the table declares
            empty = catalog.table(files.table).schema.empty_table().select(columns)
            if files.partition_column in columns:
                empty = dates_as_timestamps(empty, files.partition_column)
            return self.from_arrow(empty)
        stored = [c for c in columns if c != files.partition_column]
        if self.on_gpu:
            frame = self.xp.read_parquet(list(files.paths), columns=stored)
        else:
            import pyarrow.parquet as pq

            # promote: files of one table written by different writers (Sail, delta-rs) differ in nullability
            frame = self.from_arrow(
                pa.concat_tables([pq.read_table(p, columns=stored) for p in files.paths], promote_options="default")
            )
        if files.partition_column in columns:
            seconds = [(value - EPOCH_DATE).days * 86_400 for value in files.partition_values]
            values = self.xp.Series(seconds, dtype="int64").repeat(list(files.file_rows)).reset_index(drop=True)
            frame[files.partition_column] = values.astype("datetime64[s]")
        return frame[columns]

    def hash64(self, series):
        """A deterministic 64-bit hash per value (null-safe). Used for bucketing and for counting distinct
        normalized prompts without carrying the text; values differ between engines, which is fine because
        neither is ever stored."""
        if self.on_gpu:
            return series.hash_values(method="xxhash64")
        # nullable UInt64 so a later .where() leaves nulls instead of turning the hashes into floats
        return self.xp.util.hash_pandas_object(series, index=False).astype("UInt64")

    def account_bucket(self, account_ids, buckets: int):
        """The account-hash bucket of each row: the one rule every bucketed step splits accounts by."""
        return self.hash64(account_ids) % buckets

    def sorted_sets(self, frame, key: str, value: str):
        """One row per `key`: the sorted distinct non-null `value`s as a list column named `value`."""
        pairs = frame[[key, value]].dropna().drop_duplicates().sort_values([key, value])
        grouped = pairs.groupby(key, sort=True).agg({value: list}).reset_index()
        if self.on_gpu:  # cuDF does not promise to keep the input order inside a group
            grouped[value] = grouped[value].list.sort_values()
        return grouped

    @property
    def array_module(self) -> ModuleType:
        """numpy, or cupy for cuDF: the arrays a frame's columns are built from."""
        if self.on_gpu:
            import cupy

            return cupy
        import numpy

        return numpy

    def factorize(self, series):
        """(int32 codes aligned with `series`, its distinct values as a Series in code order). The values come out
        sorted on both libraries, so results built on codes are in key order without a sort of their own."""
        categorical = series.astype("category")
        values = categorical.cat.categories.to_series().reset_index(drop=True)
        return categorical.cat.codes.astype("int32"), values

    def values(self, series):
        """A column without nulls as a numpy (pandas) or cupy (cuDF) array."""
        return series.values if self.on_gpu else series.to_numpy()

    def dense(self, series, length: int, fill):
        """An array of `length` holding `series`' values at the positions its (integer code) index names and
        `fill` elsewhere: how per-key results line up with all keys without a join."""
        xp = self.array_module
        missing_is_null = fill is None or (isinstance(fill, float) and math.isnan(fill))
        if missing_is_null:  # nulls, too, become NaN (and null again on the way to Arrow)
            series = series.astype("float64")
            values = series.to_cupy(na_value=xp.nan) if self.on_gpu else series.to_numpy(na_value=xp.nan)
        else:
            values = self.values(series)
        positions = self.values(series.index)
        out = xp.full(length, xp.nan if missing_is_null else fill, dtype="float64" if missing_is_null else values.dtype)
        out[positions] = values
        return out

    def write_parquet(self, data, path: str, schema: pa.Schema) -> int:
        """Write `data` (Arrow, or a frame of this library) as one Parquet file with `schema`'s columns, float
        NaN as null (Spark writes null for an undefined ratio); returns its rows. cuDF encodes on the GPU."""
        local = _local_path(path)
        if local:
            os.makedirs(os.path.dirname(local), exist_ok=True)
        if self.on_gpu:
            frame = (
                self.xp.DataFrame.from_arrow(data.select(schema.names).cast(schema))
                if isinstance(data, pa.Table)
                else data[schema.names]
            )
            frame = frame.nans_to_nulls()
            frame.to_parquet(path, compression=PARQUET_COMPRESSION.upper(), index=False)
            return len(frame)
        import pyarrow.parquet as pq

        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data[schema.names], preserve_index=False)
        table = nan_to_null(table.select(schema.names).cast(schema))
        if local:
            pq.write_table(table, local, compression=PARQUET_COMPRESSION)
        else:
            pq.write_table(
                table, path.split("://", 1)[1], compression=PARQUET_COMPRESSION, filesystem=_filesystem(path)
            )
        return table.num_rows

    def concat(self, frames: list):
        return self.xp.concat(frames, ignore_index=True)

    # --- memory accounting --------------------------------------------------------------------------

    def note_device_usage(self) -> None:
        """Record the RMM pool's high-water mark so far (cuDF only)."""
        if not self.on_gpu:
            return
        import rmm

        stats = rmm.statistics.get_statistics()
        if stats is not None:
            self._peak_device_bytes = max(self._peak_device_bytes or 0, int(stats.peak_bytes))

    def memory_report(self) -> dict:
        self.note_device_usage()
        return {
            "engine": self.name,
            "device": self.device,
            "budget_bytes": self.memory_budget_bytes,
            "peak_device_bytes": self._peak_device_bytes,
        }


# --- opening an engine ----------------------------------------------------------------------------------


def _gpu_name() -> str:
    import cupy

    count = cupy.cuda.runtime.getDeviceCount()
    if count < 1:
        raise EngineUnavailableError("engine 'cudf' needs a CUDA GPU, and none is visible")
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return f"cuda:0 {name}"


def use_kvikio_threads(threads: int) -> None:
    """How many threads KvikIO (cuDF's Parquet file reader) reads with; its default is 1. Called when the cuDF
    engine opens, before its first read. Not run here (no cuDF on CI): only the setting's parsing is tested."""
    # libkvikio reads the variable when it first initialises, which is on cuDF's first read in this process
    os.environ["KVIKIO_NTHREADS"] = str(threads)
    try:
        import kvikio.defaults
    except ImportError:  # cuDF without the kvikio Python package: the variable above is all there is
        return
    # and in case it is already initialised: newer KvikIO sets properties by name, older ones had a reset function
    if hasattr(kvikio.defaults, "set"):
        kvikio.defaults.set("num_threads", threads)
    else:
        kvikio.defaults.num_threads_reset(threads)
    log.info("KvikIO reads with %d threads", threads)


@contextlib.contextmanager
def _cudf_engine(settings: Settings) -> Iterator[FrameEngine]:
    try:
        import cudf
        import rmm
    except ImportError as exc:
        raise EngineUnavailableError(
            "engine 'cudf' needs RAPIDS cuDF (pip install 'distillguard[gpu]', or the offline wheelhouse in "
            f"README 'GPU nodes'); import failed: {exc}. Use --engine pandas to run the same code on CPU."
        ) from exc
    try:
        device = _gpu_name()
    except Exception as exc:  # no driver, no device: cupy raises its own runtime errors
        raise EngineUnavailableError(f"engine 'cudf' needs a visible CUDA GPU: {exc}") from exc
    import cupy

    free, _total = cupy.cuda.runtime.memGetInfo()
    budget = (
        int(settings.gpu_memory_budget_gb * 2**30)
        if settings.gpu_memory_budget_gb
        else int(free * DEFAULT_BUDGET_SHARE_OF_FREE)
    )
    if budget > free:
        raise EngineUnavailableError(
            f"gpu_memory_budget_gb={settings.gpu_memory_budget_gb} exceeds the GPU's free memory "
            f"({free / 2**30:.1f} GiB)"
        )
    use_kvikio_threads(settings.kvikio_thread_count)
    # A pool sized to the budget: allocations are cheap, and going over the budget fails loudly (OOM)
    # instead of slowing the whole node down.
    pool_bytes = budget - budget % 256
    rmm.reinitialize(pool_allocator=True, initial_pool_size=pool_bytes, maximum_pool_size=pool_bytes)
    rmm.statistics.enable_statistics()
    log.info("cuDF engine on %s with an RMM pool of %.1f GiB", device, pool_bytes / 2**30)
    yield FrameEngine(name="cudf", xp=cudf, memory_budget_bytes=pool_bytes, device=device)


@contextlib.contextmanager
def _pandas_engine(settings: Settings) -> Iterator[FrameEngine]:
    import pandas

    # For pandas the budget only sizes the processing buckets; host memory is what it bounds.
    budget = int((settings.gpu_memory_budget_gb or 4.0) * 2**30)
    yield FrameEngine(name="pandas", xp=pandas, memory_budget_bytes=budget, device="cpu")


FRAME_ENGINES = {"cudf": _cudf_engine, "pandas": _pandas_engine}


@contextlib.contextmanager
def frame_engine(settings: Settings) -> Iterator[FrameEngine]:
    if settings.engine not in FRAME_ENGINES:
        raise ValueError(f"{settings.engine!r} is not a frame engine; choose one of {', '.join(FRAME_ENGINES)}")
    with FRAME_ENGINES[settings.engine](settings) as engine:
        yield engine


# --- Delta access through delta-rs ----------------------------------------------------------------------


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
            chosen.append((_local_path(full) or full, value))
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


class AccountBuckets:
    """Rows gathered into account-hash buckets (`FrameEngine.account_bucket`) from any number of reads: every
    row of an account lands in the same bucket, so each bucket is processed on its own. With one bucket the
    pieces stay frames where they are; with more, each piece moves to host memory as Arrow so that only one
    bucket is on the device at a time."""

    def __init__(self, engine: FrameEngine, count: int):
        self.engine = engine
        self.count = count
        self._pieces: list[list] = [[] for _ in range(count)]

    def add(self, rows) -> None:
        if self.count == 1:
            self._pieces[0].append(rows)
            return
        bucket = self.engine.account_bucket(rows["account_id"], self.count)
        for b in range(self.count):
            self._pieces[b].append(self.engine.to_arrow(rows[bucket == b]))

    def take(self, bucket: int):
        """The bucket's rows as one frame, or None when no read held any; its pieces are released."""
        pieces, self._pieces[bucket] = self._pieces[bucket], []
        if not pieces:
            return None
        if self.count == 1:
            return pieces[0] if len(pieces) == 1 else self.engine.concat(pieces)
        # an empty piece from pandas can type an all-null column as null, or strings as large_string
        return self.engine.from_arrow(pa.concat_tables(pieces, promote_options="permissive"))


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


def _arrow_backed_lists(arrow_type: pa.DataType):
    """pandas' type for an Arrow column in `FrameEngine.from_arrow`: lists stay Arrow-backed, the rest default."""
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        import pandas

        return pandas.ArrowDtype(arrow_type)
    return None


PARQUET_COMPRESSION = "zstd"
EPOCH_DATE = dt.date(1970, 1, 1)


class InvalidOutputError(ValueError):
    """A Parquet file a frame engine wrote does not match the table it is meant for; nothing was committed."""


def write_partition(engine: FrameEngine, settings: Settings, name: str, data, partition_value: dt.date) -> int:
    """Replace one date partition in one Delta commit (the Spark engines' replaceWhere equivalent); returns
    the rows written.

    The frame library writes the Parquet file itself (cuDF encodes on the GPU) and delta-rs only commits it:
    `create_write_transaction` with a partition overwrite adds the file and removes the partition's old ones
    atomically. That call checks nothing about the file, so `_add_action` does: column types against the
    table (timestamps UTC-adjusted microseconds), row count, and null counts against the table's NOT NULL
    columns. The table's existing schema is passed back unchanged: one that differs even in nullability
    would add a metadata action to the commit.

    A table this creates is declared from the catalog; Sail 0.7 cannot later replaceWhere list columns of
    such a table, so pick one engine family per table rather than alternating nightly (README, "Engines")."""
    from deltalake import DeltaTable

    from lake.table_creation import retry_on_conflict

    decl = catalog.table(name)
    if len(decl.partition_by) != 1:
        raise ValueError(f"table {name} is not partitioned by a single date column")
    column = decl.partition_by[0]
    if not isinstance(partition_value, dt.date):
        raise TypeError(f"partition value must be a date, got {partition_value!r}")
    catalog.ensure_table(settings, name)
    uri = settings.table_uri(name).rstrip("/")
    relative = f"{column}={partition_value.isoformat()}/part-{uuid.uuid4().hex}-c000.{PARQUET_COMPRESSION}.parquet"
    path = f"{uri}/{relative}"
    file_columns = [f for f in decl.schema if f.name != column]
    try:
        rows = engine.write_parquet(data, path, pa.schema(file_columns))
        existing = DeltaTable(uri).schema()
        action = _add_action(path, relative, file_columns, existing, {column: partition_value.isoformat()}, rows)

        def commit() -> None:
            DeltaTable(uri).create_write_transaction(
                [action],
                mode="overwrite",
                schema=existing,
                partition_by=[column],
                partition_filters=[(column, "=", partition_value.isoformat())],
            )

        retry_on_conflict(commit, f"writing {name} partition {partition_value}")
    except BaseException:
        # a file no commit references is invisible to readers: remove it rather than leave litter (unless the
        # commit went through after all and only its answer was lost)
        if relative not in _committed_paths(uri):
            _remove_file(path)
        raise
    return rows


def _committed_paths(uri: str) -> set[str]:
    from deltalake import DeltaTable

    with contextlib.suppress(Exception):
        return {action["path"] for action in pa.table(DeltaTable(uri).get_add_actions(flatten=True)).to_pylist()}
    return set()


def _add_action(path: str, relative: str, expected: list[pa.Field], table_schema, partition_values: dict, rows: int):
    """The AddAction for a written file, after checking it against the table; raises InvalidOutputError."""
    import json

    import pyarrow.parquet as pq
    from deltalake.transaction import AddAction

    local = _local_path(path)
    meta = pq.read_metadata(local) if local else pq.read_metadata(path, filesystem=_filesystem(path))
    problems = []
    if meta.num_rows != rows:
        problems.append(f"{meta.num_rows} rows in the file, {rows} written")
    written = meta.schema.to_arrow_schema()
    leaves = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    null_counts: dict[str, int] = {}
    for column in expected:
        if column.name not in written.names:
            problems.append(f"column {column.name} missing")
            continue
        found = written.field(column.name).type
        if not _same_type(found, column.type):
            problems.append(f"column {column.name} is {found}, the table needs {column.type}")
        if pa.types.is_timestamp(column.type):
            logical = json.loads(meta.schema.column(leaves[column.name]).logical_type.to_json())
            if not (logical.get("isAdjustedToUTC") and logical.get("timeUnit") == "microseconds"):
                problems.append(f"column {column.name} is not a UTC-adjusted microsecond timestamp ({logical})")
        if column.name in leaves:  # a top-level primitive column: its null count is in the footer
            nulls = 0
            for group in range(meta.num_row_groups if meta.num_rows else 0):  # no rows: no statistics
                statistics = meta.row_group(group).column(leaves[column.name]).statistics
                if statistics is None or not statistics.has_null_count:
                    problems.append(f"column {column.name} has no null count in the footer")
                    break
                nulls += statistics.null_count
            null_counts[column.name] = nulls
    for column in table_schema.fields:
        if not column.nullable and null_counts.get(column.name, 0) > 0:
            problems.append(f"column {column.name} is NOT NULL in the table but holds {null_counts[column.name]} nulls")
    if problems:
        raise InvalidOutputError(f"{path}: " + "; ".join(problems))
    size = os.stat(local).st_size if local else _filesystem(path).get_file_info(path.split("://", 1)[1]).size
    return AddAction(
        path=relative,
        size=size,
        partition_values=partition_values,
        modification_time=int(dt.datetime.now(dt.UTC).timestamp() * 1000),
        data_change=True,
        stats=json.dumps({"numRecords": rows, "nullCount": null_counts}),
    )


def _same_type(found: pa.DataType, wanted: pa.DataType) -> bool:
    """Arrow type equality up to what Parquet does not keep: list element names, string vs large_string."""
    if pa.types.is_list(wanted) or pa.types.is_large_list(wanted):
        return (pa.types.is_list(found) or pa.types.is_large_list(found)) and _same_type(
            found.value_type, wanted.value_type
        )
    if pa.types.is_struct(wanted):
        return (
            pa.types.is_struct(found)
            and found.num_fields == wanted.num_fields
            and all(f.name == w.name and _same_type(f.type, w.type) for f, w in zip(found, wanted))
        )
    if pa.types.is_timestamp(wanted):
        return pa.types.is_timestamp(found) and found.unit == wanted.unit
    if pa.types.is_string(wanted):
        return pa.types.is_string(found) or pa.types.is_large_string(found)
    return found == wanted


def _local_path(uri: str) -> str | None:
    if uri.startswith("file://"):
        return uri[len("file://") :]
    return None if "://" in uri else uri


def _filesystem(uri: str):
    from pyarrow import fs

    return fs.FileSystem.from_uri(uri)[0]


def _remove_file(path: str) -> None:
    local = _local_path(path)
    with contextlib.suppress(OSError, FileNotFoundError):
        if local:
            os.remove(local)
        else:
            _filesystem(path).delete_file(path.split("://", 1)[1])
