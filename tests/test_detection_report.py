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
    # where the simulator knows when a campaign went live, that date stands in for its accounts' first request
    live = report.detection_latency(risk, truth, _labels(), first_request, live={"A": D2})
    assert live["A"]["first_request"] == D2.isoformat() and live["A"]["latency_days"] == 1
    assert live["D"]["first_request"] == D1.isoformat()


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


def _benchmark_module(name: str):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tables():
    return _benchmark_module("detection_tables")


def test_benchmark_seed_sets_are_declared_apart_and_resolved_in_order():
    bench = _benchmark_module("detection")
    assert not set(bench.DEV_SEEDS) & set(bench.REPORT_SEEDS)
    assert len(bench.REPORT_SEEDS) >= 5
    assert bench.resolve_seeds(["dev"]) == list(bench.DEV_SEEDS)
    assert bench.resolve_seeds(["both"]) == [*bench.DEV_SEEDS, *bench.REPORT_SEEDS]
    first_report = bench.REPORT_SEEDS[0]
    assert bench.resolve_seeds([str(first_report), "report", "7"]) == [*bench.REPORT_SEEDS, 7]
    assert [bench.seed_set(s) for s in (bench.DEV_SEEDS[0], first_report, 7)] == ["dev", "report", "adhoc"]


def test_the_benchmark_reports_latency_only_for_campaigns_that_start_after_the_train_day():
    def seed(number, g_latency):
        return {
            "seed": number,
            "train_as_of": "2026-10-18",
            "latency": {
                "D": {"accounts": 150, "first_request": "2026-10-07", "latency_days": 11},
                "G": {"accounts": 40, "first_request": "2026-10-21", "latency_days": g_latency},
            },
        }

    text = _tables().latency_markdown([seed(1, 0), seed(2, None)])
    assert "| 1 | G | 40 | 2026-10-21 | 0 d |" in text
    assert "| 2 | G | 40 | 2026-10-21 | never |" in text
    assert "| D |" not in text


# --- the headline: tiers with intervals from a bootstrap over clusters ----------------------------------------


def test_one_row_per_account_keeps_each_accounts_highest_score():
    risk = pd.DataFrame({"account_id": ["x", "x", "y"], "score": [0.2, 0.9, 0.5], "tier": ["low", "high", "elevated"]})
    out = report.one_row_per_account(risk).set_index("account_id")
    assert len(out) == 2
    assert out.loc["x", "tier"] == "high" and out.loc["x", "score"] == 0.9


def test_benign_flagged_per_day_counts_each_day_apart_and_leaves_campaign_accounts_out():
    risk = pd.DataFrame(
        {
            "score_date": ["d1", "d1", "d1", "d2", "d2", "d2"],
            "account_id": ["a", "b", "c", "a", "b", "c"],
            "tier": ["high", "low", "critical", "low", "elevated", "critical"],
            "is_campaign": [False, False, True, False, False, True],
        }
    )
    days = report.benign_flagged_per_day(risk)
    assert days["d1"]["high"] == {"benign_flagged": 1, "benign": 2, "benign_fpr": 0.5}
    assert days["d1"]["critical"]["benign_flagged"] == 0 and days["d1"]["elevated"]["benign_flagged"] == 1
    assert days["d2"]["high"]["benign_flagged"] == 0 and days["d2"]["elevated"]["benign_fpr"] == 0.5
    # over both days, a and b each reached >= elevated once: the highest tier per account flags both
    assert report.one_row_per_account(risk.assign(score=0.5)).query("~is_campaign")["tier"].tolist() == [
        "high",
        "elevated",
    ]


def test_one_row_per_account_keeps_the_highest_tier_when_bounds_differ_by_day():
    # day 2's bounds were relaxed: a lower score reached a higher tier; the oracle still ranks the highest score
    risk = pd.DataFrame({"account_id": ["x", "x"], "score": [0.995, 0.993], "tier": ["elevated", "high"]})
    out = report.one_row_per_account(risk).set_index("account_id")
    assert out.loc["x", "tier"] == "high" and out.loc["x", "score"] == 0.995


def test_cluster_bootstrap_interval_of_known_cases():
    import numpy as np

    # every group flags half its accounts: every resample gives exactly 1/2
    assert report.cluster_bootstrap_ci(np.array([1, 2, 5]), np.array([2, 4, 10])) == (0.5, 0.5)
    # two equal groups, one all flagged, one none: resamples give 0, 1/2 or 1 with chances 1/4, 1/2, 1/4
    assert report.cluster_bootstrap_ci(np.array([10, 0]), np.array([10, 10])) == (0.0, 1.0)
    # 400 lone accounts, half flagged: the binomial interval 0.5 +- 1.96 * sqrt(0.25 / 400) = +- 0.049
    low, high = report.cluster_bootstrap_ci(np.r_[np.ones(200), np.zeros(200)], np.ones(400))
    assert low == pytest.approx(0.451, abs=0.012) and high == pytest.approx(0.549, abs=0.012)
    # the same 400 accounts in 4 clusters that rise and fall together: far wider
    low_c, high_c = report.cluster_bootstrap_ci(np.array([100, 100, 0, 0]), np.full(4, 100))
    assert high_c - low_c > 3 * (high - low)
    assert all(np.isnan(report.cluster_bootstrap_ci(np.array([]), np.array([]))))  # no accounts, no interval


