"""How the distillguard DAGs turn jobs into Airflow tasks. No feature or model logic lives here.

One argv builder, two executors:
- every task is one `distillguard` CLI command whose argv (`distillguard_argv`) is a list of Jinja templates
  rendered at run time from the run's params, Airflow Variables and the logical date;
- `local` executor: a TaskFlow task calls `jobs.cli.main(argv)` in the worker process;
- `kubernetes` executor: a KubernetesPodOperator runs the same argv as `distillguard <argv>` in a pod.
One engine per run: `around_engine` wraps a DAG's steps in a setup task that starts one Spark Connect server
(jobs/engine_server.py) and a teardown task that stops it, which Airflow runs even when a step failed. Every step
connects to it with `--remote`, so no step pays for starting an engine of its own. Where a Spark Connect URL is
configured (a cluster) no server is started and the steps connect to that URL; where steps run on other machines
(the kubernetes executor, GPU steps routed to GPU workers) none is started either, since a server on one worker's
loopback cannot serve another.

Run-time settings (per run, no redeploy), first one set wins:
  param `lake_uri`     > Variable `distillguard_lake_uri`     > the worker's DG_LAKE        > ./lake_data
  param `mlflow_uri`   > Variable `distillguard_mlflow_uri`   > the worker's MLFLOW_TRACKING_URI > SQLite in the lake
  param `spark_remote` > Variable `distillguard_spark_remote` > the worker's DG_SPARK_REMOTE > the server the run's
                         engine_start task started (local executor, no GPU routing) > an engine per step
  param `engine` (default: [distillguard] engine)             > the worker's DG_ENGINE      > embedded
  Variable `distillguard_shuffle_partitions` > the worker's DG_SHUFFLE_PARTITIONS > for the run's own server, the
                         embedded engine's value > the Spark server's own value
Deployment settings (read when the DAG file is parsed, from airflow.cfg section [distillguard] or the environment
variables AIRFLOW__DISTILLGUARD__<KEY>), because Airflow fixes a task's queue, pool and pod spec at parse time:
  engine          the default engine param; `cudf` also routes the GPU steps (below) to GPU workers
  executor        local | kubernetes
  gpu_queue       queue of the GPU workers (CeleryExecutor / Edge), default "gpu"
  gpu_pool        pool limiting concurrent GPU steps, default none (the default pool)
  k8s_image, k8s_namespace, k8s_service_account, k8s_gpu_resource (default nvidia.com/gpu), k8s_gpus (default 1),
  k8s_gpu_node_selector (JSON object), k8s_gpu_tolerate_taint (default nvidia.com/gpu)
  lake_uri        the lake the labels Asset points at (default: DG_LAKE or ./lake_data)
  retrain_on_labels  true (default): the retrain DAG also runs when new labels land; false: weekly only, so a
                  model version lives long enough for its tier audits to act (models/tier_audit.py)
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from jobs.steps import NIGHTLY_STEPS as STEPS

DAG_DATE = "{{ ds }}"
# The retrain's as_of: the `as_of` param, or the last closed day before the run was created (weekly and
# asset-triggered runs have no data interval to take a date from).
RETRAIN_AS_OF = "{{ params.as_of or macros.ds_add(dag_run.run_after | ds, -1) }}"
# The Spark Connect URL a run's steps connect to: the one configured (a cluster), else the server the run's
# engine_start task started (empty when it started none: each step then embeds an engine of its own).
ENGINE_START, ENGINE_STOP = "engine_start", "engine_stop"
CONFIGURED_REMOTE = "{{ params.spark_remote or var.value.get('distillguard_spark_remote', '') }}"
RUN_REMOTE = "{{ ti.xcom_pull(task_ids='" + ENGINE_START + "') or '' }}"
# Empty values mean "not given" to the CLI, so every flag is always present and the argv has one fixed shape.
GLOBAL_FLAGS: tuple[tuple[str, str], ...] = (
    ("--lake", "{{ params.lake_uri or var.value.get('distillguard_lake_uri', '') }}"),
    ("--mlflow-uri", "{{ params.mlflow_uri or var.value.get('distillguard_mlflow_uri', '') }}"),
    ("--remote", RUN_REMOTE),
    ("--engine", "{{ params.engine }}"),
    # the run's own server gets what an embedded engine would (its own default, 200, is for clusters)
    (
        "--shuffle-partitions",
        "{{ var.value.get('distillguard_shuffle_partitions', '') or ti.xcom_pull(task_ids='"
        + ENGINE_START
        + "', key='shuffle_partitions') or '' }}",
    ),
)
EXECUTORS = ("local", "kubernetes")


def distillguard_argv(command: str, date_flag: str = "--date", date_template: str = DAG_DATE) -> list[str]:
    """The argv (after the program name) of one CLI command (`review audit`: a command and its subcommand), as
    templates Airflow renders per run."""
    argv: list[str] = []
    for flag, template in GLOBAL_FLAGS:
        argv += [flag, template]
    return [*argv, *command.split(), date_flag, date_template]


def task_id(command: str) -> str:
    return command.replace("-", "_").replace(" ", "_")


@dataclass(frozen=True)
class Step:
    command: str
    timeout: dt.timedelta
    gpu: bool = False  # runs on the frame engine / CUDA XGBoost when the engine is cudf
    date_flag: str = "--date"
    date_template: str = DAG_DATE
    options: tuple[tuple[str, str], ...] = ()  # (flag, template): the command's own flags, after the date

    @property
    def task_id(self) -> str:
        return task_id(self.command)

    def argv(self) -> list[str]:
        own = [item for option in self.options for item in option]
        return [*distillguard_argv(self.command, self.date_flag, self.date_template), *own]


HOUR = dt.timedelta(hours=1)
# The nightly chain is jobs/steps.py's list (the CLI and `distillguard nightly` read it too); a step the frame
# engine runs is a GPU step when the engine is cudf. The quality gate and publishing follow it, then the day's tier
# audit is drawn from what was published, so analysts find it on the console's audit page in the morning.
NIGHTLY_STEPS = (
    *(Step(step.name, 2 * HOUR, gpu=step.frame_engine) for step in STEPS),
    Step("quality-gate", HOUR / 2),
    Step("publish", HOUR / 2),
    # accounts drawn per tier band: Variable distillguard_audit_per_stratum, else the CLI's default
    Step(
        "review audit",
        HOUR / 4,
        options=(("--per-stratum", "{{ var.value.get('distillguard_audit_per_stratum', '') }}"),),
    ),
)
RETRAIN_STEPS = (
    Step("training-set", 2 * HOUR, date_flag="--as-of", date_template=RETRAIN_AS_OF),
    Step("fit", 4 * HOUR, gpu=True, date_flag="--as-of", date_template=RETRAIN_AS_OF),
    Step("evaluate", HOUR, date_flag="--as-of", date_template=RETRAIN_AS_OF),
    Step("promote", HOUR / 4, date_flag="--as-of", date_template=RETRAIN_AS_OF),
)


@dataclass(frozen=True)
class Deployment:
    engine: str = "embedded"
    executor: str = "local"
    gpu_queue: str = "gpu"
    gpu_pool: str | None = None
    lake_uri: str = "lake_data"
    k8s_image: str = "distillguard:latest"
    k8s_namespace: str = "default"
    k8s_service_account: str | None = None
    k8s_gpu_resource: str = "nvidia.com/gpu"
    k8s_gpus: int = 1
    k8s_gpu_node_selector: dict[str, str] = field(default_factory=dict)
    k8s_gpu_tolerate_taint: str | None = "nvidia.com/gpu"
    # The retrain DAG also runs when new labels land. Tier audits act within one model version (models/tier_audit.py)
    # and their decisions are labels, so where audits are decided daily a retrain on labels resets them daily:
    # false leaves the weekly schedule alone.
    retrain_on_labels: bool = True

    def __post_init__(self) -> None:
        from lake.config import ENGINE_KEYS

        if self.engine not in ENGINE_KEYS:
            raise ValueError(f"[distillguard] engine must be one of {ENGINE_KEYS}, got {self.engine!r}")
        if self.executor not in EXECUTORS:
            raise ValueError(f"[distillguard] executor must be one of {EXECUTORS}, got {self.executor!r}")
        if self.k8s_gpus < 1:
            raise ValueError("[distillguard] k8s_gpus must be at least 1")

    @property
    def routes_gpu(self) -> bool:
        return self.engine == "cudf"

    @property
    def labels_uri(self) -> str:
        """URI of the enforcement_labels Delta table: the labels Asset."""
        root = self.lake_uri if "://" in self.lake_uri else Path(self.lake_uri).expanduser().resolve().as_uri()
        return f"{root.rstrip('/')}/enforcement_labels"

    @classmethod
    def from_airflow_conf(cls) -> Deployment:
        from airflow.sdk import conf

        def get(key: str, default: str | None) -> str | None:
            value = conf.get("distillguard", key, fallback=default)
            return value if value not in ("", None) else default

        defaults = cls()
        return cls(
            engine=get("engine", defaults.engine),
            executor=get("executor", defaults.executor),
            gpu_queue=get("gpu_queue", defaults.gpu_queue),
            gpu_pool=get("gpu_pool", None),
            lake_uri=get("lake_uri", os.environ.get("DG_LAKE") or defaults.lake_uri),
            k8s_image=get("k8s_image", defaults.k8s_image),
            k8s_namespace=get("k8s_namespace", defaults.k8s_namespace),
            k8s_service_account=get("k8s_service_account", None),
            k8s_gpu_resource=get("k8s_gpu_resource", defaults.k8s_gpu_resource),
            k8s_gpus=int(get("k8s_gpus", str(defaults.k8s_gpus))),
            k8s_gpu_node_selector=json.loads(get("k8s_gpu_node_selector", "{}")),
            k8s_gpu_tolerate_taint=get("k8s_gpu_tolerate_taint", defaults.k8s_gpu_tolerate_taint),
            retrain_on_labels=_flag("retrain_on_labels", get("retrain_on_labels", "true")),
        )


def _flag(key: str, value: str | None) -> bool:
    text = (value or "").strip().lower()
    if text not in ("true", "false"):
        raise ValueError(f"[distillguard] {key} must be true or false, got {value!r}")
    return text == "true"


# --- params ---------------------------------------------------------------------------------------


def common_params(deployment: Deployment) -> dict:
    from airflow.sdk import Param

    from lake.config import ENGINE_KEYS

    return {
        "engine": Param(
            deployment.engine,
            enum=list(ENGINE_KEYS),
            description="compute engine; cudf needs the GPU workers this deployment routes to",
        ),
        "lake_uri": Param(
            "",
            type="string",
            description="lake root; empty = Variable distillguard_lake_uri, then the worker's DG_LAKE",
        ),
        "mlflow_uri": Param(
            "",
            type="string",
            description="MLflow URI; empty = Variable distillguard_mlflow_uri, then the worker's MLFLOW_TRACKING_URI",
        ),
        "spark_remote": Param(
            "",
            type="string",
            description="sc://host:port for engine=remote; empty = Variable "
            "distillguard_spark_remote, then DG_SPARK_REMOTE",
        ),
    }


# --- executors ------------------------------------------------------------------------------------


def run_cli(argv: list[str]) -> None:
    """In-process executor: one CLI command in this worker process. A failed quality gate fails the task without
    retries (its answer cannot change); any other non-zero exit is retried."""
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from jobs.cli import EXIT_QUALITY_GATE_FAILED, main

    exit_code = main(list(argv))
    command = " ".join(["distillguard", *argv])
    if exit_code == EXIT_QUALITY_GATE_FAILED:
        raise AirflowFailException(f"quality gate failed: {command} (see the log for the failed checks)")
    if exit_code != 0:
        raise AirflowException(f"{command} exited with status {exit_code} (see the log for the error)")


def routing(step: Step, deployment: Deployment) -> dict:
    """Queue and pool for the local executor: GPU steps go to the GPU workers when the deployment runs cudf."""
    if not (step.gpu and deployment.routes_gpu):
        return {}
    return {"queue": deployment.gpu_queue, **({"pool": deployment.gpu_pool} if deployment.gpu_pool else {})}


def pod_gpu_spec(step: Step, deployment: Deployment) -> dict:
    """KubernetesPodOperator arguments that request a GPU for GPU steps when the deployment runs cudf."""
    if not (step.gpu and deployment.routes_gpu):
        return {}
    from kubernetes.client import models as k8s

    gpus = str(deployment.k8s_gpus)
    spec: dict = {
        "container_resources": k8s.V1ResourceRequirements(
            limits={deployment.k8s_gpu_resource: gpus}, requests={deployment.k8s_gpu_resource: gpus}
        )
    }
    if deployment.k8s_gpu_node_selector:
        spec["node_selector"] = dict(deployment.k8s_gpu_node_selector)
    if deployment.k8s_gpu_tolerate_taint:
        spec["tolerations"] = [
            k8s.V1Toleration(key=deployment.k8s_gpu_tolerate_taint, operator="Exists", effect="NoSchedule")
        ]
    return spec


def step_task(step: Step, deployment: Deployment, **task_args):
    """The operator for one step under the deployment's executor (call inside a DAG context); `task_args` are
    further BaseOperator arguments (trigger_rule, depends_on_past, ...)."""
    common = {"task_id": step.task_id, "execution_timeout": step.timeout, **task_args}
    if deployment.executor == "kubernetes":
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

        return KubernetesPodOperator(
            **common,
            name=f"distillguard-{step.task_id.replace('_', '-')}",
            namespace=deployment.k8s_namespace,
            image=deployment.k8s_image,
            service_account_name=deployment.k8s_service_account,
            cmds=["distillguard"],
            arguments=step.argv(),
            get_logs=True,
            on_finish_action="delete_succeeded_pod",
            labels={"app": "distillguard", "step": step.task_id},
            **pod_gpu_spec(step, deployment),
        )
    from airflow.sdk import task

    return task(run_cli).override(**common, **routing(step, deployment))(argv=step.argv()).operator


# --- one engine per run ---------------------------------------------------------------------------


def starts_engine(deployment: Deployment) -> bool:
    """Whether a run starts its own server: only where every step runs on the worker that started it."""
    return deployment.executor == "local" and not deployment.routes_gpu


def engine_start(configured_remote: str, start_server: bool) -> str:
    """Setup task: the Spark Connect URL the run's steps use. A configured URL (param, Variable, or the worker's
    DG_SPARK_REMOTE) is used as it is; otherwise, where the deployment allows, a server is started on this worker
    (its pid goes to XCom `pid` for the teardown)."""
    configured_remote = configured_remote or os.environ.get("DG_SPARK_REMOTE", "")
    if configured_remote or not start_server:
        return configured_remote
    import tempfile
    from pathlib import Path

    from airflow.sdk import get_current_context

    from jobs.engine_server import start_detached
    from lake.engine import EMBEDDED_SHUFFLE_PARTITIONS

    context = get_current_context()
    log_dir = Path(tempfile.gettempdir()) / "distillguard-engine" / context["dag"].dag_id
    server = start_detached(log_dir)
    context["ti"].xcom_push(key="pid", value=server.pid)
    context["ti"].xcom_push(key="shuffle_partitions", value=EMBEDDED_SHUFFLE_PARTITIONS)
    print(f"started the run's Spark Connect server {server.url} (pid {server.pid}, log {server.log_path})")
    return server.url


def engine_stop() -> None:
    """Teardown task: stop the server engine_start started, if it started one."""
    from airflow.sdk import get_current_context

    from jobs.engine_server import stop

    pid = get_current_context()["ti"].xcom_pull(task_ids=ENGINE_START, key="pid")
    if pid is None:
        print("no server was started for this run")
    elif stop(int(pid)):
        print(f"stopped the run's Spark Connect server (pid {pid})")
    else:
        print(f"the run's Spark Connect server (pid {pid}) had already exited")


def around_engine(first, last, deployment: Deployment) -> None:
    """engine_start before `first` and engine_stop after `last` (call inside a DAG context): the setup and
    teardown pair of one run's engine. Airflow runs the teardown once the steps are done, also when one failed."""
    from airflow.sdk import task

    start = task(engine_start).override(task_id=ENGINE_START, execution_timeout=dt.timedelta(minutes=5))(
        configured_remote=CONFIGURED_REMOTE, start_server=starts_engine(deployment)
    )
    stop_task = task(engine_stop).override(task_id=ENGINE_STOP, execution_timeout=dt.timedelta(minutes=5))()
    start.as_setup() >> first
    last >> stop_task.as_teardown(setups=start)
