"""A synthetic reviewed lake for the console's tests and page benchmark: account_risk, cluster_risk,
account_clusters, account_features, account_daily, risk_publications and enforcement_labels with the catalog's
schemas, written with the catalog's delta-rs writer. It takes seconds where the real pipeline (simulate → ingest →
... → score) takes minutes, which matters for a browser test that only needs the tables analysts read.

The numbers are random, not a model's output: scores, tiers and reasons are consistent with each other (reasons
are real feature columns phrased by models/explain.py, with the account's own feature value), nothing more.
Campaign-like accounts (every 40th) score high, share a cluster per 8 accounts and lean on reasoning prompts.
It also writes a few raw `api_requests` rows whose prompt prefix and client IP are `RAW_PROMPT_MARKER` and
`RAW_IP_MARKER`, so tests can check that no page ever shows raw prompts or IPs.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from features.registry import feature_columns, feature_set_version
from lake import catalog
from lake.config import Settings
from models.config import TIERS
from models.explain import reason_templates, reason_text

RAW_PROMPT_MARKER = "RAW-PROMPT-never-shown-7731"
RAW_IP_MARKER = "203.0.113.77"
MODEL_NAME = "distillguard-extraction"
MODEL_VERSION = "4"
REASON_FEATURES = (
    "cot_elicitation_rate_7d",
    "rubric_grading_rate_7d",
    "template_reuse_rate_7d",
    "requests_7d",
    "hour_entropy_7d",
    "coverage_24_7_7d",
)
TIER_FROM = {"critical": 0.9, "high": 0.75, "elevated": 0.5}
CAPABILITY_COLUMNS = (
    "coding_requests",
    "agentic_requests",
    "tool_use_requests",
    "reasoning_requests",
    "vision_requests",
    "chat_requests",
)


def account_id(i: int) -> str:
    return f"acct-{i:06d}"


def cluster_id(i: int) -> str:
    return f"cl-{i // 8:05d}"


def _tier(score: float) -> str:
    for tier in TIERS:
        if score >= TIER_FROM.get(tier, 0.0):
            return tier
    return TIERS[-1]


def _filler(field: pa.Field, n: int, rng: np.random.Generator) -> pa.Array:
    """Plausible values for a column the console does not look at (or nulls where no number fits)."""
    kind = field.type
    if pa.types.is_floating(kind):
        return pa.array(rng.random(n))
    if pa.types.is_integer(kind):
        return pa.array(rng.integers(0, 50, n), kind)
    return pa.nulls(n, kind)


def _table(name: str, n: int, given: dict[str, object], rng: np.random.Generator) -> pa.Table:
    schema = catalog.table(name).schema
    return pa.table(
        {f.name: pa.array(given[f.name], f.type) if f.name in given else _filler(f, n, rng) for f in schema},
        schema=schema,
    )


def write(
    settings: Settings,
    accounts: int = 400,
    days: int = 7,
    last_day: dt.date = dt.date(2026, 3, 14),
    seed: int = 3,
    publish_last_day: bool = True,
) -> dict:
    """Write the tables; returns {"days": [...], "campaign_accounts": [...], "clusters": [...]}."""
    rng = np.random.default_rng(seed)
    dates = [last_day - dt.timedelta(days=d) for d in range(days - 1, -1, -1)]
    ids = [account_id(i) for i in range(accounts)]
    campaign = np.arange(accounts) % 40 == 0
    for c in np.flatnonzero(campaign):  # campaign accounts come in groups of 8 consecutive ids
        campaign[c : c + 8] = True
    columns = feature_columns()
    reason_index = [columns.index(c) for c in REASON_FEATURES]
    count_columns = [k for k, (_, unit, _) in enumerate(reason_templates(columns)) if unit == "count"]
    risk_parts, cluster_parts, link_parts, feature_parts, daily_parts = [], [], [], [], []
    for day_number, day in enumerate(dates):
        n = accounts
        base = rng.beta(1.2, 9, n)
        ramp = min(1.0, 0.7 + 0.06 * day_number)
        score = np.where(campaign, np.clip(ramp * rng.uniform(0.8, 1.0, n), 0, 0.999), base)
        features = rng.random((n, len(columns)))
        features[:, count_columns] = np.floor(features[:, count_columns] * 3000)
        features[campaign, reason_index[0]] = rng.uniform(0.7, 0.95, int(campaign.sum()))
        # no cluster holds a decided account yet (training would leave such accounts' negatives out)
        features[:, columns.index("cluster_labelled_extraction_share")] = 0.0
        contributions = rng.gamma(2, 0.3, (n, len(REASON_FEATURES))) * (0.3 + 2 * score[:, None])
        clusters = [cluster_id(i) if campaign[i] else None for i in range(n)]
        reasons = []
        for i in range(n):
            order = np.argsort(-contributions[i])[:3]
            reasons.append(
                [
                    {
                        "feature": REASON_FEATURES[j],
                        "value": float(features[i, reason_index[j]]),
                        "contribution": float(contributions[i, j]),
                        "text": reason_text(REASON_FEATURES[j], float(features[i, reason_index[j]])),
                    }
                    for j in order
                ]
            )
        cluster_score = [float(score[i]) if clusters[i] else None for i in range(n)]
        risk_parts.append(
            _table(
                "account_risk",
                n,
                {
                    "score_date": [day] * n,
                    "account_id": ids,
                    "score": score,
                    "tier": [_tier(s) for s in score],
                    "cluster_id": clusters,
                    "cluster_score": cluster_score,
                    "reasons": reasons,
                    "model_name": [MODEL_NAME] * n,
                    "model_version": [MODEL_VERSION] * n,
                    "feature_set_version": [feature_set_version()] * n,
                },
                rng,
            )
        )
        feature_parts.append(
            _table(
                "account_features",
                n,
                {
                    "account_id": ids,
                    "feature_date": [day] * n,
                    **{c: features[:, k] for k, c in enumerate(columns)},
                    "feature_set_version": [feature_set_version()] * n,
                },
                rng,
            )
        )
        capability = rng.integers(0, 40, (n, len(CAPABILITY_COLUMNS)))
        capability[campaign, 3] += 400  # reasoning
        daily_parts.append(
            _table(
                "account_daily",
                n,
                {
                    "account_id": ids,
                    "event_date": [day] * n,
                    "requests": capability.sum(axis=1),
                    **{c: capability[:, k] for k, c in enumerate(CAPABILITY_COLUMNS)},
                },
                rng,
            )
        )
        members = [i for i in range(n) if clusters[i]]
        link_parts.append(
            _table(
                "account_clusters",
                len(members),
                {
                    "feature_date": [day] * len(members),
                    "account_id": [ids[i] for i in members],
                    "cluster_id": [clusters[i] for i in members],
                    "link_types": [
                        ["payment_fingerprint", "ip_prefix"] if i % 2 else ["payment_fingerprint"] for i in members
                    ],
                },
                rng,
            )
        )
        names = sorted({clusters[i] for i in members})
        cluster_parts.append(
            _table(
                "cluster_risk",
                len(names),
                {
                    "score_date": [day] * len(names),
                    "cluster_id": names,
                    "n_accounts": [sum(1 for i in members if clusters[i] == c) for c in names],
                    "requests": [int(sum(capability[i].sum() for i in members if clusters[i] == c)) for c in names],
                    "score": [max(score[i] for i in members if clusters[i] == c) for c in names],
                    "top_capabilities": [["reasoning", "coding"]] * len(names),
                    "link_evidence": [["payment_fingerprint", "ip_prefix"]] * len(names),
                },
                rng,
            )
        )
    for name, parts in (
        ("account_risk", risk_parts),
        ("cluster_risk", cluster_parts),
        ("account_clusters", link_parts),
        ("account_features", feature_parts),
        ("account_daily", daily_parts),
    ):
        catalog.write_arrow(settings, name, pa.concat_tables(parts))
    if publish_last_day:
        catalog.write_arrow(
            settings,
            "risk_publications",
            _table(
                "risk_publications",
                1,
                {
                    "score_date": [last_day],
                    "published_at": [dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(3), dt.UTC)],
                    "model_name": [MODEL_NAME],
                    "model_version": [MODEL_VERSION],
                    "feature_set_version": [feature_set_version()],
                    "accounts": [accounts],
                    "account_risk_version": [0],
                    "cluster_risk_version": [0],
                },
                rng,
            ),
        )
    # a rule-based label and a benign analyst label from before the console, as the simulator writes them
    catalog.write_arrow(
        settings,
        "enforcement_labels",
        pa.Table.from_pylist(
            [
                {
                    "account_id": ids[1],
                    "label": "benign",
                    "decided_at": dt.datetime.combine(dates[0], dt.time(9), dt.UTC),
                    "campaign_id": None,
                    "source": "rule",
                    "note": "startup_app",
                },
            ],
            schema=catalog.table("enforcement_labels").schema,
        ),
    )
    catalog.write_arrow(
        settings,
        "api_requests",
        _table(
            "api_requests",
            3,
            {
                "request_id": ["r1", "r2", "r3"],
                "account_id": ids[:3],
                "event_date": [last_day] * 3,
                "event_ts": [dt.datetime.combine(last_day, dt.time(12), dt.UTC)] * 3,
                "client_ip": [RAW_IP_MARKER] * 3,
                "prompt_prefix": [RAW_PROMPT_MARKER] * 3,
            },
            rng,
        ),
    )
    return {
        "days": dates,
        "campaign_accounts": [ids[i] for i in np.flatnonzero(campaign)],
        "clusters": sorted({cluster_id(i) for i in np.flatnonzero(campaign)}),
    }


def write_cluster_links(settings: Settings, days: list[dt.date]) -> int:
    """account_links for the written clusters: a payment link between consecutive members of every cluster each
    day, and an IP prefix on every other pair (what the link-evidence sentences count). Returns the rows written."""
    import itertools

    clusters = catalog.read_arrow(settings, "account_clusters").select(["feature_date", "cluster_id", "account_id"])
    members: dict[tuple, list[str]] = {}
    for day, cluster, account in zip(*(clusters[c].to_pylist() for c in clusters.column_names)):
        members.setdefault((day, cluster), []).append(account)
    links = [
        {
            "feature_date": day,
            "src": src,
            "dst": dst,
            "strength": 10.0,
            "shared_payment_methods": 1,
            "shared_ip_prefixes": i % 2,
            "shared_templates": 0,
            "synchronised_bands": 0,
        }
        for (day, _), accounts in sorted(members.items())
        if day in days
        for i, (src, dst) in enumerate(itertools.pairwise(sorted(accounts)))
    ]
    schema = catalog.table("account_links").schema
    catalog.write_arrow(settings, "account_links", pa.Table.from_pylist(links, schema=schema))
    return len(links)


def artefact_of(kind: str, key: str) -> str:
    """A stand-in pseudonym (hex, like the lake's keyed hashes) for the synthetic edges."""
    import hashlib

    return hashlib.sha256(f"{kind}|{key}".encode()).hexdigest()


def write_cluster_edges(settings: Settings, days: list[dt.date]) -> int:
    """account_edges for the written clusters, every pair of members each day: the cluster's one payment
    fingerprint on every pair (shared by all its members), and on consecutive members (the pairs the clusters kept,
    the strongest) an IP prefix shared by those two accounts only on every other pair. Returns the rows written."""
    import itertools

    clusters = catalog.read_arrow(settings, "account_clusters").select(["feature_date", "cluster_id", "account_id"])
    members: dict[tuple, list[str]] = {}
    for day, cluster, account in zip(*(clusters[c].to_pylist() for c in clusters.column_names)):
        members.setdefault((day, cluster), []).append(account)
    rows = []
    for (day, cluster), accounts in sorted(members.items()):
        if day not in days:
            continue
        ordered = sorted(accounts)
        for (i, src), (j, dst) in itertools.combinations(enumerate(ordered), 2):
            kept = j == i + 1
            shares_prefix = kept and i % 2 == 1
            common = {
                "feature_date": day,
                "src": src,
                "dst": dst,
                "strength": (10.0 + (2.0 if shares_prefix else 0.0)) if kept else 4.0 - 0.1 * (j - i),
                "in_cluster_graph": kept,
                "first_seen": days[0],
                "last_seen": day,
            }
            rows.append(
                {
                    **common,
                    "link_type": "payment",
                    "artefact": artefact_of("payment", cluster),
                    "artefact_accounts": len(ordered),
                }
            )
            if shares_prefix:
                rows.append(
                    {
                        **common,
                        "link_type": "ip_prefix",
                        "artefact": artefact_of("ip_prefix", src),
                        "artefact_accounts": 2,
                    }
                )
    catalog.write_arrow(
        settings, "account_edges", pa.Table.from_pylist(rows, schema=catalog.table("account_edges").schema)
    )
    return len(rows)
