"""The content patterns of features/signals.py against those of another revision, on one raw day: CPU per record of
each signal and of all of them, and whether every row gets the same signals.

Usage: python benchmarks/signal_patterns.py --lake LAKE --date D [--baseline-rev main] [--runs 2] [--label L]

Both pattern sets run on embedded Sail in this process (RUSAGE_SELF covers the engine's threads) over the same
raw `api_requests` partition; each measurement reduces the signal columns to a count and an xxhash64 sum, so no
output is written. Runs alternate between the two revisions and the minimum is reported. Then both sets of signals
are computed side by side on every raw row and the rows that differ are counted per signal. Writes
benchmarks/results/signal-patterns-<label>.json with the machine's facts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(REPO))

from machine import machine_facts  # noqa: E402

INPUT_COLUMNS = ("request_id", "prompt_prefix", "user_agent", "tool_count", "has_image")


def signals_at(revision: str):
    """features/signals.py as it is at `revision`, imported under a name of its own."""
    source = subprocess.run(
        ["git", "show", f"{revision}:features/signals.py"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="dg-signals-")) / "signals_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("signals_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(frame, columns) -> dict:
    from pyspark.sql import functions as F

    began_wall, began_cpu = time.perf_counter(), cpu_s()
    selected = frame.select(*columns)
    selected.agg(F.count(F.lit(1)), F.sum(F.xxhash64(*selected.columns))).collect()
    wall, cpu = time.perf_counter() - began_wall, cpu_s() - began_cpu
    return {"wall_s": wall, "cpu_s": cpu, "cores_busy": cpu / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True)
    parser.add_argument("--date", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--baseline-rev", default="main")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--label", default="cpu-2core")
    parser.add_argument("--out", default=str(BENCH_DIR / "results"))
    args = parser.parse_args()

    from pyspark.sql import functions as F

    from features import signals as current
    from lake import catalog
    from lake.config import load_settings
    from lake.engine import spark_session

    baseline = signals_at(args.baseline_rev)
    versions = {"baseline": baseline, "current": current}
    settings = load_settings(lake_root=args.lake, spark_remote=None)
    with spark_session(settings) as spark:
        raw = catalog.read(spark, settings, "api_requests").where(F.col("event_date") == F.lit(args.date))
        raw = raw.select(*INPUT_COLUMNS)
        records = raw.count()
        non_ascii = raw.where(F.col("prompt_prefix").rlike("[^\\x00-\\x7F]")).count()
        timings: dict[str, dict[str, list[dict]]] = {name: {} for name in versions}
        for _ in range(args.runs):
            for name, module in versions.items():
                for signal, build in module.SIGNALS.items():
                    timings[name].setdefault(signal, []).append(measure(raw, [build().alias(signal)]))
                columns = [build().alias(signal) for signal, build in module.SIGNALS.items()]
                timings[name].setdefault("all signals", []).append(measure(raw, columns))

        # both revisions' signals side by side on each raw row (raw request ids repeat, so no join on them)
        both = raw.select(
            *(build().alias(f"{s}_baseline") for s, build in baseline.SIGNALS.items()),
            *(build().alias(f"{s}_current") for s, build in current.SIGNALS.items()),
        )
        shared = [s for s in current.SIGNALS if s in baseline.SIGNALS]
        differing = both.agg(
            F.count(F.lit(1)).alias("rows"),
            *(F.sum((~F.col(f"{s}_baseline").eqNullSafe(F.col(f"{s}_current"))).cast("int")).alias(s) for s in shared),
        ).collect()[0]

    per_signal = {
        name: {
            signal: {
                "cpu_us_per_record": min(r["cpu_s"] for r in runs) / records * 1e6,
                "wall_s": min(r["wall_s"] for r in runs),
                "cores_busy": max(r["cores_busy"] for r in runs),
            }
            for signal, runs in by_signal.items()
        }
        for name, by_signal in timings.items()
    }
    report = {
        "benchmark": "signal_patterns",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "lake": args.lake,
        "date": args.date.isoformat(),
        "records": records,
        "non_ascii_prompts": non_ascii,
        "baseline_rev": subprocess.run(
            ["git", "rev-parse", "--short", args.baseline_rev], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
        "current_rev": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
        "signals_version": {"baseline": baseline.SIGNALS_VERSION, "current": current.SIGNALS_VERSION},
        "rows_compared": differing["rows"],
        "rows_differing": {s: differing[s] for s in shared},
        "timings": per_signal,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"signal-patterns-{args.label}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{records:,} records ({non_ascii:,} with non-ASCII prompts); rows differing: {report['rows_differing']}")
    print("| signal | baseline CPU-µs/record | current CPU-µs/record |\n|---|---:|---:|")
    for signal in per_signal["current"]:
        before = per_signal["baseline"].get(signal, {}).get("cpu_us_per_record", float("nan"))
        print(f"| {signal} | {before:.2f} | {per_signal['current'][signal]['cpu_us_per_record']:.2f} |")
    print(f"written {path}")


if __name__ == "__main__":
    main()
