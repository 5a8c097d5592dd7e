"""The Airflow DAGs with real Airflow: DagBag import, the argv builder, GPU routing, and both DAGs run end to end
with `dag.test()` on a small simulated lake (embedded engine), checking the tables they produced.

Airflow reads its configuration when first imported, so AIRFLOW_HOME and friends are set by the `airflow_env`
fixture before any Airflow import; Airflow is imported inside fixtures and tests only.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import pytest

from lake import catalog
from lake.config import load_settings
from models import tier_audit
from models.config import TIERS

pytestmark = pytest.mark.slow

DAGS_FOLDER = Path(__file__).resolve().parents[1] / "airflow_dags"
START = dt.date(2026, 3, 1)
DAYS = 10
ACCOUNTS = 800
NIGHTLY_DATE = START + dt.timedelta(days=DAYS - 1)  # the day the nightly DAG processes
CHAMPION_AS_OF = NIGHTLY_DATE - dt.timedelta(days=1)  # the champion the nightly scores with
UTC = dt.UTC


def _utc(day: dt.date, hour: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), UTC)


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    if "airflow" in sys.modules:
        pytest.fail(
            "airflow was imported before this module configured AIRFLOW_HOME; the tests would use "
            "the developer's ~/airflow"
        )
    root = tmp_path_factory.mktemp("airflow")
    env = {
        "AIRFLOW_HOME": str(root / "home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__DISTILLGUARD__LAKE_URI": str(root / "lake"),
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    sys.path.insert(0, str(DAGS_FOLDER))  # what the DAG processor does with the bundle folder
    from airflow.utils import db

    db.initdb()
    settings = load_settings(
        lake_root=str(root / "lake"),
        ground_truth_root=str(root / "truth"),
        mlflow_tracking_uri=f"sqlite:///{root}/mlflow/mlflow.db",
        spark_remote=None,
    )
    yield settings
    sys.path.remove(str(DAGS_FOLDER))
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def dagbag(airflow_env):
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=str(DAGS_FOLDER), bundle_path=DAGS_FOLDER)


def _run_conf(settings) -> dict[str, str]:
    return {"lake_uri": settings.lake_root, "mlflow_uri": settings.mlflow_tracking_uri}


# --- structure ------------------------------------------------------------------------------------


def test_dagbag_imports_both_dags_with_retries_and_timeouts_on_every_task(dagbag, airflow_env):
    from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable

    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == {"distillguard_nightly", "distillguard_retrain"}
    nightly, retrain = dagbag.dags["distillguard_nightly"], dagbag.dags["distillguard_retrain"]
    engine = {"engine_start", "engine_stop"}
    assert (
        set(nightly.task_ids)
        == {
            "ingest",
            "aggregate",
            "cluster",
            "features",
            "families",
            "score",
            "campaigns",
            "quality_gate",
            "publish",
            "review_audit",
        }
        | engine
    )
    assert set(retrain.task_ids) == {"training_set", "fit", "evaluate", "promote"} | engine
    # one engine per run: set up before the first step, torn down after the last one whatever its outcome
    for dag, first, last in ((nightly, "ingest", "review_audit"), (retrain, "training_set", "promote")):
        start, stop = dag.get_task("engine_start"), dag.get_task("engine_stop")
        assert start.is_setup and stop.is_teardown
        assert dag.get_task(first).upstream_task_ids == {"engine_start"}
        assert stop.upstream_task_ids == {last, "engine_start"}
    for dag in (nightly, retrain):
        assert dag.max_active_runs == 1
        for task in dag.tasks:
            assert task.retries >= 1, task.task_id
            assert task.execution_timeout is not None and task.execution_timeout > dt.timedelta(0), task.task_id
    # the gate protects publish: publish only runs after the gate
    assert nightly.get_task("publish").upstream_task_ids == {"quality_gate"}
    # the tier audit is drawn from what was published
    assert nightly.get_task("review_audit").upstream_task_ids == {"publish"}
    assert nightly.get_task("quality_gate").upstream_task_ids == {"campaigns"}
    assert nightly.get_task("campaigns").upstream_task_ids == {"score"}
    # one chain in jobs/steps.py order: features read the day's clusters
    assert nightly.get_task("features").upstream_task_ids == {"cluster"}
    assert nightly.get_task("cluster").upstream_task_ids == {"aggregate"}
    assert nightly.get_task("families").upstream_task_ids == {"features"}
    assert nightly.get_task("score").upstream_task_ids == {"families"}
    assert nightly.get_task("aggregate").depends_on_past
    assert [t.task_id for t in retrain.topological_sort()] == [
        "engine_start",
        "training_set",
        "fit",
        "evaluate",
        "promote",
        "engine_stop",
    ]
    assert isinstance(nightly.timetable, CronDataIntervalTimetable)
    assert isinstance(retrain.timetable, AssetOrTimeSchedule)
    labels = Path(airflow_env.lake_root).resolve().as_uri() + "/enforcement_labels"
    assert labels in repr(retrain.timetable.asset_condition)


def test_the_retrain_dag_can_run_weekly_only_so_tier_audits_outlive_a_day(airflow_env, monkeypatch):
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable
    from distillguard_dags import build_retrain
    from distillguard_wiring import Deployment

    monkeypatch.setenv("AIRFLOW__DISTILLGUARD__RETRAIN_ON_LABELS", "false")
    deployment = Deployment.from_airflow_conf()
    assert not deployment.retrain_on_labels
    weekly = build_retrain(deployment).timetable
    assert isinstance(weekly, CronTriggerTimetable) and not isinstance(weekly, AssetOrTimeSchedule)
    assert weekly.expression == "0 4 * * 1"
    assert isinstance(build_retrain(Deployment()).timetable, AssetOrTimeSchedule)
    monkeypatch.setenv("AIRFLOW__DISTILLGUARD__RETRAIN_ON_LABELS", "sometimes")
    with pytest.raises(ValueError, match="retrain_on_labels must be true or false, got 'sometimes'"):
        Deployment.from_airflow_conf()


def _render(template_argv: list[str], params: dict, variables: dict, ds: str, engine_url: str | None = None):
    import jinja2

    class Var:
        class value:
            @staticmethod
            def get(key, default=None):
                return variables.get(key, default)

    class TaskInstance:
        @staticmethod
        def xcom_pull(task_ids, key="return_value"):
            assert task_ids == "engine_start"
            started = {"return_value": engine_url, "shuffle_partitions": 8 if engine_url else None}
            return started[key]

    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return [env.from_string(item).render(params=params, var=Var, ds=ds, ti=TaskInstance) for item in template_argv]


def test_argv_builder_renders_to_a_cli_command_with_params_over_variables_over_environment(airflow_env):
    from distillguard_wiring import distillguard_argv

    from jobs.cli import build_parser, settings_from_args

    template = distillguard_argv("score")
    assert template[-3:] == ["score", "--date", "{{ ds }}"]
    params = {"engine": "pandas", "lake_uri": "/data/lake", "mlflow_uri": "", "spark_remote": ""}
    variables = {"distillguard_lake_uri": "/ignored/lake", "distillguard_mlflow_uri": "sqlite:////m/mlflow.db"}
    argv = _render(template, params, variables, "2026-03-10", engine_url="sc://127.0.0.1:41234")
    args = build_parser().parse_args(argv)
    assert (args.command, args.date) == ("score", dt.date(2026, 3, 10))
    settings = settings_from_args(args)
    assert settings.lake_root == "/data/lake"  # the param wins over the Variable
    assert settings.mlflow_tracking_uri == "sqlite:////m/mlflow.db"  # empty param: the Variable
    assert settings.spark_remote == "sc://127.0.0.1:41234"  # the run's engine (engine_start's URL)
    assert settings.shuffle_partitions == 8  # its own server: what an embedded engine would use
    assert settings.engine == "pandas"
    variables["distillguard_shuffle_partitions"] = "3"
    assert (
        settings_from_args(
            build_parser().parse_args(_render(template, params, variables, "2026-03-10"))
        ).shuffle_partitions
        == 3
    )
    # nothing set anywhere: empty flags, the worker's environment decides
    bare = build_parser().parse_args(_render(template, {**params, "lake_uri": "", "engine": ""}, {}, "2026-03-10"))
    assert (bare.lake, bare.mlflow_uri, bare.remote, bare.engine) == ("", "", "", "")
    # a command with a subcommand and a flag of its own: the nightly tier audit draw, its size a Variable
    from distillguard_wiring import NIGHTLY_STEPS

    [step] = [step for step in NIGHTLY_STEPS if step.task_id == "review_audit"]
    audit = build_parser().parse_args(_render(step.argv(), params, variables, "2026-03-10"))
    assert (audit.command, audit.review_command, audit.date) == ("review", "audit", dt.date(2026, 3, 10))
    assert audit.per_stratum is None  # the CLI's default
    variables["distillguard_audit_per_stratum"] = "12"
    assert build_parser().parse_args(_render(step.argv(), params, variables, "2026-03-10")).per_stratum == 12


def test_gpu_routing_is_configurable_for_both_executors(airflow_env):
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from distillguard_dags import build_nightly, build_retrain
    from distillguard_wiring import NIGHTLY_STEPS, RETRAIN_STEPS, Deployment

    gpu_steps = {"aggregate", "features", "score"}
    local = build_nightly(Deployment(engine="cudf", gpu_queue="gpu-a100", gpu_pool="gpu_slots"))
    for task in local.tasks:
        routed = task.task_id in gpu_steps
        assert (task.queue == "gpu-a100") is routed, task.task_id
        assert (task.pool == "gpu_slots") is routed, task.task_id
    cpu_only = build_nightly(Deployment(engine="embedded", gpu_queue="gpu-a100"))
    assert {t.queue for t in cpu_only.tasks} == {"default"}

    deployment = Deployment(
        engine="cudf",
        executor="kubernetes",
        k8s_image="registry/distillguard:1",
        k8s_gpu_node_selector={"accelerator": "nvidia-h100"},
    )
    for dag in (build_nightly(deployment), build_retrain(deployment)):
        for task in dag.tasks:
            if task.task_id in ("engine_start", "engine_stop"):
                continue  # they only hand the configured Spark Connect URL on: no server on a pod's loopback
            assert isinstance(task, KubernetesPodOperator), task.task_id
            assert task.cmds == ["distillguard"] and task.image == "registry/distillguard:1"
            step = {step.task_id: step for step in (*NIGHTLY_STEPS, *RETRAIN_STEPS)}[task.task_id]
            assert task.arguments == step.argv() and task.name.startswith("distillguard-"), task.task_id
            resources = task.container_resources
            if task.task_id in gpu_steps | {"fit"}:
                assert resources.limits == {"nvidia.com/gpu": "1"}, task.task_id
                assert task.node_selector == {"accelerator": "nvidia-h100"}
                assert [t.key for t in task.tolerations] == ["nvidia.com/gpu"]
            else:
                assert resources is None or not (resources.limits or {}), task.task_id


def test_no_server_is_started_where_a_spark_connect_url_is_configured_or_steps_run_elsewhere(airflow_env, monkeypatch):
    from distillguard_wiring import Deployment, engine_start, starts_engine

    # a cluster deployment: the configured URL, as it is (no Airflow context is even needed)
    assert engine_start("sc://spark-connect.distillguard:15002", start_server=True) == (
        "sc://spark-connect.distillguard:15002"
    )
    assert engine_start("", start_server=False) == ""  # every step embeds its own engine, as before
    monkeypatch.setenv("DG_SPARK_REMOTE", "sc://workers-cluster:15002")  # configured in the worker's environment
    assert engine_start("", start_server=True) == "sc://workers-cluster:15002"
    monkeypatch.delenv("DG_SPARK_REMOTE")
    assert starts_engine(Deployment())
    assert not starts_engine(Deployment(executor="kubernetes"))  # a pod cannot reach another pod's loopback
    assert not starts_engine(Deployment(engine="cudf"))  # GPU steps run on other workers


# --- end to end -----------------------------------------------------------------------------------


def _run_engine(run) -> tuple[str, int | None]:
    """The URL the run's steps connected to and the pid of the server engine_start started (None if none)."""
    start = run.get_task_instance("engine_start")
    return start.xcom_pull(task_ids="engine_start"), start.xcom_pull(task_ids="engine_start", key="pid")


