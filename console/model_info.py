"""The champion model as the console's Model page shows it: version, operating points, and a link to its run."""

from __future__ import annotations

from lake.config import Settings
from models import registry
from models.config import LOWEST_TIER, TIER_BENIGN_FPR


def champion_summary(settings: Settings, mlflow_ui_url: str) -> dict | None:
    """None when no version holds the champion alias."""
    client = registry.configure(settings)
    info = registry.alias_version(client, settings.model_name, registry.CHAMPION)
    if info is None:
        return None
    run = client.get_run(info.run_id) if info.run_id else None
    metrics = run.data.metrics if run else {}
    bounds = dict(info.tier_bounds)
    operating_points = []
    for tier, benign_fpr in TIER_BENIGN_FPR:
        # what the tier delivers: the share of the holdout's labelled positive accounts at or above its bound
        operating_points.append(
            {
                "tier": tier,
                "score_from": bounds.get(tier),
                "benign_fpr": benign_fpr,
                "recall": metrics.get(f"tier_recall/{tier}"),
            }
        )
    operating_points.append({"tier": LOWEST_TIER, "score_from": 0.0, "benign_fpr": None, "recall": None})
    base = mlflow_ui_url.rstrip("/")
    experiment_id = run.info.experiment_id if run else None
    return {
        "name": info.name,
        "version": info.version,
        "run_id": info.run_id,
        "feature_set_version": info.feature_set_version,
        "features": len(info.feature_columns),
        "operating_points": operating_points,
        "headline": {
            key: metrics.get(key) for key in ("pr_auc", "precision_at_k", "campaign_recall", "flagged_benign_fpr")
        },
        "run_url": f"{base}/#/experiments/{experiment_id}/runs/{info.run_id}" if run else None,
        "experiment_url": f"{base}/#/experiments/{experiment_id}/runs" if run else None,
        "experiment_kind": (
            client.get_experiment(experiment_id).tags.get(registry.TAG_EXPERIMENT_KIND) if run else None
        ),
    }
