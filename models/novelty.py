"""A label-free novelty score, combined with the supervised score so a campaign unlike any labelled one surfaces.

The supervised model finds what it was shown. Novelty asks a different question: how far does this account sit
from the (mostly benign) population on the behaviours extraction needs, in the direction extraction pushes them?
Per signal, a robust z-score against the median and MAD of the benign reference (the training set's unlabelled
snapshots, optionally only established accounts': models/train.py `benign_reference`), one-sided (volume of reasoning asks up,
timing regularity up, capability breadth down, ...); each family below summarises some of them and turns the
summary into its percentile among those same snapshots (0..1, so a benign account's novelty is about uniform). No
label is used anywhere.

The reference (medians, scales, percentiles) is fitted once per model version and stored on it, so scoring is the
same on every engine and every day.

Two families of novelty. Benign automation (enterprise agents, startups, judge harnesses) legitimately runs 24/7
from cloud addresses with regular timing, so a novelty over every signal ranks it with the campaigns: in the detection
benchmark the low-and-slow hydra, whose only tell is what it buys, was 8-32% found by it at 1% FPR. So:

- **behaviour**: every signal in SIGNALS, the mean of the TOP_K largest deviations (finds the reseller and the
  labelled look-alikes' automation);
- **harvest yield**: only the output/input token ratio (HARVEST_YIELD_SIGNALS), the larger deviation of its 7- and
  28-day windows. A distiller buys long completions for short prompts; paraphrasing or softening the prompts
  evades every prompt pattern but not the yield, which is the point of the purchase. Alone, the 28-day ratio finds
  86-97% of the low-and-slow hydra and all of the paraphrased elicitation at 1% FPR.

Combination. All scores are put on one scale first: the share of the benign reference an account outranks, its
*risk percentile*. The supervised model's raw probabilities are no
such scale: under positive-unlabelled training an unlabelled member of a labelled hydra gets 0.002 while it still
outranks 99% of benign accounts, and a max() on raw values let the benign novelty tail (lifted to 0.4-0.9) bury
whole labelled campaigns in the detection benchmark (recall at 1% FPR 12% with the raw max, 98% on the ranking).
The final score is

    max(supervised percentile, max over families of 1 - budget_divisor x (1 - family percentile))

so a family alone lifts an account to percentile q only when it is budget_divisor times rarer than q: at every
tier, each family's label-free lifts take at most 1/budget_divisor of the benign budget. The tiers are calibrated on
the final score. Scoring explains a lift by novelty with the family and the signal that drove it.

Why the harvest-yield tail is extrapolated. The reference is unlabelled, so it holds the very campaign accounts
novelty should find, and they crowd the top of exactly this signal (1-3% of the reference's snapshots in the
benchmark lakes, all at its top). Empirical percentiles then cap every one of them below ~0.97, where a lift never
reaches a tier. Above the reference's 95th percentile the family's percentiles follow an exponential tail of
log(1 + deviation) fitted between its 80th and 95th percentiles, where campaigns are too few to move it (TAIL_FIT).

Measured offline on the three kept lakes of the detection benchmark (recall over all unlabelled campaign accounts
at 0.1% / 1% benign FPR; the rerun of the real pipeline matched such figures to the decimal):
- behaviour alone, divisor 3 (stop 16): 33% / 56%;
- plus a family of every content signal (yield, reasoning asks, max-token saturation, extraction-like requests),
  divisor 2, extrapolated: 35% / 62% (benign heavy reasoning users crowd it; the prompt signals stay in behaviour);
- plus harvest yield, divisor 3 / **2** / 1.5 / 1: 34% / 60%, **37% / 65%**, 38% / 69%, 37% / 73% (the smaller
  the divisor, the more of each tier's budget yield's lifts may take: at 1 the labelled look-alikes and the
  reseller give way). The divisor is 2, not 1.5, because of the classic scenario, whose campaigns are all labelled
  look-alikes: on the demo's lake (18,814 unlabelled benign accounts) recall at 0.1% / 1% FPR was 50.6% / 75.7%
  without the yield family, 50.5% / 73.9% with divisor 2 and 47.0% / 66.6% with 1.5 (at 0.01%, 39.7% without it,
  27% with any divisor under 4: the yield tail puts one or two benign accounts at the very top);
- with divisor 1.5, the tail fitted over 70-90th, 85-95th or 90-97th percentiles instead: 63-68% at 1%; for the
  content family, a linear instead of log tail: 72% at 1% but 22% at 0.1% (the benign tail is heavier than
  exponential);
- scored against the benign accounts' own percentiles (ground truth, so offline only): 66-72% at 1% FPR, so the
  calibration is no longer what holds the yield family back.
Divisor 10, 3, 1 for behaviour alone gave 50%, 56%, 48% at 1% FPR: at 10 the reseller mixing extraction into
established accounts was never found.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

# (feature column, direction): +1 when extraction pushes the value up, -1 when it pushes it down
SIGNALS: tuple[tuple[str, int], ...] = (
    ("extraction_like_requests_7d", +1), ("extraction_like_share_7d", +1), ("cot_elicitation_rate_7d", +1),
    ("rubric_grading_rate_7d", +1), ("template_reuse_rate_7d", +1), ("output_input_ratio_7d", +1), ("output_input_ratio_28d", +1),
    ("max_tokens_saturation_7d", +1),
    ("coverage_24_7_7d", +1), ("interarrival_cv_7d", -1), ("capability_entropy_7d", -1), ("raw_http_share_7d", +1),
    ("hosting_proxy_share_7d", +1), ("distinct_ip_prefixes_7d", +1), ("newest_model_share_7d", +1),
    ("cluster_size", +1), ("cluster_new_account_share", +1), ("cluster_payment_share", +1),
)
# output/input token ratio: what a distiller buys, whatever the prompts look like (module docstring)
HARVEST_YIELD_SIGNALS = frozenset({"output_input_ratio_7d", "output_input_ratio_28d"})
TOP_K = 3
# (fit from, extrapolate above): reference percentiles of an extrapolated family's exponential tail (docstring)
TAIL_FIT = (0.80, 0.95)


@dataclass(frozen=True)
class Family:
    """One label-free view of an account: which signals, how their deviations are summarised, how much of each tier's
    benign budget its lifts may take, and whether its tail is extrapolated past a contaminated reference."""
    name: str
    signals: frozenset[str] | None  # None: every declared signal
    top_k: int
    budget_divisor: float
    extrapolated_tail: bool


FAMILIES: tuple[Family, ...] = (
    Family("behaviour", None, TOP_K, 3.0, extrapolated_tail=False),
    Family("harvest yield", HARVEST_YIELD_SIGNALS, 1, 2.0, extrapolated_tail=True),
)
FAMILY_BY_NAME = {f.name: f for f in FAMILIES}
# Percentile grid of the stored references: 1% steps, then ever finer towards the top, where tiers live (the 99.99th
# percentile is the critical tier's bound).
PERCENTILE_POINTS = tuple(float(p) for p in np.unique(np.concatenate(
    [np.linspace(0.0, 0.99, 100), 1.0 - np.logspace(-2, -6, 81), [1.0]])))
MIN_SCALE = 1e-6
COMBINATION = ("max(supervised percentile, " + ", ".join(
    f"1 - {f.budget_divisor:g} x (1 - {f.name} novelty percentile)" for f in FAMILIES) + "), percentiles of the "
    f"benign reference (models/train.py benign_reference); the harvest yield tail extrapolated above its "
    f"{TAIL_FIT[1]:.0%} point")


@dataclass(frozen=True)
class NoveltyReference:
    columns: tuple[str, ...]
    directions: tuple[int, ...]
    centers: tuple[float, ...]
    scales: tuple[float, ...]
    percentiles: tuple[tuple[float, ...], ...]  # per family: its raw novelty at PERCENTILE_POINTS of the reference
    supervised_percentiles: tuple[float, ...] = ()  # the supervised score at PERCENTILE_POINTS, same population
    population: int = 0  # reference snapshots: percentiles above 1 - 1/population are extrapolated (_percentile)
    families: tuple[str, ...] = ("behaviour",)  # names in FAMILIES, one per entry of `percentiles`

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> NoveltyReference:
        values = json.loads(text)
        percentiles = values.pop("percentiles")
        if percentiles and not isinstance(percentiles[0], list):  # a version from before families: behaviour only
            percentiles = [percentiles]
        return cls(**{k: v if isinstance(v, int) else tuple(v) for k, v in values.items()},
                   percentiles=tuple(tuple(p) for p in percentiles))


def _deviations(values: np.ndarray, columns: list[str], ref: NoveltyReference) -> np.ndarray:
    index = {c: i for i, c in enumerate(columns)}
    picked = values[:, [index[c] for c in ref.columns]].astype(np.float64)
    z = (picked - np.asarray(ref.centers)) / np.asarray(ref.scales) * np.asarray(ref.directions)
    return np.clip(np.nan_to_num(z, nan=0.0), 0.0, None)


def _family_columns(family: Family, ref_columns: tuple[str, ...]) -> list[int]:
    return [i for i, c in enumerate(ref_columns) if family.signals is None or c in family.signals]


def _raw(deviations: np.ndarray, family: Family, ref_columns: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(the family's raw novelty, index into ref_columns of its strongest deviation) per row."""
    used = _family_columns(family, ref_columns)
    if not used:
        return np.zeros(len(deviations)), np.zeros(len(deviations), dtype=np.int64)
    picked = deviations[:, used]
    k = min(family.top_k, len(used))
    raw = np.sort(picked, axis=1)[:, -k:].mean(axis=1)
    # log(1 + deviation) where the tail is extrapolated: an exponential tail in it is a power law in the deviation,
    # closer to the yield's heavy benign tail (the module docstring has the comparison)
    return (np.log1p(raw) if family.extrapolated_tail else raw), np.asarray(used)[picked.argmax(axis=1)]