def test_cluster_bootstrap_interval_covers_the_true_rate():
    """Clustered data with a known rate: the 95% interval covers it in about 95% of samples (>= 85% of 200)."""
    import numpy as np

    rng = np.random.default_rng(5)
    covered = 0
    for trial in range(200):
        sizes = rng.integers(1, 30, 40)
        group_rate = rng.beta(2, 3, 40)  # each cluster its own rate; the population's is 0.4
        hits = rng.binomial(sizes, group_rate)
        low, high = report.cluster_bootstrap_ci(hits, sizes, replicates=400, seed=trial)
        covered += low <= 0.4 <= high
    assert covered >= 170


def _scope() -> pd.DataFrame:
    rows = [
        # account, campaign?, campaign, archetype, segment, group, subgroup, tier
        ("a1", True, "1:A", "bulk_hydra", "campaign_a", "1:A", "h1", "critical"),
        ("a2", True, "1:A", "bulk_hydra", "campaign_a", "1:A", "h1", "elevated"),
        ("a3", True, "1:A", "bulk_hydra", "campaign_a", "1:A", "h2", "low"),
        ("a4", True, "1:A", "bulk_hydra", "campaign_a", "1:A", "h2", "high"),
        ("d1", True, "1:D", "low_slow", "campaign_d", "1:D", "d1", "low"),
        ("d2", True, "1:D", "low_slow", "campaign_d", "1:D", "d2", "high"),
    ]
    rows += [
        (f"b{i}", False, None, None, "chat_user" if i < 8 else "judge", f"g{i}", f"b{i}", "low") for i in range(10)
    ]
    scope = pd.DataFrame(
        rows, columns=["account_id", "is_campaign", "campaign", "archetype", "segment", "group", "subgroup", "tier"]
    )
    scope.loc[scope["account_id"] == "b8", "tier"] = "high"  # a judge flagged
    scope.loc[scope["account_id"] == "b0", "tier"] = "elevated"  # a chat user flagged, lower
    return scope


def test_tier_headline_recall_and_fpr_by_hand():
    out = report.tier_headline(_scope())
    assert out["critical"]["recall"]["value"] == pytest.approx(1 / 6)
    assert out["high"]["recall"]["value"] == pytest.approx(3 / 6)
    assert out["elevated"]["recall"]["value"] == pytest.approx(4 / 6)
    assert out["critical"]["benign_fpr"]["value"] == 0
    assert out["high"]["benign_fpr"]["value"] == pytest.approx(1 / 10)
    assert out["elevated"]["benign_fpr"]["value"] == pytest.approx(2 / 10)
    assert out["elevated"]["benign_fpr"]["flagged"] == 2 and out["elevated"]["benign_fpr"]["accounts"] == 10
    assert out["high"]["per_campaign"]["1:A"]["value"] == pytest.approx(2 / 4)
    assert out["high"]["per_campaign"]["1:D"]["value"] == pytest.approx(1 / 2)
    assert out["high"]["per_archetype"]["low_slow"]["value"] == pytest.approx(1 / 2)
    assert out["high"]["per_segment_fpr"]["judge"]["value"] == pytest.approx(1 / 2)
    assert out["high"]["per_segment_fpr"]["chat_user"]["value"] == 0
    # two campaign groups: the recall interval at >= high spans campaign D's and campaign A's mixes
    assert out["high"]["recall"]["groups"] == 2
    assert out["high"]["recall"]["low"] <= 0.5 <= out["high"]["recall"]["high"]
    # the benign interval resamples 10 lone accounts, one flagged: it reaches 0 and stays below 1/2
    assert out["high"]["benign_fpr"]["low"] == 0 and out["high"]["benign_fpr"]["high"] < 0.5


def test_operating_point_takes_any_flag_column():
    scope = _scope()
    flagged = scope["account_id"].isin(["a1", "a2", "a3", "a4", "b3"])
    out = report.operating_point(scope, flagged)
    assert out["recall"]["value"] == pytest.approx(4 / 6)
    assert out["per_archetype"]["bulk_hydra"]["value"] == 1.0
    assert out["benign_fpr"]["value"] == pytest.approx(1 / 10)


def test_evaluation_rows_group_campaigns_clusters_orgs_and_lone_accounts():
    truth = _truth().assign(archetype=lambda t: t["campaign_id"].map({"A": "bulk_hydra", "D": "low_slow"}))
    # account_risk rows carry a cluster_id of their own: the clusters given are the ones that count
    risk = pd.DataFrame({"account_id": truth["account_id"], "score": 0.5, "tier": "low", "cluster_id": "stale"})
    clusters = pd.DataFrame({"account_id": ["b1", "b2", "a2"], "cluster_id": ["c9", "c9", "c9"]})
    accounts = pd.DataFrame({"account_id": truth["account_id"], "org_id": [f"o{i}" for i in range(len(truth))]})
    accounts.loc[accounts["account_id"].isin(["b3", "b4"]), "org_id"] = "team"
    rows = report.evaluation_rows(report.unlabelled(risk, truth, _labels(), D1), clusters, accounts, "7:")
    group = rows.set_index("account_id")["group"]
    assert "a1" not in group  # labelled on D1
    assert group["a2"] == group["a3"] == "7:A"  # a campaign is one group, whatever its links
    assert group["b1"] == group["b2"] == "7:cluster:c9"
    assert group["b3"] == group["b4"] == "7:org:team"
    assert group["b5"] == "7:org:o10"  # alone
    assert rows.set_index("account_id").loc["d1", "campaign"] == "7:D"
    assert rows.set_index("account_id")["campaign"].isna().sum() == 10
