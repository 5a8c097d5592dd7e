"""Positive-unlabelled training weights: what each snapshot counts for when the model is fitted.

The data are positive-unlabelled (models/training_set.py): a snapshot without an extraction label is benign or a
campaign account nobody has reached yet. Treating every unlabelled snapshot as benign teaches the model that the
unreached siblings of a labelled hydra are benign; dropping the ones near decided accounts turns "near a decided
account" into the label. Instead, every unlabelled snapshot is split into a positive and a negative copy
(Elkan & Noto 2008): the positive copy weighs the probability that it is an unlabelled positive,

    w = (1 - c) / c x g / (1 - g),   clipped to [0, 1],

with g the cross-fitted probability that the snapshot is labelled and c = P(labelled | positive), the label
frequency. c comes from the class prior, the share of positives hidden among the unlabelled, estimated by best-bin
estimation on the same cross-fitted scores (metrics.hidden_positive_share). Accounts decided benign by as-of are
negatives only.

Two more weights keep the fit honest: each account counts once (1/n for an account's n snapshots), so the accounts
with the longest history do not dominate; and the negatives' account ages are matched to the positives' (by the
positives' age quintiles), so "old means benign" is not learned from who happened to get labelled.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.metrics import hidden_positive_share

AGE_COLUMN = "account_age_days"
AGE_BINS = 5
# An age bin's negatives are weighted by positives' share / negatives' share, within these bounds, so a bin with
# almost no positives (old accounts, when every labelled hydra is young) still teaches the model something. Not
# fitted.
MAX_AGE_WEIGHT = 10.0
MAX_G = 1.0 - 1e-6


def folds(keys, k: int) -> np.ndarray:
    """A fold per row, 0..k-1, by a hash of its key (an account, or campaign_groups): all rows of a key fall in one
    fold."""
    return np.asarray([zlib.crc32(str(a).encode()) % k for a in keys], dtype=np.int64)


def campaign_groups(rows: pd.DataFrame) -> np.ndarray:
    """Per row, what cross-fitting must hold out together: the campaign an analyst filed the account under
    (campaign_id), else the account. Held out by campaign, a cross-fitted score says how the model does on a
    campaign it never saw, which is what the unlabelled campaigns are to it."""
    campaign = rows["campaign_id"] if "campaign_id" in rows.columns else pd.Series(None, index=rows.index)
    account = rows["account_id"].astype(str)
    return np.where(campaign.notna(), "campaign:" + campaign.astype(str), "account:" + account).astype(object)


def account_weights(account_ids) -> np.ndarray:
    """1 / (the account's number of rows): each account counts once."""
    ids = pd.Series(np.asarray(account_ids, dtype=object))
    return (1.0 / ids.map(ids.value_counts())).to_numpy(dtype=np.float64)


def age_matching_weights(ages: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row, the factor that gives the negatives the positives' (weighted) age distribution; 1 for positives."""
    ages = np.nan_to_num(np.asarray(ages, dtype=np.float64), nan=0.0)
    positive = labels == 1
    if positive.sum() < AGE_BINS or (~positive).sum() == 0:
        return np.ones(len(ages))
    # the positives' age quintiles, and a bin of its own for accounts older than every positive
    edges = np.unique(np.quantile(ages[positive], np.linspace(0, 1, AGE_BINS + 1)[1:]))
    bins = np.searchsorted(edges, ages, side="left")
    factor = np.ones(len(ages))
    for b in range(len(edges) + 1):
        pos = weights[positive & (bins == b)].sum() / weights[positive].sum()
        neg = weights[~positive & (bins == b)].sum() / weights[~positive].sum()
        if neg > 0:
            factor[~positive & (bins == b)] = np.clip(pos / neg, 1.0 / MAX_AGE_WEIGHT, MAX_AGE_WEIGHT)
    return factor


@dataclass(frozen=True)
class PUWeights:
    hidden_positive_share: float  # estimated share of positives among the unlabelled (the class prior)
    label_frequency: float  # c = P(labelled | positive)
    positive_mass_unlabelled: float  # sum of the unlabelled rows' positive-copy weights w


def elkan_noto(
    labels: np.ndarray, labelled_probability: np.ndarray, benign: np.ndarray
) -> tuple[np.ndarray, PUWeights]:
    """Per row, w = the weight of its positive copy (1 for positives, 0 for accounts decided benign)."""
    g = np.clip(np.asarray(labelled_probability, dtype=np.float64), 0.0, MAX_G)
    labels = np.asarray(labels)
    share = hidden_positive_share(labels, g)
    positives, unlabelled = int((labels == 1).sum()), int((labels == 0).sum())
    c = positives / (positives + share * unlabelled) if positives else 1.0
    w = np.clip((1.0 - c) / max(c, 1e-9) * g / (1.0 - g), 0.0, 1.0)
    w = np.where(labels == 1, 1.0, np.where(benign, 0.0, w))
    return w, PUWeights(share, c, float(w[labels == 0].sum()))


def training_rows(frame: pd.DataFrame, w: np.ndarray) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(rows, labels, weights): positives once; each unlabelled row as a negative weighing 1 - w (age-matched) and,
    where w > 0, a positive copy weighing w; all times 1/n per account. Classes are balanced in total weight."""
    labels = frame["label"].to_numpy()
    per_account = account_weights(frame["account_id"])
    unlabelled = labels == 0
    copies = unlabelled & (w > 0)
    rows = pd.concat([frame, frame[copies]], ignore_index=True)
    y = np.r_[labels, np.ones(int(copies.sum()), dtype=labels.dtype)]
    weight = np.r_[per_account * np.where(unlabelled, 1.0 - w, 1.0), per_account[copies] * w[copies]]
    weight = weight * age_matching_weights(rows[AGE_COLUMN].to_numpy(), y, weight)
    positive = y == 1
    if positive.any() and (~positive).any():
        weight[positive] *= weight[~positive].sum() / weight[positive].sum()
    return rows, y, weight