def _assert_stopped(url: str, pid: int) -> None:
    import socket

    from jobs.engine_server import _is_engine_server
    from lake.remote import spark_connect_address

    assert not _is_engine_server(pid)
    with socket.socket() as sock:
        assert sock.connect_ex(spark_connect_address(url)) != 0, f"{url} still accepts connections"


@pytest.fixture(scope="module")
def lake_with_champion(airflow_env):
    """A simulated lake, ingested/aggregated/featurized up to the day before NIGHTLY_DATE, and a champion."""
    from jobs import nightly, train
    from lake.dates import date_range
    from lake.engine import spark_session
    from simulator import simulate

    settings = airflow_env
    simulate.run(settings, start=START, days=DAYS, accounts=ACCOUNTS, seed=7)
    for day in date_range(START, DAYS - 1):
        nightly.run(settings, day, steps=["ingest", "aggregate", "cluster", "features", "families"])
    with spark_session(settings) as spark:
        champion = train.run(spark, settings, CHAMPION_AS_OF)
    assert (champion.version, champion.alias) == ("1", "champion")
    return settings


@pytest.fixture(scope="module")
def nightly_run(dagbag, lake_with_champion):
    settings = lake_with_champion
    run = dagbag.dags["distillguard_nightly"].test(logical_date=_utc(NIGHTLY_DATE), run_conf=_run_conf(settings))
    return settings, run


