"""`distillguard nightly --date D`: the nightly chain for one date, in order.

ingest → aggregate → features → cluster → score. Each step is its own job and runs alone for any past date
too; this module only sequences them so one failure stops the chain. With a frame engine (`--engine cudf`)
aggregate, features and score run on it and ingest and cluster on the Spark session.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable

from lake.config import Settings
from lake.errors import InputError
from lake.engine import is_frame_engine

COMPUTE_ENGINE_STEPS = ("aggregate", "features", "score")


STEP_NAMES = ("ingest", "aggregate", "features", "cluster", "score")  # the order `steps()` runs them in


def steps() -> list[tuple[str, Callable]]:
    from jobs import aggregate, cluster, features, ingest, score

    return [("ingest", ingest.run), ("aggregate", aggregate.run), ("features", features.run),
            ("cluster", cluster.run), ("score", score.run)]


def run(settings: Settings, event_date: dt.date, steps: tuple[str, ...] | None = None,
        spark=None) -> dict[str, object]:
    """Run `steps` (default: all, always in STEP_NAMES order) for one date; opens its own engines unless a Spark
    session is passed in."""
    from lake.engine import spark_session

    wanted = STEP_NAMES if steps is None else steps
    unknown = [name for name in wanted if name not in STEP_NAMES]
    if unknown:
        raise InputError(f"unknown nightly step(s) {unknown}; steps are {', '.join(STEP_NAMES)}")
    results: dict[str, object] = {}
    chain = [(name, step) for name, step in globals()["steps"]() if name in wanted]
    with contextlib.ExitStack() as stack:
        if spark is None:
            spark = stack.enter_context(spark_session(settings))
        compute = spark
        if is_frame_engine(settings):
            from lake.frames import frame_engine

            compute = stack.enter_context(frame_engine(settings))
        for index, (name, step) in enumerate(chain, start=1):
            started = time.perf_counter()
            print(f"[nightly {event_date}] {index}/{len(chain)} {name} ...", flush=True)
            engine = compute if name in COMPUTE_ENGINE_STEPS else spark
            results[name] = step(engine, settings, event_date)
            print(f"[nightly {event_date}] {index}/{len(chain)} {name} done in "
                  f"{time.perf_counter() - started:.1f}s", flush=True)
    return results
