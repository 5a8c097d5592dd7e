"""Detection quality of the real pipeline on simulated lakes, measured on accounts nobody has labelled.

Usage: python benchmarks/detection.py [--seeds 1 2 3] [--days 21] [--accounts 3000] [--train-day 14]
                                      [--scenario extended] [--out benchmarks/results] [--workdir DIR]

Per seed: simulate a fresh lake, then run the pipeline through its own CLI (`jobs.cli.main`, exactly what
`distillguard --lake L <job> --date D` runs): every day the jobs of DAILY_JOBS in order, then
`train --as-of` the train day, then `score` every day from the train day to the last day. Evaluation joins
what the jobs wrote (account_risk, account_clusters, enforcement_labels, api_requests dates) to the
simulator's ground truth, which lives outside the lake and which no job reads (models/detection_report.py):
- per-campaign recall at 0.01%, 0.1% and 1% benign FPR, on accounts unlabelled on the last day;
- recall and realised benign FPR at each tier (account_risk.tier: critical / high / elevated);
- FPR per benign segment (at the 1% threshold and at each tier);
- detection latency: days from a campaign's first request to the first day one of its (then unlabelled)
  accounts sits at tier >= high, over the scored days (measurable below the train day only for a campaign that
  starts after it: campaign G of the extended scenario);
- the largest cluster's size and cluster purity against ground truth (account_clusters of the last day).
Writes benchmarks/results/detection-<scenario>.json (with the machine's facts) and a markdown table (.md).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from machine import machine_facts  # noqa: E402 - importable only once sys.path holds benchmarks/ and the repository

# The per-day jobs in the nightly order (jobs/steps.py); scoring runs once the model is trained.
from jobs.steps import STEP_NAMES  # noqa: E402 - importable only once sys.path holds benchmarks/ and the repository

DAILY_JOBS = tuple(name for name in STEP_NAMES if name != "score")  # jobs/steps.py order, scoring apart
START = dt.date(2026, 10, 5)
RESULT_NAME = "detection"


class JobFailed(RuntimeError):
    pass


def cli(lake: Path, *argv: str, quiet: bool = True) -> None:
    """One `distillguard --lake <lake> ...` command, in this process; raises JobFailed on a non-zero exit."""
    from jobs.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out) if quiet else contextlib.nullcontext():
        code = main(["--lake", str(lake), *argv])
    if code != 0:
        raise JobFailed(f"distillguard {' '.join(argv)} exited {code}: {out.getvalue()[-2000:]}")


def run_seed(seed: int, args: argparse.Namespace, workdir: Path) -> dict:
    from deltalake import DeltaTable

    from lake.config import load_settings
    from lake.dates import date_range
    from models import detection_report as report
    from simulator.simulate import read_ground_truth

    lake = workdir / f"seed{seed}" / "lake"
    shutil.rmtree(lake.parent, ignore_errors=True)
    dates = date_range(START, args.days)
    train_day = dates[args.train_day - 1]
    score_days = [d for d in dates if d >= train_day]
    timings: dict[str, float] = {}

    def timed(name: str, *argv: str) -> None:
        began = time.perf_counter()
        cli(lake, *argv)
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - began

    print(
        f"== seed {seed}: {args.accounts:,} accounts x {args.days} days ({args.scenario}), "
        f"train as of {train_day}, score {score_days[0]}..{score_days[-1]}",
        flush=True,
    )
    timed(
        "simulate",
        "simulate",
        "--start",
        START.isoformat(),
        "--days",
        str(args.days),
        "--accounts",
        str(args.accounts),
        "--seed",
        str(seed),
        "--scenario",
        args.scenario,
    )
    for day in dates:
        began = time.perf_counter()
        for job in DAILY_JOBS:
            timed(job, job, "--date", day.isoformat())
        print(f"   {day}: {' -> '.join(DAILY_JOBS)} in {time.perf_counter() - began:.0f}s", flush=True)
    result: dict = {
        "seed": seed,
        "train_as_of": train_day.isoformat(),
        "score_days": [score_days[0].isoformat(), score_days[-1].isoformat()],
    }
    try:
        timed("train", "train", "--as-of", train_day.isoformat())
        for day in score_days:
            timed("score", "score", "--date", day.isoformat())
    except JobFailed as exc:  # reported per seed: a training failure is itself a finding (issue 9, item 8)
        print(f"   seed {seed}: {exc}", flush=True)
        result.update(error=str(exc), timings_s=timings)
        return result
    print(f"   trained and scored in {timings['train'] + timings['score']:.0f}s", flush=True)

    settings = load_settings(lake_root=str(lake))
    truth = read_ground_truth(settings)
    labels = DeltaTable(settings.table_uri("enforcement_labels")).to_pandas()
    risk = DeltaTable(settings.table_uri("account_risk")).to_pandas(
        columns=["score_date", "account_id", "score", "tier"]
    )
    last = score_days[-1]
    scope = report.unlabelled(risk[risk["score_date"] == last], truth, labels, last)
    requests = DeltaTable(settings.table_uri("api_requests")).to_pyarrow_table(columns=["account_id", "event_date"])
    first_request = (
        requests.group_by("account_id")
        .aggregate([("event_date", "min")])
        .to_pandas()
        .rename(columns={"event_date_min": "first_date"})
    )
    clusters = DeltaTable(settings.table_uri("account_clusters")).to_pandas(
        columns=["feature_date", "account_id", "cluster_id"]
    )
    result.update(
        accounts=len(truth),
        requests=int(requests.num_rows),
        campaign_archetypes={
            str(k): str(v)
            for k, v in truth.dropna(subset=["campaign_id"]).groupby("campaign_id")["archetype"].first().items()
        },
        at_benign_fpr=report.recall_at_benign_fpr(scope),
        tiers=report.evaluate_unlabeled(risk[risk["score_date"] == last], truth, labels, last),
        latency=report.detection_latency(risk, truth, labels, first_request),
        clusters=report.cluster_purity(clusters[clusters["feature_date"] == last], truth),
        timings_s={k: round(v, 1) for k, v in timings.items()},
    )
    if not args.keep:
        shutil.rmtree(lake.parent, ignore_errors=True)
    return result


def run_seed_in_child(seed: int, argv: list[str], workdir: Path) -> dict:
    """One seed in a fresh process: MLflow keeps its tracking store in process-wide state, so a second lake's
    training in the same process would write to the first lake's store."""
    command = [sys.executable, str(Path(__file__).resolve()), *argv, "--one-seed", str(seed), "--workdir", str(workdir)]
    code = subprocess.run(command, cwd=ROOT).returncode
    path = workdir / f"seed{seed}.json"
    if code != 0 or not path.exists():
        return {"seed": seed, "error": f"the seed's process exited {code} without a result"}
    return json.loads(path.read_text())


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or value != value else f"{100 * value:.{digits}f}%"


