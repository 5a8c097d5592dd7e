"""Where the frame engine's time goes: cProfile of aggregate + features for one day of an ingested lake.

  python benchmarks/profile_frame_engine.py LAKE DATE [--engine cudf|pandas] [--top 40]

LAKE is a benchmark lake (benchmarks/engines.py prepares one: bronze, history, clusters); its inputs are linked
into a scratch lake and account_daily copied, so the profile never overwrites LAKE's outputs.
Prints the top functions by cumulative and by own time; with cuDF the GPU work is asynchronous only inside
libcudf calls, so the Python-side profile does show which frame operations cost the time.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake")
    parser.add_argument("date", type=dt.date.fromisoformat)
    parser.add_argument("--engine", default="cudf", choices=("cudf", "pandas"))
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()

    from engines import engine_lake

    from compute import open_engine
    from jobs import aggregate, features
    from lake.config import load_settings

    scratch = Path(tempfile.mkdtemp(prefix="dg-profile-"))
    lake = engine_lake(Path(args.lake).resolve(), scratch)
    settings = load_settings(lake_root=str(lake), mlflow_tracking_uri=f"sqlite:///{scratch}/m.db", engine=args.engine)
    with open_engine(settings) as engine:
        aggregate.run(engine, settings, args.date)  # warm-up: kernels, pools, JIT caches
        profiler = cProfile.Profile()
        began = time.perf_counter()
        profiler.enable()
        aggregate.run(engine, settings, args.date)
        middle = time.perf_counter()
        features.run(engine, settings, args.date)
        profiler.disable()
        ended = time.perf_counter()
    print(f"aggregate {middle - began:.2f} s, features {ended - middle:.2f} s")
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
