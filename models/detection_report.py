"""Detection measured against simulator ground truth, on accounts that carry no label.

Used by the demo (`jobs/demo.py`) and the detection benchmark (`benchmarks/detection.py`). Ground truth comes
from the simulator (`simulator.simulate.read_ground_truth`) and never from the lake; these functions only join
it to what the jobs wrote (account_risk, account_clusters, enforcement_labels).

"Unlabelled on day D" means no enforcement_labels row decided on or before D: the accounts a detector has to
find by itself. Benign false-positive rates are measured on unlabelled benign accounts for the same reason.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from models.metrics import threshold_at_fpr

# Operating points by tier: an account is flagged when its tier is at or above the named one.
OPERATING_POINTS = ("critical", "high", "elevated")
TIER_RANK = {"low": 0, "elevated": 1, "high": 2, "critical": 3}
# benign false-positive rates at which recall is reported (the tiers' definitions, docs/design.md)
BENIGN_FPR_LEVELS = (0.0001, 0.001, 0.01)
BENIGN = "benign"


def unlabelled(risk: pd.DataFrame, truth: pd.DataFrame, labels: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """risk rows (one score date or several) joined to ground truth, for accounts with no label decided by the end of
    `as_of`. truth: account_id, is_campaign, campaign_id, segment (+ anything else, carried along)."""
    cutoff = pd.Timestamp(as_of + dt.timedelta(days=1), tz="UTC")
    labelled = set(labels.loc[pd.to_datetime(labels["decided_at"], utc=True) < cutoff, "account_id"])
    scored = risk.merge(truth, on="account_id", how="inner")
    return scored[~scored["account_id"].isin(labelled)]


def _flagged_at_tier(frame: pd.DataFrame, min_tier: str) -> pd.Series:
    return frame["tier"].map(TIER_RANK) >= TIER_RANK[min_tier]


def evaluate_unlabeled(
    risk: pd.DataFrame, truth: pd.DataFrame, labels: pd.DataFrame, as_of: dt.date
) -> dict[str, dict[str, Any]]:
    """Campaign recall and benign false-positive rate on accounts with no label decided by `as_of`,
    at each operating point (flag at tier ≥ critical, ≥ high, ≥ elevated).

    risk: account_id, tier (one score date). truth: account_id, segment, campaign_id, is_campaign.
    labels: account_id, decided_at.
    """
    scope = unlabelled(risk, truth, labels, as_of)
    attack = scope[scope["is_campaign"]]
    benign = scope[~scope["is_campaign"]]
    report: dict[str, dict[str, object]] = {}
    for min_tier in OPERATING_POINTS:
        per_campaign = _flagged_at_tier(attack, min_tier).groupby(attack["campaign_id"]).agg(["size", "mean"])
        per_segment = _flagged_at_tier(benign, min_tier).groupby(benign["segment"]).agg(["size", "mean"])
        report[min_tier] = {
            "unlabeled_campaign_accounts": len(attack),
            "campaign_recall": float(_flagged_at_tier(attack, min_tier).mean()) if len(attack) else float("nan"),
            "per_campaign_recall": {k: float(r["mean"]) for k, r in per_campaign.iterrows()},
            "campaigns_detected": int((per_campaign["mean"] > 0).sum()),
            "campaigns_total": len(per_campaign),
            "unlabeled_benign_accounts": len(benign),
            "benign_false_positive_rate": (
                float(_flagged_at_tier(benign, min_tier).mean()) if len(benign) else float("nan")
            ),
            "false_positives": int(_flagged_at_tier(benign, min_tier).sum()),
            "per_segment_fpr": {k: float(r["mean"]) for k, r in per_segment.iterrows()},
        }
    return report


def recall_at_benign_fpr(scope: pd.DataFrame, levels: tuple[float, ...] = BENIGN_FPR_LEVELS) -> dict[str, Any]:
    """Per-campaign recall (and all campaigns together) at score thresholds that flag at most `level` of the
    unlabelled benign accounts, plus each benign segment's FPR at those thresholds.

    scope: unlabelled accounts of one score date (`unlabelled`), with score, is_campaign, campaign_id, segment.
    With N benign accounts a level resolves to floor(level * N) allowed false positives (0 below 1/N)."""
    y = scope["is_campaign"].to_numpy().astype(np.int8)
    scores = scope["score"].to_numpy(dtype=np.float64)
    attack, benign = scope[y == 1], scope[y == 0]
    out: dict[str, Any] = {"benign_accounts": len(benign), "campaign_accounts": len(attack), "levels": {}}
    for level in levels:
        threshold = threshold_at_fpr(y, scores, level)
        hit_attack = attack["score"] >= threshold
        hit_benign = benign["score"] >= threshold
        out["levels"][f"{level:g}"] = {
            "threshold": threshold,
            "allowed_false_positives": int(np.floor(level * len(benign) + 1e-9)),
            "recall": float(hit_attack.mean()) if len(attack) else float("nan"),
            "per_campaign_recall": {
                str(k): float(v) for k, v in hit_attack.groupby(attack["campaign_id"]).mean().items()
            },
            "benign_fpr": float(hit_benign.mean()),
            "per_segment_fpr": {str(k): float(v) for k, v in hit_benign.groupby(benign["segment"]).mean().items()},
        }
    return out


def detection_latency(
    risk_by_day: pd.DataFrame,
    truth: pd.DataFrame,
    labels: pd.DataFrame,
    first_request: pd.DataFrame,
    min_tier: str = "high",
    live: dict[str, dt.date] | None = None,
) -> dict[str, dict[str, object]]:
    """Per campaign: days from its first request to the first score date on which one of its accounts that was
    still unlabelled that day sat at tier ≥ `min_tier`.

    risk_by_day: score_date, account_id, tier (every scored date). first_request: account_id, first_date. `live`:
    campaign -> the date it went live, where the simulator knows it; it stands in for the first request, since an
    account bought aged may carry an ordinary past in the lake from before the campaign took it over."""
    campaigns = truth[truth["is_campaign"]]
    started = (
        first_request.merge(campaigns[["account_id", "campaign_id"]], on="account_id")
        .groupby("campaign_id")["first_date"]
        .min()
    )
    if live:
        started = pd.Series({c: live.get(str(c), first) for c, first in started.items()}, dtype=object)
    decided = (
        labels.assign(decided=pd.to_datetime(labels["decided_at"], utc=True).dt.date)
        .groupby("account_id")["decided"]
        .min()
    )
    rows = risk_by_day.merge(campaigns[["account_id", "campaign_id"]], on="account_id")
    label_day = rows["account_id"].map(decided)
    still_unlabelled = label_day.isna() | (label_day > rows["score_date"])
    hits = rows[still_unlabelled & _flagged_at_tier(rows, min_tier)].groupby("campaign_id")["score_date"].min()
    sizes = campaigns.groupby("campaign_id").size()
    out: dict[str, dict[str, object]] = {}
    for campaign, first in started.items():
        flagged = hits.get(campaign)
        out[str(campaign)] = {
            "accounts": int(sizes.get(campaign, 0)),
            "first_request": first.isoformat(),
            "first_flagged": None if flagged is None else flagged.isoformat(),
            "latency_days": None if flagged is None else int((flagged - first).days),
        }
    return out


def cluster_purity(clusters: pd.DataFrame, truth: pd.DataFrame) -> dict[str, object]:
    """How meaningful the link graph's components are: the largest cluster's size, and each cluster's purity
    (share of its members from its most common campaign, with all benign accounts counting as one class).

    clusters: account_id, cluster_id (one feature date)."""
    if clusters.empty:
        return {
            "clusters": 0,
            "clustered_accounts": 0,
            "largest_cluster_size": 0,
            "largest_cluster_purity": None,
            "size_weighted_purity": None,
            "pure_cluster_share": None,
        }
    joined = clusters.merge(truth[["account_id", "campaign_id"]], on="account_id", how="left")
    joined["cls"] = joined["campaign_id"].fillna(BENIGN)
    counts = joined.groupby(["cluster_id", "cls"]).size()
    size = counts.groupby(level=0).sum()
    purity = counts.groupby(level=0).max() / size
    largest = size.idxmax()
    majority = counts.loc[largest].idxmax()
    return {
        "clusters": len(size),
        "clustered_accounts": int(size.sum()),
        "largest_cluster_size": int(size[largest]),
        "largest_cluster_purity": float(purity[largest]),
        "largest_cluster_majority": str(majority),
        "largest_cluster_campaign_accounts": int(size[largest] - counts.get((largest, BENIGN), 0)),
        "size_weighted_purity": float((purity * size).sum() / size.sum()),
        "pure_cluster_share": float((purity >= 0.9).mean()),  # share of clusters at least 90% one class
        "campaign_accounts_clustered": int((joined["cls"] != BENIGN).sum()),
    }


# --- the headline: what the tiers deliver, with intervals from a bootstrap over clusters ---------------------

BOOTSTRAP_REPLICATES = 1000
CONFIDENCE = 0.95


def benign_flagged_per_day(risk: pd.DataFrame) -> dict[str, dict[str, dict[str, float | int]]]:
    """Per score date and tier, the benign accounts at or above the tier that day (`risk`: score_date, tier,
    is_campaign; one row per account and day, as `unlabelled` gives). A tier's budget is a share of one day's
    accounts; the headline counts an account's highest tier over the days, which can only flag more."""
    out: dict[str, dict[str, dict[str, float | int]]] = {}
    for day, rows in risk[~risk["is_campaign"].astype(bool)].groupby("score_date"):
        out[str(day)] = {}
        for tier in OPERATING_POINTS:
            flagged = int(_flagged_at_tier(rows, tier).sum())
            out[str(day)][tier] = {"benign_flagged": flagged, "benign": len(rows), "benign_fpr": flagged / len(rows)}
    return out


