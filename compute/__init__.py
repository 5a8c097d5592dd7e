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
from collections.abc import Iterator
from typing import Any

from compute.protocol import Data, Engine
from lake.config import FRAME_ENGINE_KEYS, Settings

__all__ = ["Data", "Engine", "open_engine"]


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
