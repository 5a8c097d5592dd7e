"""Each detection family of jobs/families.py alone, on a simulated lake, against the simulator's ground truth.

Usage: python benchmarks/families.py [--seed 1] [--days 14] [--accounts 3000] [--scenario extended]
                                     [--workdir DIR] [--out benchmarks/results]

Simulates a fresh lake, runs ingest -> aggregate -> cluster for every day and `families` for the last one, all
through the CLI (`jobs.cli.main`), then reports, per family (propagation, peer_novelty, switch), the recall at
0.1% and 1% benign FPR over accounts nobody had labelled by the last day (models/detection_report.py), with the
thresholds fitted to ground truth on that day (a ranking measure, not what a tier delivers). Use development
seeds only for tuning. Writes benchmarks/results/families-<scenario>-seed<N>.json with the machine's facts.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from machine import machine_facts  # noqa: E402

START = dt.date(2026, 10, 5)
DAILY_JOBS = ("ingest", "aggregate", "cluster")
LEVELS = (0.001, 0.01)


def cli(lake: Path, *argv: str) -> None:
    from jobs.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["--lake", str(lake), *argv])
    if code != 0:
        raise RuntimeError(f"distillguard {' '.join(argv)} exited {code}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--scenario", default="extended")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    from deltalake import DeltaTable

    from lake.config import load_settings
    from lake.dates import date_range
    from models import detection_report as report
    from simulator.simulate import read_ground_truth

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="families-"))
    lake = workdir / f"seed{args.seed}" / "lake"
    shutil.rmtree(lake.parent, ignore_errors=True)
    dates = date_range(START, args.days)
    began = time.perf_counter()
    cli(lake, "simulate", "--start", START.isoformat(), "--days", str(args.days), "--accounts", str(args.accounts),
        "--seed", str(args.seed), "--scenario", args.scenario)  # fmt: skip
    for day in dates:
        for job in DAILY_JOBS:
            cli(lake, job, "--date", day.isoformat())
        print(f"{day}: {' -> '.join(DAILY_JOBS)} done ({time.perf_counter() - began:.0f}s)", flush=True)
    last = dates[-1]
    family_began = time.perf_counter()
    cli(lake, "families", "--date", last.isoformat())
    family_seconds = time.perf_counter() - family_began

    settings = load_settings(lake_root=str(lake))
    scores = DeltaTable(settings.table_uri("family_scores")).to_pyarrow_table().to_pandas()
    scores = scores[scores["score_date"] == last]
    truth = read_ground_truth(settings)
    labels = DeltaTable(settings.table_uri("enforcement_labels")).to_pyarrow_table().to_pandas()
    results: dict[str, object] = {}
    for family, rows in scores.groupby("family"):
        scope = report.unlabelled(rows[["account_id", "score"]], truth, labels, last)
        measured = report.recall_at_benign_fpr(scope, LEVELS)
        results[family] = measured
        recalls = ", ".join(f"{level} FPR: {measured['levels'][f'{level:g}']['recall']:.3f}" for level in LEVELS)
        print(f"{family}: recall at {recalls} ({measured['campaign_accounts']} campaign, "
              f"{measured['benign_accounts']} benign unlabelled accounts)", flush=True)  # fmt: skip
    out = {
        "benchmark": "families",
        "date": dt.date.today().isoformat(),
        "command": " ".join(["python", "benchmarks/families.py", *sys.argv[1:]]),
        "seed": args.seed,
        "seed_use": "development",
        "scenario": args.scenario,
        "accounts": args.accounts,
        "days": args.days,
        "score_date": last.isoformat(),
        "families_job_seconds": round(family_seconds, 1),
        "families": results,
        "machine": machine_facts(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"families-{args.scenario}-seed{args.seed}.json"
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