def test_nightly_dag_runs_one_day_end_to_end_and_publishes_its_risk_table(nightly_run):
    settings, run = nightly_run
    assert run.state == "success"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert set(states.values()) == {"success"}, states
    # every step ran against the one server the run started, which is gone now
    url, pid = _run_engine(run)
    assert url.startswith("sc://127.0.0.1:") and pid is not None
    _assert_stopped(url, pid)

    features = catalog.read_arrow(settings, "account_features", filters=[("feature_date", "=", NIGHTLY_DATE)])
    risk = catalog.read_arrow(settings, "account_risk", filters=[("score_date", "=", NIGHTLY_DATE)]).to_pandas()
    assert len(risk) == features.num_rows > 0
    assert risk["account_id"].is_unique
    assert set(risk["tier"]) <= set(TIERS) and "low" in set(risk["tier"])
    assert risk["score"].between(0, 1).all()
    assert set(risk["model_version"]) == {"1"}
    ingested = catalog.read_arrow(settings, "ingest_runs", filters=[("event_date", "=", NIGHTLY_DATE)])
    assert ingested.num_rows == 1
    assert catalog.read_arrow(settings, "account_clusters", filters=[("feature_date", "=", NIGHTLY_DATE)]).num_rows > 0

    publications = catalog.read_arrow(settings, "risk_publications").to_pandas()
    assert list(publications["score_date"]) == [NIGHTLY_DATE]
    published = publications.iloc[0]
    assert (published["accounts"], published["model_version"]) == (len(risk), "1")
    tier_counts = risk["tier"].value_counts()
    for tier in TIERS:
        assert published[f"{tier}_accounts"] == tier_counts.get(tier, 0), tier
    clusters = catalog.read_arrow(settings, "cluster_risk", filters=[("score_date", "=", NIGHTLY_DATE)])
    assert published["clusters"] == clusters.num_rows > 0
    # the published day's tier audit, drawn from its undecided scored accounts for analysts to decide
    drawn = tier_audit.day_draw(settings, NIGHTLY_DATE)
    assert 0 < len(drawn) <= tier_audit.PER_STRATUM * len(tier_audit.STRATA)
    assert set(drawn["model_version"]) == {"1"} and drawn["account_id"].isin(risk["account_id"]).all()


