"""Metrics on tiny cases whose answers are worked out by hand in the comments."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from models.metrics import (
    average_precision,
    campaign_results,
    evaluate,
    precision_at_k,
    precision_recall_curve,
    recall_at_fpr,
    segment_false_positive_rates,
    threshold_at_fpr,
    tier_bounds,
)

D1, D2, D3 = dt.date(2026, 2, 1), dt.date(2026, 2, 2), dt.date(2026, 2, 3)


def test_average_precision_without_ties():
    # ranked: 1 0 1 0 -> precision at the two hits: 1/1 and 2/3, each worth half the recall
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_average_precision_groups_tied_scores():
    # 0.5 flags rows 1 and 2 together: P=1/2, R=1/2; 0.2 adds row 3: P=2/3, R=1
    assert average_precision([1, 0, 1], [0.5, 0.5, 0.2]) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    precision, recall, thresholds = precision_recall_curve([1, 0, 1], [0.5, 0.5, 0.2])
    np.testing.assert_allclose(precision, [0.5, 2 / 3])
    np.testing.assert_allclose(recall, [0.5, 1.0])
    np.testing.assert_allclose(thresholds, [0.5, 0.2])


def test_average_precision_perfect_and_worst_rankings():
    assert average_precision([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(1.0)
    # positives last: hits at ranks 3 and 4 -> (1/3 + 2/4) / 2
    assert average_precision([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == pytest.approx((1 / 3 + 2 / 4) / 2)


def test_threshold_and_recall_at_benign_fpr():
    negatives = [i / 10 for i in range(10)]  # 0.0 .. 0.9
    positives = [0.95, 0.85, 0.5]
    y = [0] * 10 + [1] * 3
    s = negatives + positives
    # 10% of 10 negatives = 1 may be flagged: the threshold sits just above the 2nd-highest negative (0.8)
    t = threshold_at_fpr(y, s, 0.10)
    assert t == np.nextafter(0.8, np.inf)
    assert recall_at_fpr(y, s, 0.10) == pytest.approx(2 / 3)  # 0.95 and 0.85 clear it, 0.5 does not
    # 1% of 10 negatives = 0 may be flagged: threshold just above the top negative 0.9
    assert threshold_at_fpr(y, s, 0.01) == np.nextafter(0.9, np.inf)
    assert recall_at_fpr(y, s, 0.01) == pytest.approx(1 / 3)


def test_threshold_leaves_ties_at_the_boundary_unflagged():
    # two negatives tied at 0.8 and 1 allowed false positive: flagging either flags both, so neither is flagged
    y = [0, 0, 0, 0, 1]
    s = [0.8, 0.8, 0.1, 0.1, 0.8]
    t = threshold_at_fpr(y, s, 0.25)
    assert t > 0.8
    assert recall_at_fpr(y, s, 0.25) == 0.0


def test_precision_at_k():
    y = [0, 1, 1, 0, 1]
    s = [0.9, 0.8, 0.7, 0.6, 0.1]
    assert precision_at_k(y, s, 1) == 0.0
    assert precision_at_k(y, s, 2) == pytest.approx(0.5)
    assert precision_at_k(y, s, 3) == pytest.approx(2 / 3)
    assert precision_at_k(y, s, 100) == pytest.approx(3 / 5)  # fewer rows than k: all rows


def test_campaign_results_share_and_latency():
    accounts = ["a1", "a1", "a2", "a2", "b1", "b1", "x"]
    campaigns = ["A", "A", "A", "A", "B", "B", None]
    dates = [D1, D2, D1, D2, D1, D3, D1]
    flagged = [False, False, False, True, False, False, True]
    by_id = {c.campaign_id: c for c in campaign_results(accounts, campaigns, dates, flagged)}
    assert set(by_id) == {"A", "B"}  # the account outside any campaign is ignored
    a, b = by_id["A"], by_id["B"]
    assert (a.accounts, a.accounts_flagged, a.account_share_flagged) == (2, 1, 0.5)
    assert (a.first_seen, a.first_flagged, a.detection_latency_days) == (D1, D2, 1)
    assert (b.accounts, b.accounts_flagged, b.account_share_flagged) == (1, 0, 0.0)
    assert b.first_flagged is None and b.detection_latency_days is None


def test_segment_false_positive_rates_count_only_negatives():
    segments = ["eval_harness", "eval_harness", "education", None, "eval_harness"]
    y = [0, 0, 0, 0, 1]
    flagged = [True, False, False, True, True]
    rates = segment_false_positive_rates(segments, y, flagged)
    assert rates == {
        "education": {"snapshots": 1, "flagged": 0, "fpr": 0.0},
        "eval_harness": {"snapshots": 2, "flagged": 1, "fpr": 0.5},
    }


def test_evaluate_combines_every_metric():
    # 100 negatives scored 0.00..0.99; 1% FPR allows one flagged negative -> threshold just above 0.98
    neg_scores = [i / 100 for i in range(100)]
    y = [0] * 100 + [1, 1, 1, 1]
    s = neg_scores + [0.995, 0.985, 0.5, 0.2]
    accounts = [f"n{i}" for i in range(100)] + ["p1", "p2", "p3", "p4"]
    dates = [D1] * 100 + [D1, D2, D1, D3]
    campaigns = [None] * 100 + ["A", "A", "B", "C"]
    segments = ["eval_harness"] * 2 + [None] * 97 + ["batch_pipeline"] + [None] * 4
    result = evaluate(
        y,
        s,
        account_ids=accounts,
        feature_dates=dates,
        campaign_ids=campaigns,
        benign_segments=segments,
        review_capacity_k=2,
    )
    m = result.metrics
    assert m["recall_at_benign_fpr_0.01"] == pytest.approx(0.5)  # 0.995 and 0.985 clear 0.98+
    assert m["recall_at_benign_fpr_0.001"] == pytest.approx(0.25)  # only 0.995 clears 0.99+
    assert m["precision_at_k"] == pytest.approx(0.5)  # top 2: 0.995 (positive), 0.99 (negative)
    assert m["campaign_recall"] == pytest.approx(1 / 3)  # only A has a flagged account
    assert m["campaign_account_share_flagged/A"] == pytest.approx(1.0)
    assert m["detection_latency_days_mean"] == pytest.approx(0.0)  # A first seen D1, first flagged D1
    assert m["benign_fpr/batch_pipeline"] == pytest.approx(1.0)  # its negative scored 0.99 -> flagged
    assert m["benign_fpr/eval_harness"] == pytest.approx(0.0)
    assert m["flagged_benign_fpr"] == pytest.approx(0.01)
    assert m["positive_rate"] == pytest.approx(4 / 104)


def test_metrics_refuse_undefined_inputs():
    with pytest.raises(ValueError, match="without positives"):
        average_precision([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="without negatives"):
        threshold_at_fpr([1, 1], [0.1, 0.2], 0.01)
    with pytest.raises(ValueError, match="NaN"):
        average_precision([1, 0], [np.nan, 0.2])


def test_average_precision_matches_scikit_learn_on_random_scores():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200), 2)  # rounding makes plenty of ties
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s))


def test_tier_bounds_follow_each_tiers_benign_fpr_and_never_increase():
    # 1,000 negatives scored 0.000..0.999 and 10 positives at 0.5: at 0.1% FPR one negative may be flagged.
    negatives = np.arange(1000) / 1000
    scores = np.r_[negatives, np.full(10, 0.5)]
    labels = np.r_[np.zeros(1000), np.ones(10)]
    calibration = tier_bounds(labels, scores, (("critical", 0.001), ("high", 0.01), ("elevated", 0.05)))
    assert calibration.hidden_positive_share == 0.0  # 10 labelled positives are too few to estimate hidden ones
    bounds = calibration.bounds
    assert [name for name, _ in bounds] == ["critical", "high", "elevated"]
    values = [bound for _, bound in bounds]
    assert values[0] == np.nextafter(0.998, np.inf)  # only 0.999 is above it
    assert values[1] == np.nextafter(0.989, np.inf)  # 10 negatives (0.990..0.999) flagged
    assert values[2] == np.nextafter(0.949, np.inf)  # 50 negatives flagged
    assert values == sorted(values, reverse=True)


def test_tier_bounds_hold_their_benign_rate_when_campaign_accounts_hide_among_the_unlabelled():
    """Positive-unlabelled holdout: 200 campaign accounts carry no label and sit among 10,000 benign ones. The
    bound must keep the realised benign FPR within its rate (at most rate / (1 - hidden share)), and the hidden
    share is estimated and reported."""
    rng = np.random.default_rng(3)
    benign = rng.uniform(0.0, 0.95, 10_000)
    hidden = rng.uniform(0.9, 1.0, 200)
    labelled = rng.uniform(0.9, 1.0, 100)
    scores = np.r_[benign, hidden, labelled]
    labels = np.r_[np.zeros(benign.size + hidden.size), np.ones(labelled.size)]
    calibration = tier_bounds(labels, scores, (("high", 0.001), ("elevated", 0.01)))
    assert calibration.hidden_positive_share == pytest.approx(200 / 10_200, rel=0.5)
    for (_, bound), rate in zip(calibration.bounds, (0.001, 0.01)):
        assert float(np.mean(benign >= bound)) <= rate / (1 - 200 / 10_200)
