"""What the console's pages show, read straight from the Delta tables with delta-rs and pyarrow (no Spark).

Every function returns plain Python values (lists of dicts) for the templates. Inputs are validated with the same
checks as `distillguard risk` (jobs/risk_query.py) and only ever reach pyarrow filter expressions.

The console reads the gold/ops tables (account_risk, cluster_risk, account_clusters, account_features,
account_daily, risk_publications) and the label tables. It never reads `api_requests` or bronze `requests`, so raw
prompt text and raw IPs cannot reach a page; account_daily holds only keyed hashes of IP prefixes, and the pages
do not show those either.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from console.decisions import decision_log, latest_decisions
from console.tables import dataset as _dataset
from jobs.query_output import check_account_id
from jobs.risk_query import (
    RISK_COLUMNS,
    check_date,
    check_tier,
    cluster_members,
    latest_score_date,
    reasons_by_contribution,
)
from lake import catalog
from lake.config import Settings
from lake.errors import InputError, MissingInputError
from models.config import LOWEST_TIER, TIERS

PAGE_SIZE = 50
MAX_EXPORT_ROWS = 100_000  # the CSV export: a whole day
CLUSTERS_SHOWN = 15
EXPLORATION_SHOWN = 50  # a day's review for one analyst, about
# account_daily request counts per capability (the same capabilities as the *_share features)
CAPABILITIES = ("coding", "agentic", "tool_use", "reasoning", "vision", "chat")
FLAGGED_TIERS = tuple(t for t in TIERS if t != LOWEST_TIER)
TIER_RANK = {tier: rank for rank, tier in enumerate(TIERS)}


def _on(column: str, day: dt.date) -> pc.Expression:
    return pc.field(column) == pa.scalar(day, pa.date32())


def resolve_day(settings: Settings, day: dt.date | None) -> dt.date:
    return check_date(day) or latest_score_date(settings)


def check_capability(capability: object) -> str | None:
    if capability in (None, ""):
        return None
    if capability not in CAPABILITIES:
        raise InputError(f"capability must be one of {', '.join(CAPABILITIES)}, got {capability!r}")
    return capability


def check_page(page: object) -> int:
    if isinstance(page, bool) or not isinstance(page, int) or not 1 <= page <= 100_000:
        raise InputError(f"page must be a positive integer, got {page!r}")
    return page


# --- the day's header: published or not, and by which model ---------------------------------------------


def score_dates(settings: Settings) -> list[dt.date]:
    """Every score date holding rows, newest first (from the Delta log, no data files read)."""
    from deltalake import DeltaTable

    actions = pa.table(DeltaTable(settings.table_uri("account_risk")).get_add_actions(flatten=True))
    non_empty = pc.or_kleene(pc.is_null(actions["num_records"]), pc.greater(actions["num_records"], 0))
    dates = pc.unique(pc.cast(actions.filter(non_empty)["partition.score_date"], pa.date32())).to_pylist()
    return sorted((d for d in dates if d is not None), reverse=True)


@dataclass(frozen=True)
class DayStatus:
    day: dt.date
    published: bool
    published_at: dt.datetime | None
    rescored_since_publication: bool  # account_risk changed after the day was published
    model_versions: list[str]  # "name vN" of the rows on that day
    accounts: int


def day_status(settings: Settings, day: dt.date, risk_rows: pa.Table) -> DayStatus:
    from deltalake import DeltaTable

    models = sorted(
        {f"{n} v{v}" for n, v in zip(risk_rows["model_name"].to_pylist(), risk_rows["model_version"].to_pylist())}
    )
    publication = None
    if catalog.exists(settings, "risk_publications"):
        found = _dataset(settings, "risk_publications").to_table(filter=_on("score_date", day)).to_pylist()
        publication = found[0] if found else None
    rescored = False
    if publication is not None:
        # a rerun of score for the day after publish leaves a newer commit touching that partition
        history = DeltaTable(settings.table_uri("account_risk")).history(limit=50)
        rescored = any(
            commit["version"] > publication["account_risk_version"]
            and day.isoformat() in str(commit.get("operationParameters", {}))
            for commit in history
        )
    return DayStatus(
        day=day,
        published=publication is not None,
        published_at=publication["published_at"] if publication else None,
        rescored_since_publication=rescored,
        model_versions=models,
        accounts=risk_rows.num_rows,
    )


# --- queue ---------------------------------------------------------------------------------------------


def dominant_capabilities(settings: Settings, day: dt.date) -> dict[str, str]:
    """account -> the capability with the most requests on that day (accounts with none are left out)."""
    if not catalog.exists(settings, "account_daily"):
        return {}
    columns = [f"{c}_requests" for c in CAPABILITIES]
    daily = _dataset(settings, "account_daily").to_table(
        columns=["account_id", *columns], filter=_on("event_date", day)
    )
    if daily.num_rows == 0:
        return {}
    import numpy as np

    counts = np.column_stack([daily[c].fill_null(0).to_numpy(zero_copy_only=False) for c in columns])
    best = counts.argmax(axis=1)
    has_any = counts.max(axis=1) > 0
    ids = daily["account_id"].to_pylist()
    return {ids[i]: CAPABILITIES[best[i]] for i in range(len(ids)) if has_any[i]}


@dataclass(frozen=True)
class Queue:
    status: DayStatus
    rows: list[dict]
    total: int
    page: int
    pages: int
    tier_counts: dict[str, int]
    clusters: list[dict]


def queue(
    settings: Settings,
    day: dt.date | None = None,
    *,
    tier: str | None = None,
    capability: str | None = None,
    new_only: bool = False,
    undecided_only: bool = False,
    page: int = 1,
    page_size: int = PAGE_SIZE,
    with_reasons: bool = True,
) -> Queue:
    """One day's accounts, highest score first, filtered and paged; the day's top clusters alongside."""
    day, tier, capability, page = (
        resolve_day(settings, day),
        check_tier(tier),
        check_capability(capability),
        check_page(page),
    )
    risk = _dataset(settings, "account_risk")
    narrow = risk.to_table(
        columns=["account_id", "score", "tier", "cluster_id", "model_name", "model_version"],
        filter=_on("score_date", day),
    )
    if narrow.num_rows == 0:
        raise MissingInputError(f"account_risk has no rows for {day.isoformat()}")
    status = day_status(settings, day, narrow)
    tier_counts = {t: 0 for t in TIERS}
    for entry in pc.value_counts(narrow["tier"]).to_pylist():
        tier_counts[entry["values"]] = entry["counts"]

    keep = pa.array([True] * narrow.num_rows)
    if tier is not None:
        keep = pc.and_(keep, pc.equal(narrow["tier"], tier))
    capabilities = dominant_capabilities(settings, day) if capability else {}
    if capability is not None:
        keep = pc.and_(keep, pa.array([capabilities.get(a) == capability for a in narrow["account_id"].to_pylist()]))
    yesterday = {}
    if new_only:
        previous = risk.to_table(columns=["account_id", "tier"], filter=_on("score_date", day - dt.timedelta(days=1)))
        yesterday = dict(zip(previous["account_id"].to_pylist(), previous["tier"].to_pylist()))
        keep = pc.and_(
            keep,
            pa.array(
                [
                    t in FLAGGED_TIERS and yesterday.get(a) not in FLAGGED_TIERS
                    for a, t in zip(narrow["account_id"].to_pylist(), narrow["tier"].to_pylist())
                ]
            ),
        )
    standing = latest_decisions(settings)
    if undecided_only:
        keep = pc.and_(keep, pa.array([a not in standing for a in narrow["account_id"].to_pylist()]))
    selected = narrow.filter(keep).sort_by([("score", "descending"), ("account_id", "ascending")])
    total = selected.num_rows
    pages = max(1, math.ceil(total / page_size))
    shown = selected.slice((page - 1) * page_size, page_size)
    reasons = {}
    if shown.num_rows and with_reasons:
        full = risk.to_table(
            columns=["account_id", "reasons"],
            filter=_on("score_date", day) & pc.field("account_id").isin(shown["account_id"]),
        )
        reasons = dict(zip(full["account_id"].to_pylist(), full["reasons"].to_pylist()))
    if not capabilities and shown.num_rows:
        capabilities = dominant_capabilities(settings, day)
    rows = []
    for rank, row in enumerate(shown.to_pylist(), start=(page - 1) * page_size + 1):
        account = row["account_id"]
        decision = standing.get(account)
        rows.append(
            {
                **row,
                "rank": rank,
                "reasons": reasons_by_contribution(reasons.get(account))[:2],
                "capability": capabilities.get(account),
                "decision": decision,
            }
        )
    return Queue(
        status=status,
        rows=rows,
        total=total,
        page=page,
        pages=pages,
        tier_counts=tier_counts,
        clusters=top_clusters(settings, day),
    )


def exploration(
    settings: Settings, day: dt.date | None = None, limit: int = EXPLORATION_SHOWN
) -> tuple[DayStatus, list]:
    """The day's status and its exploration queue (jobs/risk_query.exploration_accounts): undecided accounts from
    the top of the queue that behave unlike every account decided extraction, and unlike each other."""
    from jobs.risk_query import exploration_accounts

    day = resolve_day(settings, day)
    risk = _dataset(settings, "account_risk").to_table(
        columns=["account_id", "model_name", "model_version"], filter=_on("score_date", day)
    )
    if risk.num_rows == 0:
        raise MissingInputError(f"account_risk has no rows for {day.isoformat()}")
    return day_status(settings, day, risk), exploration_accounts(settings, day, limit).to_pylist()


def tier_audit(settings: Settings, day: dt.date | None = None) -> tuple[DayStatus, list[dict]]:
    """The day's status and its tier audit draw (models/tier_audit.py), each account with its band and standing."""
    from console.decisions import latest_decisions
    from models import tier_audit as audit

    day = resolve_day(settings, day)
    risk = _dataset(settings, "account_risk").to_table(
        columns=["account_id", "model_name", "model_version"], filter=_on("score_date", day)
    )
    if risk.num_rows == 0:
        raise MissingInputError(f"account_risk has no rows for {day.isoformat()}")
    drawn = audit.day_draw(settings, day)
    standing = latest_decisions(settings, drawn["account_id"].tolist()) if len(drawn) else {}
    rows = [
        {
            "account_id": row.account_id,
            "band": audit.STRATA[row.stratum],
            "score": row.score,
            "standing": (standing.get(row.account_id) or {}).get("label"),
        }
        for row in drawn.itertuples()
    ]
    return day_status(settings, day, risk), rows


