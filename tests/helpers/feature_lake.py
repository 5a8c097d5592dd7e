"""A synthetic feature lake with a planted signal, for the training and scoring tests: account_features (every
declared column), family_scores and enforcement_labels written straight to Delta, without simulating or ingesting
anything.

Benign accounts and three campaigns over DAYS days from START; a fifth of each campaign behaves almost like ordinary
customers, so the holdout's PR-AUC stays below 1. FAST/STRONG/WEAK are the training configurations the tests use.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from features.registry import feature_columns, feature_set_version
from lake import catalog
from models.config import TrainingConfig

UTC = dt.UTC
START = dt.date(2026, 2, 1)
DAYS = 14
AS_OF = START + dt.timedelta(days=11)  # features exist after as_of too; training must ignore them
SCORE_DATE = AS_OF
N_BENIGN = 300
CAMPAIGNS = {"camp-A": 25, "camp-B": 25, "camp-C": 20}
CAMPAIGN_START_DAY = {"camp-A": 0, "camp-B": 0, "camp-C": 6}
SEGMENTS = {"eval_harness": 20, "education": 15}  # the first benign accounts carry these benign labels
SIGNAL = ("cot_elicitation_rate", "template_reuse_rate", "hosting_proxy_share")
FAST = dict(holdout_days=3, validation_days=2, num_boost_round=60, early_stopping_rounds=10, label_horizon_days=14)
# a deliberately weak first model: a single one-split tree over a 5% column sample
WEAK = TrainingConfig(**{**FAST, "num_boost_round": 1, "max_depth": 1, "colsample_bytree": 0.05})
STRONG = TrainingConfig(**FAST)


def day(i: int) -> dt.date:
    return START + dt.timedelta(days=i)


def write_family_scores(settings, groups: dict[str, list[str]], stealthy: set[str], rng) -> None:
    """family_scores for every day: the propagation family lifts every campaign account, the stealthy ones too (they
    share artefacts with their decided siblings), and leaves benign accounts at 0 or below; resemblance and peer
    novelty are noise."""
    rows = []
    for i in range(DAYS):
        for group, accounts in groups.items():
            for account in accounts:
                linked = group != "benign" and i >= CAMPAIGN_START_DAY[group] + 2
                score = rng.uniform(0.02, 0.3) if linked else (0.0 if rng.random() < 0.9 else -rng.uniform(0, 0.1))
                reason = (
                    f"shares one payment method with {len(accounts) - 1} other accounts, 5 of them decided extraction"
                    if linked
                    else "shares no linking artefact with another account"
                )
                rows.append(
                    dict(score_date=day(i), account_id=account, family="propagation", score=score, reason=reason)
                )
                for noise in ("peer_novelty", "resemblance"):
                    rows.append(
                        dict(score_date=day(i), account_id=account, family=noise, score=rng.uniform(0, 2), reason="")
                    )
    catalog.write_arrow(settings, "family_scores", pa.Table.from_pylist(rows, catalog.table("family_scores").schema))


def synthetic_lake(settings, seed: int = 11) -> dict[str, list[str]]:
    """Write account_features (all declared columns), family_scores and enforcement_labels; return account ids per
    group."""
    rng = np.random.default_rng(seed)
    columns = feature_columns()
    groups: dict[str, list[str]] = {"benign": [f"acct-{i:03d}" for i in range(N_BENIGN)]}
    for campaign, size in CAMPAIGNS.items():
        groups[campaign] = [f"{campaign}-{i:03d}" for i in range(size)]
    # a fifth of each campaign's accounts behave almost like ordinary customers (PR-AUC stays below 1)
    stealthy = {a for c in CAMPAIGNS for a in groups[c][: CAMPAIGNS[c] // 5]}
    harness = set(groups["benign"][: SEGMENTS["eval_harness"]])
    ages = {a: rng.uniform(0, 900) for accounts in groups.values() for a in accounts}  # age says nothing here

    rows: dict[str, list] = {"account_id": [], "feature_date": [], **{c: [] for c in columns}}
    for group, accounts in groups.items():
        first_day = CAMPAIGN_START_DAY.get(group, 0)
        for account in accounts:
            base_requests = rng.uniform(20, 400)
            for i in range(first_day, DAYS):
                rows["account_id"].append(account)
                rows["feature_date"].append(day(i))
                values = dict(zip(columns, rng.random(len(columns))))
                attack = group != "benign" and account not in stealthy
                for name in SIGNAL:
                    for w in (1, 7, 28):
                        values[f"{name}_{w}d"] = rng.uniform(0.45, 0.95) if attack else rng.uniform(0.0, 0.35)
                if account in harness:  # automated and templated, but not eliciting reasoning
                    values["template_reuse_rate_7d"] = rng.uniform(0.6, 0.95)
                values["account_age_days"] = float(ages[account] + i)
                values["requests_1d"] = float(round(base_requests * rng.uniform(0.8, 1.2)))
                values["requests_7d"] = values["requests_1d"] * 7
                for column in columns:
                    rows[column].append(values[column])
    rows["feature_set_version"] = [feature_set_version()] * len(rows["account_id"])
    catalog.write_arrow(settings, "account_features", pa.table(rows))

    labels = []
    for campaign in CAMPAIGNS:
        for account in groups[campaign]:
            decided = day(int(rng.integers(CAMPAIGN_START_DAY[campaign] + 2, (AS_OF - START).days + 1)))
            if account in groups["camp-B"][-3:]:
                decided = day(DAYS - 1)  # decided after as_of: training must not see it
            labels.append((account, "extraction", decided, campaign, "analyst", "campaign review"))
    offset = 0
    for segment, size in SEGMENTS.items():
        for account in groups["benign"][offset : offset + size]:
            labels.append((account, "benign", day(2), None, "analyst", segment))
        offset += size
    write_family_scores(settings, groups, stealthy, rng)
    keys = ("account_id", "label", "decided_at", "campaign_id", "source", "note")
    catalog.write_arrow(
        settings,
        "enforcement_labels",
        pa.Table.from_pylist(
            [
                dict(zip(keys, (a, lab, dt.datetime.combine(day, dt.time(15), UTC), c, s, n)))
                for a, lab, day, c, s, n in labels
            ]
        ),
    )
    return groups


def write_clusters(settings, groups: dict[str, list[str]]) -> None:
    """The score date's account_clusters, as the nightly chain has them before scoring: one campaign cluster (two
    link types) and one cluster of four benign accounts."""
    members = [(a, "cluster-A", ["payment", "ip_prefix"]) for a in groups["camp-A"][5:15]]
    members += [(a, "cluster-A", ["timing"]) for a in groups["camp-A"][15:17]]
    members += [(a, "cluster-mixed", ["ip_prefix"]) for a in groups["benign"][100:104]]
    catalog.write_arrow(
        settings,
        "account_clusters",
        pa.Table.from_pylist(
            [
                {"feature_date": SCORE_DATE, "account_id": a, "cluster_id": c, "link_types": links}
                for a, c, links in members
            ],
            schema=catalog.table("account_clusters").schema,
        ),
        partition_value=SCORE_DATE,
    )
