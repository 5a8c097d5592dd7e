"""One engine's aggregation + features stage in its own process: prints `RESULT {json}`.

Usage: engine_stage.py ENGINE LAKE START DAYS SCRATCH [SHUFFLE_PARTITIONS]

ENGINE is a benchmark engine key (benchmarks/engines.py BENCH_ENGINES):
  embedded, jvm-local   the Spark Parquet stage (benchmarks/spark_parquet_stage.py) on Sail / JVM Spark;
                        outputs under SCRATCH
  embedded-delta        the real jobs (jobs/aggregate.py, jobs/features.py) on Sail, Delta in and out
  pandas, cudf          the real jobs on a frame engine (lake/frames.py), Delta in and out
  jvm-delta             the real jobs through Spark Connect on a JVM Spark 4.2 + delta-spark server (local[*],
                        from infra/spark-connect/cpu.conf; lake/spark_servers.py), Delta in and out
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
REAL_JOB_ENGINES = {"embedded-delta": "embedded", "pandas": "pandas", "cudf": "cudf", "jvm-delta": "remote",
                    "sail-cluster": "remote"}
SAIL_CLUSTER_WORKERS = 2


@contextlib.contextmanager
def server_for(bench_engine: str, scratch: str, shuffle_partitions: int):
    """The Spark Connect server a server engine runs on (None for the others); stopped on exit."""
    from lake import spark_servers

    logs = Path(scratch) / "server-logs"
    if bench_engine == "jvm-delta":
        with spark_servers.jvm_connect_server(logs, master="local[*]", shuffle_partitions=shuffle_partitions,
                                              extra_conf={"spark.driver.memory": JVM_DRIVER_MEMORY}) as server:
            yield server.url
    elif bench_engine == "sail-cluster":
        # workers x slots must cover the largest task region, which can exceed the shuffle partitions (a stage
        # reading several inputs): twice the partitions in all
        env = spark_servers.sail_cluster_env(SAIL_CLUSTER_WORKERS, shuffle_partitions)
        with spark_servers.sail_server(logs, env) as url:
            yield url
    else:
        yield None


def run(bench_engine: str, lake: str, start: dt.date, days: int, scratch: str, shuffle_partitions: int) -> dict:
    from lake.config import load_settings
    from lake.engine import compute_engine

    if bench_engine in SPARK_PARQUET_ENGINES:
        engine_key = SPARK_PARQUET_ENGINES[bench_engine]
    elif bench_engine in REAL_JOB_ENGINES:
        engine_key = REAL_JOB_ENGINES[bench_engine]
    else:
        raise SystemExit(f"unknown benchmark engine {bench_engine!r}")
    dates = [start + dt.timedelta(days=i) for i in range(days)]
    result: dict = {"engine": bench_engine, "engine_key": engine_key}
    began = time.perf_counter()
    with contextlib.ExitStack() as stack:
        remote = stack.enter_context(server_for(bench_engine, scratch, shuffle_partitions))
        settings = load_settings(lake_root=lake, ground_truth_root=f"{scratch}/_truth", engine=engine_key,
                                 mlflow_tracking_uri=f"sqlite:///{scratch}/m.db", spark_remote=remote,
                                 shuffle_partitions=shuffle_partitions)
        engine = stack.enter_context(compute_engine(settings))
        started = time.perf_counter()
        result["engine_start_s"] = started - began
        if bench_engine in SPARK_PARQUET_ENGINES:
            import spark_parquet_stage

            detail = spark_parquet_stage.run(engine, lake, dates, Path(scratch) / "out")
            result.update(aggregate_s=detail["aggregate_s"], features_s=detail["features_s"], days=detail["days"])
        else:
            from jobs import aggregate, features

            per_day = []
            for day in dates:
                t0 = time.perf_counter()
                daily_rows = aggregate.run(engine, settings, day)
                t1 = time.perf_counter()
                feature_rows = features.run(engine, settings, day)
                per_day.append({"date": day.isoformat(), "aggregate_s": t1 - t0, "features_s": time.perf_counter() - t1,
                                "account_daily_rows": daily_rows, "account_features_rows": feature_rows})
            result.update(aggregate_s=sum(d["aggregate_s"] for d in per_day),
                          features_s=sum(d["features_s"] for d in per_day), days=per_day)
        result["stage_s"] = time.perf_counter() - started
        report = getattr(engine, "memory_report", None)
        result["memory_report"] = report() if callable(report) else None
    result["engine_wall_s"] = time.perf_counter() - began  # engine start + stage + engine shutdown
    # this process only (an in-process Sail server included); the parent measures the whole tree, JVM too
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["peak_rss_self_mib"] = usage.ru_maxrss / 1024
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    return result


if __name__ == "__main__":
    engine_name, lake_root, first_day, n_days, scratch_dir = sys.argv[1:6]
    partitions = int(sys.argv[6]) if len(sys.argv) > 6 else 8
    outcome = run(engine_name, lake_root, dt.date.fromisoformat(first_day), int(n_days), scratch_dir, partitions)
    print("RESULT " + json.dumps(outcome), flush=True)