def top_clusters(settings: Settings, day: dt.date, limit: int = CLUSTERS_SHOWN) -> list[dict]:
    if not catalog.exists(settings, "cluster_risk"):
        return []
    clusters = _dataset(settings, "cluster_risk").to_table(filter=_on("score_date", day))
    clusters = clusters.sort_by([("score", "descending"), ("cluster_id", "ascending")]).slice(0, limit)
    return clusters.to_pylist()


# --- account ------------------------------------------------------------------------------------------


def _feature_medians(settings: Settings, day: dt.date, columns: list[str]) -> tuple[dict[str, float], int]:
    """Median of each feature column over every account's snapshot on that day: the 'typical' value."""
    if not columns or not catalog.exists(settings, "account_features"):
        return {}, 0
    dataset = _dataset(settings, "account_features")
    present = [c for c in columns if c in dataset.schema.names]
    if not present:
        return {}, 0
    snapshot = dataset.to_table(columns=present, filter=_on("feature_date", day))
    medians = {}
    for column in present:
        values = snapshot[column].drop_null()
        if len(values):
            medians[column] = pc.approximate_median(values).as_py()
    return medians, snapshot.num_rows


def explain_reasons(reasons: list[dict], medians: dict[str, float], comparable: int) -> list[dict]:
    """Each reason with the feature's plain-language description, its value and the day's median, both in the
    feature's unit, and whether the account sits above or below that median."""
    from models.explain import format_value, reason_templates

    out = []
    for reason in reasons_by_contribution(reasons):
        column = reason["feature"]
        try:
            [(description, unit, window)] = reason_templates([column])
            measured = description + window
        except (KeyError, ValueError):  # a feature the current registry no longer declares: its stored text
            unit, measured = "", reason.get("text") or column
        median = medians.get(column)
        value = reason.get("value")
        if value is None:  # no value to compare (models/explain.py says why, e.g. "no requests in the last 7 days")
            unit, measured = "", reason.get("text") or column
        direction = None
        if median is not None and value is not None:
            direction = "higher than" if value > median else "lower than" if value < median else "same as"
        out.append(
            {
                **reason,
                "measured": measured,
                "value_text": format_value(unit, value) if unit else ("-" if value is None else value),
                "typical_text": None if median is None else (format_value(unit, median) if unit else median),
                "direction": direction,
                "comparable": comparable,
            }
        )
    return out


