"""Train an XGBoost classifier on a point-in-time training set, evaluate it on a time-based holdout, log the
run to MLflow, register the model and run the promotion gate.

Training: `hist` trees, `scale_pos_weight` = negatives / positives of the fitted dates, early stopping on the
validation dates' log loss, weighted like the training objective (positives x scale_pos_weight). Log loss rather
than PR-AUC because a ranking metric saturates after a handful of trees on a clear signal and stops training
while scores are still bunched around 0.5, which would make the fixed risk tiers meaningless. The registered
model is cut at the best iteration and not refitted on the validation dates, so the holdout numbers describe
exactly the registered trees. With scale_pos_weight the score is a risk score under balanced classes, not the
probability of extraction in the population; the tiers are set against that score.

Promotion gate: the current champion is scored on the NEW holdout and the two PR-AUCs compared; the new version
becomes `champion` only if it is strictly better, otherwise `challenger`. The first version is champion.
If the champion's feature contract (feature list or feature_set_version) differs from the new model's, it cannot
be evaluated on this holdout and scoring would refuse it against the current features table anyway. Decision:
the new version is promoted in that case provided it beats a random ranking on the holdout (PR-AUC above the
holdout positive rate); otherwise it stays challenger and scoring keeps refusing until a usable model exists.
The decision and its reason are logged on the run and tagged on the model version.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lake.config import Settings
from lake.errors import MissingInputError
from models import novelty, registry, tiers
from models.config import TrainingConfig
from models.metrics import Evaluation, average_precision, evaluate
from models.training_set import TimeSplit, TrainingSet, split_by_time

log = logging.getLogger(__name__)

PRIMARY_METRIC = "pr_auc"


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


def _matrix(frame: pd.DataFrame, columns: list[str], label=None):
    import xgboost as xgb

    return xgb.DMatrix(frame[columns].to_numpy(dtype=np.float64), label=label, feature_names=columns, missing=np.nan)


def predict(booster, frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return booster.predict(_matrix(frame, columns))


def final_predict(booster, version: registry.ModelVersionInfo, frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The score a version gives in production: supervised, combined with its novelty reference (models/novelty)."""
    supervised = predict(booster, frame, columns).astype(np.float64)
    return novelty.final_scores(
        supervised,
        frame[columns].to_numpy(dtype=np.float64),
        columns,
        novelty.parse_reference(version.novelty_reference),
    ).score


@dataclass(frozen=True)
class FitInfo:
    best_iteration: int
    validation_logloss: float
    validation_pr_auc: float
    scale_pos_weight: float
    params: dict[str, object]


def fit_booster(fit: pd.DataFrame, validation: pd.DataFrame, columns: list[str], config: TrainingConfig, device: str):
    import xgboost as xgb

    positives = int(fit["label"].sum())
    negatives = int(len(fit) - positives)
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
    params: dict[str, Any] = {
        "objective": "binary:logistic",
        "eval_metric": ["aucpr", "logloss"],  # the last one drives early stopping
        "tree_method": "hist",
        "device": device,
        "learning_rate": config.learning_rate,
        "max_depth": config.max_depth,
        "min_child_weight": config.min_child_weight,
        "subsample": config.subsample,
        "colsample_bytree": config.colsample_bytree,
        "scale_pos_weight": negatives / positives,
        "seed": config.seed,
    }
    validation_labels = validation["label"].to_numpy()
    validation_matrix = _matrix(validation, columns, validation_labels)
    validation_matrix.set_weight(np.where(validation_labels == 1, params["scale_pos_weight"], 1.0))
    booster = xgb.train(
        params,
        _matrix(fit, columns, fit["label"].to_numpy()),
        num_boost_round=config.num_boost_round,
        evals=[(validation_matrix, "validation")],
        early_stopping_rounds=config.early_stopping_rounds,
        verbose_eval=False,
    )
    best, best_logloss = int(booster.best_iteration), float(booster.best_score)
    booster = booster[: best + 1]
    info = FitInfo(
        best_iteration=best,
        validation_logloss=best_logloss,
        validation_pr_auc=average_precision(validation_labels, predict(booster, validation, columns)),
        scale_pos_weight=negatives / positives,
        params=params,
    )
    return booster, info


# --- promotion ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromotionDecision:
    alias: str
    reason: str
    champion_version: str | None
    champion_pr_auc: float | None


def decide_promotion(
    new_pr_auc: float,
    holdout_positive_rate: float,
    champion: registry.ModelVersionInfo | None,
    champion_pr_auc: float | None,
) -> PromotionDecision:
    """Pure gate logic. champion_pr_auc is None when the champion could not be evaluated on the new holdout."""
    if champion is None:
        return PromotionDecision(registry.CHAMPION, "first registered model", None, None)
    if champion_pr_auc is None:
        if new_pr_auc > holdout_positive_rate:
            return PromotionDecision(
                registry.CHAMPION,
                f"champion v{champion.version} has a different feature contract and cannot be evaluated on this "
                f"holdout or score the current features; new model beats a random ranking "
                f"({new_pr_auc:.4f} > {holdout_positive_rate:.4f})",
                champion.version,
                None,
            )
        return PromotionDecision(
            registry.CHALLENGER,
            f"champion v{champion.version} has a different feature contract, but the new model does not beat a "
            f"random ranking ({new_pr_auc:.4f} <= {holdout_positive_rate:.4f})",
            champion.version,
            None,
        )
    if new_pr_auc > champion_pr_auc:
        return PromotionDecision(
            registry.CHAMPION,
            f"beats champion v{champion.version} on the same holdout (PR-AUC {new_pr_auc:.4f} > {champion_pr_auc:.4f})",
            champion.version,
            champion_pr_auc,
        )
    return PromotionDecision(
        registry.CHALLENGER,
        f"does not beat champion v{champion.version} on the same holdout "
        f"(PR-AUC {new_pr_auc:.4f} <= {champion_pr_auc:.4f})",
        champion.version,
        champion_pr_auc,
    )


