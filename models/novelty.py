"""Label-free novelty families: how far an account sits from the population on the behaviours extraction needs.

The supervised model finds what it was shown; a novelty family asks how unusual an account is in the direction
extraction pushes, and uses no label anywhere. Each family turns an account into one raw number, higher = more
extraction-like; models/fusion.py calibrates every family against the clean benign reference and combines them.
The reference's medians and scales are fitted once per model version and stored with it, so scoring is the same
on every engine and every day.

Two families. Benign automation (enterprise agents, startups, judge harnesses) legitimately runs 24/7 from cloud
addresses with regular timing, so a novelty over every signal ranks it with the campaigns; the low-and-slow hydra,
whose only tell is what it buys, hides in that crowd. So:

- **behaviour**: per signal in SIGNALS a one-sided robust z-score against the reference's median and MAD (volume
  of reasoning asks up, timing regularity up, capability breadth down, ...), the mean of the TOP_K largest.
- **harvest yield**: what a distiller buys, long completions for short prompts. Paraphrasing or softening the
  prompts evades every prompt pattern, but not the yield, which is the point of the purchase. The raw number is
  the account's 28-day output/input token ratio shrunk towards the reference's typical ratio by
  YIELD_PRIOR_INPUT_TOKENS of prior input (about one prompt), on a log scale: a chat user whose two requests got
  long answers has a large ratio by chance, an account that bought 60k output tokens for 7k input tokens has it
  by design.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

log = logging.getLogger(__name__)

# (feature column, direction): +1 when extraction pushes the value up, -1 when it pushes it down
SIGNALS: tuple[tuple[str, int], ...] = (
    ("extraction_like_requests_7d", +1),
    ("extraction_like_share_7d", +1),
    ("cot_elicitation_rate_7d", +1),
    ("rubric_grading_rate_7d", +1),
    ("template_reuse_rate_7d", +1),
    ("output_input_ratio_7d", +1),
    ("output_input_ratio_28d", +1),
    ("max_tokens_saturation_7d", +1),
    ("coverage_24_7_7d", +1),
    ("interarrival_cv_7d", -1),
    ("capability_entropy_7d", -1),
    ("raw_http_share_7d", +1),
    ("hosting_proxy_share_7d", +1),
    ("distinct_ip_prefixes_7d", +1),
    ("newest_model_share_7d", +1),
    ("cluster_size", +1),
    ("cluster_new_account_share", +1),
    ("cluster_payment_share", +1),
)
TOP_K = 3
# harvest yield (module docstring): the ratio it explains with, and the token counts it is shrunk from
YIELD_RATIO, YIELD_OUTPUT, YIELD_INPUT = "output_input_ratio_28d", "output_tokens_28d", "input_tokens_28d"
YIELD_PRIOR_INPUT_TOKENS = 300.0
MIN_SCALE = 1e-6


@dataclass(frozen=True)
class Family:
    """One label-free view of an account: its raw novelty (`raw(values, columns, ref, deviations)` -> (raw per row,
    index into ref.columns of the signal that explains it)), the columns it needs, and the words that open an
    explanation of the evidence it gives."""

    name: str
    raw: Callable[..., tuple[np.ndarray, np.ndarray]]
    needs: frozenset[str]
    lead: str


def _top_deviations(
    values: np.ndarray, columns: list[str], ref: NoveltyReference, deviations: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the TOP_K largest one-sided robust z-scores, and the largest one's signal."""
    if not deviations.shape[1]:  # a model without any declared signal among its columns
        return np.zeros(len(deviations)), np.zeros(len(deviations), dtype=np.int64)
    k = min(TOP_K, deviations.shape[1])
    return np.sort(deviations, axis=1)[:, -k:].mean(axis=1), deviations.argmax(axis=1)


