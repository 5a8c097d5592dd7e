"""Detection quality of the real pipeline on simulated lakes, measured on accounts nobody has labelled.

Usage: python benchmarks/detection.py [--seeds dev|report|both|N ...] [--scenario randomised] [--hold-out ARCHETYPE]
                                      [--accounts 24000] [--days 12] [--train-day 10] [--parallel 2] [--label L]
                                      [--lakes DIR] [--review N | --daily-review N] [--review-queue top|explore|mixed|audit|explore-audit|explore-plus-audit]
                                      [--retrain-daily]

Seeds: DEV_SEEDS are for tuning; REPORT_SEEDS are never tuned on. Both sets are reported, always apart.
Per seed: simulate a fresh lake (simulator.simulate.run, the code behind `distillguard simulate`), then run the
pipeline through its own CLI (`jobs.cli.main`) in one process: `backfill` of the daily jobs (DAILY_JOBS, one engine
per day), `train --as-of` the train day, `backfill --steps score` from the train day to the last day. Evaluation
joins what the jobs wrote to the simulator's ground truth, which lives outside the lake and which no job reads
(models/detection_report.py), on the accounts with no label decided by the last day that were scored on any day
from the train day to the last, one row per account (its highest score and tier over those days):
- headline: recall and realised benign FPR at tier >= critical, >= high, >= elevated, overall, per archetype, per
  campaign and per benign segment, with 95% intervals from a bootstrap over clusters (a campaign, a benign link
  cluster or shared org, or a lone account), pooled over each seed set;
- secondary: recall at 0.01%, 0.1% and 1% benign FPR with the threshold fitted on each seed's ground truth (oracle);
- detection latency (days from a campaign's first request to its first then-unlabelled account at >= high) and
  the last day's cluster purity.
`--hold-out ARCHETYPE` (randomised scenario) is leave-one-tactic-out: no labelled campaign of the lake has it.
`--review N` adds one review round before training: simulated analysts decide N accounts from the train day's plain
(`top`), exploration (`explore`) or `mixed` queue, and those decisions reach the model. `--daily-review N` instead
reviews N accounts of every scored day's queue once it is scored, and the next day's features and families read
them (benchmarks/review_round.py); `--retrain-daily` also retrains as of every scored day after the first.
Writes benchmarks/results/detection-<scenario>[-holdout-<archetype>][-{review,daily}<N>-<queue>][-retrain-daily]-
<label>.json (machine facts) and .md; the label defaults to the date and commit, with -dev for a run of development
seeds only.
How to run and read it: docs/detection-benchmark.md.
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

import numpy as np  # noqa: E402 - importable only once sys.path holds benchmarks/ and the repository
import pandas as pd  # noqa: E402 - importable only once sys.path holds benchmarks/ and the repository
import review_round  # noqa: E402 - importable only once sys.path holds benchmarks/ and the repository
from machine import machine_facts  # noqa: E402 - importable only once sys.path holds benchmarks/ and the repository

# The per-day jobs in the nightly order (jobs/steps.py); scoring runs once the model is trained.
from jobs.steps import STEP_NAMES  # noqa: E402 - importable only once sys.path holds benchmarks/ and the repository

DAILY_JOBS = tuple(name for name in STEP_NAMES if name != "score")  # jobs/steps.py order, scoring apart
START = dt.date(2026, 10, 5)
RESULT_NAME = "detection"
# Declared once: tune on DEV_SEEDS only; REPORT_SEEDS are what the project reports and are never tuned on.
DEV_SEEDS = (101, 102, 103)
REPORT_SEEDS = (201, 202, 203, 204, 205)
ORACLE_LEVELS = {"at_0.1%": 0.001, "at_1%": 0.01}  # oracle thresholds also measured per archetype and campaign


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


def seed_set(seed: int) -> str:
    return "dev" if seed in DEV_SEEDS else "report" if seed in REPORT_SEEDS else "adhoc"


def resolve_seeds(tokens: list[str]) -> list[int]:
    """`dev`, `report`, `both` or explicit integers, in order, without repeats."""
    seeds: list[int] = []
    for token in tokens:
        named = {"dev": DEV_SEEDS, "report": REPORT_SEEDS, "both": DEV_SEEDS + REPORT_SEEDS}.get(token)
        for seed in named or (int(token),):
            if seed not in seeds:
                seeds.append(seed)
    return seeds


def cached_lake(args: argparse.Namespace, seed: int) -> Path | None:
    """Where --lakes keeps a seed's lake (and ground truth) as it stands after the daily jobs, or None."""
    if not args.lakes:
        return None
    held = f"-holdout-{args.hold_out}" if args.hold_out else ""
    return Path(args.lakes) / f"{args.scenario}{held}-{args.accounts}x{args.days}-seed{seed}"


