"""Train an XGBoost classifier on a point-in-time training set, calibrate the score on the clean benign reference,
evaluate it on a time-based holdout, log the run to MLflow, register the model and run the promotion gate.

Training (positive-unlabelled, models/pu.py): each unlabelled snapshot is a negative and, weighted by the
cross-fitted probability that it is a hidden positive, a positive (Elkan-Noto); each account counts once; the
negatives' ages are matched to the positives'. The columns in training_set.NOT_MODEL_INPUTS are never read.
`hist` trees, early stopping on the validation dates' weighted log loss (a ranking metric saturates after a
handful of trees and leaves scores bunched); the registered model is cut at the best iteration and not refitted.

The score (models/fusion.py): the supervised logit and the novelty families, each calibrated on the clean benign
reference (cross-fitted supervised scores, one row per account), combined by a stacked regression; the score is
the share of that reference an account outranks, so each tier's bound is 1 - its benign FPR.

Promotion gate: the candidate and the current champion are judged on the new holdout's labelled positive accounts
against each one's clean benign reference (PR-AUC); the candidate becomes `champion` only if strictly better,
otherwise `challenger`. A first model is champion unless its elevated tier reaches none of the holdout's positive
accounts: then it is refused in one line unless forced. A champion with another feature contract or score format
cannot be evaluated on this holdout; the candidate then replaces it if it beats a random ranking. The decision and
its reason are logged on the run and tagged on the model version.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lake import catalog
from lake.config import Settings
from lake.errors import InputError, MissingInputError, UnsupportedFormatError
from models import fusion, novelty, pu, registry
from models.config import TIER_BENIGN_FPR, TIERS, TrainingConfig
from models.metrics import (
    Evaluation,
    average_precision,
    evaluate,
    metric_key,
    reference_average_precision,
    threshold_at_fpr,
)
from models.training_set import (
    NOT_MODEL_INPUTS,
    TimeSplit,
    TrainingSet,
    calibration_mask,
    clean_reference,
    split_by_time,
)

log = logging.getLogger(__name__)

# the gate compares labelled holdout positives against the clean benign reference, not against unlabelled accounts
# (which would punish finding hidden campaigns)
PRIMARY_METRIC = "reference_pr_auc"
ELEVATED = TIERS[-2]  # the lowest flagged tier: a first model must reach some holdout positive there


# --- device ---------------------------------------------------------------------------------------


def gpu_visible() -> bool:
    """True when this XGBoost build has CUDA and `nvidia-smi -L` lists at least one GPU we may use."""
    import xgboost as xgb

    if not xgb.build_info().get("USE_CUDA", False):
        return False
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return listing.returncode == 0 and "GPU" in listing.stdout


def resolve_device(requested: str) -> str:
    if requested == "cpu":
        return "cpu"
    visible = gpu_visible()
    if requested == "cuda" and not visible:
        raise RuntimeError(
            "device='cuda' was requested but no CUDA GPU is visible to XGBoost; "
            "use device='auto' or 'cpu' to train on CPU"
        )
    return "cuda" if visible else "cpu"


# --- fitting and prediction -----------------------------------------------------------------------


def _matrix(frame: pd.DataFrame, columns: list[str], label=None, weight=None, fitting: bool = False):
    """The XGBoost matrix of `columns`. When `fitting`, the NOT_MODEL_INPUTS columns are blanked (missing): no tree
    can split on them, so the booster keeps the table's feature contract while never reading them."""
    import xgboost as xgb

    values = frame[columns].to_numpy(dtype=np.float64)
    if fitting:
        values = values.copy()
        values[:, [i for i, c in enumerate(columns) if c in NOT_MODEL_INPUTS]] = np.nan
    return xgb.DMatrix(values, label=label, weight=weight, feature_names=columns, missing=np.nan)


