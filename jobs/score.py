"""Score job: the champion model over one day's account_features -> account_risk and cluster_risk, on any
engine.

The two tables are written in separate commits, so the day's `score_runs` marker says they belong together: it
is removed first and committed last. A run killed in between leaves no marker, so `publish` refuses the day and
a backfill reruns it; a reader that trusts the marker never sees one table without the other.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from compute import Engine
from jobs import preconditions
from lake import catalog
from lake.config import Settings
from models.config import ScoringConfig
from models.scoring import ScoreResult

MARKER_TABLE = "score_runs"


def run(
    engine: Engine[Any], settings: Settings, score_date: dt.date, config: ScoringConfig | None = None
) -> ScoreResult:
    preconditions.check_score(settings, score_date)
    clear_marker(settings, score_date)
    result = engine.score(settings, score_date, config)
    write_marker(settings, score_date, result)
    tiers = ", ".join(f"{tier} {n}" for tier, n in result.tier_counts.items())
    print(
        f"scored {result.accounts_scored} accounts for {score_date} with {result.model_name} "
        f"v{result.model_version} ({result.feature_set_version}) on the {engine.key} engine: {tiers}; "
        f"{result.clusters_scored} clusters"
    )
    if result.tier_bounds != result.model_tier_bounds:
        moved = ", ".join(
            f"{name} >= {bound:.6f} (model {model:.6f})"
            for (name, bound), (_, model) in zip(result.tier_bounds, result.model_tier_bounds, strict=True)
        )
        print(f"tier bounds moved by the model version's audits (distillguard review audit): {moved}")
    return result


def clear_marker(settings: Settings, score_date: dt.date) -> None:
    """Remove the day's marker (one commit): from here until write_marker, the day counts as not scored."""
    catalog.write_arrow(settings, MARKER_TABLE, catalog.table(MARKER_TABLE).schema.empty_table(), score_date)


def write_marker(settings: Settings, score_date: dt.date, result: ScoreResult) -> None:
    """Commit the day's marker, after both risk tables: the day is complete."""
    marker = {
        "score_date": [score_date],
        "finished_at": [dt.datetime.now(dt.UTC)],
        "accounts": [result.accounts_scored],
        "clusters": [result.clusters_scored],
        "model_name": [result.model_name],
        "model_version": [str(result.model_version)],
    }
    catalog.write_arrow(settings, MARKER_TABLE, pa.table(marker), score_date)


def scored(settings: Settings, score_date: dt.date) -> bool:
    """The day's last score run finished: its marker is there."""
    return bool(preconditions.partition_rows(settings, MARKER_TABLE, score_date))


def finished_at(settings: Settings, score_date: dt.date) -> dt.datetime | None:
    """When the day's last complete score run finished (its marker), or None when the day counts as not scored."""
    if not catalog.exists(settings, MARKER_TABLE):
        return None
    marker = catalog.read_arrow(settings, MARKER_TABLE, filters=[("score_date", "=", score_date)])
    return max(marker.column("finished_at").to_pylist(), default=None)