def campaigns_live(args: argparse.Namespace, seed: int) -> dict[str, dt.date]:
    """Campaign -> the date it went live, from the randomised scenario's plan (ground truth outside the lake); {}
    for the other scenarios, whose campaigns' first requests are their start."""
    if args.scenario != "randomised":
        return {}
    from simulator.randomised import draw_plan

    plan = draw_plan(seed, args.accounts, args.days, hold_out=args.hold_out)
    return {
        c.campaign_id: (dt.datetime.combine(START, dt.time()) + dt.timedelta(days=c.start_day)).date()
        for c in plan.campaigns
    }


def run_seed(seed: int, args: argparse.Namespace, workdir: Path) -> dict:
    """Simulate, run the pipeline and evaluate one seed; its evaluation rows go to <workdir>/seed<N>.parquet."""
    from deltalake import DeltaTable

    from lake.config import load_settings
    from lake.dates import date_range
    from models import campaign_metrics
    from models import detection_report as report
    from simulator import simulate

    lake = workdir / f"seed{seed}" / "lake"
    shutil.rmtree(lake.parent, ignore_errors=True)
    dates = date_range(START, args.days)
    train_day, last = dates[args.train_day - 1], dates[-1]
    timings: dict[str, float] = {}

    def timed(name: str, *argv: str) -> None:
        began = time.perf_counter()
        cli(lake, *argv)
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - began

    print(
        f"== seed {seed} ({seed_set(seed)}): {args.accounts:,} accounts x {args.days} days ({args.scenario}"
        f"{', hold out ' + args.hold_out if args.hold_out else ''}), train as of {train_day}, score to {last}",
        flush=True,
    )
    settings = load_settings(lake_root=str(lake))
    cached = cached_lake(args, seed)
    if cached is not None and cached.exists():
        shutil.copytree(cached, lake.parent)
        print(f"   seed {seed}: reused the lake after its daily jobs from {cached}", flush=True)
    else:
        began = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            simulate.run(settings, START, args.days, args.accounts, seed, args.scenario, hold_out=args.hold_out)
        timings["simulate"] = time.perf_counter() - began
        timed("daily_jobs", "backfill", "--from", START.isoformat(), "--to", last.isoformat(), "--steps", *DAILY_JOBS)
        print(f"   seed {seed}: simulated and ran {', '.join(DAILY_JOBS)} in {sum(timings.values()):.0f}s", flush=True)
        if cached is not None:
            shutil.copytree(lake.parent, cached)
    result: dict = {"seed": seed, "set": seed_set(seed), "train_as_of": train_day.isoformat(), "last": last.isoformat()}
    try:
        if args.review:
            began = time.perf_counter()
            result["review"] = review_round.run(lake, train_day, last, args.review, args.review_queue, cli)
            timings["review"] = time.perf_counter() - began
            print(f"   seed {seed}: review round {result['review']}", flush=True)
        timed("train", "train", "--as-of", train_day.isoformat())
        if args.daily_review or args.retrain_daily:
            began = time.perf_counter()
            scored_days = [day for day in dates if day >= train_day]
            result["daily_review"] = review_round.daily(
                settings, scored_days, args.daily_review, args.review_queue, cli, retrain=args.retrain_daily
            )
            timings["score_and_daily_review"] = time.perf_counter() - began
            print(f"   seed {seed}: daily review {result['daily_review']['days']}", flush=True)
        else:
            timed("score", "backfill", "--from", train_day.isoformat(), "--to", last.isoformat(), "--steps", "score")
    except JobFailed as exc:  # reported per seed: a training failure is itself a finding
        print(f"   seed {seed}: {exc}", flush=True)
        result.update(error=str(exc), timings_s=timings)
        return result
    spent = sum(timings.get(name, 0.0) for name in ("train", "score", "score_and_daily_review"))
    print(f"   seed {seed}: trained and scored in {spent:.0f}s", flush=True)

    def table(name: str, columns: list[str] | None = None):
        return DeltaTable(settings.table_uri(name)).to_pandas(columns=columns)

    truth = simulate.read_ground_truth(settings)
    labels = table("enforcement_labels")
    risk = table("account_risk", ["score_date", "account_id", "score", "tier"])
    # one row per account over the scored days: what an analyst reading each day's queue would have seen of it
    scored = report.one_row_per_account(report.unlabelled(risk[risk["score_date"] >= train_day], truth, labels, last))
    clusters = table("account_clusters", ["feature_date", "account_id", "cluster_id"])
    clusters = clusters[clusters["feature_date"] == last]
    requests = DeltaTable(settings.table_uri("api_requests")).to_pyarrow_table(columns=["account_id", "event_date"])
    first_request = (requests.group_by("account_id").aggregate([("event_date", "min")]).to_pandas()).rename(
        columns={"event_date_min": "first_date"}
    )
    scope = report.evaluation_rows(scored, clusters, table("accounts"), prefix=f"{seed}:").assign(seed=seed)
    for name, level in ORACLE_LEVELS.items():  # the oracle threshold of this seed, for the secondary ranking
        scope[name] = scope["score"] >= report.threshold_at_fpr(scope["is_campaign"].astype(int), scope["score"], level)
    scope.to_parquet(workdir / f"seed{seed}.parquet")
    if args.review_queue in review_round.AUDITED and args.daily_review:
        # the same scores and decisions tiered with each scoring model version's own bounds: what the audits added
        own = table("account_risk", ["score_date", "account_id", "score", "model_version"])
        own = own.assign(tier=model_version_tiers(settings, own)).drop(columns="model_version")
        own = report.one_row_per_account(report.unlabelled(own[own["score_date"] >= train_day], truth, labels, last))
        own = report.evaluation_rows(own, clusters, table("accounts"), prefix=f"{seed}:").assign(seed=seed)
        own.to_parquet(workdir / f"seed{seed}-model-bounds.parquet")
    reviewed_ids = [a for key in ("review", "daily_review") for a in result.get(key, {}).get("account_ids", [])]
    if reviewed_ids:  # the reviewed accounts, for the measure that counts what the analysts found too
        found = review_round.as_found(truth, reviewed_ids)
        reviewed = report.evaluation_rows(found, clusters, table("accounts"), prefix=f"{seed}:").assign(seed=seed)
        reviewed.to_parquet(workdir / f"seed{seed}-reviewed.parquet")
    decided = labels[
        pd.to_datetime(labels["decided_at"], utc=True) < pd.Timestamp(last + dt.timedelta(days=1), tz="UTC")
    ]
    campaigns = truth.dropna(subset=["campaign_id"]).groupby("campaign_id")
    result.update(
        accounts=len(truth),
        benign_accounts=int((~truth["is_campaign"]).sum()),
        requests=int(requests.num_rows),
        campaigns={
            str(c): {
                "archetype": str(rows["archetype"].iloc[0]),
                "accounts": len(rows),
                "labelled_accounts": int(rows["account_id"].isin(decided["account_id"]).sum()),
                "unlabelled_scored": int((scope["campaign_id"] == c).sum()),
            }
            for c, rows in campaigns
        },
        campaign_archetypes={str(c): str(rows["archetype"].iloc[0]) for c, rows in campaigns},
        at_benign_fpr=report.recall_at_benign_fpr(scope),
        latency=report.detection_latency(risk, truth, labels, first_request, live=campaigns_live(args, seed)),
        benign_flagged_per_day=report.benign_flagged_per_day(
            report.unlabelled(risk[risk["score_date"] >= train_day], truth, labels, last)
        ),
        clusters=report.cluster_purity(clusters, truth),
        campaign_tracking=campaign_metrics.lake_tracking_quality(settings, truth),
        timings_s={k: round(v, 1) for k, v in timings.items()},
    )
    if not args.keep:
        shutil.rmtree(lake.parent, ignore_errors=True)
    return result


