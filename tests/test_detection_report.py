"""Detection measured against ground truth on unlabelled accounts (models/detection_report.py), by hand."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from models import detection_report as report

D1, D2, D3 = dt.date(2026, 10, 1), dt.date(2026, 10, 2), dt.date(2026, 10, 3)


def _truth() -> pd.DataFrame:
    rows = [
        ("a1", "campaign_a", "A"),
        ("a2", "campaign_a", "A"),
        ("a3", "campaign_a", "A"),
        ("d1", "campaign_d", "D"),
        ("d2", "campaign_d", "D"),
    ]
    rows += [(f"b{i}", "chat_user" if i < 8 else "eval_harness", None) for i in range(10)]
    truth = pd.DataFrame(rows, columns=["account_id", "segment", "campaign_id"])
    truth["is_campaign"] = truth["campaign_id"].notna()
    return truth


def _labels() -> pd.DataFrame:
    # a1 is labelled on D1 (known, so left out from D1 on); b0 is cleared only after D3
    return pd.DataFrame(
        {"account_id": ["a1", "b0"], "decided_at": pd.to_datetime(["2026-10-01 09:00", "2026-10-04 09:00"], utc=True)}
    )


def test_unlabelled_drops_accounts_labelled_by_the_end_of_the_day():
    risk = pd.DataFrame({"account_id": ["a1", "a2", "b0"], "score": [0.9, 0.8, 0.1], "tier": ["high"] * 3})
    scope = report.unlabelled(risk, _truth(), _labels(), D1)
    assert sorted(scope.account_id) == ["a2", "b0"]
    assert sorted(report.unlabelled(risk, _truth(), _labels(), D1 - dt.timedelta(days=1)).account_id) == [
        "a1",
        "a2",
        "b0",
    ]


def test_recall_at_benign_fpr_per_campaign_and_segment():
    truth = _truth()
    scores = {
        "a1": 0.99,
        "a2": 0.95,
        "a3": 0.5,
        "d1": 0.91,
        "d2": 0.05,
        **{f"b{i}": 0.1 * i / 10 for i in range(9)},
        "b9": 0.93,
    }
    scope = truth.assign(score=truth.account_id.map(scores))
    out = report.recall_at_benign_fpr(scope, levels=(0.0, 0.1))
    # 10 benign accounts: level 0 allows none (threshold just above b9's 0.93), 0.1 allows one (b9; threshold
    # just above b8's 0.08, so a3 at 0.5 is caught and d2 at 0.05 is not)
    strict, loose = out["levels"]["0"], out["levels"]["0.1"]
    assert strict["allowed_false_positives"] == 0 and loose["allowed_false_positives"] == 1
    assert strict["per_campaign_recall"] == {"A": pytest.approx(2 / 3), "D": 0.0}
    assert strict["benign_fpr"] == 0.0
    assert loose["per_campaign_recall"] == {"A": 1.0, "D": 0.5}
    assert loose["recall"] == pytest.approx(4 / 5)
    assert loose["benign_fpr"] == pytest.approx(0.1)
    assert loose["per_segment_fpr"] == {"chat_user": 0.0, "eval_harness": 0.5}


def test_evaluate_unlabeled_by_tier():
    truth = _truth()
    tiers = {"a2": "critical", "a3": "elevated", "d1": "high", "b9": "elevated"}
    risk = truth[["account_id"]].assign(tier=truth.account_id.map(tiers).fillna("low"))
    out = report.evaluate_unlabeled(risk, truth, _labels(), D1)
    assert out["critical"]["per_campaign_recall"] == {"A": 0.5, "D": 0.0}  # a1 is labelled: out of scope
    assert out["high"]["campaign_recall"] == pytest.approx(2 / 4)
    assert out["elevated"]["campaign_recall"] == pytest.approx(3 / 4)
    assert out["elevated"]["false_positives"] == 1
    assert out["elevated"]["benign_false_positive_rate"] == pytest.approx(1 / 10)


def test_detection_latency_counts_only_accounts_still_unlabelled_that_day():
    truth = _truth()
    first_request = pd.DataFrame({"account_id": ["a1", "a2", "d1", "b0"], "first_date": [D1, D2, D1, D1]})
    risk = pd.DataFrame(
        {
            "score_date": [D1, D2, D3, D2, D3],
            "account_id": ["a1", "a1", "a2", "d1", "b0"],
            "tier": ["critical", "critical", "high", "elevated", "critical"],
        }
    )
    out = report.detection_latency(risk, truth, _labels(), first_request)
    # a1 is flagged on D1 but was labelled that day, so A counts from a2 on D3; D never reaches high
    assert out["A"] == {"accounts": 3, "first_request": "2026-10-01", "first_flagged": "2026-10-03", "latency_days": 2}
    assert out["D"]["latency_days"] is None and out["D"]["first_flagged"] is None
    assert set(out) == {"A", "D"}


def test_cluster_purity():
    clusters = pd.DataFrame(
        {
            "account_id": ["a1", "a2", "b0", "d1", "d2", "b1", "b2", "b3"],
            "cluster_id": ["c1", "c1", "c1", "c2", "c2", "c3", "c3", "c3"],
        }
    )
    out = report.cluster_purity(clusters, _truth())
    assert out["clusters"] == 3 and out["clustered_accounts"] == 8
    assert (
        out["largest_cluster_size"] == 3 and out["largest_cluster_campaign_accounts"] == 2
    )  # c1 (a1, a2, b0) wins the tie with c3 by id
    assert out["size_weighted_purity"] == pytest.approx((2 + 2 + 3) / 8)
    assert out["pure_cluster_share"] == pytest.approx(2 / 3)
    assert out["campaign_accounts_clustered"] == 4
    assert report.cluster_purity(clusters.iloc[:0], _truth())["largest_cluster_size"] == 0


def test_the_benchmark_reports_latency_only_for_campaigns_that_start_after_the_train_day():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "detection_benchmark", Path(__file__).resolve().parents[1] / "benchmarks" / "detection.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    def seed(number, g_latency):
        return {
            "seed": number,
            "train_as_of": "2026-10-18",
            "latency": {
                "D": {"accounts": 150, "first_request": "2026-10-07", "latency_days": 11},
                "G": {"accounts": 40, "first_request": "2026-10-21", "latency_days": g_latency},
            },
        }

    text = bench.latency_markdown([seed(1, 0), seed(2, None)])
    assert "| G | 0 d (40 accts from 2026-10-21) | never (40 accts from 2026-10-21) |" in text
    assert "| D |" not in text  # active before the train day: its latency only says when it started
    assert "none can be measured" in bench.latency_markdown(
        [{**seed(1, 0), "latency": {"D": {"accounts": 150, "first_request": "2026-10-07", "latency_days": 11}}}]
    )