def predict(booster, frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return booster.predict(_matrix(frame, columns))


def fused(booster, version: registry.ModelVersionInfo, frame: pd.DataFrame, columns: list[str]) -> fusion.FusedScores:
    """The score a version gives in production (models/fusion.py)."""
    model = fusion.parse(version.score_reference, version.version)
    values = frame[columns].to_numpy(dtype=np.float64)
    lake = lake_family_raw(frame, model.families)
    raw, _ = fusion.family_scores(predict(booster, frame, columns), values, columns, model, lake=lake)
    return fusion.score(raw, model)


def lake_family_raw(frame: pd.DataFrame, families, latest: bool = False) -> dict[str, np.ndarray]:
    """The raw scores of the lake families among `families`, from the training set's family_<name> columns (each
    snapshot's own date), or with `latest` from family_latest_<name> (the set's last scored date), falling back to
    the snapshot's own where the account was not scored that day."""
    out = {}
    for name in fusion.lake_families(families):
        own = frame[catalog.family_column(name)].to_numpy(dtype=np.float64)
        if latest:
            last = frame[catalog.family_latest_column(name)].to_numpy(dtype=np.float64)
            own = np.where(np.isnan(last), own, last)
        out[name] = own
    return out


def check_lake_families(training_set: TrainingSet, families) -> None:
    """Refuse, in one line, a lake family that the families job did not score on every feature date of the set (a
    set from before per-family dates were recorded is checked on the dates any family was scored)."""
    wanted = list(fusion.lake_families(families))
    if not wanted:
        return
    reference = training_set.reference
    by_family = reference.get("family_scores_dates_by_family")
    feature_dates = {d.isoformat() for d in training_set.frame["feature_date"]}
    for name in wanted:
        scored = set(by_family.get(name, []) if by_family is not None else reference.get("family_scores_dates", []))
        missing = sorted(feature_dates - scored)
        if missing:
            raise MissingInputError(
                f"score_families {wanted} need family_scores on every feature date of the training set, and "
                f"{name} has none on {len(missing)} ({missing[0]}..{missing[-1]}); run `distillguard backfill --from "
                f"{missing[0]} --to {missing[-1]} --steps families --force`, then rebuild the training set"
            )


def final_predict(booster, version: registry.ModelVersionInfo, frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return fused(booster, version, frame, columns).score


@dataclass(frozen=True)
class FitInfo:
    best_iteration: int
    validation_logloss: float
    validation_pr_auc: float
    params: dict[str, object]
    pu: pu.PUWeights


# Rounds of the cross-fitted labelled-vs-unlabelled models behind the PU weights. Not fitted.
LABELLED_PROBABILITY_ROUNDS = 100


def booster_params(config: TrainingConfig, device: str) -> dict[str, object]:
    """The supervised model's XGBoost parameters (benchmarks/label_ceiling.py fits with them too)."""
    return {
        "objective": "binary:logistic",
        "eval_metric": ["aucpr", "logloss"],  # the last one drives early stopping
        "tree_method": "hist",
        "device": device,
        "learning_rate": config.learning_rate,
        "max_depth": config.max_depth,
        "min_child_weight": config.min_child_weight,
        "subsample": config.subsample,
        "colsample_bytree": config.colsample_bytree,
        "seed": config.seed,
    }


def labelled_probability(rows: pd.DataFrame, columns: list[str], config: TrainingConfig, device: str) -> np.ndarray:
    """Cross-fitted P(labelled | features) per row, by account folds, unweighted so it stays a probability."""
    import xgboost as xgb

    fold = pu.folds(rows["account_id"], config.cross_fit_folds)
    out = np.zeros(len(rows))
    for k in range(config.cross_fit_folds):
        train, held = rows[fold != k], fold == k
        if not held.any() or train["label"].nunique() < 2:
            continue
        booster = xgb.train(
            booster_params(config, device),
            _matrix(train, columns, train["label"].to_numpy(), fitting=True),
            num_boost_round=LABELLED_PROBABILITY_ROUNDS,
        )
        out[held] = predict(booster, rows[held], columns)
    return out


def pu_weights(rows: pd.DataFrame, columns: list[str], config: TrainingConfig, device: str):
    """(w per row: its positive copy's weight, PUWeights) under the configured unlabelled_snapshots policy."""
    labels = rows["label"].to_numpy()
    benign = (rows["standing"] == "benign").to_numpy()
    if config.unlabelled_snapshots == "negative":
        return labels.astype(np.float64), pu.PUWeights(0.0, 1.0, 0.0)
    return pu.elkan_noto(labels, labelled_probability(rows, columns, config, device), benign)


def fit_booster(fit: pd.DataFrame, validation: pd.DataFrame, columns: list[str], config: TrainingConfig, device: str):
    """Positive-unlabelled weights (models/pu.py) over the fitted and validation dates, then XGBoost on the fitted
    dates with early stopping on the validation dates' weighted log loss."""
    import xgboost as xgb

    positives = int(fit["label"].sum())
    negatives = len(fit) - positives
    if positives == 0 or negatives == 0:
        raise MissingInputError(
            f"the fit dates hold {len(fit):,} snapshots ({positives:,} positives, {negatives:,} negatives); fitting "
            "needs both: label more accounts, or shorten holdout_days / validation_days"
        )
    if validation["label"].sum() == 0:
        raise MissingInputError(
            "the validation dates have no positives, so early stopping has nothing to measure; "
            "use more validation_days or a later as_of"
        )
    both = pd.concat([fit, validation], ignore_index=True)
    w, weights_info = pu_weights(both, columns, config, device)
    fit_rows, fit_y, fit_w = pu.training_rows(fit.reset_index(drop=True), w[: len(fit)])
    val_rows, val_y, val_w = pu.training_rows(validation.reset_index(drop=True), w[len(fit) :])
    params = booster_params(config, device)
    booster = xgb.train(
        params,
        _matrix(fit_rows, columns, fit_y, fit_w, fitting=True),
        num_boost_round=config.num_boost_round,
        evals=[(_matrix(val_rows, columns, val_y, val_w, fitting=True), "validation")],
        early_stopping_rounds=config.early_stopping_rounds,
        verbose_eval=False,
    )
    best, best_logloss = int(booster.best_iteration), float(booster.best_score)
    booster = booster[: best + 1]
    info = FitInfo(
        best_iteration=best,
        validation_logloss=best_logloss,
        validation_pr_auc=average_precision(validation["label"].to_numpy(), predict(booster, validation, columns)),
        params=params,
        pu=weights_info,
    )
    return booster, info, (fit_rows, fit_y, fit_w)


def cross_fitted_supervised(
    fitted, targets: pd.DataFrame, columns: list[str], config: TrainingConfig, device: str, rounds: int
) -> np.ndarray:
    """The supervised probability of each `targets` row from a model fitted without its account: the weighted
    training rows `fitted` (rows, labels, weights) of the other account folds, `rounds` rounds each."""
    import xgboost as xgb

    rows, y, w = fitted
    fold = pu.folds(pu.campaign_groups(rows), config.cross_fit_folds)
    target_fold = pu.folds(pu.campaign_groups(targets), config.cross_fit_folds)
    out = np.zeros(len(targets))
    for k in range(config.cross_fit_folds):
        keep, held = fold != k, target_fold == k
        if not held.any():
            continue
        booster = xgb.train(
            booster_params(config, device),
            _matrix(rows[keep], columns, y[keep], w[keep], fitting=True),
            num_boost_round=rounds,
        )
        out[held] = predict(booster, targets[held], columns)
    return out


def fit_fusion(
    fitted, fit: pd.DataFrame, validation: pd.DataFrame, frame: pd.DataFrame, columns, config, device, rounds
) -> tuple[fusion.FusionModel, pd.DataFrame]:
    """The score's fusion (models/fusion.py) on the clean benign reference of the whole training set, one row per
    account, and the positives of the fitted and validation dates, both scored by cross-fitted models."""
    reference = clean_reference(frame, config.reference_min_age_days)
    positives = pd.concat([fit, validation])
    positives = positives[positives["label"] == 1]
    targets = pd.concat([reference, positives], ignore_index=True)
    supervised = cross_fitted_supervised(fitted, targets, columns, config, device, rounds)
    values = targets[columns].to_numpy(dtype=np.float64)
    novelty_reference = novelty.fit_reference(values[: len(reference)], columns)
    lake = lake_family_raw(targets, config.score_families, latest=True)
    raw, _ = fusion.family_scores(supervised, values, columns, None, novelty_reference, lake=lake)
    split = len(reference)
    raw = {name: v for name, v in raw.items() if name in config.score_families}
    model = fusion.fit(
        {name: v[:split] for name, v in raw.items()},
        {name: v[split:] for name, v in raw.items()},
        positive_weight=pu.account_weights(positives["account_id"]),
        extras={"novelty": novelty_reference.to_dict()},
        calibrate_on=calibration_mask(reference, config.calibration_resemblance_above),
    )
    return model, reference


# --- promotion ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromotionDecision:
    alias: str
    reason: str
    champion_version: str | None
    champion_pr_auc: float | None


class PromotionRefused(InputError):
    """The gate refuses a candidate no analyst should get (`--force` overrides)."""


def decide_promotion(
    new_pr_auc: float,
    random_pr_auc: float,
    champion: registry.ModelVersionInfo | None,
    champion_pr_auc: float | None,
    elevated_recall: float = 1.0,
    force: bool = False,
) -> PromotionDecision:
    """Pure gate logic on the reference PR-AUC (labelled holdout positives against the clean benign reference;
    `random_pr_auc` is a random ranking's). champion_pr_auc is None when the champion cannot be evaluated on the new
    holdout. A first model that reaches no holdout positive at the elevated tier is refused unless `force`."""
    if champion is None:
        if elevated_recall > 0:
            return PromotionDecision(registry.CHAMPION, "first registered model", None, None)
        why = "first model: its elevated tier reaches none of the holdout's labelled positive accounts"
        if not force:
            raise PromotionRefused(f"{why}; not promoted (rerun promote with --force to make it champion anyway)")
        return PromotionDecision(registry.CHAMPION, f"{why}; promoted with --force", None, None)
    if champion_pr_auc is None:
        if new_pr_auc > random_pr_auc:
            return PromotionDecision(
                registry.CHAMPION,
                f"champion v{champion.version} has a different feature contract or score format and cannot be "
                f"evaluated on this holdout or score the current features; new model beats a random ranking "
                f"({new_pr_auc:.4f} > {random_pr_auc:.4f})",
                champion.version,
                None,
            )
        return PromotionDecision(
            registry.CHALLENGER,
            f"champion v{champion.version} has a different feature contract or score format, but the new model "
            f"does not beat a random ranking ({new_pr_auc:.4f} <= {random_pr_auc:.4f})",
            champion.version,
            None,
        )
    if new_pr_auc > champion_pr_auc:
        return PromotionDecision(
            registry.CHAMPION,
            f"beats champion v{champion.version} on the same holdout positives against the clean benign reference "
            f"(PR-AUC {new_pr_auc:.4f} > {champion_pr_auc:.4f})",
            champion.version,
            champion_pr_auc,
        )
    return PromotionDecision(
        registry.CHALLENGER,
        f"does not beat champion v{champion.version} on the same holdout positives against the clean benign "
        f"reference (PR-AUC {new_pr_auc:.4f} <= {champion_pr_auc:.4f})",
        champion.version,
        champion_pr_auc,
    )


def account_scores(holdout: pd.DataFrame, scores: np.ndarray, label: int) -> np.ndarray:
    """One score per account of the holdout with this label (1: labelled positive, 0: unlabelled): its highest over
    its snapshots with that label."""
    chosen = holdout["label"].to_numpy() == label
    return pd.Series(scores[chosen]).groupby(holdout["account_id"].to_numpy()[chosen]).max().to_numpy()


def champion_on_holdout(
    client, settings: Settings, holdout: pd.DataFrame, columns: list[str], feature_set_version: str
) -> tuple[registry.ModelVersionInfo | None, float | None]:
    """The current champion and its reference PR-AUC on this holdout (None when its feature contract or score format
    differs)."""
    current = registry.alias_version(client, settings.model_name, registry.CHAMPION)
    if current is None:
        return None, None
    if current.feature_columns != columns or current.feature_set_version != feature_set_version:
        log.warning(
            "champion v%s was trained on a different feature contract (%s); it cannot be evaluated on the new holdout",
            current.version,
            current.feature_set_version,
        )
        return current, None
    try:
        model = fusion.parse(current.score_reference, current.version)
    except (MissingInputError, UnsupportedFormatError) as exc:
        log.warning("champion v%s cannot be evaluated on the new holdout: %s", current.version, exc)
        return current, None
    scores = final_predict(registry.load_booster(current), current, holdout, columns)
    return current, reference_average_precision(account_scores(holdout, scores, 1), model.combined.size)


# --- the training run, as three durable steps: fit -> evaluate -> promote -------------------------
#
# Each step leaves its result in MLflow, never in memory, so the steps can run as separate processes (one Airflow
# task each, possibly on different workers) and any of them can be rerun alone:
#   fit       one MLflow run; the booster registered as a new version with the alias `candidate` and the version
#             tag `as_of`; the fit/validation numbers and the training-set reference logged on the run
#   evaluate  the candidate scored on the holdout: metrics, plots and tier bounds logged on the same run; the
#             champion scored on the same holdout; the comparison recorded as version tags
#   promote   the gate: `decide_promotion` on the recorded numbers, alias champion or challenger, the decision and
#             its reason tagged on the version and the run
# `train_and_register` runs the three in one process (`distillguard train`).

CANDIDATE = "candidate"  # alias of the latest fitted version, whatever the gate decides later
TAG_AS_OF = "as_of"
TAG_EVALUATED_AGAINST = "evaluated_against_champion_version"  # "" = there was no champion
TAG_CHAMPION_COMPARABLE = "champion_comparable"  # "false" = different feature contract
TAG_PROMOTION_DECISION = "promotion_decision"


@dataclass(frozen=True)
class TrainResult:
    model_name: str
    version: str
    alias: str
    reason: str
    run_id: str | None  # as MLflow types a model version's run
    device: str
    metrics: dict[str, float]
    champion_pr_auc: float | None
    split: TimeSplit


@dataclass(frozen=True)
class HoldoutEvaluation:
    version: str
    metrics: dict[str, float]
    champion_version: str | None
    champion_pr_auc: float | None  # None: no champion, or one with a different feature contract
    split: TimeSplit


def _evaluate_holdout(holdout: pd.DataFrame, scores: np.ndarray, config: TrainingConfig) -> Evaluation:
    return evaluate(
        holdout["label"].to_numpy(),
        scores,
        account_ids=holdout["account_id"].to_numpy(),
        feature_dates=holdout["feature_date"].to_numpy(),
        campaign_ids=holdout["campaign_id"].to_numpy(),
        benign_segments=holdout["benign_segment"].to_numpy(),
        review_capacity_k=config.review_capacity_k,
    )


def _split(training_set: TrainingSet, config: TrainingConfig):
    frame = training_set.frame
    split = split_by_time(frame["feature_date"], frame["label"], config.holdout_days, config.validation_days)
    fit_mask, validation_mask, holdout_mask = split.masks(frame["feature_date"])
    return split, frame[fit_mask], frame[validation_mask], frame[holdout_mask]


def candidate_version(client, settings: Settings, as_of) -> registry.ModelVersionInfo:
    """The version behind the `candidate` alias, which must have been fitted as of `as_of`."""
    info = registry.alias_version(client, settings.model_name, CANDIDATE)
    if info is None:
        raise MissingInputError(
            f"registered model {settings.model_name!r} has no '{CANDIDATE}' version; "
            f"run `distillguard fit --as-of {as_of.isoformat()}` first"
        )
    fitted_as_of = client.get_model_version(settings.model_name, info.version).tags.get(TAG_AS_OF)
    if fitted_as_of != as_of.isoformat():
        raise MissingInputError(
            f"the '{CANDIDATE}' version v{info.version} of {settings.model_name} was fitted as "
            f"of {fitted_as_of}, not {as_of.isoformat()}; run `distillguard fit --as-of "
            f"{as_of.isoformat()}` first"
        )
    return info


def fit_candidate(training_set: TrainingSet, settings: Settings, config: TrainingConfig) -> registry.ModelVersionInfo:
    """Fit on the fit dates (early stopping on the validation dates), log the run, register the booster as a new
    version and point the `candidate` alias at it."""
    import mlflow
    import xgboost as xgb

    from models.plots import feature_importance_figure, feature_importance_table

    columns = training_set.feature_columns
    check_lake_families(training_set, config.score_families)
    split, fit, validation, holdout = _split(training_set, config)
    device = resolve_device(config.device)
    booster, fit_info, fitted = fit_booster(fit, validation, columns, config, device)
    score_model, reference_rows = fit_fusion(
        fitted, fit, validation, training_set.frame, columns, config, device, fit_info.best_iteration + 1
    )

    client = registry.configure(settings)
    reference = training_set.reference
    with mlflow.start_run(
        experiment_id=registry.experiment_id(client, settings), run_name=f"train-as-of-{training_set.as_of.isoformat()}"
    ):
        mlflow.log_params(
            {
                **config.as_params(),
                "device": device,
                "as_of": training_set.as_of.isoformat(),
                "feature_set_version": training_set.feature_set_version,
                "n_features": len(columns),
                "xgboost_version": xgb.__version__,
                "unlabelled_hidden_positive_share": round(fit_info.pu.hidden_positive_share, 6),
                "unlabelled_label_frequency": round(fit_info.pu.label_frequency, 6),
                "not_model_inputs": ",".join(NOT_MODEL_INPUTS),
                "score": fusion.describe(score_model)[:500],
                "best_iteration": fit_info.best_iteration,
                "fit_dates": f"{split.fit_dates[0]}..{split.fit_dates[-1]}",
                "validation_dates": f"{split.validation_dates[0]}..{split.validation_dates[-1]}",
                "holdout_dates": f"{split.holdout_dates[0]}..{split.holdout_dates[-1]}",
                "split": split.describe()[:500],
                "account_features_version": reference["account_features"]["version"],
                "enforcement_labels_version": reference["enforcement_labels"]["version"],
            }
        )
        mlflow.set_tags({"feature_set_version": training_set.feature_set_version, "device": device})
        counts = {
            "fit_snapshots": len(fit),
            "fit_positives": int(fit["label"].sum()),
            "validation_snapshots": len(validation),
            "validation_positives": int(validation["label"].sum()),
            "holdout_snapshots": len(holdout),
            "holdout_positives": int(holdout["label"].sum()),
            "unresolved_snapshots": reference["unresolved_snapshots"],
            "reference_accounts": len(reference_rows),
            "reference_accounts_decided_benign": int((reference_rows["standing"] == "benign").sum()),
            "calibration_reference_accounts": score_model.combined.size,
            "unlabelled_positive_mass": fit_info.pu.positive_mass_unlabelled,
        }
        mlflow.log_metrics(
            {
                **{k: float(v) for k, v in counts.items()},
                "validation_pr_auc": fit_info.validation_pr_auc,
                "validation_logloss": fit_info.validation_logloss,
            }
        )
        mlflow.log_dict(reference, "training_set_reference.json")
        mlflow.log_dict(
            {"feature_columns": columns, "feature_set_version": training_set.feature_set_version},
            "feature_columns.json",
        )
        importance = feature_importance_table(booster, columns)
        mlflow.log_text(importance.to_csv(index=False), "feature_importance.csv")
        mlflow.log_figure(feature_importance_figure(importance), "plots/feature_importance.png")

        version = registry.log_model_version(
            booster,
            settings=settings,
            feature_columns=columns,
            feature_set_version=training_set.feature_set_version,
            input_example=holdout.head(5),
        )
        mlflow.log_metrics({f"stack_weight/{name}": w for name, w in zip(score_model.families, score_model.weights)})
        registry.set_version_tags(
            client,
            settings.model_name,
            version,
            {
                registry.SCORE_REFERENCE_TAG: score_model.to_json(),
                registry.TAG_TIER_BOUNDS: json.dumps([list(b) for b in fusion.tier_bounds(TIER_BENIGN_FPR)]),
                TAG_AS_OF: training_set.as_of.isoformat(),
                "holdout_dates": f"{split.holdout_dates[0]}..{split.holdout_dates[-1]}",
                "device": device,
            },
        )
        registry.set_alias(client, settings.model_name, CANDIDATE, version)
    return registry.version_info(client, settings.model_name, version)


def guarded_tier_bounds(
    bounds: tuple[tuple[str, float], ...], holdout: pd.DataFrame, scores: np.ndarray
) -> tuple[tuple[str, float], ...]:
    """Each tier's bound raised, where needed, to the score that flags the tier's rate of the clean reference's
    accounts on the holdout dates (`holdout` holds only their rows; one score per account, its highest). The
    reference bound 1 - rate holds for one snapshot per reference account, scored by cross-fitted models; an analyst
    sees an account's highest score over several days, from the final model, so the guard measures exactly that on
    dates the model was not fitted on. The reference leaves out the accounts linked to decisions, so the siblings of
    labelled campaigns do not raise the bounds (the unlabelled holdout's flagged share, logged by the gate, counts
    them). A tier whose rate the holdout cannot resolve (fewer than 1 / rate accounts) keeps its reference bound; a
    higher tier is never easier to reach than a lower one."""
    per_account = account_scores(holdout, scores, 0)
    rates = dict(TIER_BENIGN_FPR)
    names = [name for name, _ in bounds]
    raised: list[float] = []
    for name, bound in bounds:
        rate = rates[name]
        if len(per_account) * rate >= 1:
            bound = max(bound, threshold_at_fpr(np.zeros(len(per_account)), per_account, rate))
        raised.append(float(bound))
    for i in range(len(raised) - 2, -1, -1):  # highest tier first
        raised[i] = max(raised[i], raised[i + 1])
    return tuple(zip(names, raised))


def gate_metrics(
    holdout: pd.DataFrame, result: fusion.FusedScores, model: fusion.FusionModel, bounds
) -> dict[str, float]:
    """What the gate judges, one row per account: the holdout's labelled positive accounts against the clean benign
    reference (PR-AUC, and recall at every tier), and each tier's operating point on the holdout's unlabelled
    accounts (the share flagged: an upper bound of the benign FPR, since hidden campaign accounts are among them).
    Also what each family alone would have scored (the PR-AUC of its p-value on the holdout)."""
    labels = holdout["label"].to_numpy()
    positives = account_scores(holdout, result.score, 1)
    per_account = account_scores(holdout, result.score, 0)
    out = {
        PRIMARY_METRIC: reference_average_precision(positives, model.combined.size),
        "reference_random_pr_auc": len(positives) / (len(positives) + model.combined.size),
        "calibration_reference_accounts": float(model.combined.size),
        "holdout_positive_accounts": float(len(positives)),
    }
    for name, bound in bounds:
        out[f"tier_recall/{name}"] = float(np.mean(positives >= bound))
        out[f"tier_unlabelled_share/{name}"] = float(np.mean(per_account >= bound))
    for j, family in enumerate(result.families):
        out[metric_key(f"pr_auc_family_only/{family}")] = average_precision(labels, -result.p_values[:, j])
    return out


def evaluate_candidate(
    training_set: TrainingSet, settings: Settings, config: TrainingConfig, candidate: registry.ModelVersionInfo
) -> HoldoutEvaluation:
    """Score the candidate and the current champion on the candidate's holdout; log the metrics, plots and tier
    bounds on the candidate's run and record the comparison as version tags for `promote_candidate`."""
    import mlflow

    from models.plots import pr_curve_figure

    columns = training_set.feature_columns
    if candidate.feature_columns != columns or candidate.feature_set_version != training_set.feature_set_version:
        raise MissingInputError(
            f"candidate v{candidate.version} was fitted on another feature contract "
            f"({candidate.feature_set_version}) than this training set "
            f"({training_set.feature_set_version}); refit it"
        )
    client = registry.configure(settings)
    decided = client.get_model_version(settings.model_name, candidate.version).tags.get(TAG_PROMOTION_DECISION)
    if decided:
        # Once the gate has decided, the champion may be this very version; re-comparing would pit it against
        # itself. The recorded evaluation stands.
        raise MissingInputError(
            f"candidate v{candidate.version} was already promoted to @{decided}; fit a new candidate to evaluate again"
        )
    split, _, _, holdout = _split(training_set, config)
    labels = holdout["label"].to_numpy()
    booster = registry.load_booster(candidate)
    result = fused(booster, candidate, holdout, columns)
    scores = result.score
    evaluation = _evaluate_holdout(holdout, scores, config)
    model = fusion.parse(candidate.score_reference, candidate.version)
    reference = clean_reference(training_set.frame, config.reference_min_age_days)
    reference_ids = reference["account_id"][calibration_mask(reference, config.calibration_resemblance_above)]
    in_reference = holdout["account_id"].isin(reference_ids).to_numpy()
    bounds = guarded_tier_bounds(candidate.tier_bounds, holdout[in_reference], scores[in_reference])
    gate = gate_metrics(holdout, result, model, bounds)
    champion, champion_pr_auc = champion_on_holdout(
        client, settings, holdout, columns, training_set.feature_set_version
    )

    with mlflow.start_run(run_id=candidate.run_id):
        mlflow.log_metrics({**evaluation.metrics, **gate})
        if champion_pr_auc is not None:
            mlflow.log_metric("champion_pr_auc_on_this_holdout", champion_pr_auc)
        mlflow.log_dict(json.loads(json.dumps(evaluation.tables(), default=str)), "evaluation/holdout_details.json")
        mlflow.log_figure(
            pr_curve_figure(
                labels,
                scores,
                evaluation.flag_threshold,
                f"holdout {split.holdout_dates[0]}..{split.holdout_dates[-1]}",
            ),
            "plots/pr_curve.png",
        )
        mlflow.log_params({f"tier_bound_{name}": round(bound, 6) for name, bound in bounds})
        mlflow.log_params({f"tier_reference_bound_{name}": round(bound, 6) for name, bound in candidate.tier_bounds})
    registry.set_version_tags(
        client,
        settings.model_name,
        candidate.version,
        {
            "holdout_pr_auc": f"{evaluation.metrics['pr_auc']:.6f}",
            "reference_pr_auc": f"{gate[PRIMARY_METRIC]:.6f}",
            TAG_EVALUATED_AGAINST: champion.version if champion is not None else "",
            TAG_CHAMPION_COMPARABLE: str(champion_pr_auc is not None).lower(),
            registry.TAG_TIER_BOUNDS: json.dumps([[name, bound] for name, bound in bounds]),
        },
    )
    metrics = {**evaluation.metrics, **gate}
    return HoldoutEvaluation(
        version=candidate.version,
        metrics=metrics,
        champion_version=champion.version if champion is not None else None,
        champion_pr_auc=champion_pr_auc,
        split=split,
    )


def promote_candidate(
    settings: Settings, candidate: registry.ModelVersionInfo, force: bool = False
) -> PromotionDecision:
    """The promotion gate on the numbers `evaluate_candidate` recorded (the exact metric values of the run, not
    the rounded tags). Refuses when the candidate was not evaluated or the champion changed since; a candidate
    the gate already decided keeps its decision and no alias moves (safe to rerun)."""
    client = registry.configure(settings)
    name = settings.model_name
    tags = client.get_model_version(name, candidate.version).tags
    if tags.get(TAG_PROMOTION_DECISION):
        log.info("v%s was already decided: @%s", candidate.version, tags[TAG_PROMOTION_DECISION])
        return PromotionDecision(
            tags[TAG_PROMOTION_DECISION],
            tags.get("promotion_reason", ""),
            tags.get(TAG_EVALUATED_AGAINST) or None,
            None,
        )
    if TAG_EVALUATED_AGAINST not in tags:
        raise MissingInputError(
            f"candidate v{candidate.version} has not been evaluated; run `distillguard evaluate "
            f"--as-of {tags.get(TAG_AS_OF, '<date>')}` first"
        )
    current = registry.alias_version(client, name, registry.CHAMPION)
    if (current.version if current else "") != tags[TAG_EVALUATED_AGAINST]:
        raise MissingInputError(
            f"the champion changed since candidate v{candidate.version} was evaluated (was "
            f"v{tags[TAG_EVALUATED_AGAINST] or 'none'}, now v{current.version if current else 'none'}); "
            "rerun evaluate"
        )
    metrics = client.get_run(candidate.run_id).data.metrics
    champion_pr_auc = (
        metrics["champion_pr_auc_on_this_holdout"]
        if current is not None and tags[TAG_CHAMPION_COMPARABLE] == "true"
        else None
    )
    decision = decide_promotion(
        metrics[PRIMARY_METRIC],
        metrics["reference_random_pr_auc"],
        current,
        champion_pr_auc,
        metrics[f"tier_recall/{ELEVATED}"],
        force,
    )
    for key, value in {
        "promotion.decision": decision.alias,
        "promotion.reason": decision.reason,
        "promotion.compared_with_version": decision.champion_version or "",
    }.items():
        client.set_tag(candidate.run_id, key, value)
    registry.set_version_tags(
        client, name, candidate.version, {TAG_PROMOTION_DECISION: decision.alias, "promotion_reason": decision.reason}
    )
    registry.set_alias(client, name, decision.alias, candidate.version)
    return decision


def train_and_register(
    training_set: TrainingSet, settings: Settings, config: TrainingConfig, force: bool = False
) -> TrainResult:
    """fit -> evaluate -> promote in one process."""
    candidate = fit_candidate(training_set, settings, config)
    evaluation = evaluate_candidate(training_set, settings, config, candidate)
    decision = promote_candidate(settings, candidate, force)
    return TrainResult(
        model_name=settings.model_name,
        version=candidate.version,
        alias=decision.alias,
        reason=decision.reason,
        run_id=candidate.run_id,
        device=registry.configure(settings).get_model_version(settings.model_name, candidate.version).tags["device"],
        metrics=evaluation.metrics,
        champion_pr_auc=evaluation.champion_pr_auc,
        split=evaluation.split,
    )
