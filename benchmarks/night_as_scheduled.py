"""The night as the DAG schedules it, on one large day with a full 28-day window, and the same work in one process.

Usage: python benchmarks/night_as_scheduled.py [--records 10e6] [--window-days 28] [--work-dir DIR] [--label L]
                                              [--out benchmarks/results]

The lake (benchmarks/engines.py generate_lake, kept in --work-dir and reused): one simulated day of about
--records raw requests, ingested, its account_daily window filled back to --window-days days with copies of the
day's rows (synthetic history of the real size), clustered. Then the day's chain ingest -> aggregate -> cluster ->
features runs twice on copies of that lake, each replacing the day's partitions (what a rerun of the night does):

  as scheduled  one `distillguard engine serve` (the DAG's engine_start task), then each step as its own
                `distillguard --remote sc://... <step> --date D` process, one after the other (the DAG's tasks)
  one process   `distillguard backfill --from D --to D --steps ... --force`: one process, one embedded engine

Measured: the chain's wall seconds and records/s (the day's raw records / wall), and CPU seconds (user + system)
from the kernel's accounting of reaped children (getrusage), so nothing is sampled: for the scheduled night, the
server's and the step processes' apart. The step processes connect, plan and wait; their CPU is start-up plus
driver-side work, an upper bound of what starting processes costs. The server's start (until it listens) is
sampled from /proc. Writes <out>/night-as-scheduled-<label>.json and .md with the machine's facts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(REPO))

from engines import START, bronze_records, generate_lake, process_table  # noqa: E402 - importable once sys.path holds benchmarks/
from machine import machine_facts  # noqa: E402

STEPS = ("ingest", "aggregate", "cluster", "features")
CLI = [sys.executable, "-m", "jobs.cli"]


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(command: list[str], env: dict) -> dict:
    """One process to its end: wall and CPU seconds (its own and its reaped descendants')."""
    cpu, began = children_cpu_s(), time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[3:])} exited {done.returncode}: {(done.stdout + done.stderr)[-2000:]}")
    return {"wall_s": time.perf_counter() - began, "cpu_s": children_cpu_s() - cpu}


def fresh_copy(lake: Path, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(lake, target)
    return target


def as_scheduled(lake: Path, day: dt.date, env: dict) -> dict:
    cpu_before = children_cpu_s()
    began = time.perf_counter()
    server = subprocess.Popen(
        [*CLI, "engine", "serve", "--port", "0"], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    line = server.stdout.readline()
    if "sc://" not in line:
        server.kill()
        raise SystemExit(f"the engine server did not start: {line!r}")
    url = line.split("--remote ", 1)[1].strip()
    server_start = {"wall_s": time.perf_counter() - began, "cpu_s": process_table()[server.pid][2]}
    steps = {}
    chain_began = time.perf_counter()
    for step in STEPS:
        steps[step] = run([*CLI, "--lake", str(lake), "--remote", url, step, "--date", day.isoformat()], env)
    chain_wall = time.perf_counter() - chain_began
    server.terminate()
    server.wait(timeout=60)
    total_cpu = children_cpu_s() - cpu_before
    clients = sum(s["cpu_s"] for s in steps.values())
    return {
        "server_start": server_start,
        "steps": steps,
        "chain_wall_s": chain_wall,
        "cpu_s": total_cpu,
        "client_cpu_s": clients,
        "server_cpu_s": total_cpu - clients,
        "start_share_upper_bound": (clients + server_start["cpu_s"]) / total_cpu,
    }


def one_process(lake: Path, day: dt.date, env: dict) -> dict:
    command = [*CLI, "--lake", str(lake), "backfill", "--from", day.isoformat(), "--to", day.isoformat()]
    result = run([*command, "--steps", *STEPS, "--force"], env)
    return {"chain_wall_s": result["wall_s"], "cpu_s": result["cpu_s"]}


def markdown(report: dict) -> str:
    records = report["records"]
    rows = []
    for name, result in report["runs"].items():
        wall, cpu = result["chain_wall_s"], result["cpu_s"]
        rows.append(
            f"| {name} | {wall:.1f} | {records / wall:,.0f} | {cpu:.1f} | {cpu / wall:.2f} | "
            f"{1e6 * cpu / records:.2f} |"
        )
    scheduled = report["runs"]["as scheduled"]
    step_rows = [f"| {step} | {s['wall_s']:.1f} | {s['cpu_s']:.1f} |" for step, s in scheduled["steps"].items()]
    return "\n".join(
        [
            f"The night as scheduled: {records:,} raw records on {report['day']}, a {report['window_days']}-day "
            f"window, commit `{report['commit']}`, {report['machine'].get('affinity_cpus', '?')} CPUs, {report['date']}.",
            "",
            "| run | chain wall s | records/s | CPU s | cores busy | CPU-µs per record |",
            "|---|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"As scheduled: the server started in {scheduled['server_start']['wall_s']:.1f} s "
            f"({scheduled['server_start']['cpu_s']:.1f} CPU-s); the step processes used "
            f"{scheduled['client_cpu_s']:.1f} CPU-s (start-up plus driver-side work), the server "
            f"{scheduled['server_cpu_s']:.1f}; start-up is at most {100 * scheduled['start_share_upper_bound']:.1f}% "
            "of the night's CPU.",
            "",
            "| step (as scheduled) | wall s | CPU s of its process |",
            "|---|---:|---:|",
            *step_rows,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=float, default=10e6, help="raw records of the day (about)")
    parser.add_argument("--window-days", type=int, default=28)
    parser.add_argument("--work-dir", default="/tmp/dg-night")
    parser.add_argument("--label", default="cpu-2core")
    parser.add_argument("--out", default=str(BENCH_DIR / "results"))
    args = parser.parse_args(argv)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    lake = work / "lake"
    generated = generate_lake(lake, int(args.records), 1, args.window_days, None, work)
    day = START
    records = bronze_records(lake, [day])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = {
        "as scheduled": as_scheduled(fresh_copy(lake, work / "scheduled"), day, env),
        "one process": one_process(fresh_copy(lake, work / "one-process"), day, env),
    }
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    report = {
        "benchmark": "night-as-scheduled",
        "date": dt.date.today().isoformat(),
        "commit": commit.stdout.strip(),
        "machine": machine_facts(),
        "day": day.isoformat(),
        "records": records,
        "window_days": args.window_days,
        "lake": generated,
        "runs": runs,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"night-as-scheduled-{args.label}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"night-as-scheduled-{args.label}.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