def model_version_tiers(settings, risk: pd.DataFrame) -> np.ndarray:
    """Each account_risk row's tier (`risk`: score and model_version) from the bounds stored on the model version
    that scored it, without the tier audits' relaxation."""
    from models import registry
    from models.scoring import assign_tiers

    client = registry.configure(settings)
    tiers = np.empty(len(risk), dtype=object)
    for version in risk["model_version"].unique():
        rows = (risk["model_version"] == version).to_numpy()
        bounds = registry.version_info(client, settings.model_name, version).tier_bounds
        tiers[rows] = assign_tiers(risk["score"].to_numpy()[rows], bounds)
    return tiers


def headline(seeds: list[dict], workdir: Path) -> dict[str, dict]:
    """Per seed set, pooled over its finished seeds: the tiers' operating points and the oracle thresholds'."""
    from models import detection_report as report

    out: dict[str, dict] = {}
    for name in ("dev", "report", "adhoc"):
        done = [r["seed"] for r in seeds if r["set"] == name and "error" not in r]
        frames = [pd.read_parquet(workdir / f"seed{seed}.parquet") for seed in done]
        if not frames:
            continue
        pooled = pd.concat(frames, ignore_index=True)
        with_labels = {
            f"{r['seed']}:{c}"
            for r in seeds
            if r["seed"] in done
            for c, x in r["campaigns"].items()
            if x["labelled_accounts"]
        }
        siblings = pooled["campaign"].isin(with_labels)
        out[name] = {
            "seeds": done,
            "unlabelled_campaign_accounts": int(pooled["is_campaign"].sum()),
            "unlabelled_benign_accounts": int((~pooled["is_campaign"]).sum()),
            "tiers": report.tier_headline(pooled),
            "oracle": {level: report.operating_point(pooled, pooled[level]) for level in ORACLE_LEVELS},
            # campaign accounts split by whether their campaign has labelled accounts (siblings) or none at all
            "campaigns_with_labels": report.tier_headline(pooled[~pooled["is_campaign"] | siblings]),
            "campaigns_without_labels": report.tier_headline(pooled[~pooled["is_campaign"] | ~siblings]),
        }
        reviewed = [workdir / f"seed{seed}-reviewed.parquet" for seed in done]
        if any(path.exists() for path in reviewed):
            # the accounts undecided before the review round: those it reviewed count as found (a campaign
            # account) or cleared (a benign one), so queues that review different accounts compare fairly
            found = [pd.read_parquet(path) for path in reviewed if path.exists()]
            out[name]["with_review_round"] = report.tier_headline(pd.concat([pooled, *found], ignore_index=True))
        own = [workdir / f"seed{seed}-model-bounds.parquet" for seed in done]
        if own and all(path.exists() for path in own):
            frames = [pd.read_parquet(path) for path in own]
            out[name]["with_model_bounds"] = report.tier_headline(pd.concat(frames, ignore_index=True))
    return out