def _spread(values: list, digits: int = 1) -> str:
    """mean over seeds, with the range when the seeds disagree."""
    values = [v for v in values if v is not None and v == v]
    if not values:
        return "-"
    mean = sum(values) / len(values)
    if max(values) - min(values) < 0.5 * 10 ** -(digits + 2):
        return _pct(mean, digits)
    return f"{_pct(mean, digits)} ({_pct(min(values), digits - 1)}-{_pct(max(values), digits - 1)})"


def summary_markdown(report: dict) -> str:
    """Over the seeds: per-campaign recall at each benign FPR level and at each tier, with realised FPRs."""
    seeds = [r for r in report["seeds"] if "error" not in r]
    if not seeds:
        return ""
    levels = ("0.0001", "0.001", "0.01")
    campaigns = sorted({c for r in seeds for c in r["at_benign_fpr"]["levels"]["0.01"]["per_campaign_recall"]})
    archetypes = {c: a for r in seeds for c, a in r["campaign_archetypes"].items()}
    lines = [
        f"Mean over {len(seeds)} seeds (range in brackets), unlabelled accounts of the last day:\n",
        "| campaign | archetype | recall @0.01% FPR | @0.1% FPR | @1% FPR | >= high | >= elevated |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for c in [*campaigns, "all"]:
        if c == "all":
            cells = [_spread([r["at_benign_fpr"]["levels"][k]["recall"] for r in seeds]) for k in levels]
            cells += [_spread([r["tiers"][t]["campaign_recall"] for r in seeds]) for t in ("high", "elevated")]
            label = "every campaign account"
        else:
            cells = [
                _spread([r["at_benign_fpr"]["levels"][k]["per_campaign_recall"].get(c) for r in seeds]) for k in levels
            ]
            cells += [
                _spread([r["tiers"][t]["per_campaign_recall"].get(c) for r in seeds]) for t in ("high", "elevated")
            ]
            label = archetypes.get(c, "")
        lines.append(f"| {c} | {label} | " + " | ".join(cells) + " |")
    fpr = [_spread([r["at_benign_fpr"]["levels"][k]["benign_fpr"] for r in seeds], 2) for k in levels]
    fpr += [_spread([r["tiers"][t]["benign_false_positive_rate"] for r in seeds], 2) for t in ("high", "elevated")]
    lines.append("| benign FPR | (realised) | " + " | ".join(fpr) + " |")
    return "\n".join(lines) + "\n" + latency_markdown(seeds)


def latency_markdown(seeds: list[dict]) -> str:
    """Detection latency of the campaigns whose first request comes after the train day: scoring starts on that
    day, so for a campaign already active the latency only says when it started."""
    late = sorted({c for r in seeds for c, x in r["latency"].items() if x["first_request"] > r["train_as_of"]})
    if not late:
        return (
            "\nDetection latency: every campaign was active before the train day, so none can be measured below it.\n"
        )
    lines = [
        "\nDetection latency of the campaigns that start after the train day (days from the campaign's first "
        "request to its first unlabelled account at >= high; `never` = not within the scored days):\n",
        "| campaign | " + " | ".join(f"seed {r['seed']}" for r in seeds) + " |",
        "|---|" + "---:|" * len(seeds),
    ]
    for c in late:
        cells = []
        for r in seeds:
            x = r["latency"].get(c)
            if x is None or x["first_request"] <= r["train_as_of"]:
                cells.append("-")
            else:
                days = "never" if x["latency_days"] is None else f"{x['latency_days']} d"
                cells.append(f"{days} ({x['accounts']} accts from {x['first_request']})")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown(report: dict) -> str:
    seeds = [r for r in report["seeds"] if "error" not in r]
    lines: list[str] = []
    cfg = report["config"]
    lines.append(
        f"Scenario `{cfg['scenario']}`, {cfg['accounts']:,} accounts x {cfg['days']} days per seed, "
        f"trained as of day {cfg['train_day']}, evaluated on the last day's UNLABELLED accounts.\n"
    )
    if not report.get("complete", True):
        lines.append(f"**Partial**: {len(report['seeds'])} of {len(cfg['seeds'])} seeds finished.\n")
    for failed in (r for r in report["seeds"] if "error" in r):
        lines.append(f"- seed {failed['seed']}: **failed**: {failed['error'].splitlines()[0]}\n")
    if not seeds:
        return "\n".join(lines)
    lines.append(summary_markdown(report))
    campaigns = sorted({c for r in seeds for c in r["at_benign_fpr"]["levels"]["0.01"]["per_campaign_recall"]})
    lines.append("Recall at benign FPR (per seed; `all` = every unlabelled campaign account):\n")
    lines.append("| seed | campaign | archetype | recall @0.01% | @0.1% | @1% |")
    lines.append("|---:|---|---|---:|---:|---:|")
    for r in seeds:
        levels = r["at_benign_fpr"]["levels"]
        for c in [*campaigns, "all"]:
            if c == "all":
                values = [levels[k]["recall"] for k in ("0.0001", "0.001", "0.01")]
                arche = f"{r['at_benign_fpr']['campaign_accounts']} accts"
            else:
                values = [levels[k]["per_campaign_recall"].get(c) for k in ("0.0001", "0.001", "0.01")]
                arche = r["campaign_archetypes"].get(c, "")
            lines.append(f"| {r['seed']} | {c} | {arche} | " + " | ".join(_pct(v) for v in values) + " |")
    lines.append("\nTiers (flag at tier >= t; benign FPR realised on unlabelled benign accounts):\n")
    lines.append(
        "| seed | tier | recall | benign FPR | benign flagged | " + " | ".join(f"camp. {c}" for c in campaigns) + " |"
    )
    lines.append("|---:|---|---:|---:|---:|" + "---:|" * len(campaigns))
    for r in seeds:
        for tier, row in r["tiers"].items():
            lines.append(
                f"| {r['seed']} | >= {tier} | {_pct(row['campaign_recall'])} | "
                f"{_pct(row['benign_false_positive_rate'], 2)} | {row['false_positives']} | "
                + " | ".join(_pct(row["per_campaign_recall"].get(c)) for c in campaigns)
                + " |"
            )
    segments = sorted({s for r in seeds for s in r["at_benign_fpr"]["levels"]["0.01"]["per_segment_fpr"]})
    lines.append(
        "\nBenign FPR per segment (at the 1%-FPR threshold / at tier >= high / >= elevated), mean over seeds:\n"
    )
    lines.append("| segment | @1% threshold | >= high | >= elevated |")
    lines.append("|---|---:|---:|---:|")

    def mean(values: list) -> float | None:
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    for s in segments:
        at1 = mean([r["at_benign_fpr"]["levels"]["0.01"]["per_segment_fpr"].get(s) for r in seeds])
        high = mean([r["tiers"]["high"]["per_segment_fpr"].get(s) for r in seeds])
        elevated = mean([r["tiers"]["elevated"]["per_segment_fpr"].get(s) for r in seeds])
        lines.append(f"| {s} | {_pct(at1, 2)} | {_pct(high, 2)} | {_pct(elevated, 2)} |")
    lines.append(
        "\nDetection latency (days from a campaign's first request to its first unlabelled account at "
        ">= high; `never` = not within the scored days; scoring starts on the train day "
        f"{cfg['train_day']}, so a campaign active from day 1 cannot score below {cfg['train_day'] - 1}) "
        "and the clusters of the last day (purity: share of a cluster's members from its most common "
        "campaign, all benign accounts counting as one class):\n"
    )
    lines.append(
        "| seed | "
        + " | ".join(f"{c}" for c in campaigns)
        + " | largest cluster | its campaign accts | its purity | size-weighted purity | clusters |"
    )
    lines.append("|---:|" + "---:|" * len(campaigns) + "---:|---:|---:|---:|---:|")
    for r in seeds:
        lat = [r["latency"].get(c, {}) for c in campaigns]
        cells = [
            "never" if x.get("latency_days") is None else f"{x['latency_days']} ({x['accounts']} accts)" for x in lat
        ]
        cl = r["clusters"]
        lines.append(
            f"| {r['seed']} | " + " | ".join(cells) + f" | {cl['largest_cluster_size']:,} | "
            f"{cl.get('largest_cluster_campaign_accounts', '-')} | {_pct(cl['largest_cluster_purity'])} | {_pct(cl['size_weighted_purity'])} | "
            f"{cl['clusters']:,} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--train-day", type=int, default=14, help="train as of this day (1-based) of the window")
    parser.add_argument("--scenario", default="extended", choices=("classic", "extended"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--workdir", default=None, help="scratch directory for the lakes (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep each seed's lake")
    parser.add_argument("--parallel", type=int, default=1, help="seeds run at the same time (one process each)")
    parser.add_argument("--render", metavar="JSON", help="only rewrite the markdown table of an existing result")
    parser.add_argument("--one-seed", type=int, help=argparse.SUPPRESS)  # the child process of one seed
    args = parser.parse_args(argv)
    if args.one_seed is not None:
        result = run_seed(args.one_seed, args, Path(args.workdir))
        (Path(args.workdir) / f"seed{args.one_seed}.json").write_text(json.dumps(result))
        return result
    if args.render:
        report = json.loads(Path(args.render).read_text())
        Path(args.render).with_suffix(".md").write_text(markdown(report))
        print(markdown(report))
        return report
    if not 1 <= args.train_day < args.days:
        parser.error(f"--train-day must be in 1..{args.days - 1}")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="dg-detection-"))
    workdir.mkdir(parents=True, exist_ok=True)
    began = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{RESULT_NAME}-{args.scenario}"
    report = {
        "benchmark": "detection",
        "started_at": dt.datetime.fromtimestamp(began, dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "config": {
            "scenario": args.scenario,
            "seeds": args.seeds,
            "days": args.days,
            "parallel": args.parallel,
            "accounts": args.accounts,
            "train_day": args.train_day,
            "daily_jobs": list(DAILY_JOBS),
            "start": START.isoformat(),
        },
        "complete": False,
        "seeds": [],
    }
    from concurrent.futures import ThreadPoolExecutor

    child_argv = argv if argv is not None else sys.argv[1:]
    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        futures = [pool.submit(run_seed_in_child, seed, child_argv, workdir) for seed in args.seeds]
        for future in futures:
            report["seeds"].append(future.result())
            report["complete"] = len(report["seeds"]) == len(args.seeds)
            report["wall_s"] = round(time.time() - began, 1)
            # written after every seed, so a long run that is stopped still leaves the seeds it finished
            (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
            (out / f"{stem}.md").write_text(markdown(report))
    print("\n" + markdown(report))
    print(f"written {out / stem}.json and .md in {report['wall_s']:.0f}s")
    return report


if __name__ == "__main__":
    main()
