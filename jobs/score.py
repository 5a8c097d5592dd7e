"""Score job: the champion model over one day's account_features -> account_risk and cluster_risk, on any
engine."""

from __future__ import annotations

import datetime as dt
from typing import Any

from compute import Engine
from jobs import preconditions
from lake.config import Settings
from models.config import ScoringConfig
from models.scoring import ScoreResult


def run(
    engine: Engine[Any], settings: Settings, score_date: dt.date, config: ScoringConfig | None = None
) -> ScoreResult:
    preconditions.check_score(settings, score_date)
    result = engine.score(settings, score_date, config)
    tiers = ", ".join(f"{tier} {n}" for tier, n in result.tier_counts.items())
    print(
        f"scored {result.accounts_scored} accounts for {score_date} with {result.model_name} "
        f"v{result.model_version} ({result.feature_set_version}) on the {engine.key} engine: {tiers}; "
        f"{result.clusters_scored} clusters"
    )
    return result
