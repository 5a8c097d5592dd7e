"""`distillguard nightly --date D`: the nightly chain for one date, in order.

ingest → features (daily aggregate + windows) → cluster → score. Each step is its own job and runs
alone for any past date too; this module only sequences them so one failure stops the chain.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from lake.config import Settings


def steps() -> list[tuple[str, Callable]]:
    from jobs import cluster, features, ingest, score

    return [("ingest", ingest.run), ("features", features.run), ("cluster", cluster.run), ("score", score.run)]


def run(spark, settings: Settings, event_date: dt.date) -> dict[str, object]:
    results: dict[str, object] = {}
    chain = steps()
    for index, (name, step) in enumerate(chain, start=1):
        started = time.perf_counter()
        print(f"[nightly {event_date}] {index}/{len(chain)} {name} ...", flush=True)
        results[name] = step(spark, settings, event_date)
        print(f"[nightly {event_date}] {index}/{len(chain)} {name} done in {time.perf_counter() - started:.1f}s",
              flush=True)
    return results
