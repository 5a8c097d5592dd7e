"""The frame-module handle: the one place that knows whether frame code runs on cuDF (GPU) or pandas (CPU).

features/frame_*.py and models/frame_scoring.py are written once against the API cuDF and pandas share
(groupby/agg, merge, sort_values, shift, where, str.contains, explode, ...). They get their module from
`FrameEngine.xp` and call back into it only where the two libraries differ: reading Parquet, Arrow conversion,
64-bit hashing and per-key sorted sets.

Choosing the engine is explicit (`--engine cudf` / `--engine pandas`, DG_ENGINE). `cudf` without cuDF or
without a visible CUDA GPU is an error, never a quiet CPU fallback: a GPU node that silently ran pandas
would miss its nightly window without anyone knowing why.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType

import pyarrow as pa

from lake import catalog
from lake.config import Settings
from lake.delta_files import (
    EPOCH_DATE,
    PARQUET_COMPRESSION,
    PartitionFiles,
    arrow_backed_lists,
    dates_as_timestamps,
    filesystem,
    local_path,
    nan_to_null,
)
from lake.errors import EngineUnavailableError

log = logging.getLogger(__name__)

# Share of free GPU memory the engine takes as its budget when none is configured.
DEFAULT_BUDGET_SHARE_OF_FREE = 0.8


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
        return table.to_pandas(types_mapper=arrow_backed_lists)

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
            # a partitioned table's files all carry a date (None is only ever the value of an unpartitioned one)
            seconds = [(value - EPOCH_DATE).days * 86_400 for value in files.partition_values]  # type: ignore[operator]
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
        local = local_path(path)
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
            pq.write_table(table, path.split("://", 1)[1], compression=PARQUET_COMPRESSION, filesystem=filesystem(path))
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
            f"docs/operations.md, 'GPU nodes'); import failed: {exc}. Use --engine pandas to run the same code on CPU."
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
