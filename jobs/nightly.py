"""`distillguard nightly --date D`: the nightly chain for one date, in the order jobs/steps.py declares.

Each step is its own job and runs alone for any past date too; this module only sequences them so one failure
stops the chain. Steps a frame engine supports run on it when one is configured; the others on the Spark engine.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from compute import Engine, open_engine
from jobs.steps import NIGHTLY_STEPS, STEP_NAMES, Step
from lake.config import FRAME_ENGINE_KEYS, Settings
from lake.errors import InputError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["STEP_NAMES", "run"]


def run(settings: Settings, event_date: dt.date, steps: Sequence[str] | None = None) -> dict[str, object]:
    """Run `steps` (default: every nightly step) for one date, in the declared order; returns each step's result."""
    wanted = set(steps or STEP_NAMES)
    unknown = wanted - set(STEP_NAMES)
    if unknown:
        raise InputError(f"unknown step(s) {sorted(unknown)}; the nightly steps are {', '.join(STEP_NAMES)}")
    chain = [step for step in NIGHTLY_STEPS if step.name in wanted]
    results: dict[str, object] = {}
    with contextlib.ExitStack() as stack:
        opened: dict[bool, Engine[Any]] = {}  # one Spark engine and at most one frame engine for the whole chain

        def engine_for(step: Step) -> Engine[Any] | SparkSession:
            from compute.spark import SparkEngine

            on_frames = step.frame_engine and settings.engine in FRAME_ENGINE_KEYS
            if on_frames not in opened:
                opened[on_frames] = stack.enter_context(open_engine(settings, frame_capable=on_frames))
            engine = opened[on_frames]
            if step.frame_engine:
                return engine
            # frame_capable=False opens the Spark family; Spark-only jobs take the session itself
            return cast(SparkEngine, engine).spark

        for index, step in enumerate(chain, start=1):
            started = time.perf_counter()
            print(f"[nightly {event_date}] {index}/{len(chain)} {step.name} ...", flush=True)
            job = importlib.import_module(f"jobs.{step.name}")
            results[step.name] = job.run(engine_for(step), settings, event_date)
            print(
                f"[nightly {event_date}] {index}/{len(chain)} {step.name} done in {time.perf_counter() - started:.1f}s",
                flush=True,
            )
    return results
