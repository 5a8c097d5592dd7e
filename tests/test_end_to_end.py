"""End to end on a small simulated lake, through the real CLI: `distillguard demo` then checks on every table.

One demo run (≈3k accounts × 12 days) is shared by the tests in this module.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable

from jobs import demo, nightly
from jobs.cli import main
from lake import catalog
from lake.config import load_settings
from simulator import simulate

pytestmark = pytest.mark.slow

DAYS = 12
ACCOUNTS = 3000
LAST = demo.DEMO_START + dt.timedelta(days=DAYS - 1)
DESIGN_TABLES = (
    "api_requests",
    "accounts",
    "model_releases",
    "asn_info",
    "enforcement_labels",
    "account_features",
    "account_clusters",
    "account_risk",
    "cluster_risk",
    "quarantine",
    "campaign_days",
    "campaigns",
)


@pytest.fixture(scope="module")
def demo_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    settings = load_settings(
        lake_root=str(root / "lake"),
        ground_truth_root=str(root / "truth"),
        mlflow_tracking_uri=f"sqlite:///{root}/mlflow.db",
        spark_remote=None,
    )
    import os

    env = {"DG_GROUND_TRUTH": settings.ground_truth_root, "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        exit_code = main(["--lake", settings.lake_root, "demo", "--accounts", str(ACCOUNTS), "--days", str(DAYS)])
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert exit_code == 0
    return settings


def _table(settings, name: str) -> pd.DataFrame:
    return DeltaTable(settings.table_uri(name)).to_pyarrow_table().to_pandas()


def test_every_design_table_exists_and_reads_back_without_spark(demo_lake):
    for name in DESIGN_TABLES:
        data = DeltaTable(demo_lake.table_uri(name)).to_pyarrow_table()
        assert set(catalog.table(name).columns) <= set(data.column_names), name
        if name != "quarantine":
            assert data.num_rows > 0, name
    assert _table(demo_lake, "quarantine")["reason"].nunique() >= 4


def test_nothing_is_lost_between_raw_bronze_and_quarantine(demo_lake):
    runs = _table(demo_lake, "ingest_runs")
    assert len(runs) == DAYS
    assert (runs["raw_rows"] == runs["bronze_rows"] + runs["quarantined_rows"]).all()
    raw = DeltaTable(demo_lake.table_uri("api_requests")).to_pyarrow_table(columns=["event_date"])
    assert raw.num_rows == runs["raw_rows"].sum()


def test_prompt_text_and_raw_ips_never_leave_bronze(demo_lake):
    tables = ("requests", "account_daily", "account_features", "account_clusters", "account_links", "account_edges")
    for name in (*tables, "account_risk", "cluster_risk", "campaign_days", "campaigns"):
        columns = DeltaTable(demo_lake.table_uri(name)).schema().to_arrow().names
        assert "client_ip" not in columns, name
        if name != "requests":
            assert "prompt_prefix" not in columns, name


def test_stored_edges_name_artefacts_by_pseudonym_only(demo_lake):
    edges = _table(demo_lake, "account_edges")
    assert set(edges["link_type"]) >= {"payment", "ip_prefix"}
    raw = DeltaTable(demo_lake.table_uri("api_requests")).to_pyarrow_table(columns=["client_ip", "prompt_prefix"])
    secrets = set(raw.column("client_ip").to_pylist()) | set(raw.column("prompt_prefix").to_pylist())
    secrets |= set(_table(demo_lake, "accounts")["payment_fingerprint"])  # the billing system's own fingerprint
    secrets.discard(None)
    assert not set(edges["artefact"]) & secrets
    assert not edges["artefact"].str.contains(r"^\d+\.\d+\.\d+\.", regex=True).any()  # nothing IPv4-like


def test_scores_rank_unlabeled_campaign_accounts_above_benign_ones(demo_lake):
    risk = _table(demo_lake, "account_risk")
    risk = risk[risk["score_date"] == LAST]
    assert risk["score"].between(0, 1).all()
    assert set(risk["tier"]) <= {"low", "elevated", "high", "critical"}
    truth = simulate.read_ground_truth(demo_lake)
    labels = _table(demo_lake, "enforcement_labels")
    unlabeled = risk.merge(truth, on="account_id")
    unlabeled = unlabeled[~unlabeled["account_id"].isin(set(labels["account_id"]))]
    attack = unlabeled.loc[unlabeled["is_campaign"], "score"].to_numpy()
    benign = unlabeled.loc[~unlabeled["is_campaign"], "score"].to_numpy()
    assert len(attack) > 20 and len(benign) > 1000
    # ROC AUC on accounts the model never saw a label for: P(random campaign account outranks random benign one).
    ranks = pd.Series(np.r_[attack, benign]).rank().to_numpy()
    auc = (ranks[: len(attack)].sum() - len(attack) * (len(attack) + 1) / 2) / (len(attack) * len(benign))
    assert auc > 0.85, auc
    # elevated means at most 1% of benign accounts (docs/design.md §7), a bound calibrated on the clean benign
    # reference: accounts never in a cluster with a decided account. Benign accounts clustered with decided campaign
    # accounts are outside it (on this lake, enterprise agents sharing a rare template with a campaign) and are
    # flagged more at elevated (README, Limitations), so the bound is checked on the others; at >= high no benign
    # account may be flagged, linked or not.
    linked = _linked_to_decided(demo_lake, labels)
    reference_like = risk[~risk["account_id"].isin(linked)]
    report = demo.evaluate_unlabeled(reference_like[["account_id", "tier"]], truth, labels, LAST)
    assert report["elevated"]["benign_false_positive_rate"] <= 0.0125
    everyone = demo.evaluate_unlabeled(risk[["account_id", "tier"]], truth, labels, LAST)
    assert everyone["high"]["benign_false_positive_rate"] <= 0.001 * 1.25
    assert everyone["elevated"]["campaign_recall"] > 0.1
    print(
        f"elevated: {report['elevated']['benign_false_positive_rate']:.2%} of benign accounts unlinked to decisions, "
        f"{everyone['elevated']['benign_false_positive_rate']:.2%} of all benign accounts"
    )


def _linked_to_decided(settings, labels: pd.DataFrame) -> set[str]:
    """Undecided accounts ever in a cluster with a decided account (training_set.linked_to_decided's rule)."""
    clusters = _table(settings, "account_clusters")[["feature_date", "account_id", "cluster_id"]]
    decided = set(labels["account_id"])
    with_decided = clusters[clusters["account_id"].isin(decided)][["feature_date", "cluster_id"]].drop_duplicates()
    return set(clusters.merge(with_decided, on=["feature_date", "cluster_id"])["account_id"]) - decided


def test_top_accounts_carry_plain_language_reasons_and_model_lineage(demo_lake):
    risk = _table(demo_lake, "account_risk").sort_values("score", ascending=False).head(20)
    assert (risk["model_version"] == "1").all()
    for reasons in risk["reasons"]:
        assert len(reasons) >= 1
        assert all(r["contribution"] > 0 and r["text"] for r in reasons)


def test_the_exploration_queue_lists_undecided_accounts_unlike_the_caught_and_unlike_each_other(demo_lake, capsys):
    import json

    assert main(["--lake", demo_lake.lake_root, "risk", "explore", "--limit", "15", "--format", "json"]) == 0
    picks = json.loads(capsys.readouterr().out)
    assert 1 <= len(picks) <= 15 and [p["rank"] for p in picks] == list(range(1, len(picks) + 1))
    assert not {p["account_id"] for p in picks} & set(_table(demo_lake, "enforcement_labels")["account_id"])
    scores = [p["score"] for p in picks]
    assert scores == sorted(scores, reverse=True)
    risk = _table(demo_lake, "account_risk")
    latest = risk[risk["score_date"] == LAST].set_index("account_id")
    assert all(latest.at[p["account_id"], "score"] == p["score"] for p in picks)
    # every pick names its nearest account decided extraction, at a distance; none outranks the plain queue's top
    top = latest.drop(index=list(set(_table(demo_lake, "enforcement_labels")["account_id"]) & set(latest.index)))
    assert all(p["distance"] is not None and p["distance"] > 0 and p["nearest_extraction"] for p in picks)
    assert picks[0]["score"] <= top["score"].max()


def test_cluster_risk_summarises_linked_accounts(demo_lake):
    clusters = _table(demo_lake, "cluster_risk")
    assert len(clusters) > 0
    assert (clusters["n_accounts"] >= 2).all()
    members = _table(demo_lake, "account_clusters")
    assert set(clusters["cluster_id"]) <= set(members["cluster_id"])


def test_nightly_rerun_for_the_last_date_leaves_identical_tables(demo_lake, spark):
    keys = {
        "requests": ("event_date", ["request_id"]),
        "account_features": ("feature_date", ["account_id"]),
        "account_risk": ("score_date", ["account_id"]),
        "quarantine": ("source_partition", ["raw_record"]),
        "campaign_days": ("day", ["campaign_id"]),
    }

    def snapshot() -> dict[str, pd.DataFrame]:
        out = {}
        for name, (date_column, key) in keys.items():
            frame = _table(demo_lake, name)
            out[name] = frame[frame[date_column] == LAST].sort_values(key).reset_index(drop=True)
        return out

    before = snapshot()
    nightly.run(demo_lake, LAST)
    after = snapshot()
    for name, frame in before.items():
        other = after[name]
        assert list(other.columns) == list(frame.columns) and len(other) == len(frame), name
        for column in frame.columns:
            if pd.api.types.is_float_dtype(frame[column]):
                # bit for bit: the daily statistics are integers (gaps in whole ms), so no sum depends on order
                np.testing.assert_array_equal(
                    other[column].to_numpy(), frame[column].to_numpy(), err_msg=f"{name}.{column}"
                )
            else:
                assert other[column].astype(str).tolist() == frame[column].astype(str).tolist(), f"{name}.{column}"
