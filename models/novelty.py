"""A label-free novelty score, combined with the supervised score so a campaign unlike any labelled one surfaces.

The supervised model finds what it was shown. Novelty asks a different question: how far does this account sit
from the (mostly benign) population on the behaviours extraction needs, in the direction extraction pushes them?
No label is used anywhere. Each family below turns an account into one raw number and that number into its
percentile among the training set's unlabelled snapshots (0..1, so a benign account's novelty is about uniform).
The reference (medians, scales, percentiles) is fitted once per model version and stored on it, so scoring is the
same on every engine and every day.

Two families. Benign automation (enterprise agents, startups, judge harnesses) legitimately runs 24/7 from cloud
addresses with regular timing, so a novelty over every signal ranks it with the campaigns; the low-and-slow hydra,
whose only tell is what it buys, hides in that crowd. So:

- **behaviour**: per signal in SIGNALS a one-sided robust z-score against the reference's median and MAD (volume
  of reasoning asks up, timing regularity up, capability breadth down, ...), the mean of the TOP_K largest. Finds
  the reseller mixing extraction into established accounts, and the labelled look-alikes' automation.
- **harvest yield**: what a distiller buys, long completions for short prompts. Paraphrasing or softening the
  prompts evades every prompt pattern, but not the yield, which is the point of the purchase. The raw number is
  the account's 28-day output/input token ratio shrunk towards the population's typical ratio by
  YIELD_PRIOR_INPUT_TOKENS of prior input (about one prompt), on a log scale: a chat user whose two requests got
  long answers has a large ratio by chance, an account that bought 60k output tokens for 7k input tokens has it
  by design. Its percentiles come from the *established* accounts of the reference only (at least
  ESTABLISHED_ACCOUNT_DAYS old on their snapshot date): the reference is unlabelled, and the young hydras this
  family should find crowd the top of exactly this signal, which would cap their own percentiles below any tier.

Combination. All scores are put on one scale first: the share of the benign reference an account outranks, its
*risk percentile*. The supervised model's raw probabilities are no such scale: under positive-unlabelled training
an unlabelled member of a labelled hydra gets 0.002 while it still outranks 99% of benign accounts, and a max() on
raw values let the benign novelty tail bury whole labelled campaigns (recall at 1% FPR 12% with the raw max, 98% on
the ranking). The final score is

    max(supervised percentile, max over families of 1 - budget_divisor x (1 - family percentile))

so a family alone lifts an account to percentile q only when it is budget_divisor times rarer than q: at every
tier, each family's label-free lifts take at most 1/budget_divisor of the benign budget. The tiers are calibrated on
the final score. Scoring explains a lift by novelty with the family and the signal that drove it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeGuard

import numpy as np

from lake.formats import FORMAT_VERSION_KEY, UNVERSIONED, check_format, stamped

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
# An account this many days old on a snapshot date is established. Campaign accounts are young (in the detection
# benchmark's lakes, every one but the reseller's), so established snapshots are a nearly campaign-free sample of
# benign behaviour: the yield family ranks against them, and models/train.py checks the tiers against them.
ESTABLISHED_ACCOUNT_DAYS = 30
AGE_COLUMN = "account_age_days"
# fewer established snapshots than this and a family's reference is every unlabelled snapshot (a young lake)
MIN_FAMILY_REFERENCE = 100


@dataclass(frozen=True)
class Family:
    """One label-free view of an account: its raw novelty (`raw(values, columns, ref, deviations)` -> (raw per row,
    index into ref.columns of the signal that explains it)), the columns it needs, how much of each tier's benign
    budget its lifts may take, how old a reference snapshot must be to calibrate it (0: every one), and the words
    that open an explanation of its lift."""

    name: str
    raw: Callable[..., tuple[np.ndarray, np.ndarray]]
    needs: frozenset[str]
    budget_divisor: float
    lead: str
    reference_min_age_days: int = 0


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
        3.0,
        lead="unusual for the whole account population, whatever the labels say",
    ),
    Family(
        "harvest yield",
        _shrunk_yield,
        frozenset({YIELD_RATIO, YIELD_OUTPUT, YIELD_INPUT}),
        3.0,
        lead="buys far longer answers per prompt than accounts do, whatever the labels say",
        reference_min_age_days=ESTABLISHED_ACCOUNT_DAYS,
    ),
)
FAMILY_BY_NAME = {f.name: f for f in FAMILIES}
# Percentile grid of the stored references: 1% steps, then ever finer towards the top, where tiers live (the 99.99th
# percentile is the critical tier's bound).
PERCENTILE_POINTS = tuple(
    float(p) for p in np.unique(np.concatenate([np.linspace(0.0, 0.99, 100), 1.0 - np.logspace(-2, -6, 81), [1.0]]))
)
MIN_SCALE = 1e-6
COMBINATION = (
    "max(supervised percentile, "
    + ", ".join(f"1 - {f.budget_divisor:g} x (1 - {f.name} novelty percentile)" for f in FAMILIES)
    + "), percentiles of the "
    f"benign reference (models/train.py benign_reference); harvest yield = 28-day output/input tokens shrunk by "
    f"{YIELD_PRIOR_INPUT_TOKENS:g} prior input tokens, ranked among reference accounts "
    f"{ESTABLISHED_ACCOUNT_DAYS}+ days old"
)


# The stored reference's format (lake/formats.py): bump REFERENCE_FORMAT when to_json's fields change meaning or
# shape, and drop a version from REFERENCE_FORMATS_READ once from_json no longer reads it correctly.
REFERENCE_FORMAT = 1
REFERENCE_FORMATS_READ = (UNVERSIONED, REFERENCE_FORMAT)
RETRAIN = "retrain the model with this build (distillguard train) to score with it"


@dataclass(frozen=True)
class NoveltyReference:
    columns: tuple[str, ...]
    directions: tuple[int, ...]
    centers: tuple[float, ...]
    scales: tuple[float, ...]
    percentiles: tuple[tuple[float, ...], ...]  # per family: its raw novelty at PERCENTILE_POINTS of its reference
    supervised_percentiles: tuple[float, ...] = ()  # the supervised score at PERCENTILE_POINTS, same population
    population: int = 0  # reference snapshots: percentiles above 1 - 1/population are extrapolated (_percentile)
    families: tuple[str, ...] = ("behaviour",)  # names in FAMILIES, one per entry of `percentiles`
    family_populations: tuple[int, ...] = ()  # per family, the snapshots its percentiles come from (() = population)

    def to_json(self) -> str:
        return json.dumps(stamped(asdict(self), REFERENCE_FORMAT), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> NoveltyReference:
        from lake.errors import MissingInputError

        values = json.loads(text)
        check_format(values, "this model version's novelty reference", REFERENCE_FORMATS_READ, RETRAIN)
        values.pop(FORMAT_VERSION_KEY, None)
        percentiles = values.pop("percentiles")
        if percentiles and not isinstance(percentiles[0], list):  # a version from before families: behaviour only
            percentiles = [percentiles]
        if not values.get("family_populations"):
            # versions saved before 32c255e (2026-11-28): their "harvest yield" is another number (an unshrunk deviation), so its stored
            # percentiles cannot rank today's; a silent re-reading would shift every tier
            unknown = [name for name in values.get("families", ()) if name != "behaviour"]
            if unknown:
                raise MissingInputError(
                    f"this model version's novelty reference was fitted for an older definition "
                    f"of {', '.join(unknown)}; retrain it (distillguard train) to score with it"
                )
        fields: dict[str, Any] = {k: v if isinstance(v, int) else tuple(v) for k, v in values.items()}
        return cls(**fields, percentiles=tuple(tuple(p) for p in percentiles))


def _deviations(values: np.ndarray, columns: list[str], ref: NoveltyReference) -> np.ndarray:
    index = {c: i for i, c in enumerate(columns)}
    picked = values[:, [index[c] for c in ref.columns]].astype(np.float64)
    z = (picked - np.asarray(ref.centers)) / np.asarray(ref.scales) * np.asarray(ref.directions)
    return np.clip(np.nan_to_num(z, nan=0.0), 0.0, None)


def _quantiles(values: np.ndarray) -> tuple[float, ...]:
    if not values.size:
        return tuple(0.0 for _ in PERCENTILE_POINTS)
    return tuple(map(float, np.quantile(values, PERCENTILE_POINTS)))


def _family_reference(family: Family, values: np.ndarray, columns: list[str]) -> np.ndarray:
    """The rows a family's percentiles come from: every one, or the established accounts' when there are enough."""
    if not family.reference_min_age_days or AGE_COLUMN not in columns:
        return np.ones(len(values), dtype=bool)
    established = values[:, columns.index(AGE_COLUMN)] >= family.reference_min_age_days
    if established.sum() < MIN_FAMILY_REFERENCE:
        log.warning(
            "only %d reference snapshots of accounts %d+ days old; %s novelty is ranked among all %d",
            established.sum(),
            family.reference_min_age_days,
            family.name,
            len(values),
        )
        return np.ones(len(values), dtype=bool)
    return established


def fit_reference(values: np.ndarray, columns: list[str], supervised: np.ndarray) -> NoveltyReference:
    """Medians, MAD scales, the supervised-score percentiles of the unlabelled training snapshots (`values`, and the
    supervised model's scores of the same rows), and the raw-novelty percentiles of each family whose columns are
    there, over its own reference rows (Family.reference_min_age_days)."""
    used = [(c, d) for c, d in SIGNALS if c in columns]
    index = {c: i for i, c in enumerate(columns)}
    picked = values[:, [index[c] for c, _ in used]].astype(np.float64)
    centers = np.nan_to_num(np.nanmedian(picked, axis=0), nan=0.0)
    mad = np.nan_to_num(np.nanmedian(np.abs(picked - centers), axis=0), nan=0.0) * 1.4826
    # a signal most accounts never show (median and MAD 0) is scaled by its spread among those that do
    spread = np.nan_to_num(np.nanstd(picked, axis=0), nan=0.0)
    scales = np.maximum(np.where(mad > MIN_SCALE, mad, spread), MIN_SCALE)
    ref = NoveltyReference(
        tuple(c for c, _ in used), tuple(d for _, d in used), tuple(map(float, centers)), tuple(map(float, scales)), ()
    )
    deviations = _deviations(values, columns, ref)
    fitted = [f for f in FAMILIES if f.needs <= set(columns)]
    rows = [_family_reference(f, values, columns) for f in fitted]
    percentiles = tuple(_quantiles(f.raw(values[r], columns, ref, deviations[r])[0]) for f, r in zip(fitted, rows))
    return NoveltyReference(
        ref.columns,
        ref.directions,
        ref.centers,
        ref.scales,
        percentiles,
        _quantiles(np.asarray(supervised, dtype=np.float64)),
        len(values),
        tuple(f.name for f in fitted),
        tuple(int(r.sum()) for r in rows),
    )


TAIL_ANCHOR = 0.99


def _point_index(point: float) -> int:
    return int(np.abs(np.asarray(PERCENTILE_POINTS) - point).argmin())


def _percentile(values: np.ndarray, quantiles: tuple[float, ...], population: int, transform=None) -> np.ndarray:
    """The share of the reference population below each value (0..1), strictly increasing beyond the reference.

    Inside the reference: interpolated on the grid (a value repeated across many grid points, 0 for the quiet
    majority, maps to its lowest one). Above the highest percentile the population resolves (1 - 1/population),
    an exponential tail fitted through that point and the TAIL_ANCHOR percentile: without it every account beyond
    the reference's maximum tied at 1.0, and a tier bound set among ties flags all of them or none (in the detection
    benchmark, recall at 0.1% FPR fell to 0). `transform` (the logit, for probabilities) spreads the tail first."""
    points = np.asarray(PERCENTILE_POINTS)
    grid = np.asarray(quantiles, dtype=np.float64)
    x = np.asarray(values, dtype=np.float64)
    if transform is not None:
        grid, x = transform(grid), transform(x)
    anchor = _point_index(TAIL_ANCHOR)
    top = max(int(np.searchsorted(points, 1.0 - 1.0 / max(population, 2), side="right")) - 1, anchor)
    inside = np.interp(x, grid[: top + 1], points[: top + 1])
    decades = np.log((1.0 - points[anchor]) / (1.0 - points[top])) if top > anchor else 1.0
    scale = max((grid[top] - grid[anchor]) / decades, 1e-9 * (abs(grid[top]) + 1.0))
    tail = 1.0 - (1.0 - points[top]) * np.exp(-np.maximum(x - grid[top], 0.0) / scale)
    return np.where(x <= grid[0], 0.0, np.where(x > grid[top], tail, inside))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-15, 1.0 - 1e-15)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class FamilyNovelty:
    family: Family
    percentile: np.ndarray  # per row, 0..1 of the reference
    signal: np.ndarray  # per row, index into the reference's columns of the family's strongest deviation

    @property
    def lift(self) -> np.ndarray:
        return np.clip(1.0 - self.family.budget_divisor * (1.0 - self.percentile), 0.0, 1.0)


def novelty(values: np.ndarray, columns: list[str], ref: NoveltyReference) -> list[FamilyNovelty]:
    """Each family the reference was fitted with, scored for every row."""
    deviations = _deviations(values, columns, ref)
    populations = ref.family_populations or (ref.population,) * len(ref.families)
    scored = []
    for name, quantiles, population in zip(ref.families, ref.percentiles, populations, strict=True):
        family = FAMILY_BY_NAME[name]
        raw, signal = family.raw(values, columns, ref, deviations)
        scored.append(FamilyNovelty(family, _percentile(raw, quantiles, population), signal))
    return scored


def supervised_percentile(supervised: np.ndarray, ref: NoveltyReference) -> np.ndarray:
    return _percentile(np.asarray(supervised, dtype=np.float64), ref.supervised_percentiles, ref.population, _logit)


def tier_bounds_by_construction(
    ref: NoveltyReference, tier_fprs: tuple[tuple[str, float], ...]
) -> tuple[tuple[str, float], ...]:
    """Per tier, the final score a benign account exceeds with probability at most the tier's rate, from the
    combination's own construction rather than from any labelled or unlabelled holdout: the supervised percentile
    exceeds 1 - r for a share r of the reference, each family's lift for a share r / budget_divisor, so their max
    exceeds 1 - r / (1 + sum of 1 / budget_divisor) for at most the tier's rate (union bound). Hidden campaign
    accounts in the reference only raise its percentiles, which makes these bounds stricter, never looser.

    What it cannot see is drift: the reference is days older than the day scored, and the supervised score is
    coarse (a tree ensemble gives whole segments one value). In one detection-benchmark lake 57 batch pipelines
    and startup apps moved together from below the reference's 95th supervised percentile to its 99.54th, and
    this bound alone realised 2.2% benign FPR at elevated. models/train.py tier_calibration guards it with the
    holdout's established accounts, which do see the recent days."""
    budget = 1.0 + sum(1.0 / FAMILY_BY_NAME[name].budget_divisor for name in ref.families)
    return tuple((name, 1.0 - rate / budget) for name, rate in tier_fprs)


