"""Campaigns that persist across nights: the day's clusters matched to the previous campaigns by member overlap.

The cluster job rebuilds clusters every night, and a cluster's id is a hash of its smallest member, so it changes
whenever that member leaves. A campaign is the thing an analyst follows instead: its id stays the same for as long
as the campaign does. Each night (`match_clusters`):

  1. continued  a cluster keeps the id of the previous campaign it overlaps most, when the Jaccard similarity of
                their member sets is at least `threshold`, one to one, strongest pairs first;
  2. continued  a cluster left over whose majority of members came from one previous campaign that nothing
                continued takes over that campaign's id (a campaign that shrank or moved most of its members);
     split      ... and when that campaign was already continued by another cluster, the cluster is a new campaign
                recorded as split from it;
  3. merged     a previous campaign that nothing continued, whose majority of members now sit in a cluster that
                continued another campaign, is recorded as merged into that one (its id ends there);
  4. new        every other cluster starts a new campaign.
A previous campaign is any campaign seen in the last `lookback_days` days that has not merged away, with its
members as of the last day it was seen, so a campaign that drops out of the link graph for a few days (quiet
accounts leave the trailing window) keeps its id when it comes back.

New ids are a hash of the day and the cluster's smallest member, so a rerun of a day writes the same ids. Nothing
here reads the lake: the job (jobs/campaigns.py) reads the day's clusters and the earlier campaign days.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CONTINUED, SPLIT, MERGED, NEW = "continued", "split", "merged", "new"
EVENTS = (NEW, CONTINUED, SPLIT, MERGED)
# Jaccard similarity of member sets at which a cluster continues a campaign. Fitted on the simulator's ground truth
# (extended scenario, development seeds 101 and 102, 3,000 accounts x 21 days; models/campaign_metrics.py
# threshold_sweep; docs/evidence.md): 0.6 had the best mean purity (0.798, with 0.5 to 0.8) and, of those, the best
# mean continuity (0.899); 0.1 to 0.3 kept ids a little longer (0.91) but let more true campaigns share one.
DEFAULT_THRESHOLD = 0.6
# a campaign unseen for longer than this is over; its id is not reused
DEFAULT_LOOKBACK_DAYS = 7
MAJORITY = 0.5


@dataclass(frozen=True)
class PreviousCampaign:
    campaign_id: str
    members: frozenset[str]
    last_seen: dt.date


@dataclass(frozen=True)
class Assignment:
    """What one of the day's clusters became: the campaign id it carries and how it got it."""

    cluster_id: str
    campaign_id: str
    event: str  # continued | split | merged | new
    members: frozenset[str]
    jaccard: float | None = None  # against the campaign whose id it carries; None for a new campaign
    related: tuple[str, ...] = field(default_factory=tuple)  # split: the parent; merged: the absorbed campaigns


def new_campaign_id(day: dt.date, members: Iterable[str]) -> str:
    digest = hashlib.sha256(f"{day.isoformat()}|{min(members)}".encode()).hexdigest()
    return f"cmp-{digest[:16]}"


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def _overlaps(
    previous: Mapping[str, PreviousCampaign], clusters: Mapping[str, frozenset[str]]
) -> dict[tuple[str, str], int]:
    """(campaign_id, cluster_id) -> members in common, for pairs sharing at least one member (no all-pairs)."""
    owners: dict[str, list[str]] = {}
    for open_campaign in previous.values():
        for member in open_campaign.members:
            owners.setdefault(member, []).append(open_campaign.campaign_id)
    shared: dict[tuple[str, str], int] = {}
    for cluster_id, members in clusters.items():
        for member in members:
            for campaign_id in owners.get(member, ()):
                shared[(campaign_id, cluster_id)] = shared.get((campaign_id, cluster_id), 0) + 1
    return shared


