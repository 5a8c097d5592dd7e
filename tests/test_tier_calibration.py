"""Tier bounds (models/train.py tier_calibration) on small synthetic holdouts: which bound each tier takes, and
the benign FPR it realises on the accounts it was calibrated for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import novelty
from models.config import TIER_BENIGN_FPR, TrainingConfig
from models.metrics import tier_bounds
from models.tiers import TIER_METHOD, tier_calibration

RATES = dict(TIER_BENIGN_FPR)
# the combination of a supervised model and two novelty families: the construction is 1 - rate / (1 + 1/3 + 1/3)
REFERENCE = novelty.NoveltyReference(
    (), (), (), (), ((), ()), supervised_percentiles=(0.0, 1.0), population=10, families=("behaviour", "harvest yield")
)
CONSTRUCTED = dict(novelty.tier_bounds_by_construction(REFERENCE, TIER_BENIGN_FPR))


def _holdout(established: np.ndarray, young: np.ndarray, positives: int = 50):
    """Unlabelled established (400 days old) and young (3 days old) snapshots plus labelled positives at 1.0."""
    scores = np.concatenate([established, young, np.ones(positives)])
    frame = pd.DataFrame(
        {
            "label": [0] * (len(established) + len(young)) + [1] * positives,
            "account_age_days": [400.0] * len(established) + [3.0] * (len(young) + positives),
        }
    )
    return frame, scores


def test_campaigns_hiding_in_the_holdout_leave_the_tiers_at_the_combinations_construction():
    rng = np.random.default_rng(1)
    # benign accounts score below every constructed bound; 1,000 unlabelled campaign accounts fill the top
    frame, scores = _holdout(rng.uniform(0.0, 0.99, 19_000), np.full(1_000, 0.999999))
    calibration = tier_calibration(frame, scores, TrainingConfig(), REFERENCE)
    assert calibration.method == TIER_METHOD
    assert dict(calibration.bounds) == pytest.approx(CONSTRUCTED)
    # the holdout quantile alone would have sat above every campaign account: no tier would flag one
    quantile_alone = dict(tier_bounds(frame["label"], scores, TIER_BENIGN_FPR).bounds)
    assert quantile_alone["elevated"] > 0.999999


def test_a_block_of_established_accounts_drifting_up_lifts_the_tiers_above_the_construction():
    rng = np.random.default_rng(2)
    # 3% of established accounts moved together above the constructed elevated and high bounds (a tree ensemble
    # gives a whole segment one score): the construction alone would flag all of them
    drifted = np.concatenate([rng.uniform(0.0, 0.9, 9_700), np.full(300, 0.9995)])
    frame, scores = _holdout(drifted, np.full(500, 0.999999))
    bounds = dict(tier_calibration(frame, scores, TrainingConfig(), REFERENCE).bounds)
    assert np.mean(drifted >= CONSTRUCTED["elevated"]) == pytest.approx(0.03)
    for name in ("high", "elevated"):
        assert np.mean(drifted >= bounds[name]) <= RATES[name]
    assert bounds["critical"] >= bounds["high"] >= bounds["elevated"]


def test_a_rate_the_established_accounts_cannot_resolve_keeps_the_construction():
    rng = np.random.default_rng(3)
    # 5,000 established snapshots resolve 0.1% and 1%, not 0.01%: there one developer's 1.0 would be the bound
    established = np.concatenate([rng.uniform(0.0, 0.9, 4_999), [1.0]])
    frame, scores = _holdout(established, np.full(500, 0.999999))
    bounds = dict(tier_calibration(frame, scores, TrainingConfig(), REFERENCE).bounds)
    assert bounds["critical"] == pytest.approx(CONSTRUCTED["critical"])


def test_a_young_lake_is_calibrated_on_the_holdout_quantile_alone():
    rng = np.random.default_rng(4)
    frame, scores = _holdout(rng.uniform(0.0, 0.9, 50), rng.uniform(0.0, 1.0, 5_000))
    calibration = tier_calibration(frame, scores, TrainingConfig(), REFERENCE)
    assert calibration.bounds == tier_bounds(frame["label"], scores, TIER_BENIGN_FPR).bounds
    assert "only 50 unlabelled holdout snapshots of accounts 30+ days old" in calibration.method


def test_a_version_without_a_novelty_reference_is_calibrated_on_the_holdout_quantile_alone():
    rng = np.random.default_rng(5)
    frame, scores = _holdout(rng.uniform(0.0, 0.99, 5_000), np.full(500, 0.999999))
    assert tier_calibration(frame, scores, TrainingConfig(), None) == tier_bounds(
        frame["label"], scores, TIER_BENIGN_FPR
    )