def account_page(settings: Settings, account_id: str, day: dt.date | None = None) -> dict:
    account_id = check_account_id(account_id)
    risk = _dataset(settings, "account_risk")
    # every day's score and tier (narrow columns: reasons are a nested list, read for the shown day only)
    history = (
        risk.to_table(columns=["score_date", "score", "tier"], filter=pc.field("account_id") == account_id)
        .sort_by([("score_date", "descending")])
        .to_pylist()
    )
    if not history:
        raise MissingInputError(f"no risk rows for account {account_id!r}")
    day = check_date(day) or history[0]["score_date"]
    found = risk.to_table(
        columns=list(RISK_COLUMNS), filter=_on("score_date", day) & (pc.field("account_id") == account_id)
    ).to_pylist()
    if not found:
        raise MissingInputError(f"account {account_id!r} has no risk row on {day.isoformat()}")
    current = found[0]
    medians, comparable = _feature_medians(settings, day, [r["feature"] for r in current["reasons"] or []])
    cluster = None
    if current["cluster_id"]:
        cluster = {
            "cluster_id": current["cluster_id"],
            "cluster_score": current["cluster_score"],
            "link_types": None,
            "evidence": None,
        }
        if catalog.exists(settings, "account_clusters"):
            linked = _dataset(settings, "account_clusters").to_table(
                columns=["link_types"], filter=_on("feature_date", day) & (pc.field("account_id") == account_id)
            )
            cluster["link_types"] = linked["link_types"][0].as_py() if linked.num_rows else None
        if catalog.exists(settings, "cluster_risk"):
            found = (
                _dataset(settings, "cluster_risk")
                .to_table(filter=_on("score_date", day) & (pc.field("cluster_id") == current["cluster_id"]))
                .to_pylist()
            )
            cluster["evidence"] = found[0] if found else None
    labels = []
    if catalog.exists(settings, "enforcement_labels"):
        labels = (
            _dataset(settings, "enforcement_labels")
            .to_table(filter=pc.field("account_id") == account_id)
            .sort_by([("decided_at", "descending")])
            .to_pylist()
        )
    from console.link_graph import account_pairs
    from jobs.evidence_query import account_evidence

    return {
        "account_id": account_id,
        "day": day,
        "current": current,
        "link_evidence": account_evidence(settings, account_id, day, _dataset) if current["cluster_id"] else [],
        "edges": account_pairs(settings, account_id, day),
        "history": list(reversed(history)),  # oldest first, for the chart
        "reasons": explain_reasons(current["reasons"] or [], medians, comparable),
        "cluster": cluster,
        "capability_mix": capability_mix(settings, [account_id], day),
        "labels": labels,
        "audit": decision_log(settings, account_id),
    }


