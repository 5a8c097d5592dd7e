"""How much of the detection gap is the labels: one XGBoost per training design, fitted on one development lake's
train-day features and tested on another's.

Usage: python benchmarks/label_ceiling.py --lakes DIR [--seeds 101 102] [--train-day 10] [--out benchmarks/results]

Reads the lakes that `benchmarks/detection.py --lakes DIR` keeps after the daily jobs (randomised scenario, 24,000
accounts x 12 days), and their ground truth, which lives outside the lake. For every ordered pair of seeds it fits
the same XGBoost on the first lake's `account_features` of the train day (the model's inputs,
features.registry.feature_columns less training_set.NOT_MODEL_INPUTS) with one of these targets:
- `ground truth`: every campaign account against every other account, the ceiling of what the features carry;
- `ground truth without <archetype>`: the same with that archetype's accounts left out, tested on it alone;
- `decided by the train day`: accounts decided extraction by the train day against every other account, the labels
  a model of that lake can learn from;
- `decided, against accounts with no decided neighbour`: the same against the accounts outside every cluster that
  holds a decided account (cluster_labelled_extraction_share 0).
It scores the second lake's accounts that nobody had decided by its last day, on the same day's features, and
reports recall at 0.1% and 1% benign FPR with the threshold fitted on that lake's ground truth (a ranking measure,
not what a tier delivers), for all campaign accounts, those of campaigns without any decided account, and each
archetype. Nothing here is a detection claim: it trains on ground truth. It exists to tell the features' limits
from the labels' limits. Development seeds only: a report seed never informs a choice.
Writes benchmarks/results/label-ceiling-<label>.json (machine facts) and .md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from itertools import permutations
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from detection import DEV_SEEDS, START  # noqa: E402
from machine import machine_facts  # noqa: E402

LEVELS = (0.001, 0.01)
LAKE = "randomised-24000x12-seed{seed}"  # detection.py's cached_lake name for its default scenario and size


def load(lakes: Path, seed: int, day: dt.date):
    """The train day's feature rows of one cached lake, with ground truth and what was decided when."""
    import pandas as pd
    from deltalake import DeltaTable

    root = lakes / LAKE.format(seed=seed)
    if not root.exists():
        raise SystemExit(f"no cached lake {root}: run benchmarks/detection.py --seeds {seed} --lakes {lakes} first")
    features = DeltaTable(str(root / "lake" / "account_features")).to_pandas()
    features = features[pd.to_datetime(features["feature_date"]).dt.date == day]
    truth = pd.read_parquet(root / "lake_ground_truth" / "accounts.parquet")
    labels = DeltaTable(str(root / "lake" / "enforcement_labels")).to_pandas()
    decided_at = pd.to_datetime(labels["decided_at"], utc=True)
    by_train_day = labels[decided_at < pd.Timestamp(day + dt.timedelta(days=1), tz="UTC")]
    frame = features.merge(truth[["account_id", "is_campaign", "campaign_id", "archetype"]], on="account_id")
    frame["decided_extraction"] = frame["account_id"].isin(
        by_train_day.loc[by_train_day["label"] == "extraction", "account_id"]
    )
    frame["decided_ever"] = frame["account_id"].isin(labels["account_id"])
    frame["campaign_decided"] = frame["campaign_id"].isin(
        labels.loc[labels["label"] == "extraction", "campaign_id"].dropna()
    )
    return frame


def recall_at(scores, is_campaign, rows, level: float) -> float | None:
    """Share of `rows` at or above the threshold that flags `level` of the benign accounts (the detection
    benchmark's oracle threshold, models.metrics.threshold_at_fpr); None without rows."""
    import numpy as np

    from models.metrics import threshold_at_fpr

    if not rows.any():
        return None
    threshold = threshold_at_fpr(is_campaign.astype(int), scores, level)
    return round(float(np.mean(scores[rows] >= threshold)), 3)