def run_seed_in_child(seed: int, argv: list[str], workdir: Path) -> dict:
    """One seed in a fresh process: MLflow keeps its tracking store in process-wide state, so a second lake's
    training in the same process would write to the first lake's store."""
    command = [sys.executable, str(Path(__file__).resolve()), *argv, "--one-seed", str(seed), "--workdir", str(workdir)]
    code = subprocess.run(command, cwd=ROOT).returncode
    path = workdir / f"seed{seed}.json"
    if code != 0 or not path.exists():
        return {"seed": seed, "set": seed_set(seed), "error": f"the seed's process exited {code} without a result"}
    return json.loads(path.read_text())


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True)
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def main(argv: list[str] | None = None) -> dict:
    from detection_tables import markdown

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", default=["both"], help="dev, report, both, or seed numbers")
    # 12 days is the fewest the model's default TrainingConfig trains on when as of day 10: 3 days of label
    # delay, then 3 holdout, 2 validation and at least 1 fitted feature date before it
    parser.add_argument("--days", type=int, default=12)
    parser.add_argument("--accounts", type=int, default=24_000, help="about 22,500 benign at the default")
    parser.add_argument("--train-day", type=int, default=10, help="train as of this day (1-based) of the window")
    parser.add_argument("--scenario", default="randomised", choices=("classic", "extended", "randomised"))
    parser.add_argument("--hold-out", default=None, help="leave-one-tactic-out: an archetype no labelled campaign has")
    parser.add_argument("--label", default=None, help="result name suffix (default: today and the commit)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--workdir", default=None, help="scratch directory for the lakes (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep each seed's lake")
    parser.add_argument(
        "--lakes",
        default=None,
        help="keep each seed's lake after its daily jobs here, and reuse it when present (only train and score "
        "rerun): for tuning the model; clear it whenever the simulator or a daily job changes",
    )
    parser.add_argument("--review", type=int, default=0, help="accounts reviewed from the train day's queue")
    parser.add_argument(
        "--daily-review", type=int, default=0, help="accounts reviewed from every scored day's queue, once scored"
    )
    parser.add_argument("--review-queue", default="explore", choices=review_round.POLICIES, help="the queue reviewed")
    parser.add_argument(
        "--retrain-daily", action="store_true", help="retrain as of every scored day after the first, before scoring it"
    )
    parser.add_argument("--parallel", type=int, default=1, help="seeds run at the same time (one process each)")
    parser.add_argument(
        "--render", metavar="JSON", help="only rewrite an existing result's markdown (and headline, with --workdir)"
    )
    parser.add_argument("--one-seed", type=int, help=argparse.SUPPRESS)  # the child process of one seed
    args = parser.parse_args(argv)
    if args.one_seed is not None:
        result = run_seed(args.one_seed, args, Path(args.workdir))
        (Path(args.workdir) / f"seed{args.one_seed}.json").write_text(json.dumps(result))
        return result
    if args.render:
        report = json.loads(Path(args.render).read_text())
        if args.workdir:  # the seeds' evaluation rows are still there: recompute the pooled headline
            report["headline"] = headline(report["seeds"], Path(args.workdir))
            Path(args.render).write_text(json.dumps(report, indent=2) + "\n")
        Path(args.render).with_suffix(".md").write_text(markdown(report))
        print(markdown(report))
        return report
    if not 1 <= args.train_day < args.days:
        parser.error(f"--train-day must be in 1..{args.days - 1}")
    if args.hold_out and args.scenario != "randomised":
        parser.error("--hold-out needs --scenario randomised")
    if args.review and (args.daily_review or args.retrain_daily):
        parser.error("--review is one round before training; --daily-review and --retrain-daily work day by day")
    if args.review and args.review_queue in review_round.AUDITED:
        parser.error(
            f"--review-queue {args.review_queue} moves the tiers of the model that scored the day: use it with --daily-review"
        )
    seeds = resolve_seeds(args.seeds)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="dg-detection-"))
    workdir.mkdir(parents=True, exist_ok=True)
    began = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # a run of development seeds only is named apart, so it never overwrites the report seeds' result of that commit
    sets = {seed_set(seed) for seed in seeds}
    label = args.label or f"{dt.date.today().isoformat()}-{commit()}" + ("-dev" if sets == {"dev"} else "")
    held = ["holdout", args.hold_out] if args.hold_out else []
    reviewed = [f"review{args.review}", args.review_queue] if args.review else []
    reviewed += [f"daily{args.daily_review}", args.review_queue] if args.daily_review else []
    reviewed += ["retrain-daily"] if args.retrain_daily else []
    stem = "-".join([RESULT_NAME, args.scenario, *held, *reviewed, label])
    report = {
        "benchmark": "detection",
        "started_at": dt.datetime.fromtimestamp(began, dt.UTC).isoformat(timespec="seconds"),
        "commit": commit(),
        "machine": machine_facts(),
        "config": {
            "scenario": args.scenario,
            "hold_out": args.hold_out,
            "seeds": seeds,
            "dev_seeds": list(DEV_SEEDS),
            "report_seeds": list(REPORT_SEEDS),
            "days": args.days,
            "parallel": args.parallel,
            "accounts": args.accounts,
            "train_day": args.train_day,
            "review": {"budget": args.review, "queue": args.review_queue} if args.review else None,
            "daily_review": {"budget": args.daily_review, "queue": args.review_queue} if args.daily_review else None,
            "retrain_daily": args.retrain_daily,
            "daily_jobs": list(DAILY_JOBS),
            "start": START.isoformat(),
        },
        "complete": False,
        "seeds": [],
    }
    from concurrent.futures import ThreadPoolExecutor

    child_argv = argv if argv is not None else sys.argv[1:]
    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        futures = [pool.submit(run_seed_in_child, seed, child_argv, workdir) for seed in seeds]
        for future in futures:
            report["seeds"].append(future.result())
            report["complete"] = len(report["seeds"]) == len(seeds)
            report["headline"] = headline(report["seeds"], workdir)
            report["wall_s"] = round(time.time() - began, 1)
            # written after every seed, so a long run that is stopped still leaves the seeds it finished
            (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
            (out / f"{stem}.md").write_text(markdown(report))
    print("\n" + markdown(report))
    print(f"written {out / stem}.json and .md in {report['wall_s']:.0f}s")
    return report


if __name__ == "__main__":
    main()