def test_a_failed_step_still_stops_the_runs_engine(lake_with_champion):
    from distillguard_dags import build_nightly
    from distillguard_wiring import Deployment

    settings = lake_with_champion
    dag = build_nightly(Deployment(lake_uri=settings.lake_root))
    for task in dag.tasks:
        task.retries = 0  # the failure is final at once instead of after two 10-minute retry delays
    no_raw_data = START - dt.timedelta(days=30)  # ingest fails: a missing upstream (exit 4)
    run = dag.test(logical_date=_utc(no_raw_data), run_conf=_run_conf(settings))
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "failed"
    assert (states["engine_start"], states["ingest"], states["publish"]) == ("success", "failed", "upstream_failed")
    assert states["review_audit"] == "upstream_failed"
    assert states["engine_stop"] == "success", states
    url, pid = _run_engine(run)
    assert url.startswith("sc://127.0.0.1:") and pid is not None
    _assert_stopped(url, pid)


def test_retrain_dag_fits_evaluates_and_gates_a_new_version(dagbag, nightly_run):
    from models import registry

    settings, _ = nightly_run
    as_of = NIGHTLY_DATE  # the run is created the next morning; as_of defaults to the day before the run
    run = dagbag.dags["distillguard_retrain"].test(
        run_after=_utc(NIGHTLY_DATE + dt.timedelta(days=1), 4), run_conf=_run_conf(settings)
    )
    assert run.state == "success"
    assert {ti.task_id: ti.state for ti in run.get_task_instances()} == dict.fromkeys(
        ("engine_start", "training_set", "fit", "evaluate", "promote", "engine_stop"), "success"
    )
    _assert_stopped(*_run_engine(run))

    stored = catalog.read_arrow(settings, "training_sets", filters=[("as_of", "=", as_of)])
    assert stored.num_rows > 0 and sum(stored.column("label").to_pylist()) > 0

    client = registry.configure(settings)
    candidate = client.get_model_version_by_alias(settings.model_name, "candidate")
    assert str(candidate.version) == "2"
    tags = candidate.tags
    assert tags["as_of"] == as_of.isoformat()
    assert tags["evaluated_against_champion_version"] == "1"
    assert tags["promotion_decision"] in ("champion", "challenger")
    assert str(client.get_model_version_by_alias(settings.model_name, tags["promotion_decision"]).version) == "2"
    metrics = client.get_run(candidate.run_id).data.metrics
    for key in ("pr_auc", "recall_at_benign_fpr_0.01", "precision_at_k", "champion_pr_auc_on_this_holdout"):
        assert key in metrics, key
    assert 0 < metrics["pr_auc"] <= 1


def test_in_process_runner_fails_without_retry_on_a_failed_gate_and_retries_other_errors(lake_with_champion):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
    from distillguard_wiring import run_cli

    settings = lake_with_champion
    flags = ["--lake", settings.lake_root, "--mlflow-uri", settings.mlflow_tracking_uri, "--remote", "", "--engine", ""]
    # a day that was never scored: the gate's risk_partition check fails
    with pytest.raises(AirflowFailException, match="quality gate failed"):
        run_cli([*flags, "quality-gate", "--date", START.isoformat()])
    # a day with no raw data: a missing upstream (exit 4), retried by Airflow (the export may be late)
    with pytest.raises(AirflowException, match="exited with status 4") as raised:
        run_cli([*flags, "ingest", "--date", (START - dt.timedelta(days=30)).isoformat()])
    assert not isinstance(raised.value, AirflowFailException)