def one_row_per_account(risk: pd.DataFrame) -> pd.DataFrame:
    """One row per account, so an account scored twice counts once: the row of its highest score (what the oracle
    thresholds rank), with its highest tier over the days. The two part where a day's tier bounds differ from
    another's (tier audits move them, models/tier_audit.py): a lower score can reach a higher tier."""
    ranked = risk.assign(_rank=risk["tier"].map(TIER_RANK))
    highest_tier = ranked.groupby("account_id")["_rank"].max()
    rows = ranked.sort_values(["score", "_rank"], ascending=False).drop_duplicates("account_id")
    rows = rows.assign(tier=rows["account_id"].map(highest_tier).map({rank: tier for tier, rank in TIER_RANK.items()}))
    return rows.drop(columns="_rank")


def evaluation_rows(
    scope: pd.DataFrame, clusters: pd.DataFrame, accounts: pd.DataFrame, prefix: str = ""
) -> pd.DataFrame:
    """Unlabelled accounts (`unlabelled`, one row each) with the columns `operating_point` reads. Bootstrap groups:
    a campaign's accounts form one group; a benign account goes with its link cluster (clusters: account_id,
    cluster_id of one day), else with its org (accounts table: teams sharing an org and a card), else alone.
    Inside one campaign its accounts are resampled. `prefix` keeps names apart when several lakes are stacked."""
    scope = scope.drop(columns=["cluster_id", "org_id"], errors="ignore")  # account_risk carries its own cluster_id
    scope = scope.merge(clusters[["account_id", "cluster_id"]], on="account_id", how="left")
    scope = scope.merge(accounts[["account_id", "org_id"]], on="account_id", how="left")
    campaign = prefix + scope["campaign_id"].astype(str)
    benign_group = prefix + "cluster:" + scope["cluster_id"].astype(str)
    benign_group = benign_group.where(scope["cluster_id"].notna(), prefix + "org:" + scope["org_id"].astype(str))
    is_campaign = scope["is_campaign"].astype(bool)
    return pd.DataFrame(
        {
            "account_id": scope["account_id"],
            "score": scope["score"],
            "tier": scope["tier"],
            "is_campaign": is_campaign,
            "campaign_id": scope["campaign_id"],
            "campaign": campaign.where(is_campaign, None),
            "archetype": scope["archetype"],
            "segment": scope["segment"],
            "group": campaign.where(is_campaign, benign_group),
            "subgroup": scope["account_id"],
        }
    )