def match_clusters(
    previous: Iterable[PreviousCampaign],
    clusters: Mapping[str, Iterable[str]],
    day: dt.date,
    threshold: float = DEFAULT_THRESHOLD,
) -> list[Assignment]:
    """One assignment per cluster of `day`, in cluster_id order. `previous` are the campaigns still open (seen in
    the lookback and not merged away); each account is in at most one cluster."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    by_id = {c.campaign_id: c for c in previous}
    members = {cid: frozenset(m) for cid, m in clusters.items()}
    shared = _overlaps(by_id, members)

    def similarity(campaign: str, cluster: str) -> float:
        return jaccard(by_id[campaign].members, members[cluster])

    carried: dict[str, str] = {}  # cluster_id -> campaign id it continues
    taken: set[str] = set()
    strongest_first = sorted(shared, key=lambda pair: (-similarity(*pair), -shared[pair], pair))
    for campaign, cluster in strongest_first:
        if similarity(campaign, cluster) < threshold:
            break
        if cluster not in carried and campaign not in taken:
            carried[cluster] = campaign
            taken.add(campaign)

    def main_source(cluster: str) -> str | None:
        """The previous campaign that supplied the majority of the cluster's members, if any."""
        sources = [(n, campaign) for (campaign, c), n in shared.items() if c == cluster]
        if not sources:
            return None
        n, campaign = min(sources, key=lambda s: (-s[0], s[1]))  # most shared members, then the smaller id
        return campaign if n / len(members[cluster]) > MAJORITY else None

    split_from: dict[str, str] = {}
    leftovers = sorted((c for c in members if c not in carried), key=lambda c: (-len(members[c]), c))
    for cluster in leftovers:
        source = main_source(cluster)
        if source is None:
            continue
        if source in taken:
            split_from[cluster] = source
        else:
            carried[cluster] = source
            taken.add(source)

    absorbed: dict[str, list[str]] = {}
    for campaign in sorted(set(by_id) - taken):
        size = len(by_id[campaign].members)
        for (source, cluster), n in shared.items():
            if source == campaign and cluster in carried and n / size > MAJORITY:
                absorbed.setdefault(cluster, []).append(campaign)

    out = []
    for cluster in sorted(members):
        if cluster in carried:
            campaign = carried[cluster]
            merged = tuple(sorted(absorbed.get(cluster, ())))
            out.append(
                Assignment(
                    cluster,
                    campaign,
                    MERGED if merged else CONTINUED,
                    members[cluster],
                    similarity(campaign, cluster),
                    merged,
                )
            )
        elif cluster in split_from:
            out.append(
                Assignment(
                    cluster,
                    new_campaign_id(day, members[cluster]),
                    SPLIT,
                    members[cluster],
                    None,
                    (split_from[cluster],),
                )
            )
        else:
            out.append(Assignment(cluster, new_campaign_id(day, members[cluster]), NEW, members[cluster]))
    return out


def open_campaigns(
    history: Iterable[Mapping], day: dt.date, lookback_days: int = DEFAULT_LOOKBACK_DAYS
) -> list[PreviousCampaign]:
    """The campaigns a cluster of `day` may continue, from earlier campaign_days rows (day, campaign_id, members,
    event, related): each campaign seen in the `lookback_days` days before `day`, with its members on the last day
    it was seen, unless it has merged into another campaign since."""
    first = day - dt.timedelta(days=lookback_days)
    latest: dict[str, Mapping] = {}
    merged_away: dict[str, dt.date] = {}
    for row in history:
        if not first <= row["day"] < day:
            continue
        current = latest.get(row["campaign_id"])
        if current is None or row["day"] > current["day"]:
            latest[row["campaign_id"]] = row
        if row["event"] == MERGED:
            for gone in row["related"] or ():
                merged_away[gone] = max(row["day"], merged_away.get(gone, row["day"]))
    return [
        PreviousCampaign(cid, frozenset(row["members"]), row["day"])
        for cid, row in sorted(latest.items())
        if not (cid in merged_away and merged_away[cid] >= row["day"])
    ]


# --- the campaigns table: one row per campaign as of a day, from its campaign_days history ---------------------

ACTIVE, DORMANT, ENDED = "active", "dormant", "ended"
PIVOT_SHARE = 0.5  # a campaign has pivoted on the first day most of its requests went to a model newer than its first


