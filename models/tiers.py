"""Risk tiers: the score bounds at each tier's benign false-positive rate (models/config.py TIER_BENIGN_FPR), and the
benign reference they and the score percentiles are taken over."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from models import novelty
from models.config import TIER_BENIGN_FPR, TrainingConfig
from models.metrics import TierCalibration, threshold_at_fpr, tier_bounds

log = logging.getLogger(__name__)

MIN_REFERENCE_SNAPSHOTS = 100


def benign_reference(frame: pd.DataFrame, config: TrainingConfig) -> pd.DataFrame:
    """The unlabelled snapshots the score percentiles and tier bounds are taken over (TrainingConfig says why only
    established accounts); all unlabelled ones when the age threshold is 0 or too few are old enough."""
    unlabelled = frame[frame["label"] == 0]
    if config.reference_min_account_age_days == 0:
        return unlabelled
    established = unlabelled[unlabelled[novelty.AGE_COLUMN] >= config.reference_min_account_age_days]
    if len(established) < MIN_REFERENCE_SNAPSHOTS:
        log.warning(
            "only %d unlabelled snapshots of accounts %d+ days old; the benign reference uses all %d "
            "unlabelled snapshots",
            len(established),
            config.reference_min_account_age_days,
            len(unlabelled),
        )
        return unlabelled
    return established


def _per_tier(
    pick, first: tuple[tuple[str, float], ...], second: tuple[tuple[str, float], ...]
) -> tuple[tuple[str, float], ...]:
    other = dict(second)
    return tuple((name, pick(bound, other[name])) for name, bound in first)


TIER_METHOD = (
    "per tier the lower of (a) the holdout quantile and (b) the higher of the combination's constructed "
    f"bound, {novelty.CONSTRUCTED_TIERS}, and the quantile over the holdout's unlabelled accounts "
    f"{novelty.ESTABLISHED_ACCOUNT_DAYS}+ days old"
)


def tier_calibration(
    holdout: pd.DataFrame, scores: np.ndarray, config: TrainingConfig, reference: novelty.NoveltyReference | None
) -> TierCalibration:
    """Score bounds per tier at the tier's benign FPR (TIER_BENIGN_FPR), from the holdout's final `scores`.

    (a) The final score's quantile at the rate over the holdout's unlabelled snapshots (metrics.tier_bounds): any
    campaign account hidden among them only lowers the realised benign FPR. But once the score finds the hidden
    campaigns they fill the holdout's top and push this bound far above any benign account.
    (b) The higher of two bounds that each err in a known direction. The combination's construction
    (novelty.tier_bounds_by_construction) is conservative about hidden campaigns but blind to drift since the
    reference was fitted. The same quantile over the holdout's *established* unlabelled accounts sees the recent
    days' drift and is nearly free of campaign accounts (they are young), but cannot see young benign accounts. The
    higher of the two holds when either does. At a tier whose rate the established sample cannot resolve, (b) is the
    construction alone.

    Either (a) or (b) keeps benign FPR within the rate, so the lower one is taken: (b) where campaigns hide in the
    holdout, (a) where few do. Without MIN_REFERENCE_SNAPSHOTS established holdout snapshots (a young lake) the
    tiers are (a) alone."""
    labels = holdout["label"].to_numpy()
    in_reference = (labels == 1) | holdout.index.isin(benign_reference(holdout, config).index)
    quantile = tier_bounds(labels[in_reference], scores[in_reference], TIER_BENIGN_FPR)
    if not novelty.combines(reference):
        return quantile
    established = (labels == 0) & (holdout[novelty.AGE_COLUMN].to_numpy() >= novelty.ESTABLISHED_ACCOUNT_DAYS)
    n_established = int(established.sum())
    if n_established < MIN_REFERENCE_SNAPSHOTS:
        why = (
            f"only {n_established} unlabelled holdout snapshots of accounts {novelty.ESTABLISHED_ACCOUNT_DAYS}+ "
            f"days old, fewer than the {MIN_REFERENCE_SNAPSHOTS} that guard the construction against drift"
        )
        log.warning("tiers are the holdout quantile alone: %s", why)
        return TierCalibration(quantile.bounds, quantile.hidden_positive_share, f"{quantile.method}; {why}")
    # a rate the sample cannot resolve (fewer than 1 / rate snapshots) would put the guard at its maximum, one
    # account's score;
    # 0.0 leaves the construction alone at that tier
    unlabelled = np.zeros(n_established)
    guard = tuple(
        (name, threshold_at_fpr(unlabelled, scores[established], rate) if n_established * rate >= 1 else 0.0)
        for name, rate in TIER_BENIGN_FPR
    )
    drift_guarded = _per_tier(max, novelty.tier_bounds_by_construction(reference, TIER_BENIGN_FPR), guard)
    bounds = _per_tier(min, quantile.bounds, drift_guarded)
    ceilings = np.minimum.accumulate([bound for _, bound in bounds])  # a higher tier is never easier to reach
    return TierCalibration(
        tuple((name, float(c)) for (name, _), c in zip(bounds, ceilings)), quantile.hidden_positive_share, TIER_METHOD
    )