def champion_on_holdout(
    client, settings: Settings, holdout: pd.DataFrame, columns: list[str], feature_set_version: str
) -> tuple[registry.ModelVersionInfo | None, float | None]:
    """The current champion and its PR-AUC on this holdout (None when its feature contract differs)."""
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
    booster = registry.load_booster(current)
    return current, average_precision(holdout["label"].to_numpy(), final_predict(booster, current, holdout, columns))


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
    run_id: str | None  # the version's MLflow run (mlflow types it optional)
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
    split, fit, validation, holdout = _split(training_set, config)
    device = resolve_device(config.device)
    try:
        booster, fit_info = fit_booster(fit, validation, columns, config, device)
    except MissingInputError as exc:
        labels = training_set.frame["label"]
        raise MissingInputError(
            f"{exc} (the training set: {int(labels.sum()):,} positives in {len(labels):,} snapshots; {split.describe()})"
        ) from None

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
                "scale_pos_weight": round(fit_info.scale_pos_weight, 6),
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
        # the score reference: the unlabelled snapshots of the fitted and validation dates (novelty uses no label;
        # the supervised percentiles rank the model's scores on the same population)
        unlabelled = tiers.benign_reference(pd.concat([fit, validation]), config)
        novelty_reference = novelty.fit_reference(
            unlabelled[columns].to_numpy(dtype=np.float64), columns, predict(booster, unlabelled, columns)
        )
        registry.set_version_tags(
            client,
            settings.model_name,
            version,
            {
                registry.NOVELTY_REFERENCE_TAG: novelty_reference.to_json(),
                TAG_AS_OF: training_set.as_of.isoformat(),
                "holdout_dates": f"{split.holdout_dates[0]}..{split.holdout_dates[-1]}",
                "device": device,
            },
        )
        registry.set_alias(client, settings.model_name, CANDIDATE, version)
    return registry.version_info(client, settings.model_name, version)


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
    scores = final_predict(registry.load_booster(candidate), candidate, holdout, columns)
    evaluation = _evaluate_holdout(holdout, scores, config)
    calibration = tiers.tier_calibration(holdout, scores, config, novelty.parse_reference(candidate.novelty_reference))
    bounds = calibration.bounds
    champion, champion_pr_auc = champion_on_holdout(
        client, settings, holdout, columns, training_set.feature_set_version
    )

    supervised_only = predict(registry.load_booster(candidate), holdout, columns)
    with mlflow.start_run(run_id=candidate.run_id):
        mlflow.log_metrics(evaluation.metrics)
        # the combination is logged: what the supervised model alone would have scored on this holdout
        mlflow.log_metric("pr_auc_supervised_only", average_precision(labels, supervised_only))
        mlflow.log_params(
            {"score_combination": novelty.COMBINATION if candidate.novelty_reference else "supervised only"}
        )
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
        mlflow.log_params(
            {
                **{f"tier_bound_{name}": round(bound, 6) for name, bound in bounds},
                "tier_calibration": calibration.method,
                "tier_hidden_positive_share": round(calibration.hidden_positive_share, 6),
            }
        )
    registry.set_version_tags(
        client,
        settings.model_name,
        candidate.version,
        {
            "holdout_pr_auc": f"{evaluation.metrics['pr_auc']:.6f}",
            registry.TAG_TIER_BOUNDS: json.dumps([[name, bound] for name, bound in bounds]),
            TAG_EVALUATED_AGAINST: champion.version if champion is not None else "",
            TAG_CHAMPION_COMPARABLE: str(champion_pr_auc is not None).lower(),
        },
    )
    return HoldoutEvaluation(
        version=candidate.version,
        metrics=evaluation.metrics,
        champion_version=champion.version if champion is not None else None,
        champion_pr_auc=champion_pr_auc,
        split=split,
    )


def promote_candidate(settings: Settings, candidate: registry.ModelVersionInfo) -> PromotionDecision:
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
    decision = decide_promotion(metrics[PRIMARY_METRIC], metrics["positive_rate"], current, champion_pr_auc)
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


def train_and_register(training_set: TrainingSet, settings: Settings, config: TrainingConfig) -> TrainResult:
    """fit -> evaluate -> promote in one process."""
    candidate = fit_candidate(training_set, settings, config)
    evaluation = evaluate_candidate(training_set, settings, config, candidate)
    decision = promote_candidate(settings, candidate)
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
