"""One engine's aggregation + features stage in its own process: prints `RESULT {json}`.

Usage: engine_stage.py ENGINE LAKE DAY SCRATCH [SHUFFLE_PARTITIONS] [PASSES]

Aggregate + features for DAY, PASSES times in one process (default 2): pass 1 is cold (a fresh process and
engine), the rest warm. On the cuDF path each step is an NVTX range (when nvtx imports) closed by a device
synchronize, so a GPU profile charges asynchronous work to the step that queued it.

ENGINE is a benchmark engine key (benchmarks/engines.py BENCH_ENGINES):
  embedded, jvm-local   the Spark Parquet stage (benchmarks/spark_parquet_stage.py) on Sail / JVM Spark;
                        outputs under SCRATCH
  embedded-delta        the real jobs (jobs/aggregate.py, jobs/features.py) on Sail, Delta in and out
  pandas, cudf          the real jobs on a frame engine (lake/frame_engines.py), Delta in and out
  jvm-delta             the real jobs through Spark Connect on a JVM Spark 4.2 + delta-spark server (local[*],
                        from infra/spark-connect/cpu.conf; tests/helpers/spark_servers.py), Delta in and out
  sail-cluster          the real jobs through Spark Connect on a Sail local-cluster server (2 workers)
For the last two the server starts inside this process's tree, so its start is part of engine_start_s and
its memory part of the parent's tree RSS.
The real jobs write account_daily/account_features into LAKE, so the parent hands every such engine a
lake of its own whose input tables are links to the shared ones.

Run as a script file, never `python -c`: pyspark's Spark Connect import treats a main module without
__file__ as a doctest run and goes looking for a JVM Spark installation. jvm-local runs under the
separate .bench-jvm interpreter (benchmarks/jvm_baseline_env.sh), which has the full pyspark package.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

JVM_DRIVER_MEMORY = os.environ.get("DG_BENCH_JVM_DRIVER_MEMORY", "4g")
SPARK_PARQUET_ENGINES = {"embedded": "embedded", "jvm-local": "jvm-local"}
REAL_JOB_ENGINES = {
    "embedded-delta": "embedded",
    "pandas": "pandas",
    "cudf": "cudf",
    "jvm-delta": "remote",
    "sail-cluster": "remote",
}
SAIL_CLUSTER_WORKERS = 2


@contextlib.contextmanager
def server_for(bench_engine: str, scratch: str, shuffle_partitions: int):
    """The Spark Connect server a server engine runs on (None for the others); stopped on exit."""
    from tests.helpers import spark_servers

    logs = Path(scratch) / "server-logs"
    if bench_engine == "jvm-delta":
        with spark_servers.jvm_connect_server(
            logs,
            master="local[*]",
            shuffle_partitions=shuffle_partitions,
            extra_conf={"spark.driver.memory": JVM_DRIVER_MEMORY},
        ) as server:
            yield server.url
    elif bench_engine == "sail-cluster":
        # workers x slots must cover the largest task region, which can exceed the shuffle partitions (a stage
        # reading several inputs): twice the partitions in all
        env = spark_servers.sail_cluster_env(SAIL_CLUSTER_WORKERS, shuffle_partitions)
        with spark_servers.sail_server(logs, env) as url:
            yield url
    else:
        yield None


def _nvtx_range(name: str):
    """An NVTX range on the cuDF path when nvtx is importable (a GPU profile then charges each step to its
    own range); nothing otherwise."""
    try:
        import nvtx
    except ImportError:
        return contextlib.nullcontext()
    return nvtx.annotate(name, color="green")


def _synchronize(engine) -> None:
    """Wait for the GPU at each step's end so asynchronous work is charged to the step that queued it."""
    frames = getattr(engine, "frames", None)
    if frames is not None and frames.on_gpu:
        import cupy

        cupy.cuda.runtime.deviceSynchronize()


def run(bench_engine: str, lake: str, day: dt.date, scratch: str, shuffle_partitions: int, passes: int) -> dict:
    """Aggregate + features for `day`, `passes` times in this one process: the first pass is cold (fresh
    process, engine just started), later ones warm. The Parquet stage engines run their stage instead."""
    from compute import open_engine
    from lake.config import load_settings

    if bench_engine in SPARK_PARQUET_ENGINES:
        engine_key = SPARK_PARQUET_ENGINES[bench_engine]
    elif bench_engine in REAL_JOB_ENGINES:
        engine_key = REAL_JOB_ENGINES[bench_engine]
    else:
        raise SystemExit(f"unknown benchmark engine {bench_engine!r}")
    result: dict = {"engine": bench_engine, "engine_key": engine_key, "passes": []}
    began = time.perf_counter()
    with contextlib.ExitStack() as stack:
        remote = stack.enter_context(server_for(bench_engine, scratch, shuffle_partitions))
        settings = load_settings(
            lake_root=lake,
            ground_truth_root=f"{scratch}/_truth",
            engine=engine_key,
            mlflow_tracking_uri=f"sqlite:///{scratch}/m.db",
            spark_remote=remote,
            shuffle_partitions=shuffle_partitions,
        )
        engine = stack.enter_context(open_engine(settings))
        result["engine_start_s"] = time.perf_counter() - began
        for number in range(passes):
            started = time.perf_counter()
            if bench_engine in SPARK_PARQUET_ENGINES:
                import spark_parquet_stage

                detail = spark_parquet_stage.run(engine.spark, lake, [day], Path(scratch) / f"out{number}")
                one = {
                    "aggregate_s": detail["aggregate_s"],
                    "features_s": detail["features_s"],
                    "account_daily_rows": detail["days"][0]["account_daily_rows"],
                    "account_features_rows": detail["days"][0]["account_features_rows"],
                }
            else:
                from jobs import aggregate, features

                with _nvtx_range(f"aggregate {day}"):
                    daily_rows = aggregate.run(engine, settings, day)
                    _synchronize(engine)
                aggregated = time.perf_counter()
                with _nvtx_range(f"features {day}"):
                    feature_rows = features.run(engine, settings, day)
                    _synchronize(engine)
                one = {
                    "aggregate_s": aggregated - started,
                    "features_s": time.perf_counter() - aggregated,
                    "account_daily_rows": daily_rows,
                    "account_features_rows": feature_rows,
                }
            one["stage_s"] = time.perf_counter() - started
            result["passes"].append(one)
        frames = getattr(engine, "frames", None)
        result["memory_report"] = frames.memory_report() if frames is not None else None
    result["engine_wall_s"] = time.perf_counter() - began  # engine start + passes + engine shutdown
    # this process only (an in-process Sail server included); the parent measures the whole tree, JVM too
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["peak_rss_self_mib"] = usage.ru_maxrss / 1024
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    return result


if __name__ == "__main__":
    engine_name, lake_root, bench_day, scratch_dir = sys.argv[1:5]
    partitions = int(sys.argv[5]) if len(sys.argv) > 5 else 8
    n_passes = int(sys.argv[6]) if len(sys.argv) > 6 else 2
    outcome = run(engine_name, lake_root, dt.date.fromisoformat(bench_day), scratch_dir, partitions, n_passes)
    print("RESULT " + json.dumps(outcome), flush=True)