def _shrunk_yield(
    values: np.ndarray, columns: list[str], ref: NoveltyReference, deviations: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """log((output + prior x typical ratio) / (input + prior)) over 28 days; explained by the 28-day ratio."""
    index = {c: i for i, c in enumerate(columns)}
    output = np.nan_to_num(values[:, index[YIELD_OUTPUT]].astype(np.float64), nan=0.0)
    input_ = np.nan_to_num(values[:, index[YIELD_INPUT]].astype(np.float64), nan=0.0)
    signal = ref.columns.index(YIELD_RATIO)
    typical = max(ref.centers[signal], MIN_SCALE)
    raw = np.log((output + YIELD_PRIOR_INPUT_TOKENS * typical) / (input_ + YIELD_PRIOR_INPUT_TOKENS))
    return raw, np.full(len(values), signal, dtype=np.int64)


FAMILIES: tuple[Family, ...] = (
    Family(
        "behaviour",
        _top_deviations,
        frozenset(),
        lead="unusual for the whole account population, whatever the labels say",
    ),
    Family(
        "harvest yield",
        _shrunk_yield,
        frozenset({YIELD_RATIO, YIELD_OUTPUT, YIELD_INPUT}),
        lead="buys far longer answers per prompt than accounts do, whatever the labels say",
    ),
)
FAMILY_BY_NAME = {f.name: f for f in FAMILIES}


@dataclass(frozen=True)
class NoveltyReference:
    """The reference's median (`centers`) and robust scale per signal, and the families fitted with them."""

    columns: tuple[str, ...]
    directions: tuple[int, ...]
    centers: tuple[float, ...]
    scales: tuple[float, ...]
    families: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> NoveltyReference:
        return cls(**{k: tuple(v) for k, v in values.items()})


def _deviations(values: np.ndarray, columns: list[str], ref: NoveltyReference) -> np.ndarray:
    index = {c: i for i, c in enumerate(columns)}
    picked = values[:, [index[c] for c in ref.columns]].astype(np.float64)
    z = (picked - np.asarray(ref.centers)) / np.asarray(ref.scales) * np.asarray(ref.directions)
    return np.clip(np.nan_to_num(z, nan=0.0), 0.0, None)


def fit_reference(values: np.ndarray, columns: list[str]) -> NoveltyReference:
    """Medians and MAD scales of the declared signals over the reference accounts (`values`, one row each), and
    the families whose columns are there."""
    used = [(c, d) for c, d in SIGNALS if c in columns]
    index = {c: i for i, c in enumerate(columns)}
    picked = values[:, [index[c] for c, _ in used]].astype(np.float64)
    centers = np.nan_to_num(np.nanmedian(picked, axis=0), nan=0.0)
    mad = np.nan_to_num(np.nanmedian(np.abs(picked - centers), axis=0), nan=0.0) * 1.4826
    # a signal most accounts never show (median and MAD 0) is scaled by its spread among those that do
    spread = np.nan_to_num(np.nanstd(picked, axis=0), nan=0.0)
    scales = np.maximum(np.where(mad > MIN_SCALE, mad, spread), MIN_SCALE)
    return NoveltyReference(
        tuple(c for c, _ in used),
        tuple(d for _, d in used),
        tuple(map(float, centers)),
        tuple(map(float, scales)),
        tuple(f.name for f in FAMILIES if f.needs <= set(columns)),
    )


@dataclass(frozen=True)
class FamilyNovelty:
    family: Family
    raw: np.ndarray  # per row, higher = more unusual in extraction's direction
    signal: np.ndarray  # per row, index into the reference's columns of the family's strongest deviation


def novelty(values: np.ndarray, columns: list[str], ref: NoveltyReference) -> list[FamilyNovelty]:
    """Each family the reference was fitted with, scored for every row."""
    deviations = _deviations(values, columns, ref)
    scored = []
    for name in ref.families:
        family = FAMILY_BY_NAME[name]
        raw, signal = family.raw(values, columns, ref, deviations)
        scored.append(FamilyNovelty(family, raw, signal))
    return scored


def floor_percent(share: float) -> str:
    """99.996% reads "99.99%", not "100.00%": nobody is more unusual than every account."""
    return f"{np.floor(share * 10_000) / 100:.2f}%"


def explanation(ref: NoveltyReference, signal: int, value: float, outranks: float, family: str = "behaviour") -> str:
    """A family's evidence in plain words, phrased from the signal's registry declaration; `outranks` is the share
    of the clean benign reference the account's family score is above."""
    from features.registry import feature_for_column
    from models.explain import format_value

    column = ref.columns[signal]
    feature, window = feature_for_column(column)
    direction = "high" if ref.directions[signal] > 0 else "low"
    over = "" if window is None else (" over the last day" if window == 1 else f" over {window} days")
    return (
        f"{FAMILY_BY_NAME[family].lead}: {feature.description}{over} is "
        f"unusually {direction} ({format_value(feature.unit, value)} against a typical "
        f"{format_value(feature.unit, ref.centers[signal])}); "
        f"more unusual than {floor_percent(outranks)} of the benign reference accounts"
    )
