"""Campaigns job: match one day's clusters to the open campaigns (models/campaigns.py) and write the day's
`campaign_days` partition and the `campaigns` summary as of that day. Runs after cluster (and score, in the nightly
chain); it reads only account_clusters, account_links, account_daily, enforcement_labels and earlier campaign_days.
Each day's row keeps the cluster's link evidence as sentences (models/link_evidence.py) with the decisions as they
stood that night, so what an enforcement decision rested on stays on record.

Spark-free: the inputs are one day's gold partitions and the campaign history, small enough for delta-rs and
pyarrow. A rerun of a day reads only days before it, so it writes the same rows; days must run in order, as the
nightly chain and `distillguard backfill` run them.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from features.signals import CAPABILITIES
from jobs import preconditions
from lake import catalog
from lake.config import Settings
from models import campaigns as model
from models import link_evidence

DAILY_COLUMNS = [
    "account_id",
    "requests",
    "newest_model",
    "newest_model_requests",
    *(f"{c}_requests" for c in CAPABILITIES),
]


def day_clusters(settings: Settings, day: dt.date) -> dict[str, list[str]]:
    rows = catalog.read_arrow(settings, "account_clusters", filters=[("feature_date", "=", day)])
    clusters: dict[str, list[str]] = {}
    for account, cluster in zip(rows["account_id"].to_pylist(), rows["cluster_id"].to_pylist()):
        clusters.setdefault(cluster, []).append(account)
    return clusters


def history(settings: Settings, before: dt.date) -> list[dict]:
    if not catalog.exists(settings, "campaign_days"):
        return []
    columns = [f.name for f in catalog.table("campaign_days").schema]
    rows = catalog.read_arrow(settings, "campaign_days", filters=[("day", "<", before)]).select(columns)
    return rows.to_pylist()


def member_activity(settings: Settings, day: dt.date, accounts: list[str]) -> dict[str, dict]:
    if not accounts:
        return {}
    daily = catalog.read_arrow(settings, "account_daily", filters=[("event_date", "=", day)])
    daily = daily.filter(pc.is_in(daily["account_id"], pa.array(accounts))).select(DAILY_COLUMNS)
    return {row["account_id"]: row for row in daily.to_pylist()}


def day_links(settings: Settings, day: dt.date) -> dict[str, list[dict]]:
    """The day's account_links rows by their `src` account (a cluster's links all start at one of its members)."""
    if not catalog.exists(settings, "account_links"):
        return {}
    columns = ["src", "dst", *(column for column, _, _ in link_evidence.KINDS.values())]
    rows = catalog.read_arrow(settings, "account_links", filters=[("feature_date", "=", day)]).select(columns)
    by_src: dict[str, list[dict]] = {}
    for row in rows.to_pylist():
        by_src.setdefault(row["src"], []).append(row)
    return by_src


def labels(settings: Settings) -> list[dict]:
    if not catalog.exists(settings, "enforcement_labels"):
        return []
    return catalog.read_arrow(settings, "enforcement_labels").select(["account_id", "label", "decided_at"]).to_pylist()


def day_rows(
    assignments: list[model.Assignment],
    previous: list[model.PreviousCampaign],
    activity: dict[str, dict],
    standing: dict[str, str],
    links: dict[str, list[dict]],
    day: dt.date,
) -> list[dict]:
    """campaign_days rows of one day: each assignment with its members' volume, newest-model use, decisions and the
    cluster's link evidence (`links`: the day's account_links by src)."""
    before = {c.campaign_id: c.members for c in previous}
    rows = []
    for a in assignments:
        members = sorted(a.members)
        active = [activity[m] for m in members if m in activity]
        earlier = before.get(a.campaign_id, frozenset())
        models = {r["newest_model"] for r in active if r["newest_model"]}
        rows.append(
            {
                "day": day,
                "campaign_id": a.campaign_id,
                "cluster_id": a.cluster_id,
                "event": a.event,
                "related": list(a.related),
                "jaccard": a.jaccard,
                "members": members,
                "n_members": len(members),
                "joined": len(a.members - earlier),
                "left": len(earlier - a.members),
                "requests": sum(r["requests"] or 0 for r in active),
                "capability_requests": [
                    {"capability": c, "requests": sum(r[f"{c}_requests"] or 0 for r in active)} for c in CAPABILITIES
                ],
                "newest_model": min(models) if models else None,  # one value per day (daily_stats: day_constant)
                "newest_model_requests": sum(r["newest_model_requests"] or 0 for r in active),
                "extraction_decided": sum(standing.get(m) == "extraction" for m in members),
                "benign_decided": sum(standing.get(m) == "benign" for m in members),
                "evidence": [
                    e["text"]
                    for e in link_evidence.cluster_evidence(
                        members, [link for m in members for link in links.get(m, ())], standing
                    )
                ],
            }
        )
    return rows


def run(
    spark,  # unused: the nightly chain hands every non-frame step a SparkSession; this job reads with delta-rs
    settings: Settings,
    day: dt.date,
    *,
    threshold: float = model.DEFAULT_THRESHOLD,
    lookback_days: int = model.DEFAULT_LOOKBACK_DAYS,
) -> list[dict]:
    preconditions.check_campaigns(settings, day)
    clusters = day_clusters(settings, day)
    earlier = history(settings, day)
    previous = model.open_campaigns(earlier, day, lookback_days)
    assignments = model.match_clusters(previous, clusters, day, threshold)
    members = [m for a in assignments for m in a.members]
    rows = day_rows(
        assignments,
        previous,
        member_activity(settings, day, members),
        model.standing_labels(labels(settings), day),
        day_links(settings, day),
        day,
    )
    schema = catalog.table("campaign_days").schema
    catalog.write_arrow(settings, "campaign_days", pa.Table.from_pylist(rows, schema=schema), partition_value=day)
    summary = model.summarise([*earlier, *rows], day, lookback_days)
    campaigns_schema = catalog.table("campaigns").schema
    catalog.write_arrow(
        settings, "campaigns", pa.Table.from_pylist(summary, schema=campaigns_schema), partition_value=day
    )
    events = {event: sum(a.event == event for a in assignments) for event in model.EVENTS}
    print(
        f"campaigns {day.isoformat()}: {len(assignments):,} clusters -> "
        + ", ".join(f"{n} {event}" for event, n in events.items())
        + f"; {sum(r['status'] == model.ACTIVE for r in summary):,} active campaigns written to campaign_days",
        flush=True,
    )
    return rows
