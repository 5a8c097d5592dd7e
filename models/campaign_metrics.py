"""How well campaign ids follow true campaigns, measured against simulator ground truth (never read by a job).

Two numbers, over the days of campaign_days (models/campaigns.py):
  continuity  for each true campaign and each pair of consecutive days on which its accounts sit in campaigns, the
              share of those day pairs on which its dominant campaign id (the id holding most of its clustered
              accounts) stays the same: how often a campaign's id survives a day;
  purity      the share of campaign ids that were the dominant id of at most one true campaign over their whole
              life: 1 - how often two true campaigns share one id.
Benign accounts are no campaign: an id whose members are all benign counts for neither number.

`replay` runs the matching over stored clusters without writing anything, so a threshold can be compared on the
same lake (`threshold_sweep`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pandas as pd

from models import campaigns as model


def _dominant_ids(campaign_days: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """(true campaign, day) -> the campaign id holding most of that campaign's accounts that day."""
    members = (
        campaign_days[["day", "campaign_id", "members"]].explode("members").rename(columns={"members": "account_id"})
    )
    truth = truth.loc[truth["is_campaign"], ["account_id", "campaign_id"]].rename(
        columns={"campaign_id": "true_campaign"}
    )
    joined = members.merge(truth, on="account_id")
    counts = joined.groupby(["true_campaign", "day", "campaign_id"]).size().rename("accounts").reset_index()
    counts = counts.sort_values(
        ["true_campaign", "day", "accounts", "campaign_id"], ascending=[True, True, False, True]
    )
    return counts.drop_duplicates(["true_campaign", "day"])


def tracking_quality(campaign_days: pd.DataFrame, truth: pd.DataFrame) -> dict[str, object]:
    """Continuity and purity of the campaign ids in `campaign_days` (day, campaign_id, members) against ground truth
    (account_id, campaign_id, is_campaign)."""
    dominant = _dominant_ids(campaign_days, truth)
    survived = transitions = 0
    per_campaign: dict[str, float] = {}
    for true_campaign, rows in dominant.groupby("true_campaign"):
        by_day = dict(zip(rows["day"], rows["campaign_id"]))
        pairs = [(d, d + dt.timedelta(days=1)) for d in by_day if d + dt.timedelta(days=1) in by_day]
        kept = sum(by_day[a] == by_day[b] for a, b in pairs)
        survived, transitions = survived + kept, transitions + len(pairs)
        if pairs:
            per_campaign[str(true_campaign)] = kept / len(pairs)
    owners = dominant.groupby("campaign_id")["true_campaign"].nunique()
    return {
        "continuity": survived / transitions if transitions else None,
        "day_transitions": transitions,
        "per_campaign_continuity": per_campaign,
        "purity": float((owners <= 1).mean()) if len(owners) else None,
        "campaign_ids": len(owners),
        "ids_shared_by_true_campaigns": int((owners > 1).sum()),
        "ids_per_true_campaign": float(dominant.groupby("true_campaign")["campaign_id"].nunique().mean())
        if len(dominant)
        else None,
    }


def replay(
    clusters_by_day: dict[dt.date, dict[str, list[str]]],
    threshold: float,
    lookback_days: int = model.DEFAULT_LOOKBACK_DAYS,
) -> pd.DataFrame:
    """The campaign_days rows (day, campaign_id, event, related, members) the campaigns job would write for these
    clusters, oldest day first, kept in memory."""
    history: list[dict] = []
    for day in sorted(clusters_by_day):
        previous = model.open_campaigns(history, day, lookback_days)
        for a in model.match_clusters(previous, clusters_by_day[day], day, threshold):
            history.append(
                {
                    "day": day,
                    "campaign_id": a.campaign_id,
                    "event": a.event,
                    "related": list(a.related),
                    "members": sorted(a.members),
                }
            )
    return pd.DataFrame(history, columns=["day", "campaign_id", "event", "related", "members"])


def threshold_sweep(
    account_clusters: pd.DataFrame, truth: pd.DataFrame, thresholds: Iterable[float]
) -> dict[str, dict[str, object]]:
    """tracking_quality at each threshold, replayed over account_clusters (feature_date, account_id, cluster_id)."""
    clusters_by_day: dict[dt.date, dict[str, list[str]]] = {}
    for day, cluster, account in account_clusters[["feature_date", "cluster_id", "account_id"]].itertuples(index=False):
        clusters_by_day.setdefault(day, {}).setdefault(cluster, []).append(account)
    out = {}
    for threshold in thresholds:
        days = replay(clusters_by_day, threshold)
        quality = tracking_quality(days, truth)
        quality["events"] = {str(k): int(v) for k, v in days["event"].value_counts().items()}
        out[f"{threshold:g}"] = quality
    return out


def lake_tracking_quality(settings, truth: pd.DataFrame) -> dict[str, object]:
    """tracking_quality of the campaign_days a lake holds (what the detection benchmark reports)."""
    from deltalake import DeltaTable

    days = DeltaTable(settings.table_uri("campaign_days")).to_pandas(columns=["day", "campaign_id", "members"])
    days["members"] = days["members"].map(list)
    return tracking_quality(days, truth)
