"""A label-free novelty score, combined with the supervised score so a campaign unlike any labelled one surfaces.

The supervised model finds what it was shown. Novelty asks a different question: how far does this account sit
from the (mostly benign) population on the behaviours extraction needs, in the direction extraction pushes them?
Per signal, a robust z-score against the median and MAD of the training set's unlabelled snapshots, one-sided
(volume of reasoning asks up, timing regularity up, capability breadth down, ...); the account's novelty is the
mean of its TOP_K largest, turned into its percentile among those same unlabelled snapshots (0..1, so a benign
account's novelty is about uniform). No label is used anywhere.

The reference (medians, scales, percentiles) is fitted once per model version and stored on it, so scoring is the
same on every engine and every day. The final score is max(supervised, novelty ** SHARPNESS): novelty only lifts
an account in the far tail of the population (the 99.9th percentile maps to 0.90, the 99th to 0.37, the 95th to
0.006). With a gentler curve (novelty ** 8, the 99th percentile at 0.92) the top 1% of benign accounts outranked
half of two labelled campaigns in the detection benchmark, so the tail is kept narrow. The tiers are calibrated on
the final score. Scoring explains a lift by
novelty with the signal that drove it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

# (feature column, direction): +1 when extraction pushes the value up, -1 when it pushes it down
SIGNALS: tuple[tuple[str, int], ...] = (
    ("extraction_like_requests_7d", +1), ("extraction_like_share_7d", +1), ("cot_elicitation_rate_7d", +1),
    ("rubric_grading_rate_7d", +1), ("template_reuse_rate_7d", +1), ("output_input_ratio_7d", +1),
    ("coverage_24_7_7d", +1), ("interarrival_cv_7d", -1), ("capability_entropy_7d", -1), ("raw_http_share_7d", +1),
    ("hosting_proxy_share_7d", +1), ("distinct_ip_prefixes_7d", +1), ("newest_model_share_7d", +1),
    ("cluster_size", +1), ("cluster_new_account_share", +1), ("cluster_payment_share", +1),
)
TOP_K = 3
SHARPNESS = 100.0
PERCENTILES = 101
MIN_SCALE = 1e-6


@dataclass(frozen=True)
class NoveltyReference:
    columns: tuple[str, ...]
    directions: tuple[int, ...]
    centers: tuple[float, ...]
    scales: tuple[float, ...]
    percentiles: tuple[float, ...]  # raw novelty at 0%, 1%, ..., 100% of the reference population

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> NoveltyReference:
        values = json.loads(text)
        return cls(**{k: tuple(v) for k, v in values.items()})


def _deviations(values: np.ndarray, columns: list[str], ref: NoveltyReference) -> np.ndarray:
    index = {c: i for i, c in enumerate(columns)}
    picked = values[:, [index[c] for c in ref.columns]].astype(np.float64)
    z = (picked - np.asarray(ref.centers)) / np.asarray(ref.scales) * np.asarray(ref.directions)
    return np.clip(np.nan_to_num(z, nan=0.0), 0.0, None)


def _raw(deviations: np.ndarray) -> np.ndarray:
    k = min(TOP_K, deviations.shape[1])
    return np.sort(deviations, axis=1)[:, -k:].mean(axis=1)


def fit_reference(values: np.ndarray, columns: list[str]) -> NoveltyReference:
    """Medians, MAD scales and raw-novelty percentiles of `values` (the unlabelled training snapshots)."""
    used = [(c, d) for c, d in SIGNALS if c in columns]
    index = {c: i for i, c in enumerate(columns)}
    picked = values[:, [index[c] for c, _ in used]].astype(np.float64)
    centers = np.nan_to_num(np.nanmedian(picked, axis=0), nan=0.0)
    mad = np.nan_to_num(np.nanmedian(np.abs(picked - centers), axis=0), nan=0.0) * 1.4826
    # a signal most accounts never show (median and MAD 0) is scaled by its spread among those that do
    spread = np.nan_to_num(np.nanstd(picked, axis=0), nan=0.0)
    scales = np.maximum(np.where(mad > MIN_SCALE, mad, spread), MIN_SCALE)
    ref = NoveltyReference(tuple(c for c, _ in used), tuple(d for _, d in used), tuple(map(float, centers)),
                           tuple(map(float, scales)), ())
    raw = _raw(_deviations(values, columns, ref))
    percentiles = np.quantile(raw, np.linspace(0.0, 1.0, PERCENTILES)) if raw.size else np.zeros(PERCENTILES)
    return NoveltyReference(ref.columns, ref.directions, ref.centers, ref.scales, tuple(map(float, percentiles)))


def novelty(values: np.ndarray, columns: list[str], ref: NoveltyReference) -> tuple[np.ndarray, np.ndarray]:
    """(novelty in 0..1, index into ref.columns of the signal that deviates most) per row."""
    deviations = _deviations(values, columns, ref)
    raw = _raw(deviations)
    percentile_points = np.linspace(0.0, 1.0, PERCENTILES)
    score = np.interp(raw, np.asarray(ref.percentiles), percentile_points)
    # a raw value repeated across many percentiles (e.g. 0 for the quiet majority) maps to its lowest percentile
    score = np.where(raw <= ref.percentiles[0], 0.0, score)
    return score, deviations.argmax(axis=1)


def combine(supervised: np.ndarray, novelty_score: np.ndarray) -> np.ndarray:
    return np.maximum(supervised, np.power(novelty_score, SHARPNESS))


def parse_reference(reference_json: str | None) -> NoveltyReference | None:
    """A model version's stored reference; None when the version carries none (supervised score only)."""
    return NoveltyReference.from_json(reference_json) if reference_json else None


def final_scores(supervised: np.ndarray, values: np.ndarray, columns: list[str], ref: NoveltyReference | None):
    """(final score, novelty, strongest signal) for a model version: the supervised score alone (novelty None)
    when the version carries no novelty reference."""
    if ref is None:
        return supervised, None, None
    score, signal = novelty(values, columns, ref)
    return combine(supervised, score), score, signal


def explanation(ref: NoveltyReference, signal: int, value: float, novelty_score: float) -> str:
    column = ref.columns[signal]
    direction = "high" if ref.directions[signal] > 0 else "low"
    return (f"unusual for the account population: {column} is unusually {direction} "
            f"({value:.3g} against a typical {ref.centers[signal]:.3g}); more unusual than "
            f"{novelty_score:.1%} of accounts, whatever the labels say")