def fit_and_test(train, target, test, columns) -> dict:
    import xgboost as xgb

    from models.config import TrainingConfig
    from models.train import booster_params

    # the supervised model's parameters and rounds, without early stopping: there is no validation lake
    config = TrainingConfig()
    booster = xgb.train(
        booster_params(config, "cpu"),
        xgb.DMatrix(train[columns].astype(float), label=target.astype(int)),
        num_boost_round=config.num_boost_round,
    )
    scores = booster.predict(xgb.DMatrix(test[columns].astype(float)))
    campaign = test["is_campaign"].to_numpy(dtype=bool)
    undecided_campaign = campaign & ~test["campaign_decided"].to_numpy(dtype=bool)
    out: dict = {}
    for level in LEVELS:
        key = f"at_{level:.1%}"
        out[key] = {
            "all campaign accounts": recall_at(scores, campaign, campaign, level),
            "campaigns without a decision": recall_at(scores, campaign, undecided_campaign, level),
            **{
                str(a): recall_at(scores, campaign, campaign & (test["archetype"] == a).to_numpy(), level)
                for a in sorted(test.loc[campaign, "archetype"].unique())
            },
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lakes", type=Path, required=True, help="detection.py's --lakes directory")
    parser.add_argument("--seeds", type=int, nargs="+", default=[101, 102])
    parser.add_argument("--train-day", type=int, default=10, help="1-based day of the lake, as in detection.py")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--label", default=None, help="result name suffix (default: today)")
    args = parser.parse_args()
    if not set(args.seeds) <= set(DEV_SEEDS) or len(set(args.seeds)) < 2:
        raise SystemExit(f"--seeds takes two or more development seeds ({', '.join(map(str, DEV_SEEDS))})")

    from features.registry import feature_columns
    from models.training_set import NOT_MODEL_INPUTS

    began = time.perf_counter()
    day = START + dt.timedelta(days=args.train_day - 1)
    frames = {seed: load(args.lakes, seed, day) for seed in args.seeds}
    columns = [c for c in feature_columns() if c not in NOT_MODEL_INPUTS]
    pairs = []
    for train_seed, test_seed in permutations(args.seeds, 2):
        train, test = frames[train_seed], frames[test_seed]
        test = test[~test["decided_ever"]]
        designs = {"ground truth": fit_and_test(train, train["is_campaign"], test, columns)}
        for archetype in sorted(test.loc[test["is_campaign"], "archetype"].unique()):
            kept = train[train["archetype"].fillna("") != archetype]
            held = test[~test["is_campaign"] | (test["archetype"] == archetype)]
            result = fit_and_test(kept, kept["is_campaign"], held, columns)
            designs[f"ground truth without {archetype}"] = {k: {archetype: v[archetype]} for k, v in result.items()}
        designs["decided by the train day"] = fit_and_test(train, train["decided_extraction"], test, columns)
        clean = train["decided_extraction"] | (
            (train["cluster_labelled_extraction_share"].fillna(0) == 0) & ~train["decided_ever"]
        )
        designs["decided, against accounts with no decided neighbour"] = fit_and_test(
            train[clean], train.loc[clean, "decided_extraction"], test, columns
        )
        pairs.append(
            {
                "train_seed": train_seed,
                "test_seed": test_seed,
                "train_positives_decided": int(train["decided_extraction"].sum()),
                "test_campaign_accounts": int(test["is_campaign"].sum()),
                "test_benign_accounts": int((~test["is_campaign"]).sum()),
                "designs": designs,
            }
        )
        print(f"   trained on {train_seed}, tested on {test_seed}", flush=True)
    label = args.label or dt.date.today().isoformat()
    report = {
        "benchmark": "label_ceiling",
        "train_day": day.isoformat(),
        "seeds": args.seeds,
        "pairs": pairs,
        "wall_s": round(time.perf_counter() - began, 1),
        "machine": machine_facts(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"label-ceiling-{label}.json"
    path.write_text(json.dumps(report, indent=2))
    path.with_suffix(".md").write_text(render(report))
    print(f"written {path} and .md")


def render(report: dict) -> str:
    lines = [
        f"XGBoost fitted on one development lake's features of {report['train_day']} and tested on another's "
        "undecided accounts; recall at 0.1% / 1% benign FPR with the threshold fitted on ground truth (a ranking "
        "measure, not a detection claim: it trains on ground truth).",
        "",
        "| train → test | design | all campaign accounts | campaigns without a decision | per archetype |",
        "|---|---|---:|---:|---|",
    ]
    for pair in report["pairs"]:
        for design, result in pair["designs"].items():
            low, high = result["at_0.1%"], result["at_1.0%"]
            common = [k for k in high if k not in ("all campaign accounts", "campaigns without a decision")]
            both = ("all campaign accounts", "campaigns without a decision")
            cells = [f"{_pct(low.get(k))} / {_pct(high.get(k))}" for k in both]
            per = ", ".join(f"{k} {_pct(low[k])} / {_pct(high[k])}" for k in common)
            lines.append(f"| {pair['train_seed']} → {pair['test_seed']} | {design} | {cells[0]} | {cells[1]} | {per} |")
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


if __name__ == "__main__":
    main()
