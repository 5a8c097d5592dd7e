"""Knobs for training, evaluation and scoring, declared in one place.

`Settings` (lake/config.py) holds deployment facts (where the lake and MLflow live); these are modelling
choices. Jobs take them as an optional argument, so the CLI contract `run(spark, settings, date)` stays fixed
while tests and notebooks can change them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from lake.catalog import RISK_TIERS

# Risk tiers, highest first, defined by the benign false-positive rate an analyst accepts at each tier.
# Training turns these rates into score bounds on its holdout's negatives and stores them on the model
# version (`tier_bounds` tag). The score is the share of the clean benign reference an account outranks
# (models/fusion.py), so "critical" = at most 0.01% of benign accounts score this high.
# The tier names are lake.catalog.RISK_TIERS (the tables store them); only their rates live here.
TIERS: tuple[str, ...] = RISK_TIERS
LOWEST_TIER = TIERS[-1]
# docs/design.md §7: critical <= 0.01%, high <= 0.1%, elevated <= 1% of benign accounts (at 200M accounts, 1% is 2M
# people). Calibrated on the clean benign reference (models/fusion.py tier_bounds).
TIER_BENIGN_FPR: tuple[tuple[str, float], ...] = tuple(zip(TIERS[:-1], (0.0001, 0.001, 0.01), strict=True))

# The evaluation threshold that defines a "flagged" snapshot for campaign recall, detection latency and
# per-segment false-positive rates: the score at which the benign false-positive rate is 1%.
FLAG_AT_BENIGN_FPR = 0.01


@dataclass(frozen=True)
class TrainingConfig:
    # A snapshot at feature_date D is labelled by decisions taken on days D+1 .. D+label_horizon_days.
    label_horizon_days: int = 14
    # Snapshots from the last `min_label_days` days before as_of are not used at all: labels have had (almost) no
    # time to arrive, so every one of them would be a negative. The cut is by date, never by label, so it adds
    # no selection bias. See training_set.py.
    min_label_days: int = 3
    # Snapshots whose horizon runs past as_of and that have no label yet ("unresolved"): "negative" keeps them
    # as negatives (the PU assumption applied to a shorter window), "drop" leaves them out. See training_set.py.
    unresolved_snapshots: Literal["negative", "drop"] = "negative"
    # Positive-unlabelled weighting (models/pu.py): "elkan-noto" splits each unlabelled snapshot into a weighted
    # positive and negative copy; "negative" treats every unlabelled snapshot as a negative.
    unlabelled_snapshots: Literal["elkan-noto", "negative"] = "elkan-noto"
    # Folds by account for the cross-fitted scores: the PU weights' labelled-probability, and the supervised scores
    # of the clean benign reference and of the positives the score's families are stacked on (models/fusion.py).
    cross_fit_folds: int = 4
    # The clean benign reference's unlabelled accounts (training_set.clean_reference): no link to a decided account
    # and at least this many days old; accounts decided benign join whatever their age. Fitted on the detection
    # benchmark's development seeds 101 and 102 (randomised, 4,000 accounts, 2026-12-07): with 30 days the reference
    # had no young benign accounts, and the tiers flagged 14.7% of unlabelled benign accounts at elevated.
    reference_min_age_days: int = 0
    # The score's families (models/fusion.py): "supervised" and any of the novelty families of models/novelty.py.
    # Fitted on the same development seeds: the stacked regression gave "behaviour" real weight (it separates the
    # loudest, labelled accounts from the reference), but alone it ranks the unlabelled holdout at PR-AUC 0.005-0.007
    # and with it the training run's holdout PR-AUC fell from 0.32-0.35 to 0.15-0.28.
    score_families: tuple[str, ...] = ("supervised", "harvest yield")
    # Time split over distinct feature dates: the latest `holdout_days` are the holdout, the `validation_days`
    # before them drive early stopping, everything earlier is fitted.
    holdout_days: int = 3
    validation_days: int = 2
    review_capacity_k: int = 100
    # "auto" = cuda when XGBoost was built with CUDA and a GPU is visible, else cpu. An explicit "cuda" on a
    # machine without one is an error, never a silent CPU run.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_boost_round: int = 300
    early_stopping_rounds: int = 30
    learning_rate: float = 0.1
    max_depth: int = 5
    min_child_weight: float = 1.0
    subsample: float = 0.9
    colsample_bytree: float = 0.9
    seed: int = 7

    def __post_init__(self) -> None:
        if self.label_horizon_days < 1:
            raise ValueError("label_horizon_days must be at least 1")
        if not 0 <= self.min_label_days <= self.label_horizon_days:
            raise ValueError("min_label_days must be between 0 and label_horizon_days")
        if self.unresolved_snapshots not in ("negative", "drop"):
            raise ValueError(f"unresolved_snapshots must be 'negative' or 'drop', got {self.unresolved_snapshots!r}")
        if self.unlabelled_snapshots not in ("elkan-noto", "negative"):
            raise ValueError(
                f"unlabelled_snapshots must be 'elkan-noto' or 'negative', got {self.unlabelled_snapshots!r}"
            )
        if self.reference_min_age_days < 0:
            raise ValueError("reference_min_age_days must be 0 or more")
        object.__setattr__(self, "score_families", tuple(self.score_families))  # a TOML list
        unknown = set(self.score_families) - {"supervised", "behaviour", "harvest yield"}
        if unknown or "supervised" not in self.score_families:
            raise ValueError(f"score_families must include 'supervised' and know every name, got {self.score_families}")
        if self.cross_fit_folds < 2:
            raise ValueError("cross_fit_folds must be at least 2")
        if self.holdout_days < 1 or self.validation_days < 1:
            raise ValueError("holdout_days and validation_days must be at least 1")
        if self.review_capacity_k < 1:
            raise ValueError("review_capacity_k must be at least 1")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")

    def as_params(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class ScoringConfig:
    reasons_per_account: int = 3
    # cluster_score = mean of the highest `cluster_top_members` member scores (see scoring.py for why).
    cluster_top_members: int = 3
    top_capabilities: int = 3


# --- from a file, without editing code ------------------------------------------------------------------------


def load_model_config(path: str | None) -> tuple[TrainingConfig, ScoringConfig]:
    """Training and scoring settings from a TOML file with optional [training] and [scoring] tables (keys as the
    dataclass fields above; unknown keys and bad values are refused in one line). No file: the defaults.
    `--model-config` / DG_MODEL_CONFIG name it; training logs every value to MLflow."""
    if not path:
        return TrainingConfig(), ScoringConfig()
    import tomllib
    from dataclasses import fields

    from lake.errors import InputError

    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"model config {path}: {exc}") from None
    unknown_sections = set(document) - {"training", "scoring"}
    if unknown_sections:
        raise InputError(
            f"model config {path}: unknown section(s) {sorted(unknown_sections)}; use [training] and [scoring]"
        )
    built = []
    for section, cls in (("training", TrainingConfig), ("scoring", ScoringConfig)):
        values = document.get(section, {})
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise InputError(
                f"model config {path}: unknown [{section}] key(s) {sorted(unknown)}; known: {', '.join(sorted(known))}"
            )
        try:
            built.append(cls(**values))
        except (TypeError, ValueError) as exc:
            raise InputError(f"model config {path} [{section}]: {exc}") from None
    return built[0], built[1]
