"""Review rounds for the detection benchmark: simulated analysts work the product's queues, and their decisions
reach the scores.

The simulator's own labels follow loudness (analysts catch a campaign's loudest accounts first); they never read
the product. These rounds do. The analysts review `budget` undecided accounts of a day's queue, in one of five
orders:
- `top`: the plain queue, highest score first (what `distillguard risk top` and the console list);
- `explore`: the exploration queue (`distillguard risk explore`, models/review_queue.py), accounts unlike every
  account decided extraction and unlike each other;
- `mixed`: half the budget from the exploration queue, the rest from the plain queue;
- `audit`: the tier audit (`distillguard review audit`, models/tier_audit.py), a random draw from each tier's band,
  whose decisions relax the scoring model version's tier bounds on later days (daily rounds only);
- `explore-audit`: AUDIT_SHARE of the budget from the tier audit, the rest from the exploration queue;
- `explore-plus-audit`: the whole budget from the exploration queue, and a tier audit of as many accounts on top
  (twice the reviews: what audits add to exploration rather than what they replace).
Each reviewed account is decided with the simulator's ground truth (extraction for a campaign account, benign for
any other: analysts who never err), through the console's own `record_decision`, stamped late on the day.

Two ways to run them:
- `run`: one round on the train day, before training. On a copy of the lake a model is trained as of the train day
  and scores it; the analysts review that queue; the copy is dropped, the lake's features and families are
  recomputed from the train day on (both read the decisions), and the benchmark trains as it always does. A
  simplification, said plainly: the analysts review the train day's queue before the night's training; in
  production they would read it the next morning.
- `daily`: a round on every scored day, after training. Each day is scored once its features and families have been
  recomputed with the decisions of the days before (the nightly order), and the analysts then review its queue.
  The decisions reach the scores through the nightly families (propagation from and resemblance to decided
  accounts) and features. The model trained as of the train day scores every day, unless `retrain`: then a model is
  trained as of each later day before it is scored, as the retrain DAG does on new labels.
Reviewed accounts are decided by the last day, so the evaluation leaves them out like every other decided account.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

POLICIES = ("top", "explore", "mixed", "audit", "explore-audit", "explore-plus-audit")
# their decisions only act on later days scored by the same model version
AUDITED = ("audit", "explore-audit", "explore-plus-audit")
ANALYST = "simulated-analyst"
# The jobs that read decisions, rerun after a round with --force: the benchmark's daily jobs already ran them for
# every day, and a backfill skips the days it has done (docs/history.md, 2026-12-08: they were skipped before 62e1847).
RECOMPUTED = ("features", "families")
DECIDED_AT = dt.time(23, 0)  # late on the day: after its queue was read, before the night's jobs
# `mixed`: the exploration queue's share of a day's reviews. Not fitted: an even split between finding new campaigns
# and confirming the plain queue's top.
EXPLORE_SHARE = 0.5
# `explore-audit`: the tier audit's share of a day's reviews. Not fitted: as above.
AUDIT_SHARE = 0.5


def decided_by(settings, day: dt.date) -> set[str]:
    """The accounts with a decision made on or before `day` (the lake also holds the simulator's later ones)."""
    from deltalake import DeltaTable

    labels = DeltaTable(settings.table_uri("enforcement_labels")).to_pandas(columns=["account_id", "decided_at"])
    return set(labels.loc[pd.to_datetime(labels["decided_at"], utc=True).dt.date <= day, "account_id"])


def queue_picks(settings, day: dt.date, budget: int, policy: str) -> list[str]:
    """The `budget` accounts an analyst working `policy`'s queue of `day` reviews: only decisions made by `day`
    count as made."""
    from jobs.risk_query import exploration_accounts

    if policy not in POLICIES:
        raise ValueError(f"review queue must be one of {', '.join(POLICIES)}, got {policy!r}")
    if policy == "explore":  # the exploration queue alone, even when it lists fewer than the budget
        return exploration_accounts(settings, day, budget, decided_by=day)["account_id"].to_pylist()
    if policy in AUDITED:
        from models.tier_audit import STRATA, draw_for_day

        share = round(budget * AUDIT_SHARE) if policy == "explore-audit" else budget
        drawn = draw_for_day(settings, day, max(1, share // len(STRATA)))["account_id"].tolist()
        if policy == "audit":
            return drawn
        explore_budget = budget - len(drawn) if policy == "explore-audit" else budget
        explored = exploration_accounts(settings, day, explore_budget + len(drawn), decided_by=day)
        in_draw = set(drawn)
        return drawn + [a for a in explored["account_id"].to_pylist() if a not in in_draw][:explore_budget]
    explored: list[str] = []
    if policy == "mixed":
        share = round(budget * EXPLORE_SHARE)
        explored = exploration_accounts(settings, day, share, decided_by=day)["account_id"].to_pylist()
    return explored + _plain_queue(settings, day, budget - len(explored), decided_by(settings, day) | set(explored))


def _plain_queue(settings, day: dt.date, budget: int, skipped: set[str]) -> list[str]:
    """The day's undecided accounts in the plain queue's order (`risk top`, the console), less `skipped`."""
    from deltalake import DeltaTable

    risk = DeltaTable(settings.table_uri("account_risk")).to_pandas(
        columns=["account_id", "score"], filters=[("score_date", "=", day)]
    )
    risk = risk[~risk["account_id"].isin(skipped)]
    return risk.sort_values(["score", "account_id"], ascending=[False, True]).head(budget)["account_id"].tolist()


def first_pass(lake: Path, day: dt.date) -> Path:
    """A copy of the lake with a model trained as of `day` and `day` scored, as the queue stood that day. Each
    command runs in its own process: MLflow keeps one tracking store per process, and the benchmark's own training
    later in this process must write to the lake's store, not the copy's."""
    copy = lake.parent / "before-review"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(lake, copy)
    for argv in (("train", "--as-of", day.isoformat()), ("score", "--date", day.isoformat())):
        command = [sys.executable, "-m", "jobs.cli", "--lake", str(copy), *argv]
        done = subprocess.run(command, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"first pass `{' '.join(argv)}` exited {done.returncode}: {done.stderr[-2000:]}")
    return copy


def run(lake: Path, day: dt.date, last: dt.date, budget: int, policy: str, cli) -> dict:
    """Review `budget` accounts of `policy`'s queue on `day` into `lake`, then recompute what reads decisions from
    `day` to `last` with `cli(lake, *argv)`. Returns what was reviewed and what the reviews found."""
    from lake.config import load_settings
    from simulator.simulate import read_ground_truth

    settings = load_settings(lake_root=str(lake))
    truth = read_ground_truth(settings).set_index("account_id")
    copy = first_pass(lake, day)
    try:
        picks = queue_picks(load_settings(lake_root=str(copy)), day, budget, policy)
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    found = decide(settings, truth, day, picks, policy)
    cli(lake, "backfill", "--from", day.isoformat(), "--to", last.isoformat(), "--steps", *RECOMPUTED, "--force")
    return {"policy": policy, "budget": budget, **found}


def daily(settings, days: list[dt.date], budget: int, policy: str, cli, retrain: bool = False) -> dict:
    """Score each of `days` in turn, its features and families first recomputed with the decisions of the days
    before (not for the first day, which nothing reviewed yet precedes), and review `budget` accounts of its queue
    (none: `budget` 0). With `retrain`, `distillguard train --as-of` each later day runs before it is scored, as the
    retrain DAG would on new labels (its promotion gate decides whether the new model scores); otherwise the model
    trained before the first day scores them all. `cli(lake, *argv)` runs the jobs. Returns each day's round and
    every account reviewed."""
    from simulator.simulate import read_ground_truth

    truth = read_ground_truth(settings).set_index("account_id")
    lake = Path(settings.lake_root)
    rounds = []
    for i, day in enumerate(days):
        if i > 0:
            cli(lake, "backfill", "--from", day.isoformat(), "--to", day.isoformat(), "--steps", *RECOMPUTED, "--force")
            if retrain:
                cli(lake, "train", "--as-of", day.isoformat())
        cli(lake, "backfill", "--from", day.isoformat(), "--to", day.isoformat(), "--steps", "score")
        version = scoring_version(settings, day)
        bounds = {"tier_bounds": tier_bounds_used(settings, day, version)} if policy in AUDITED else {}
        picks = queue_picks(settings, day, budget, policy) if budget else []
        rounds.append({**decide(settings, truth, day, picks, policy), "model_version": version, **bounds})
    return {
        "policy": policy,
        "budget": budget,
        "retrain": retrain,
        "days": [{k: v for k, v in r.items() if k != "account_ids"} for r in rounds],
        "account_ids": [account for r in rounds for account in r["account_ids"]],
    }


def scoring_version(settings, day: dt.date) -> str:
    """The model version that scored `day` (with retraining, the promotion gate may have kept the older one)."""
    from deltalake import DeltaTable

    risk = DeltaTable(settings.table_uri("account_risk")).to_pandas(
        columns=["model_version"], filters=[("score_date", "=", day)]
    )
    return ", ".join(sorted(set(risk["model_version"].dropna())))


def tier_bounds_used(settings, day: dt.date, version: str) -> dict[str, dict[str, float]]:
    """The model version's own tier bounds and those that tiered `day` after its audits (models/tier_audit.py)."""
    from models import registry, tier_audit

    own = registry.version_info(registry.configure(settings), settings.model_name, version).tier_bounds
    used = tier_audit.day_bounds(settings, version, own, day)
    return {"model": dict(own), "used": dict(used)}


def decide(settings, truth: pd.DataFrame, day: dt.date, picks: list[str], policy: str) -> dict:
    """Decide `picks` with the ground truth (`truth` indexed by account_id), late on `day`; what they found."""
    from console.decisions import record_decision

    caught = set(truth.loc[truth.index.isin(decided_by(settings, day)), "campaign_id"].dropna())
    now = dt.datetime.combine(day, DECIDED_AT, tzinfo=dt.UTC)
    for account in picks:
        record_decision(
            settings,
            analyst=ANALYST,
            label="extraction" if truth.at[account, "is_campaign"] else "benign",
            note=f"benchmark review round: the {policy} queue of {day.isoformat()}",
            account_id=account,
            now=now,
        )
    reviewed = truth.loc[picks]
    return {
        "day": day.isoformat(),
        "reviewed": len(picks),
        "extraction": int(reviewed["is_campaign"].sum()),
        "benign": int((~reviewed["is_campaign"]).sum()),
        "campaign_accounts": {str(c): int(n) for c, n in reviewed["campaign_id"].dropna().value_counts().items()},
        # campaigns with no account decided by the day, which the round gave their first labels
        "campaigns_first_labelled": sorted(set(reviewed["campaign_id"].dropna()) - caught),
        "account_ids": picks,
    }


def as_found(truth: pd.DataFrame, account_ids: list[str]) -> pd.DataFrame:
    """The reviewed accounts as evaluation input (models/detection_report.evaluation_rows): what the analysts found
    counts like a flag, a campaign account at every tier (score 1), a benign one cleared (score 0, lowest tier)."""
    from models.config import LOWEST_TIER, TIERS

    reviewed = truth[truth["account_id"].isin(account_ids)]
    found = reviewed["is_campaign"].astype(bool)
    return reviewed.assign(score=found.astype(float), tier=found.map({True: TIERS[0], False: LOWEST_TIER}))
