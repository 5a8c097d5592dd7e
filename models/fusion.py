"""The score: every family's evidence, calibrated on one clean benign reference and combined by a stacked model.

**Families.** A family is a name and a raw score per account, higher = more extraction-like: `supervised` (the
logit of the XGBoost probability), the label-free novelty families (models/novelty.py), and any other family
(propagation from decided accounts, peer-group novelty) that can be computed for the reference accounts at training
and for a scored day. That is the plug point: `fit` takes a dict name -> raw scores, `score` the same dict for the
accounts scored; a version refuses to score without every family it was fitted with.

**Reference.** One row per account: accounts decided benign, plus accounts with no decision and no cluster link to
any decided account, at least TrainingConfig.reference_min_age_days old (models/training_set.py
`clean_reference`). Their supervised scores are cross-fitted, by models that never saw the account. Campaign
accounts hide among the unlabelled: a labelled hydra's unreached siblings are linked to it, so they are left out.

**Evidence.** Per family, the share of the reference at or above the account's raw score: the family's p-value
against the reference. Below the reference's top TAIL_SHARE the share is counted; above it, where the strict
tiers live and a few thousand reference accounts cannot resolve 0.01%, it is extrapolated by an exponential tail
fitted to that top (peaks over threshold; the mean excess is the scale).

**Combination.** evidence = sum over families of w_f x -log p_f with every w_f >= 0, fitted by an L2-regularised
logistic regression of the labelled positives (cross-fitted) against the reference, classes balanced. A family's
evidence only ever adds, so strong supervised evidence is never capped below weak novelty, and no family is given
a fixed share of the benign budget: each weighs what it is worth on the labelled campaigns.

**Score.** The share of the reference's calibration accounts whose evidence is below the account's, with the
same tail beyond their top. A tier at benign FPR a is therefore score >= 1 - a: exact on them down to
a = TAIL_SHARE, extrapolated below. The calibration accounts are the reference less its unlabelled accounts that
resemble decided extraction (training_set.calibration_mask): campaign accounts never linked to a decision hide
there and would put every tier's bound among themselves. The score is a rank against benign accounts, not a
probability of extraction.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import numpy as np

from lake.catalog import LAKE_FAMILIES
from lake.errors import MissingInputError
from lake.formats import check_format, stamped
from models import novelty

# Stored on the model version (tag `score_reference`) and checked on read. Versions before 2026-12-07 carry a
# `novelty_reference` tag instead (the max of percentiles with a budget divisor) and must be retrained; format 2
# (2026-12-07, 1299532) had no `tail_share` and started the tail on a tie, and must be retrained too.
FORMAT = 3
SUPERVISED = "supervised"
# The reference's top share whose exceedance is extrapolated: tiers at 1% and below sit in it. Not fitted.
TAIL_SHARE = 0.01
MIN_TAIL_ACCOUNTS = 10
# Stored points per calibrated score: every reference value up to this many, else the top TAIL_POINTS exactly and
# the rest as quantiles (their shares are exact at the stored points, rounded down to the next point between them).
# Stored values keep 7 significant digits, so a version's tag (MLflow's limit: 100,000 characters) holds six.
MAX_STORED_POINTS = 800
TAIL_POINTS = 400
MIN_SHARE = 1e-12
MAX_TAG_CHARS = 100_000  # MLflow's limit on a model version tag's value
# L2 penalty of the stacked regression, with each class weighing 1 in total. Not fitted: small enough that the
# weights follow the evidence, large enough that perfectly separated training data gives finite weights.
STACK_L2 = 0.01
MIN_REFERENCE_ACCOUNTS = 100


@dataclass(frozen=True)
class Calibration:
    """One score's distribution over the reference: sorted `values` with, per value, how many reference rows are
    strictly below it (`below`), the reference `size`, and the exponential tail above `tail_start`, which starts at
    the share `tail_share` of the reference."""

    values: tuple[float, ...]
    below: tuple[int, ...]
    size: int
    tail_start: float
    tail_scale: float  # 0: no tail (nothing in the reference is above tail_start)
    tail_share: float  # the share of the reference strictly above tail_start, where the tail starts

    @classmethod
    def fit(cls, reference: np.ndarray) -> Calibration:
        x = np.sort(np.asarray(reference, dtype=np.float64))
        n = len(x)
        if n == 0:
            raise MissingInputError("the clean benign reference is empty; nothing to calibrate the score on")
        below = np.searchsorted(x, x, side="left")
        keep = np.r_[True, np.diff(x) > 0]  # one point per distinct value
        x, below = x[keep], below[keep]
        if len(x) > MAX_STORED_POINTS:
            lower = np.linspace(0, len(x) - TAIL_POINTS - 1, MAX_STORED_POINTS - TAIL_POINTS).round().astype(int)
            picked = np.unique(np.r_[lower, np.arange(len(x) - TAIL_POINTS, len(x))])
            x, below = x[picked], below[picked]
        full = np.sort(np.asarray(reference, dtype=np.float64))
        k = min(n, max(MIN_TAIL_ACCOUNTS, math.ceil(TAIL_SHARE * n)))
        start = float(full[n - k])
        above = full[full > start]
        # Exponential tail over the values strictly above the threshold: a family that is 0 for most accounts
        # (propagation far from any decision) has its threshold on a tie, and the tail must start where the
        # reference stops being tied. None strictly above: no tail, the counted share stands (floored at 1/(n+1)).
        if len(above) == 0:
            return cls(tuple(_round(v) for v in x), tuple(map(int, below)), n, start, 0.0, 0.0)
        # the mean excess is the scale's MLE; a tree ensemble's near-tied scores can make it tiny, so it is
        # floored by the slope between the 10k-th and the k-th largest values (a decade of exceedance)
        wider = float(full[max(0, n - 10 * k)])
        floor = max((start - wider) / math.log(10.0), 1e-6 * (abs(start) + 1.0))
        scale = max(float(np.mean(above - start)), floor)
        return cls(tuple(_round(v) for v in x), tuple(map(int, below)), n, start, scale, len(above) / n)

    def exceedance(self, scores: np.ndarray) -> np.ndarray:
        """Share of the reference at or above each score (its p-value), extrapolated above the tail's start."""
        x = np.asarray(scores, dtype=np.float64)
        values, below = np.asarray(self.values), np.asarray(self.below)
        j = np.searchsorted(values, x, side="left")
        counted_below = np.where(j < len(values), below[np.minimum(j, len(values) - 1)], self.size)
        counted = (self.size - counted_below) / self.size
        if self.tail_scale <= 0:  # no tail: the share counted, and never below one reference account's
            return np.clip(counted, 1.0 / (self.size + 1), 1.0)
        tail = self.tail_share * np.exp(-(x - self.tail_start) / self.tail_scale)
        return np.clip(np.where(x > self.tail_start, tail, counted), MIN_SHARE, 1.0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Calibration:
        return cls(
            tuple(values["values"]),
            tuple(values["below"]),
            values["size"],
            values["tail_start"],
            values["tail_scale"],
            values["tail_share"],
        )


def _round(value: float) -> float:
    return float(f"{value:.7g}")


def evidence_features(p_values: np.ndarray) -> np.ndarray:
    return -np.log(np.clip(p_values, MIN_SHARE, 1.0))


def fit_stack(positive: np.ndarray, reference: np.ndarray, positive_weight: np.ndarray | None = None):
    """(weights >= 0, intercept) of an L2-regularised logistic regression of the positives' -log p-values against
    the reference's, each class weighing 1 in total. Only the weights matter for the ranking."""
    from scipy.optimize import minimize

    z = np.vstack([positive, reference])
    y = np.r_[np.ones(len(positive)), -np.ones(len(reference))]
    pw = np.ones(len(positive)) if positive_weight is None else np.asarray(positive_weight, dtype=np.float64)
    w = np.r_[pw / pw.sum(), np.full(len(reference), 1.0 / len(reference))]

    def loss(theta):
        eta = z @ theta[1:] + theta[0]
        margin = -y * eta
        value = np.sum(w * np.logaddexp(0.0, margin)) + 0.5 * STACK_L2 * theta[1:] @ theta[1:]
        sigma = w * y * (-1.0 / (1.0 + np.exp(-margin)))  # d/d eta of w log(1 + exp(-y eta)) = -w y sigmoid(margin)
        grad = np.r_[sigma.sum(), z.T @ sigma + STACK_L2 * theta[1:]]
        return value, grad

    start = np.r_[0.0, np.ones(z.shape[1])]
    bounds = [(None, None)] + [(0.0, None)] * z.shape[1]
    result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return tuple(float(v) for v in result.x[1:]), float(result.x[0])


@dataclass(frozen=True)
class FusionModel:
    families: tuple[str, ...]
    calibrations: tuple[Calibration, ...]  # per family, its raw score over the reference
    weights: tuple[float, ...]  # per family, the stacked regression's weight on -log p
    intercept: float
    combined: Calibration  # the evidence over the reference (each reference row against the others)
    extras: dict  # what else the families need at scoring (the novelty medians and scales)

    def to_json(self) -> str:
        text = json.dumps(stamped(asdict(self), FORMAT), separators=(",", ":"))
        if len(text) > MAX_TAG_CHARS:
            raise MissingInputError(
                f"the score reference takes {len(text):,} characters, more than a model version tag holds "
                f"({MAX_TAG_CHARS:,}); fewer families or stored points are needed"
            )
        return text

    @classmethod
    def from_json(cls, text: str) -> FusionModel:
        values = json.loads(text)
        check_format(values, "this model version's score reference", (FORMAT,), "retrain it (distillguard train)")
        return cls(
            families=tuple(values["families"]),
            calibrations=tuple(Calibration.from_dict(c) for c in values["calibrations"]),
            weights=tuple(values["weights"]),
            intercept=float(values["intercept"]),
            combined=Calibration.from_dict(values["combined"]),
            extras=values["extras"],
        )


def reference_p_values(raw: dict[str, np.ndarray], families: tuple[str, ...]) -> tuple[list[Calibration], np.ndarray]:
    """Per family, its calibration on the reference and each reference row's share of the reference at or above it
    (itself included: the leave-one-out p-value)."""
    calibrations = [Calibration.fit(raw[name]) for name in families]
    p = np.column_stack([c.exceedance(raw[name]) for c, name in zip(calibrations, families)])
    return calibrations, p


def fit(
    reference_raw: dict[str, np.ndarray],
    positive_raw: dict[str, np.ndarray],
    positive_weight: np.ndarray | None = None,
    extras: dict | None = None,
    calibrate_on: np.ndarray | None = None,
) -> FusionModel:
    """Calibrate every family on the reference (`reference_raw`, one row per reference account) and stack them on
    the labelled positives (`positive_raw`, cross-fitted, optionally weighted so each account counts once). The
    score, and so the tiers, is calibrated on the reference rows `calibrate_on` (a mask; all when None)."""
    families = tuple(reference_raw)
    n = len(next(iter(reference_raw.values())))
    if n < MIN_REFERENCE_ACCOUNTS:
        raise MissingInputError(
            f"the clean benign reference has {n} accounts, fewer than {MIN_REFERENCE_ACCOUNTS}: too few benign "
            "decisions and established unlinked accounts to calibrate the score; wait for more history"
        )
    if calibrate_on is not None and calibrate_on.sum() < MIN_REFERENCE_ACCOUNTS:
        raise MissingInputError(
            f"only {int(calibrate_on.sum())} of the clean benign reference's {n} accounts are left to calibrate the "
            f"tiers on (fewer than {MIN_REFERENCE_ACCOUNTS}): most resemble decided extraction; raise or unset "
            "calibration_resemblance_above"
        )
    calibrations, reference_p = reference_p_values(reference_raw, families)
    positive_p = np.column_stack([c.exceedance(positive_raw[name]) for c, name in zip(calibrations, families)])
    weights, intercept = fit_stack(evidence_features(positive_p), evidence_features(reference_p), positive_weight)
    evidence = evidence_features(reference_p) @ np.asarray(weights)
    combined = Calibration.fit(evidence if calibrate_on is None else evidence[calibrate_on])
    return FusionModel(families, tuple(calibrations), weights, intercept, combined, extras or {})


@dataclass(frozen=True)
class FusedScores:
    score: np.ndarray  # share of the clean benign reference this account outranks (tail-extrapolated)
    evidence: np.ndarray  # sum of w_f x -log p_f
    p_values: np.ndarray  # (rows, families)
    contributions: np.ndarray  # (rows, families): w_f x -log p_f
    families: tuple[str, ...]

    @property
    def leading(self) -> np.ndarray:
        """Per row, the index of the family that gave the most evidence."""
        return self.contributions.argmax(axis=1)


def score(raw: dict[str, np.ndarray], model: FusionModel) -> FusedScores:
    missing = [name for name in model.families if name not in raw]
    if missing:
        raise MissingInputError(f"the model version was fitted with score families {missing} that were not computed")
    p = np.column_stack([c.exceedance(raw[name]) for c, name in zip(model.calibrations, model.families)])
    contributions = evidence_features(p) * np.asarray(model.weights)
    evidence = contributions.sum(axis=1)
    return FusedScores(1.0 - model.combined.exceedance(evidence), evidence, p, contributions, model.families)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-15, 1.0 - 1e-15)
    return np.log(p) - np.log1p(-p)


