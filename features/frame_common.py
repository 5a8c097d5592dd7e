"""What the frame-engine phases share: the engine-neutral evaluation of a declared expression, reference frames
and the newest model release. Timestamps are integer or float microseconds since the epoch throughout (cuDF's
and pandas' timezone support differ, numbers do not).
"""

from __future__ import annotations

import datetime as dt
import logging

import pyarrow as pa

from features.daily_stats import GAP_COLUMN, DailyStat
from features.expr import Expr, to_frame
from lake import delta_files
from lake.frame_engines import FrameEngine

log = logging.getLogger(__name__)

EPOCH = delta_files.EPOCH_DATE


def day_end_micros(day: dt.date) -> int:
    return (day + dt.timedelta(days=1) - EPOCH).days * 86_400_000_000


def reference_frame(engine: FrameEngine, source, columns: list[str], timestamps: tuple[str, ...] = ()):
    """`columns` of a table as a frame: read from its files (`delta_files.table_files`) by the frame library, which
    decodes them on the GPU for cuDF, or from rows already in Arrow (tests, a table that does not exist yet), or
    a frame as it is. `timestamps` become float64 µs since the epoch (missing ones null, or NaN on pandas)."""
    if isinstance(source, delta_files.PartitionFiles):
        frame = engine.read_files(source, columns)
    elif isinstance(source, pa.Table):
        frame = engine.from_arrow(source.select(columns))
    else:
        frame = source[columns]
    for name in timestamps:
        frame[name] = micros_or_missing(engine, frame[name])
    return frame


def newest_release(engine: FrameEngine, model_releases, released_before_micros: int) -> tuple[str | None, int | None]:
    """(model, released_at in µs) of the latest release strictly before the bound; ties on the time go to the
    greatest model name (as spark_engine.newest_release). The releases are selected in the frame library; only
    the answer, one name and one time, comes to the host: every row of the day gets that name as a constant,
    and turning it into a one-row frame to broadcast would cost more than the two scalars."""
    releases = reference_frame(engine, model_releases, ["model", "released_at"], ("released_at",))
    released = releases[releases["released_at"] < released_before_micros]
    if len(released) == 0:
        return None, None
    newest = released.sort_values(["released_at", "model"]).tail(1)
    return newest["model"].iloc[0], int(newest["released_at"].iloc[0])


def evaluate(expr: Expr, frame):
    return to_frame(expr, lambda name: frame[name], frame[frame.columns[0]])


def reads_gap(expr: Expr | None) -> bool:
    return expr is not None and GAP_COLUMN in expr.columns()


def value_column(stat: DailyStat) -> str:
    return f"v:{stat.name}"


def where_column(stat: DailyStat) -> str:
    return f"w:{stat.name}"


def micros_or_missing(engine: FrameEngine, timestamps):
    """A nullable timestamp column as float64 µs since the epoch (exact: microsecond epochs stay below 2**53): null
    on cuDF, which keeps nulls through the casts, NaN on pandas, which cannot turn NaT into an integer."""
    if engine.on_gpu:
        return epoch_micros(engine, timestamps).astype("float64")
    return epoch_micros(engine, timestamps.dropna()).astype("float64").reindex(timestamps.index)


def epoch_micros(engine: FrameEngine, timestamps):
    """A timestamp column as int64 microseconds since the epoch, whatever unit/zone the reader gave it."""
    if not engine.on_gpu and getattr(timestamps.dt, "tz", None) is not None:
        timestamps = timestamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return timestamps.astype("datetime64[us]").astype("int64")
