"""Where the cluster step's CPU goes: jobs/cluster.py on one day of an existing lake, timed per phase.

Usage: python benchmarks/profile_cluster.py --lake LAKE --date D [--label cpu-2core]

The job runs unchanged on embedded Sail in this process; each stage it stores to its scratch Delta tables
(members, evidence, edges, every connected-components iteration) and each table it writes is timed around that
write, which is where Sail computes the stage (frames are lazy). CPU is RUSAGE_SELF (the engine's threads
included); what is left over (reads, the preconditions, the summary) is reported as `other`. Writes
benchmarks/results/profile-cluster-<label>.json with the machine's facts. Rerunning replaces the day's clusters.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

from machine import machine_facts  # noqa: E402


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True)
    parser.add_argument("--date", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--label", default="cpu-2core")
    parser.add_argument("--out", default=str(BENCH_DIR / "results"))
    args = parser.parse_args()

    from jobs import cluster
    from lake import catalog
    from lake.config import load_settings
    from lake.engine import spark_session

    phases: list[dict] = []

    def timed(name: str, action):
        began_wall, began_cpu = time.perf_counter(), cpu_s()
        result = action()
        wall, cpu = time.perf_counter() - began_wall, cpu_s() - began_cpu
        phases.append({"phase": name, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3)})
        return result

    materializer = cluster.delta_scratch_materializer

    def timed_materializer(spark, scratch_uri):
        store = materializer(spark, scratch_uri)
        return lambda frame, key: timed(f"store {key}", lambda: store(frame, key))

    write_partition = catalog.write_partition

    def timed_write(frame, settings, name, day):
        return timed(f"write {name}", lambda: write_partition(frame, settings, name, day))

    cluster.delta_scratch_materializer = timed_materializer
    cluster.catalog.write_partition = timed_write
    settings = load_settings(lake_root=args.lake, spark_remote=None)
    try:
        with spark_session(settings) as spark:
            rows = spark.read.format("delta").load(settings.table_uri("requests"))
            records = rows.where(rows.event_date == args.date).count()
            total_wall, total_cpu = time.perf_counter(), cpu_s()
            cluster.run(spark, settings, args.date)
            total_wall, total_cpu = time.perf_counter() - total_wall, cpu_s() - total_cpu
    finally:
        cluster.delta_scratch_materializer = materializer
        cluster.catalog.write_partition = write_partition
    timed_cpu = sum(p["cpu_s"] for p in phases)
    timed_wall = sum(p["wall_s"] for p in phases)
    phases.append(
        {"phase": "other", "wall_s": round(total_wall - timed_wall, 3), "cpu_s": round(total_cpu - timed_cpu, 3)}
    )
    for phase in phases:
        phase["cpu_us_per_record"] = round(phase["cpu_s"] / records * 1e6, 3)
    report = {
        "benchmark": "profile_cluster",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "load_average_1m_end": round(os.getloadavg()[0], 2),
        "lake": args.lake,
        "date": args.date.isoformat(),
        "bronze_records": records,
        "total": {"wall_s": round(total_wall, 3), "cpu_s": round(total_cpu, 3)},
        "phases": phases,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"profile-cluster-{args.label}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print("| phase | CPU s | CPU-µs/record | wall s |\n|---|---:|---:|---:|")
    for phase in phases:
        print(f"| {phase['phase']} | {phase['cpu_s']:.2f} | {phase['cpu_us_per_record']:.2f} | {phase['wall_s']:.1f} |")
    print(f"written {path}")


if __name__ == "__main__":
    main()