def novelty_reference(model: FusionModel) -> novelty.NoveltyReference:
    return novelty.NoveltyReference.from_dict(model.extras["novelty"])


def family_scores(
    supervised_probability: np.ndarray,
    values: np.ndarray,
    columns: list[str],
    model: FusionModel | None,
    reference: novelty.NoveltyReference | None = None,
    lake: dict[str, np.ndarray] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(raw score per family, the novelty families' explaining signal per row): the supervised logit and the
    novelty families computed from one feature matrix (with `model`'s novelty reference, or `reference` while
    fitting), and the lake families' raw scores read from family_scores (`lake`, catalog.LAKE_FAMILIES)."""
    if reference is None:
        if model is None:
            raise ValueError("family_scores needs a fitted model or, while fitting, the novelty reference")
        reference = novelty_reference(model)
    raw = {SUPERVISED: _logit(supervised_probability)}
    signals = {}
    for family in novelty.novelty(values, columns, reference):
        raw[family.family.name] = family.raw
        signals[family.family.name] = family.signal
    raw.update(lake_raw(lake or {}))
    return raw, signals


def lake_raw(lake: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A lake family's raw scores with the accounts it did not score (null) at 0: no evidence either way, which is
    what 0 means for propagation (no decided account within reach) and for the novelty z-scores."""
    return {name: np.nan_to_num(np.asarray(v, dtype=np.float64), nan=0.0) for name, v in lake.items()}


def lake_families(families) -> tuple[str, ...]:
    """Those of `families` (a version's, or a config's score_families) that come from family_scores."""
    return tuple(name for name in families if name in LAKE_FAMILIES)


def parse(text: str | None, version: str) -> FusionModel:
    """A version's stored score reference; a one-line refusal for versions without one (fitted before 2026-12-07)."""
    if not text:
        raise MissingInputError(
            f"model version v{version} carries no score reference (it predates the fused score of models/fusion.py); "
            "retrain it (distillguard train)"
        )
    return FusionModel.from_json(text)


def tier_bounds(tier_fprs: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
    """A tier at benign FPR a is score >= 1 - a: the score is the share of the reference an account outranks."""
    return tuple((name, 1.0 - rate) for name, rate in tier_fprs)


def describe(model: FusionModel) -> str:
    terms = " + ".join(f"{w:.3g} x -log p({name})" for name, w in zip(model.families, model.weights))
    return (
        f"share of the clean benign reference's calibration accounts ({model.combined.size}) with lower evidence; "
        f"evidence = {terms}, "
        "p = share of the reference at or above the family's score; weights by logistic regression of labelled "
        "positives against the reference"
    )