CONSTRUCTED_TIERS = "1 - rate / (1 + sum of 1 / novelty budget divisors) (models/novelty.py)"


def combines(ref: NoveltyReference | None) -> TypeGuard[NoveltyReference]:
    """Whether a version's scores are the combination above: it carries a reference with supervised percentiles
    (versions from before them score with the supervised model alone)."""
    return ref is not None and bool(ref.supervised_percentiles) and bool(ref.population)


def parse_reference(reference_json: str | None) -> NoveltyReference | None:
    """A model version's stored reference; None when the version carries none (supervised score only)."""
    return NoveltyReference.from_json(reference_json) if reference_json else None


@dataclass(frozen=True)
class FinalScores:
    score: np.ndarray
    novelty: np.ndarray | None  # None: the version carries no reference, the score is the supervised one
    signal: np.ndarray | None  # per row, index into the reference's columns of the lifting family's strongest signal
    lifted: np.ndarray | None  # per row, True where novelty, not the supervised model, set the score
    supervised_percentile: np.ndarray | None = None  # per row, the supervised score as a reference percentile
    family: np.ndarray | None = None  # per row, the name of the family with the highest lift


def final_scores(
    supervised: np.ndarray, values: np.ndarray, columns: list[str], ref: NoveltyReference | None
) -> FinalScores:
    """The score a model version gives: the supervised score alone when the version carries no novelty reference
    (or one from before supervised percentiles were stored), else the combination above."""
    if not combines(ref):
        return FinalScores(supervised, None, None, None)
    families = novelty(values, columns, ref)
    ranked = supervised_percentile(supervised, ref)
    lifts = np.column_stack([f.lift for f in families])
    best = lifts.argmax(axis=1)
    rows = np.arange(len(best))
    lift = lifts[rows, best]
    percentile = np.column_stack([f.percentile for f in families])[rows, best]
    signal = np.column_stack([f.signal for f in families])[rows, best]
    names = np.asarray([f.family.name for f in families], dtype=object)[best]
    return FinalScores(np.maximum(ranked, lift), percentile, signal, lift > ranked, ranked, names)


def _floor_percent(share: float) -> str:
    """99.996% reads "99.99%", not "100.00%": nobody is more unusual than every account."""
    return f"{np.floor(share * 10_000) / 100:.2f}%"


def explanation(
    ref: NoveltyReference, signal: int, value: float, novelty_score: float, family: str = "behaviour"
) -> str:
    """A novelty lift in plain words, phrased from the signal's registry declaration."""
    from features.registry import feature_for_column
    from models.explain import format_value

    column = ref.columns[signal]
    feature, window = feature_for_column(column)
    direction = "high" if ref.directions[signal] > 0 else "low"
    over = "" if window is None else (" over the last day" if window == 1 else f" over {window} days")
    lifting = FAMILY_BY_NAME[family]
    among = f"accounts {lifting.reference_min_age_days}+ days old" if lifting.reference_min_age_days else "accounts"
    return (
        f"{lifting.lead}: {feature.description}{over} is "
        f"unusually {direction} ({format_value(feature.unit, value)} against a typical "
        f"{format_value(feature.unit, ref.centers[signal])}); "
        f"more unusual than {_floor_percent(novelty_score)} of {among}"
    )
