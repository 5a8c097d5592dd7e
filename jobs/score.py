"""Score job: the champion model over one day's account_features -> account_risk and cluster_risk, on Spark or
a frame engine."""

from __future__ import annotations

import datetime as dt

from jobs import preconditions
from lake.config import Settings
from lake.frames import FrameEngine
from models.config import ScoringConfig
from models.scoring import ScoreResult


def run(engine, settings: Settings, score_date: dt.date, config: ScoringConfig | None = None) -> ScoreResult:
    """`engine` is a SparkSession or a FrameEngine (lake/engine.py compute_engine)."""
    preconditions.check_score(settings, score_date)
    if isinstance(engine, FrameEngine):
        from models.frame_scoring import score_day
    else:
        from models.scoring import score_day
    result = score_day(engine, settings, score_date, config)
    tiers = ", ".join(f"{tier} {n}" for tier, n in result.tier_counts.items())
    print(f"scored {result.accounts_scored} accounts for {score_date} with {result.model_name} "
          f"v{result.model_version} ({result.feature_set_version}) on the {settings.engine} engine: {tiers}; "
          f"{result.clusters_scored} clusters")
    return result
