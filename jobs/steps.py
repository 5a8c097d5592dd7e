"""The nightly steps, in order, and which of them a frame engine (cuDF / pandas) runs: the one list the CLI,
`distillguard nightly`, the demo and the Airflow DAG read.

ingest reads raw logs and prompt text once; aggregate reduces a day of bronze to account_daily; cluster links
accounts from account_daily (payment, IP prefix) and must come before features, whose cluster features read the
day's clusters; families reads the link graph, the decisions and the daily statistics, and score fuses its
scores with the model's over the day's features; campaigns carries the day's clusters into campaigns that
persist across days (it reads clusters, not scores, so it also runs on days nothing is scored yet).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    name: str
    description: str
    frame_engine: bool  # True: runs on --engine cudf/pandas when one is configured; else always on Spark
    output: str  # the table whose partition for the day says the step is done (backfill skips done days)


NIGHTLY_STEPS: tuple[Step, ...] = (
    Step(
        "ingest",
        "validate one day of raw requests into bronze (+ quarantine) and compute per-request signals",
        frame_engine=False,
        output="ingest_runs",
    ),
    Step(
        "aggregate", "per account-day statistics for one day (account_daily)", frame_engine=True, output="account_daily"
    ),
    Step(
        "cluster",
        "link accounts active in the trailing week and find connected components (account_clusters)",
        frame_engine=False,
        output="account_clusters",
    ),
    Step(
        "features",
        "1/7/28-day, account and cluster features for one day (account_features)",
        frame_engine=True,
        output="account_features",
    ),
    Step(
        "families",
        "propagation from and resemblance to decided accounts, peer-group novelty and switch scores for one day "
        "(family_scores)",
        frame_engine=False,
        output="family_scores",
    ),
    # score_runs: the marker jobs/score.py commits after both risk tables
    Step(
        "score",
        "score one day's features with the champion model (account_risk, cluster_risk)",
        frame_engine=True,
        output="score_runs",
    ),
    Step(
        "campaigns",
        "match the day's clusters to the campaigns of earlier days (campaign_days, campaigns)",
        frame_engine=False,
        output="campaign_days",
    ),
)
STEPS_BY_NAME = {step.name: step for step in NIGHTLY_STEPS}
# The Airflow Asset of the enforcement_labels table: the retrain DAG is scheduled on it (airflow_dags/) and a
# review session posts an event for it through Airflow's REST API (console/airflow_events.py).
LABELS_ASSET_NAME = "distillguard_enforcement_labels"
STEP_NAMES = tuple(STEPS_BY_NAME)


def runs_on_frame_engine(name: str) -> bool:
    step = STEPS_BY_NAME.get(name)
    return step is not None and step.frame_engine
