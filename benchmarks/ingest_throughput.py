"""Ingest (raw api_requests -> bronze + quarantine) on embedded Sail: this checkout against a baseline commit.

Usage:
  python benchmarks/ingest_throughput.py --records 2e6 --days 2 --runs 3 --baseline-ref main~3 \
      --label cpu-2core [--work-dir /tmp/dg-ingest]

The lake is simulated once (reused from --work-dir when present). Every run ingests all its days in a fresh
child process (benchmarks/run_stage.py), on a hard-linked copy of the simulated lake, so each run starts cold
from the same raw files and writes bronze from scratch. Runs of the two code versions alternate (baseline,
current, baseline, ...) so a change in the machine's load hits both. The baseline is `git archive` of the ref
into the work dir, run with this interpreter.

Per run: wall seconds, records/s, CPU seconds and peak RSS of the child's process tree (benchmarks/engines.py
samples /proc), and the 1-minute load average before and after. Results: <out>/ingest-<label>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from engines import START, run_child  # noqa: E402 - importable only once sys.path holds benchmarks/ and the repository
from machine import machine_facts  # noqa: E402 - importable only once sys.path holds benchmarks/ and the repository

RECORDS_PER_ACCOUNT_DAY = 12.8  # simulator volume, measured with benchmarks/engines.py's calibration


def log(message: str) -> None:
    print(f"[ingest {time.strftime('%H:%M:%S')}] {message}", flush=True)


def load_average() -> float:
    return os.getloadavg()[0]


def simulated_lake(work_dir: Path, records: float, days: int) -> Path:
    lake = work_dir / f"raw_{int(records)}_{days}d"
    if (lake / "api_requests" / "_delta_log").exists():
        log(f"reusing {lake}")
        return lake
    shutil.rmtree(lake, ignore_errors=True)
    accounts = max(1000, int(records / (RECORDS_PER_ACCOUNT_DAY * days)))
    log(f"simulating {accounts:,} accounts x {days} days into {lake}")
    run_child(
        [
            sys.executable,
            str(BENCH_DIR / "run_stage.py"),
            "simulate",
            str(lake),
            START.isoformat(),
            str(days),
            str(accounts),
        ]
    )
    return lake


def exported_tree(ref: str, work_dir: Path) -> tuple[Path, str]:
    commit = subprocess.run(
        ["git", "rev-parse", ref], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    tree = work_dir / f"code-{commit[:12]}"
    if not tree.exists():
        tree.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", commit], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree, commit


def linked_copy(source: Path, target: Path) -> None:
    """The raw table's files are never rewritten, so hard links give every run the same input for free."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source / "api_requests", target / "api_requests", copy_function=os.link)
    for name in os.listdir(source):
        if name != "api_requests" and (source / name).is_dir() and (source / name / "_delta_log").exists():
            shutil.copytree(source / name, target / name, copy_function=os.link)


def one_run(code: Path, raw_lake: Path, days: int, work_dir: Path) -> dict:
    lake = work_dir / "run-lake"
    linked_copy(raw_lake, lake)
    before = load_average()
    try:
        child = run_child(
            [
                sys.executable,
                str(code / "benchmarks" / "run_stage.py"),
                "ingest",
                str(lake),
                START.isoformat(),
                str(days),
                "0",
            ]
        )
    finally:
        shutil.rmtree(lake, ignore_errors=True)
        shutil.rmtree(f"{lake}_truth", ignore_errors=True)
    return {
        "wall_s": child["process_wall_s"],
        "stage_s": child["wall_s"],
        "records": child["records"],
        "records_per_s": child["records"] / child["wall_s"],
        "cpu_s": child["cpu_tree_s"],
        "peak_rss_mib": child["peak_rss_tree_mib"],
        "load_before": before,
        "load_after": load_average(),
    }


def summary(runs: list[dict]) -> dict:
    rates = [r["records_per_s"] for r in runs]
    return {
        "runs": len(runs),
        "records": runs[0]["records"],
        "records_per_s_median": statistics.median(rates),
        "records_per_s_min": min(rates),
        "records_per_s_max": max(rates),
        "stage_s_median": statistics.median(r["stage_s"] for r in runs),
        "cpu_s_median": statistics.median(r["cpu_s"] for r in runs),
        "peak_rss_mib_max": max(r["peak_rss_mib"] for r in runs),
    }


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"# Ingest throughput: {report['label']}",
        "",
        f"Machine: {m['cpu_model']}, {m['affinity_cpus']} CPUs, {m['memory_gib']} GiB. {report['days']} days, "
        f"{report['records']:,} raw records; {report['runs_per_version']} cold runs per version, alternating. "
        f"1-minute load average during the runs: {report['load_min']:.1f}-{report['load_max']:.1f}.",
        "",
        "| version | commit | records/s median (min-max) | stage s median | CPU s median | peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for version in report["versions"]:
        s = version["summary"]
        lines.append(
            f"| {version['name']} | {version['commit'][:10]} | {s['records_per_s_median']:,.0f} "
            f"({s['records_per_s_min']:,.0f}-{s['records_per_s_max']:,.0f}) | {s['stage_s_median']:.1f} | "
            f"{s['cpu_s_median']:.1f} | {s['peak_rss_mib_max']:,.0f} |"
        )
    if report.get("note"):
        lines += ["", report["note"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=float, default=2e6)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline-ref", default=None, help="git ref to compare with (omit: this checkout only)")
    parser.add_argument("--label", required=True)
    parser.add_argument("--work-dir", default="/tmp/dg-ingest")
    parser.add_argument("--out", default=str(BENCH_DIR / "results"))
    parser.add_argument("--note", default=None)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    work_dir = Path(args.work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    raw_lake = simulated_lake(work_dir, args.records, args.days)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    versions = []
    if args.baseline_ref:
        tree, commit = exported_tree(args.baseline_ref, work_dir)
        versions.append({"name": f"baseline ({args.baseline_ref})", "commit": commit, "code": tree, "runs": []})
    versions.append(
        {
            "name": "this checkout" + (" (uncommitted changes)" if dirty else ""),
            "commit": head,
            "code": REPO,
            "runs": [],
        }
    )
    for index in range(args.runs):
        for version in versions:
            run = one_run(version["code"], raw_lake, args.days, work_dir)
            version["runs"].append(run)
            log(
                f"{version['name']} run {index + 1}: {run['records']:,} records in {run['stage_s']:.1f} s "
                f"({run['records_per_s']:,.0f}/s), CPU {run['cpu_s']:.0f} s, peak RSS {run['peak_rss_mib']:,.0f} MiB, "
                f"load {run['load_before']:.1f}->{run['load_after']:.1f}"
            )
    loads = [r[k] for v in versions for r in v["runs"] for k in ("load_before", "load_after")]
    report = {
        "benchmark": "ingest_throughput",
        "label": args.label,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "days": args.days,
        "records": versions[-1]["runs"][0]["records"],
        "runs_per_version": args.runs,
        "load_min": min(loads),
        "load_max": max(loads),
        "note": args.note,
        "versions": [
            {"name": v["name"], "commit": v["commit"], "runs": v["runs"], "summary": summary(v["runs"])}
            for v in versions
        ],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"ingest-{args.label}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"ingest-{args.label}.md").write_text(markdown(report))
    print("\n" + markdown(report))


if __name__ == "__main__":
    main()