def _quantiles(values: np.ndarray) -> tuple[float, ...]:
    if not values.size:
        return tuple(0.0 for _ in PERCENTILE_POINTS)
    return tuple(map(float, np.quantile(values, PERCENTILE_POINTS)))


def fit_reference(values: np.ndarray, columns: list[str], supervised: np.ndarray) -> NoveltyReference:
    """Medians, MAD scales, and each family's raw-novelty and the supervised-score percentiles of the unlabelled
    training snapshots (`values`, and the supervised model's scores of the same rows)."""
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
    deviations = _deviations(values, columns, ref)
    percentiles = tuple(_quantiles(_raw(deviations, family, ref.columns)[0]) for family in FAMILIES)
    return NoveltyReference(ref.columns, ref.directions, ref.centers, ref.scales, percentiles,
                            _quantiles(np.asarray(supervised, dtype=np.float64)), int(len(values)),
                            tuple(f.name for f in FAMILIES))


TAIL_ANCHOR = 0.99


def _point_index(point: float) -> int:
    return int(np.abs(np.asarray(PERCENTILE_POINTS) - point).argmin())


def _percentile(values: np.ndarray, quantiles: tuple[float, ...], population: int, transform=None,
                tail_fit: tuple[float, float] | None = None) -> np.ndarray:
    """The share of the reference population below each value (0..1), strictly increasing beyond the reference.

    Inside the reference: interpolated on the grid (a value repeated across many grid points, 0 for the quiet
    majority, maps to its lowest one). Above the highest percentile the population resolves (1 - 1/population),
    an exponential tail fitted through that point and the TAIL_ANCHOR percentile: without it every account beyond
    the reference's maximum tied at 1.0, and a tier bound set among ties flags all of them or none (in the detection
    benchmark, recall at 0.1% FPR fell to 0). `tail_fit` = (from, above) starts the tail lower, fitted between those
    two percentiles, for a reference whose top is not trusted. `transform` (the logit, for probabilities) spreads
    the tail first."""
    points = np.asarray(PERCENTILE_POINTS)
    grid = np.asarray(quantiles, dtype=np.float64)
    x = np.asarray(values, dtype=np.float64)
    if transform is not None:
        grid, x = transform(grid), transform(x)
    anchor = _point_index(TAIL_ANCHOR)
    top = max(int(np.searchsorted(points, 1.0 - 1.0 / max(population, 2), side="right")) - 1, anchor)
    if tail_fit is not None and grid[_point_index(tail_fit[1])] > grid[_point_index(tail_fit[0])]:
        # (a flat fit range, most of the reference at one value, has no slope to extrapolate: the default tail then)
        anchor, top = _point_index(tail_fit[0]), _point_index(tail_fit[1])
    inside = np.interp(x, grid[:top + 1], points[:top + 1])
    decades = np.log((1.0 - points[anchor]) / (1.0 - points[top])) if top > anchor else 1.0
    scale = max((grid[top] - grid[anchor]) / decades, 1e-9 * (abs(grid[top]) + 1.0))
    tail = 1.0 - (1.0 - points[top]) * np.exp(-(x - grid[top]) / scale)
    return np.where(x <= grid[0], 0.0, np.where(x > grid[top], tail, inside))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-15, 1.0 - 1e-15)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class FamilyNovelty:
    family: Family
    percentile: np.ndarray  # per row, 0..1 of the reference
    signal: np.ndarray      # per row, index into the reference's columns of the family's strongest deviation

    @property
    def lift(self) -> np.ndarray:
        return np.clip(1.0 - self.family.budget_divisor * (1.0 - self.percentile), 0.0, 1.0)