def cluster_bootstrap_ci(
    hits: np.ndarray, sizes: np.ndarray, replicates: int = BOOTSTRAP_REPLICATES, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of sum(hits) / sum(sizes) when whole groups are resampled with replacement.

    hits, sizes: per group (a cluster, a campaign, a singleton account), the flagged accounts and all accounts.
    Accounts of one group rise and fall together, so resampling accounts would understate the spread."""
    hits, sizes = np.asarray(hits, float), np.asarray(sizes, float)
    if len(sizes) == 0 or sizes.sum() == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    stats = []
    for start in range(0, replicates, 100):  # chunks bound the (replicates x groups) weight matrix
        weights = rng.multinomial(len(sizes), np.full(len(sizes), 1 / len(sizes)), size=min(100, replicates - start))
        total = weights @ sizes
        stats.append(np.where(total > 0, (weights @ hits) / np.maximum(total, 1), np.nan))
    values = np.concatenate(stats)
    tail = (1 - CONFIDENCE) / 2 * 100
    return float(np.nanpercentile(values, tail)), float(np.nanpercentile(values, 100 - tail))


def _rate(flagged: pd.Series, groups: pd.Series, seed: int) -> dict[str, float | int]:
    """Share of accounts flagged, with its cluster-bootstrap interval over `groups`."""
    per_group = flagged.astype(float).groupby(groups).agg(["sum", "size"])
    low, high = cluster_bootstrap_ci(per_group["sum"].to_numpy(), per_group["size"].to_numpy(), seed=seed)
    return {
        "value": float(flagged.mean()) if len(flagged) else float("nan"),
        "low": low,
        "high": high,
        "flagged": int(flagged.sum()),
        "accounts": len(flagged),
        "groups": len(per_group),
    }


def operating_point(scope: pd.DataFrame, flagged: pd.Series, seed: int = 0) -> dict[str, object]:
    """Recall and realised benign FPR of one way of flagging (`flagged`, aligned with `scope`), with 95% intervals
    from a bootstrap over clusters, overall, per campaign, per archetype and per benign segment.

    scope: one row per account (several seeds may be stacked), unlabelled only, with is_campaign, group (the
    resampling unit: a campaign, a link cluster of benign accounts, or the account itself), campaign (a campaign's
    name, unique across stacked seeds), subgroup (the resampling unit inside one campaign), archetype, segment."""
    is_campaign = scope["is_campaign"].astype(bool)
    attack, benign = scope[is_campaign], scope[~is_campaign]
    hit_attack, hit_benign = flagged[is_campaign], flagged[~is_campaign]
    return {
        "recall": _rate(hit_attack, attack["group"], seed),
        "benign_fpr": _rate(hit_benign, benign["group"], seed),
        "per_campaign": {
            str(c): {
                "archetype": str(rows["archetype"].iloc[0]),
                **_rate(hit_attack[rows.index], rows["subgroup"], seed),
            }
            for c, rows in attack.groupby("campaign")
        },
        "per_archetype": {
            str(a): _rate(hit_attack[rows.index], rows["group"], seed) for a, rows in attack.groupby("archetype")
        },
        "per_segment_fpr": {
            str(s): _rate(hit_benign[rows.index], rows["group"], seed) for s, rows in benign.groupby("segment")
        },
    }


def tier_headline(scope: pd.DataFrame, seed: int = 0) -> dict[str, dict[str, object]]:
    """`operating_point` at each tier: flag at ≥ critical, ≥ high, ≥ elevated (scope needs a tier column)."""
    return {tier: operating_point(scope, _flagged_at_tier(scope, tier), seed) for tier in OPERATING_POINTS}