def capability_mix(settings: Settings, account_ids: list[str], day: dt.date, days: int = 28) -> list[dict]:
    """Requests per day and per capability over the `days` days up to `day`, summed over the given accounts."""
    if not catalog.exists(settings, "account_daily"):
        return []
    columns = ["requests", *(f"{c}_requests" for c in CAPABILITIES)]
    daily = _dataset(settings, "account_daily").to_table(
        columns=["event_date", "account_id", *columns],
        filter=(pc.field("event_date") <= pa.scalar(day, pa.date32()))
        & (pc.field("event_date") > pa.scalar(day - dt.timedelta(days=days), pa.date32()))
        & pc.field("account_id").isin(account_ids),
    )
    if daily.num_rows == 0:
        return []
    grouped = daily.group_by("event_date").aggregate([(c, "sum") for c in columns] + [("account_id", "count_distinct")])
    out = []
    for row in grouped.sort_by("event_date").to_pylist():
        out.append(
            {
                "day": row["event_date"],
                "requests": row["requests_sum"],
                "active_accounts": row["account_id_count_distinct"],
                "capabilities": {c: row[f"{c}_requests_sum"] or 0 for c in CAPABILITIES},
            }
        )
    return out


# --- cluster ------------------------------------------------------------------------------------------


def cluster_page(settings: Settings, cluster_id: str, day: dt.date | None = None) -> dict:
    day = resolve_day(settings, day)
    summary, members = cluster_members(settings, cluster_id, day)
    member_rows = members.select([c for c in (*RISK_COLUMNS, "link_types") if c != "reasons"]).to_pylist()
    ids = [row["account_id"] for row in member_rows]
    standing = latest_decisions(settings, ids)
    for row in member_rows:
        row["decision"] = standing.get(row["account_id"])
    timeline = capability_mix(settings, ids, day)
    totals = {c: sum(point["capabilities"][c] for point in timeline) for c in CAPABILITIES}
    link_counts: dict[str, int] = {}
    for row in member_rows:
        for kind in row["link_types"] or []:
            link_counts[kind] = link_counts.get(kind, 0) + 1
    from console.campaign_page import campaign_of_cluster
    from console.link_graph import cluster_graph
    from jobs.evidence_query import cluster_evidence

    return {
        "cluster_id": summary["cluster_id"],
        "day": day,
        "summary": summary,
        "evidence": cluster_evidence(settings, ids, day, _dataset)[0],
        "campaign_id": campaign_of_cluster(settings, summary["cluster_id"], day),
        "members": member_rows,
        "graph": cluster_graph(settings, member_rows, day),
        "timeline": timeline,
        "requests_28d": sum(point["requests"] for point in timeline),
        "requests_on_day": next((p["requests"] for p in timeline if p["day"] == day), 0),
        "top_capabilities": [c for c, n in sorted(totals.items(), key=lambda kv: -kv[1]) if n > 0][:3],
        "link_counts": sorted(link_counts.items(), key=lambda kv: -kv[1]),
    }