def novelty(values: np.ndarray, columns: list[str], ref: NoveltyReference) -> list[FamilyNovelty]:
    """Each family the reference was fitted with, scored for every row."""
    deviations = _deviations(values, columns, ref)
    scored = []
    for name, quantiles in zip(ref.families, ref.percentiles):
        family = FAMILY_BY_NAME[name]
        raw, signal = _raw(deviations, family, ref.columns)
        percentile = _percentile(raw, quantiles, ref.population,
                                 tail_fit=TAIL_FIT if family.extrapolated_tail else None)
        scored.append(FamilyNovelty(family, percentile, signal))
    return scored


def supervised_percentile(supervised: np.ndarray, ref: NoveltyReference) -> np.ndarray:
    return _percentile(np.asarray(supervised, dtype=np.float64), ref.supervised_percentiles, ref.population, _logit)


def parse_reference(reference_json: str | None) -> NoveltyReference | None:
    """A model version's stored reference; None when the version carries none (supervised score only)."""
    return NoveltyReference.from_json(reference_json) if reference_json else None


@dataclass(frozen=True)
class FinalScores:
    score: np.ndarray
    novelty: np.ndarray | None  # None: the version carries no reference, the score is the supervised one
    signal: np.ndarray | None   # per row, index into the reference's columns of the lifting family's strongest signal
    lifted: np.ndarray | None   # per row, True where novelty, not the supervised model, set the score
    supervised_percentile: np.ndarray | None = None  # per row, the supervised score as a reference percentile
    family: np.ndarray | None = None  # per row, the name of the family with the highest lift


def final_scores(supervised: np.ndarray, values: np.ndarray, columns: list[str],
                 ref: NoveltyReference | None) -> FinalScores:
    """The score a model version gives: the supervised score alone when the version carries no novelty reference
    (or one from before supervised percentiles were stored), else the combination above."""
    if ref is None or not ref.supervised_percentiles or not ref.population:
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


def explanation(ref: NoveltyReference, signal: int, value: float, novelty_score: float,
                family: str = "behaviour") -> str:
    """A novelty lift in plain words, phrased from the signal's registry declaration."""
    from features.registry import feature_for_column
    from models.explain import format_value

    column = ref.columns[signal]
    feature, window = feature_for_column(column)
    direction = "high" if ref.directions[signal] > 0 else "low"
    over = "" if window is None else (" over the last day" if window == 1 else f" over {window} days")
    lead = ("buys far longer answers per prompt than accounts do, whatever the labels say" if family == "harvest yield"
            else "unusual for the whole account population, whatever the labels say")
    return (f"{lead}: {feature.description}{over} is "
            f"unusually {direction} ({format_value(feature.unit, value)} against a typical "
            f"{format_value(feature.unit, ref.centers[signal])}); more unusual than {novelty_score:.2%} of accounts")
