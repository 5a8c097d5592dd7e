"""Train job: point-in-time training set as of a date -> XGBoost -> MLflow run, registered version, gate."""

from __future__ import annotations

import datetime as dt

from lake.config import Settings
from models.config import TrainingConfig
from models.train import TrainResult, train_and_register
from models.training_set import build_training_set


def run(spark, settings: Settings, as_of: dt.date, config: TrainingConfig | None = None) -> TrainResult:
    config = config or TrainingConfig()
    training_set = build_training_set(spark, settings, as_of, config)
    result = train_and_register(training_set, settings, config)
    metrics = result.metrics
    print(f"trained {result.model_name} v{result.version} on {result.device} as of {as_of}: "
          f"PR-AUC {metrics['pr_auc']:.4f}, recall@1% benign FPR {metrics['recall_at_benign_fpr_0.01']:.3f}, "
          f"precision@{config.review_capacity_k} {metrics['precision_at_k']:.3f} "
          f"-> @{result.alias} ({result.reason})")
    return result
