"""Tier audits: analysts decide a random sample of each tier's band, and the tiers move by what they found.

Why: each tier's bound is the score that flags its benign FPR of the model's clean benign reference
(models/fusion.py). That reference's unlabelled accounts hide campaign accounts nobody linked to a decision, and
they rank at its top, so on the benchmark's development lakes they were 58-89% of its top 0.1%: the bounds sit among
them and each tier flags a fraction of its benign budget. Nothing in the features tells those accounts apart (that
would be detection); a random sample decided by analysts does. That is the clean reference made clean where it
matters, and it turns review work into measured, not assumed, false positive rates.

Draw: on a scored day, the undecided accounts scored from the band's floor up are split into strata at the model's
tier bounds (STRATA, lowest first), and up to `per_stratum` of each are drawn at random. The draw is a sample, so
the analysts decide every drawn account; an undecided draw is left out of the estimate.

Relax: per stratum, the share of the decided draws that were decided benign, raised to its one-sided
CONFIDENCE upper bound (Clopper-Pearson; 1 while a stratum has no decided draw). Each undecided account of the
latest draw day counts as that share of a benign account; walking down from the top, a tier's bound is lowered to
the lowest score at which the expected benign accounts above it stay within the tier's rate of that day's undecided
accounts, never below the band's floor.

Tighten: the same walk with each stratum's one-sided CONFIDENCE *lower* bound (0 while a stratum has no decided
draw). Where even that many benign accounts at or above a tier's bound exceed its budget, the draws show the tier
is over it, and the bound is raised to the lowest score at which they fit. A bound moves only on evidence: the two
walks bracket the benign count, so at most one of them moves a tier, and nothing audited moves none.

A higher tier is never easier to reach than a lower one.

`draw`, `benign_shares` and `audited_bounds` are pure; `draw_for_day` (`distillguard review audit`) and
`day_bounds` (the score job, on either engine) read and write the lake through delta-rs.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.stats import beta

from lake import catalog
from lake.config import Settings
from lake.errors import InputError, MissingInputError
from models.config import TIER_BENIGN_FPR
from models.propagation import latest_decisions

# The band reaches down to FLOOR_FACTOR times the elevated tier's exceedance (score 1 - 3 x 1% = 0.97 for a model
# whose elevated bound is 0.99). Not fitted: deep enough that the elevated tier can move, shallow enough that the
# draws stay where the budget is spent.
FLOOR_FACTOR = 3.0
# The one-sided confidence of each stratum's benign share bounds, upper (to relax) and lower (to tighten). Not fitted.
CONFIDENCE = 0.9
# Strata, lowest first: [floor, elevated), [elevated, high), [high, critical), [critical, 1].
STRATA = ("below elevated", "elevated", "high", "critical")
BENIGN = "benign"
DRAW_COLUMNS = ("account_id", "score", "stratum")
TABLE = "tier_audits"
LABELS_TABLE = "enforcement_labels"
# Drawn per stratum by `distillguard review audit` unless told otherwise. Not fitted: ten decisions that are all
# extraction put a stratum's benign share below 21% at CONFIDENCE.
PER_STRATUM = 10


def band_floor(bounds: tuple[tuple[str, float], ...]) -> float:
    """The lowest score an audit draws from; `bounds` as stored on the model version, highest tier first."""
    elevated = bounds[-1][1]
    return 1.0 - FLOOR_FACTOR * (1.0 - elevated)


def strata(scores: np.ndarray, bounds: tuple[tuple[str, float], ...]) -> np.ndarray:
    """Stratum index per score (0 = just below the elevated bound, len(STRATA) - 1 = critical); -1 below the band."""
    edges = np.array([band_floor(bounds), *(bound for _, bound in reversed(bounds))])
    return np.searchsorted(edges, np.asarray(scores, dtype=np.float64), side="right") - 1


def draw(undecided: pd.DataFrame, bounds: tuple[tuple[str, float], ...], per_stratum: int, seed: int) -> pd.DataFrame:
    """Up to `per_stratum` accounts drawn at random from each stratum of `undecided` (account_id, score: one scored
    day's accounts with no decision), as DRAW_COLUMNS, highest score first."""
    if per_stratum < 1:
        raise ValueError(f"per_stratum must be at least 1, got {per_stratum}")
    day = undecided.drop_duplicates("account_id").sort_values("account_id", kind="stable")
    index = strata(day["score"].to_numpy(), bounds)
    rng = np.random.default_rng(seed)
    picked = []
    for stratum in range(len(STRATA)):
        members = np.flatnonzero(index == stratum)
        picked.extend(rng.choice(members, min(per_stratum, len(members)), replace=False).tolist())
    out = day.iloc[picked][["account_id", "score"]].assign(stratum=index[picked])
    return out.sort_values(["score", "account_id"], ascending=[False, True], kind="stable").reset_index(drop=True)


def benign_shares(decided_draws: pd.DataFrame, upper: bool = True) -> np.ndarray:
    """Per stratum, the upper (or lower) CONFIDENCE bound of the benign share among the decided draws (stratum,
    label); 1 (or 0) where a stratum has none."""
    out = np.full(len(STRATA), 1.0 if upper else 0.0)
    for stratum in range(len(STRATA)):
        labels = decided_draws.loc[decided_draws["stratum"] == stratum, "label"]
        n, benign = len(labels), int((labels == BENIGN).sum())
        if upper and n > 0 and benign < n:
            out[stratum] = float(beta.ppf(CONFIDENCE, benign + 1, n - benign))
        elif not upper and benign > 0:
            out[stratum] = float(beta.ppf(1.0 - CONFIDENCE, benign, n - benign + 1))
    return out


def _walk(scores: np.ndarray, share: np.ndarray, bounds: tuple[tuple[str, float], ...]):
    """(distinct scores, highest first; the expected benign accounts at or above each) for `scores` sorted highest
    first, each counting as its stratum's `share` (below the band: 1). Only the last of tied scores is a place to
    stop: a bound flags every account at its score."""
    expected_benign = np.cumsum(np.r_[share, 1.0][strata(scores, bounds)])
    last_of_ties = np.r_[scores[1:] < scores[:-1], True]
    return scores[last_of_ties], expected_benign[last_of_ties]


def audited_bounds(
    undecided_scores: np.ndarray, decided_draws: pd.DataFrame, bounds: tuple[tuple[str, float], ...]
) -> tuple[tuple[str, float], ...]:
    """The model's `bounds` relaxed or tightened by the audits (module docstring). `undecided_scores`: the latest
    draw day's scores of the accounts still undecided; `decided_draws`: every decided draw of the model version
    (stratum, label: the account's latest decision)."""
    scores = np.sort(np.asarray(undecided_scores, dtype=np.float64))[::-1]
    if len(scores) == 0 or decided_draws.empty:
        return bounds
    values, most = _walk(scores, benign_shares(decided_draws, upper=True), bounds)
    _, least = _walk(scores, benign_shares(decided_draws, upper=False), bounds)
    floor = band_floor(bounds)
    rates = dict(TIER_BENIGN_FPR)
    moved = []
    for name, bound in bounds:
        budget = rates[name] * len(scores)
        # the lowest score whose expected benign count fits the budget, at the upper and at the lower shares
        fits_most = int(np.searchsorted(most, budget, side="right"))
        fits_least = int(np.searchsorted(least, budget, side="right"))
        at_bound = int(np.searchsorted(-values, -bound, side="right"))  # distinct scores at or above the bound
        if at_bound > 0 and least[at_bound - 1] > budget:  # over budget even at the lower shares: tighten
            # (the top tie alone over budget: the tier flags nothing)
            moved.append(float(values[fits_least - 1]) if fits_least > 0 else float(np.nextafter(values[0], np.inf)))
        else:
            lowest = values[fits_most - 1] if fits_most > 0 else np.inf
            moved.append(float(min(bound, max(lowest, floor))))
    for i in range(len(moved) - 2, -1, -1):  # highest tier first
        moved[i] = max(moved[i], moved[i + 1])
    return tuple((name, value) for (name, _), value in zip(bounds, moved, strict=True))


# --- the lake -------------------------------------------------------------------------------------------------


def decided_as_of(settings: Settings, as_of: dt.date) -> dict[str, str]:
    """account_id -> its latest extraction/benign decision on or before `as_of`."""
    return _decisions(settings, as_of)["decision"].to_dict()


def _decisions(settings: Settings, as_of: dt.date) -> pd.DataFrame:
    """latest_decisions of every account as of `as_of` (empty frame when nothing was ever decided)."""
    if not catalog.exists(settings, LABELS_TABLE):
        return pd.DataFrame(columns=["decision", "decided_at"])
    rows = catalog.read_arrow(settings, LABELS_TABLE).select(["account_id", "label", "decided_at"]).to_pandas()
    return latest_decisions(rows, as_of)


def _day_risk(settings: Settings, score_date: dt.date) -> pd.DataFrame:
    return (
        catalog.read_arrow(settings, "account_risk", filters=[("score_date", "=", score_date)])
        .select(["account_id", "score", "model_name", "model_version"])
        .to_pandas()
    )


def _draws(settings: Settings, **equal) -> pd.DataFrame:
    if not catalog.exists(settings, TABLE):
        return pd.DataFrame(columns=catalog.table(TABLE).columns)
    filters = [(column, "=", value) for column, value in equal.items()] or None
    return catalog.read_arrow(settings, TABLE, filters=filters).to_pandas()


def day_draw(settings: Settings, score_date: dt.date) -> pd.DataFrame:
    """The audit drawn from `score_date` (TABLE's columns), highest score first; empty when none was drawn."""
    drawn = _draws(settings, score_date=score_date)
    return drawn.sort_values(["score", "account_id"], ascending=[False, True]).reset_index(drop=True)


def draw_for_day(
    settings: Settings, score_date: dt.date, per_stratum: int = PER_STRATUM, now: dt.datetime | None = None
) -> pd.DataFrame:
    """The audit draw of a scored day, stratified at the tier bounds of the model version that scored it, drawn
    from the accounts undecided by that day and written to TABLE once: a rerun returns the same draw. The seed is
    the day, so the draw is reproducible from the lake."""
    from models import registry

    if per_stratum < 1:
        raise InputError(f"--per-stratum must be at least 1, got {per_stratum}")
    existing = day_draw(settings, score_date)
    if len(existing):
        return existing
    risk = _day_risk(settings, score_date) if catalog.exists(settings, "account_risk") else pd.DataFrame()
    if risk.empty:
        raise MissingInputError(f"{score_date} was never scored (no account_risk rows); pick a scored --date")
    version = risk[["model_name", "model_version"]].drop_duplicates()
    if len(version) != 1:
        raise InputError(f"account_risk of {score_date} holds {len(version)} model versions; rescore the day")
    name, number = version.iloc[0]
    bounds = registry.version_info(registry.configure(settings), name, number).tier_bounds
    decided = _decisions(settings, score_date)
    undecided = risk[~risk["account_id"].isin(decided.index)]
    drawn = draw(undecided[["account_id", "score"]], bounds, per_stratum, seed=score_date.toordinal())
    drawn = drawn.assign(
        score_date=score_date,
        model_name=name,
        model_version=number,
        drawn_at=pd.Timestamp(now or dt.datetime.now(dt.UTC)),
    )
    catalog.write_arrow(settings, TABLE, pa.Table.from_pandas(drawn, preserve_index=False), score_date)
    return drawn


def _audited_draws(settings: Settings, model_version: str, score_date: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(draws, decided): the model version's draws from days before `score_date`, each with `label`, its latest
    extraction/benign decision by `score_date` (missing while undecided), and those decisions of every account."""
    draws = _draws(settings, model_version=model_version)
    draws = draws[pd.to_datetime(draws["score_date"]).dt.date < score_date]
    decided = _decisions(settings, score_date) if len(draws) else pd.DataFrame(columns=["decision", "decided_at"])
    return draws.assign(label=draws["account_id"].map(decided["decision"])), decided


def _bounds_for(
    settings: Settings, draws: pd.DataFrame, decided: pd.DataFrame, bounds: tuple[tuple[str, float], ...]
) -> tuple[tuple[str, float], ...]:
    """audited_bounds on the undecided accounts of the latest draw day, from `_audited_draws`' output."""
    if draws.empty:
        return bounds
    latest_day = max(pd.to_datetime(draws["score_date"]).dt.date)
    risk = _day_risk(settings, latest_day)
    undecided = risk.loc[~risk["account_id"].isin(decided.index), "score"].to_numpy()
    return audited_bounds(undecided, draws.dropna(subset=["label"])[["stratum", "label"]], bounds)


def day_bounds(
    settings: Settings, model_version: str, bounds: tuple[tuple[str, float], ...], score_date: dt.date
) -> tuple[tuple[str, float], ...]:
    """The tier bounds that score `score_date`: the model version's `bounds` moved by its audits drawn on earlier
    days and decided by `score_date` (audited_bounds, on the undecided accounts of the latest such draw day)."""
    return _bounds_for(settings, *_audited_draws(settings, model_version, score_date), bounds)


def audit_summary(
    settings: Settings, model_version: str, bounds: tuple[tuple[str, float], ...], score_date: dt.date
) -> dict | None:
    """What the console's Model page shows of a model version's audits as they stand for `score_date`: per stratum
    the accounts drawn before that day, decided, found benign and the benign share's bounds, and the bounds
    that day is tiered with. None when the version was never audited."""
    draws, decided = _audited_draws(settings, model_version, score_date)
    if draws.empty:
        return None
    decided_draws = draws.dropna(subset=["label"])
    lower, upper = benign_shares(decided_draws, upper=False), benign_shares(decided_draws, upper=True)
    strata_rows = []
    for i, name in enumerate(STRATA):
        labels = draws.loc[draws["stratum"] == i, "label"]
        strata_rows.append(
            {
                "stratum": name,
                "drawn": len(labels),
                "decided": int(labels.notna().sum()),
                "benign": int((labels == BENIGN).sum()),
                "benign_share_lower": float(lower[i]),
                "benign_share_upper": float(upper[i]),
            }
        )
    return {"score_date": score_date, "strata": strata_rows, "bounds": _bounds_for(settings, draws, decided, bounds)}