def model_pivot(days: list[Mapping]) -> tuple[dt.date | None, str | None]:
    """The first day (and model) on which most of the campaign's requests went to the newest model, when that model
    is newer than the one that was newest on the campaign's first day. days: the campaign's rows, oldest first."""
    if not days:
        return None, None
    first_model = days[0]["newest_model"]
    for row in days[1:]:
        model, requests = row["newest_model"], row["requests"] or 0
        if model and model != first_model and requests and (row["newest_model_requests"] or 0) / requests > PIVOT_SHARE:
            return row["day"], model
    return None, None


def summarise(history: Iterable[Mapping], as_of: dt.date, lookback_days: int = DEFAULT_LOOKBACK_DAYS) -> list[dict]:
    """One row per campaign seen on or before `as_of` (campaign_days rows): first and last seen, members over
    time, volume, capability mix, model-pivot day, how many members are decided, and its status:
    active (seen on as_of), dormant (seen within the lookback), merged (into `merged_into`) or ended."""
    by_campaign: dict[str, list[Mapping]] = {}
    merged_into: dict[str, str] = {}
    for row in history:
        if row["day"] > as_of:
            continue
        by_campaign.setdefault(row["campaign_id"], []).append(row)
        if row["event"] == MERGED:
            for gone in row["related"] or ():
                merged_into[gone] = row["campaign_id"]
    out = []
    for campaign_id, days in sorted(by_campaign.items()):
        days.sort(key=lambda r: r["day"])
        first, last = days[0], days[-1]
        capabilities: dict[str, int] = {}
        for row in days:
            for item in row["capability_requests"] or ():
                capabilities[item["capability"]] = capabilities.get(item["capability"], 0) + (item["requests"] or 0)
        pivot_day, pivot_to = model_pivot(days)
        if campaign_id in merged_into:
            status = MERGED
        elif last["day"] == as_of:
            status = ACTIVE
        else:
            status = DORMANT if (as_of - last["day"]).days <= lookback_days else ENDED
        decided = (last["extraction_decided"] or 0) + (last["benign_decided"] or 0)
        out.append(
            {
                "as_of": as_of,
                "campaign_id": campaign_id,
                "status": status,
                "merged_into": merged_into.get(campaign_id),
                "split_from": (first["related"] or [None])[0] if first["event"] == SPLIT else None,
                "first_seen": first["day"],
                "last_seen": last["day"],
                "days_seen": len(days),
                "members_now": last["n_members"],
                "members_ever": len({m for row in days for m in row["members"]}),
                "peak_members": max(row["n_members"] for row in days),
                "member_counts": [
                    {"day": row["day"], "members": row["n_members"], "requests": row["requests"]} for row in days
                ],
                "requests": sum(row["requests"] or 0 for row in days),
                "capability_mix": [
                    {"capability": c, "requests": n}
                    for c, n in sorted(capabilities.items(), key=lambda kv: (-kv[1], kv[0]))
                ],
                "model_pivot_day": pivot_day,
                "pivot_model": pivot_to,
                "extraction_decided": last["extraction_decided"] or 0,
                "benign_decided": last["benign_decided"] or 0,
                "decided_share": decided / last["n_members"] if last["n_members"] else None,
            }
        )
    return out


def standing_labels(labels: Iterable[Mapping], as_of: dt.date | None = None) -> dict[str, str]:
    """Each account's standing at the end of `as_of` (None: now): its latest label decided by then (at the same
    instant, extraction wins, as in training: models/training_set.py)."""
    cutoff = None if as_of is None else dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), dt.UTC)
    latest: dict[str, tuple] = {}
    for row in labels:
        decided_at = row["decided_at"]
        if decided_at is None or (cutoff is not None and decided_at >= cutoff):
            continue
        key = (decided_at, row["label"] == "extraction")
        if row["account_id"] not in latest or key > latest[row["account_id"]][0]:
            latest[row["account_id"]] = (key, row["label"])
    return {account: label for account, (_, label) in latest.items()}
