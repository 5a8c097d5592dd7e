"""Records per second and peak memory of simulate, ingest and features on the embedded Sail engine.

Usage: python benchmarks/pipeline_throughput.py [--records 5e6 20e6] [--days 7] [--out benchmarks/results]

Each stage runs in its own child process so its peak RSS (which includes the embedded Sail server,
running in-process) is measured on its own. Writes JSON with the machine's facts and prints a table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import machine_facts

START = dt.date(2026, 1, 5)

# Each stage runs as a script file, not `python -c`: pyspark's Spark Connect import treats a main module
# without __file__ as a doctest run and goes looking for a JVM Spark installation.
STAGE_SCRIPT = Path(__file__).resolve().parent / "run_stage.py"


def run_stage(stage: str, lake: Path, days: int, accounts: int) -> dict:
    command = [sys.executable, str(STAGE_SCRIPT), stage, str(lake), START.isoformat(), str(days), str(accounts)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    result = None
    for line in process.stdout:
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
        else:
            print(f"    {line.rstrip()}", flush=True)
    if process.wait() != 0 or result is None:
        raise RuntimeError(f"stage {stage} failed with exit code {process.returncode}")
    return result


def calibrate_records_per_account_day(workdir: Path) -> float:
    """Simulator volume per account-day, measured on a small population (the rate scales linearly)."""
    lake = workdir / "calibration"
    result = run_stage("simulate", lake, days=2, accounts=3000)
    shutil.rmtree(lake, ignore_errors=True)
    shutil.rmtree(f"{lake}_truth", ignore_errors=True)
    return result["records"] / (3000 * 2)


def benchmark_size(target_records: float, days: int, rate: float, workdir: Path) -> dict:
    accounts = max(1000, int(target_records / (rate * days)))
    lake = workdir / f"lake_{int(target_records)}"
    print(f"== {target_records:,.0f} records target: {accounts:,} accounts x {days} days", flush=True)
    stages = {}
    for stage in ("simulate", "ingest", "features"):
        stages[stage] = run_stage(stage, lake, days, accounts)
    records = stages["ingest"]["records"]
    stages["features"]["records"] = records  # features consume the day's bronze rows
    for stage in stages.values():
        stage["records_per_s"] = stage["records"] / stage["wall_s"]
    shutil.rmtree(lake, ignore_errors=True)
    shutil.rmtree(f"{lake}_truth", ignore_errors=True)
    return {
        "target_records": target_records,
        "records": records,
        "accounts": accounts,
        "days": days,
        "engine": "embedded-sail",
        "stages": stages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=float, nargs="+", default=[5e6, 20e6])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--workdir", default=None, help="scratch directory for the lakes (default: a temp dir)")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="dg-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    began = time.time()
    rate = calibrate_records_per_account_day(workdir)
    results = [benchmark_size(target, args.days, rate, workdir) for target in args.records]
    report = {
        "benchmark": "pipeline_throughput",
        "started_at": dt.datetime.fromtimestamp(began, dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "results": results,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "pipeline_throughput.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    lines = ["| records | stage | wall s | records/s | peak RSS MiB |", "|---:|---|---:|---:|---:|"]
    for result in results:
        for name, stage in result["stages"].items():
            lines.append(
                f"| {result['records']:,} | {name} | {stage['wall_s']:.1f} | {stage['records_per_s']:,.0f} | "
                f"{stage['peak_rss_mib']:,.0f} |"
            )
    table = "\n".join(lines) + "\n"
    (out / "pipeline_throughput.md").write_text(table)
    print("\n" + table)
    print(f"written {path} and pipeline_throughput.md")


if __name__ == "__main__":
    main()
