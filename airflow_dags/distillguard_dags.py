"""distillguard on Airflow 3: the nightly chain and the retrain chain. The DAGs only wire `distillguard` CLI
commands (see distillguard_wiring.py for how a step becomes a task and where settings come from).

distillguard_nightly   one run per day D (data interval [D 02:00, D+1 02:00) UTC, so ds = D and the run starts
                       two hours after the day closed): the steps of jobs/steps.py in order (ingest -> aggregate
                       -> cluster -> features -> families -> score -> campaigns), then quality_gate -> publish ->
                       review_audit. The gate runs before publish so a broken day is never released to analysts;
                       review_audit draws the published day's tier audit (`distillguard review audit`). Every step replaces its own date partition, so reruns and
                       `airflow dags backfill` over a range are idempotent. One run at a time and aggregate
                       depends on the previous day's aggregate: the 7/28-day windows read earlier days' aggregates,
                       so days must complete in order.
distillguard_retrain   weekly (Monday 04:00 UTC) or when new enforcement labels land (the labels Asset; weekly only
                       where [distillguard] retrain_on_labels = false):
                       training_set -> fit -> evaluate -> promote, as of the `as_of` param or the day before the run.
Both run their steps against one Spark Connect server per run, started by a setup task (engine_start) and stopped
by a teardown task (engine_stop) that runs even when a step failed (distillguard_wiring.around_engine).
"""

from __future__ import annotations

import datetime as dt
import itertools

from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, CronDataIntervalTimetable, CronTriggerTimetable, Param
from distillguard_wiring import NIGHTLY_STEPS, RETRAIN_STEPS, Deployment, around_engine, common_params, step_task

from jobs.steps import LABELS_ASSET_NAME

DEFAULT_ARGS = {
    "owner": "distillguard",
    "retries": 2,
    # long enough for a late gateway export to land before ingest tries again
    "retry_delay": dt.timedelta(minutes=10),
}
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def labels_asset(deployment: Deployment) -> Asset:
    """The enforcement_labels Delta table. Whatever loads analyst decisions into it declares this Asset as an
    outlet or posts an asset event through the REST API (the console and `review decide` do, where
    DG_AIRFLOW_API_URL is set: console/airflow_events.py), so the retrain DAG runs on new labels."""
    return Asset(name=LABELS_ASSET_NAME, uri=deployment.labels_uri)


def build_nightly(deployment: Deployment) -> DAG:
    with DAG(
        dag_id="distillguard_nightly",
        description=" -> ".join(step.command for step in NIGHTLY_STEPS) + ", one day",
        schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
        start_date=START,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        params=common_params(deployment),
        tags=["distillguard"],
    ) as dag:
        task_args = {
            # features D reads the aggregates of D-27..D: a day whose predecessor failed must not run
            "aggregate": {"depends_on_past": True},
        }
        tasks = {step.task_id: step_task(step, deployment, **task_args.get(step.task_id, {})) for step in NIGHTLY_STEPS}
        # one chain in declared order: features read the day's clusters, score reads the day's features
        chain = [tasks[step.task_id] for step in NIGHTLY_STEPS]
        for upstream, downstream in itertools.pairwise(chain):
            upstream >> downstream
        around_engine(chain[0], chain[-1], deployment)
    return dag


def retrain_schedule(deployment: Deployment):
    weekly = CronTriggerTimetable("0 4 * * 1", timezone="UTC")
    if not deployment.retrain_on_labels:
        return weekly
    return AssetOrTimeSchedule(timetable=weekly, assets=[labels_asset(deployment)])


def build_retrain(deployment: Deployment) -> DAG:
    with DAG(
        dag_id="distillguard_retrain",
        description="training set -> fit -> evaluate -> promotion gate",
        schedule=retrain_schedule(deployment),
        start_date=START,
        catchup=False,
        # two retrains at once would race for the `candidate` and `champion` aliases
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        params={
            **common_params(deployment),
            "as_of": Param(
                None,
                type=["null", "string"],
                format="date",
                description="train as of this date (YYYY-MM-DD); default: the day before the run",
            ),
        },
        tags=["distillguard"],
    ) as dag:
        previous = first = None
        for step in RETRAIN_STEPS:
            current = step_task(step, deployment)
            if previous is not None:
                previous >> current
            if first is None:
                first = current
            previous = current
        around_engine(first, previous, deployment)
    return dag


DEPLOYMENT = Deployment.from_airflow_conf()
nightly_dag = build_nightly(DEPLOYMENT)
retrain_dag = build_retrain(DEPLOYMENT)
