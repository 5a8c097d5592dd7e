"""Static checks of infra/: nothing there can be deployed from CI, so validate everything that can be validated
offline. YAML parses; Kubernetes manifests pass the bundled OpenAPI schemas (kubernetes-validate, strict, so a
misspelt field fails); Spark conf keys come from an allowlist that names each key's documentation; the pieces
that must agree with each other (conf <-> ConfigMap, conf <-> Dockerfile, Service names <-> driver host, env
names <-> lake/config.py) do."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

INFRA = Path(__file__).resolve().parent.parent / "infra"
REPO = INFRA.parent
K8S_VERSION = "1.33.0"  # a version kubernetes-validate ships schemas for (it bundles them; no network needed)
NAMESPACE = "distillguard"

SPARK_CONF_DOC = "https://spark.apache.org/docs/4.0.1/configuration.html"
SPARK_K8S_DOC = "https://spark.apache.org/docs/4.0.1/running-on-kubernetes.html"
SPARK_SQL_TUNING_DOC = "https://spark.apache.org/docs/4.0.1/sql-performance-tuning.html"
SPARK_ARROW_DOC = "https://spark.apache.org/docs/4.0.1/api/python/tutorial/sql/arrow_pandas.html"
DELTA_DOC = "https://docs.delta.io/latest/quick-start.html#set-up-apache-spark-with-delta-lake"
RAPIDS_CONFIGS_DOC = "https://nvidia.github.io/spark-rapids/docs/configs.html"
RAPIDS_K8S_DOC = "https://docs.nvidia.com/spark-rapids/user-guide/latest/getting-started/kubernetes.html"

# Every key a conf file under infra/spark-connect may use, with the page that documents it. A key that is not
# here (a typo, an invented key) fails test_spark_conf_keys_are_documented. Keys ending in ".*" are documented
# as a family (spark.kubernetes.executor.secretKeyRef.[EnvName]).
DOCUMENTED_SPARK_KEYS = {
    "spark.master": SPARK_CONF_DOC,
    "spark.submit.deployMode": SPARK_CONF_DOC,
    "spark.driver.host": SPARK_CONF_DOC,
    "spark.driver.bindAddress": SPARK_CONF_DOC,
    "spark.driver.port": SPARK_CONF_DOC,
    "spark.blockManager.port": SPARK_CONF_DOC,
    "spark.driver.memory": SPARK_CONF_DOC,
    "spark.executor.instances": SPARK_CONF_DOC,
    "spark.executor.cores": SPARK_CONF_DOC,
    "spark.executor.memory": SPARK_CONF_DOC,
    "spark.executor.memoryOverhead": SPARK_CONF_DOC,
    "spark.driver.extraClassPath": SPARK_CONF_DOC,
    "spark.executor.extraClassPath": SPARK_CONF_DOC,
    "spark.jars.packages": SPARK_CONF_DOC,
    "spark.jars.ivy": SPARK_CONF_DOC,
    "spark.pyspark.python": SPARK_CONF_DOC,
    "spark.plugins": SPARK_CONF_DOC,
    "spark.sql.extensions": SPARK_CONF_DOC,
    "spark.sql.session.timeZone": SPARK_CONF_DOC,
    "spark.sql.shuffle.partitions": SPARK_CONF_DOC,
    "spark.connect.grpc.binding.port": SPARK_CONF_DOC + "#spark-connect",
    "spark.executor.resource.gpu.amount": SPARK_CONF_DOC + "#custom-resource-scheduling-and-configuration-overview",
    "spark.executor.resource.gpu.vendor": SPARK_CONF_DOC + "#custom-resource-scheduling-and-configuration-overview",
    "spark.executor.resource.gpu.discoveryScript": SPARK_CONF_DOC
    + "#custom-resource-scheduling-and-configuration-overview",
    "spark.task.resource.gpu.amount": SPARK_CONF_DOC + "#custom-resource-scheduling-and-configuration-overview",
    "spark.sql.adaptive.enabled": SPARK_SQL_TUNING_DOC,
    "spark.sql.adaptive.coalescePartitions.enabled": SPARK_SQL_TUNING_DOC,
    "spark.sql.adaptive.skewJoin.enabled": SPARK_SQL_TUNING_DOC,
    "spark.sql.files.maxPartitionBytes": SPARK_SQL_TUNING_DOC,
    "spark.sql.execution.arrow.pyspark.enabled": SPARK_ARROW_DOC,
    "spark.kubernetes.namespace": SPARK_K8S_DOC,
    "spark.kubernetes.container.image": SPARK_K8S_DOC,
    "spark.kubernetes.authenticate.driver.serviceAccountName": SPARK_K8S_DOC,
    "spark.kubernetes.executor.podTemplateFile": SPARK_K8S_DOC,
    "spark.kubernetes.executor.secretKeyRef.*": SPARK_K8S_DOC,
    "spark.sql.catalog.spark_catalog": DELTA_DOC,
    "spark.rapids.sql.enabled": RAPIDS_CONFIGS_DOC,
    "spark.rapids.sql.concurrentGpuTasks": RAPIDS_CONFIGS_DOC,
    "spark.rapids.sql.explain": RAPIDS_CONFIGS_DOC,
    "spark.rapids.memory.pinnedPool.size": RAPIDS_CONFIGS_DOC,
    "spark.rapids.memory.host.spillStorageSize": RAPIDS_CONFIGS_DOC,
}
# the values some keys must take, with why: (key, value, documentation)
REQUIRED_IN_EVERY_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.session.timeZone": "UTC",  # every job assumes UTC (docs/design.md §3)
    "spark.sql.adaptive.enabled": "true",
    "spark.connect.grpc.binding.port": "15002",
}
# the official Airflow chart's top-level values this repository uses (chart/values.yaml of apache/airflow)
AIRFLOW_CHART_DOC = "https://airflow.apache.org/docs/helm-chart/stable/parameters-ref.html"
AIRFLOW_CHART_TOP_LEVEL_KEYS = {
    "executor",
    "airflowVersion",
    "defaultAirflowTag",
    "images",
    "dags",
    "extraEnvFrom",
    "env",
    "secret",
    "data",
    "fernetKeySecretName",
    "postgresql",
    "redis",
    "workers",
    "config",
}


def _yaml_files() -> list[Path]:
    return sorted(p for p in INFRA.rglob("*") if p.suffix in (".yaml", ".yml"))


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _k8s_objects() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in sorted((INFRA / "k8s").glob("*.yaml")) for doc in _documents(path)]


def _by_kind_and_name(kind: str, name: str) -> dict:
    matches = [doc for _, doc in _k8s_objects() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name} under infra/k8s, found {len(matches)}"
    return matches[0]


def _parse_spark_conf(path: Path) -> dict[str, str]:
    """spark-defaults.conf: `key<whitespace>value` per line, # comments; a repeated key is an error."""
    entries: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = stripped.split(None, 1)
        assert len(parts) == 2 and parts[1].strip(), f"{path.name}:{number}: no value for {parts[0]!r}"
        key, value = parts[0], parts[1].strip()
        assert key not in entries, f"{path.name}:{number}: {key} set twice"
        entries[key] = value
    return entries


def _conf(variant: str) -> dict[str, str]:
    return _parse_spark_conf(INFRA / "spark-connect" / f"{variant}.conf")


def _documentation_for(key: str) -> str | None:
    if key in DOCUMENTED_SPARK_KEYS:
        return DOCUMENTED_SPARK_KEYS[key]
    for pattern, url in DOCUMENTED_SPARK_KEYS.items():
        if pattern.endswith(".*") and key.startswith(pattern[:-1]) and len(key) > len(pattern) - 1:
            return url
    return None


def _containers(doc: dict) -> list[dict]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    if doc["kind"] != "Pod":
        spec = spec["template"]["spec"]
    return spec["containers"]


def _dockerfile(name: str) -> str:
    return (INFRA / "docker" / name).read_text()


# --- parsing and schemas ------------------------------------------------------------------------------------


def test_every_yaml_and_json_file_under_infra_parses():
    files = _yaml_files()
    assert len(files) >= 8
    for path in files:
        assert _documents(path), f"{path} has no YAML document"
    for path in sorted(INFRA.rglob("*.json")):
        json.loads(path.read_text())


def test_kubernetes_manifests_pass_strict_schema_validation():
    import kubernetes_validate

    objects = _k8s_objects()
    kinds = {doc["kind"] for _, doc in objects}
    assert {
        "Namespace",
        "ConfigMap",
        "Deployment",
        "Service",
        "StatefulSet",
        "CronJob",
        "ServiceAccount",
        "Role",
        "RoleBinding",
    } <= kinds
    for path, doc in objects:
        # strict: unknown fields fail too, so a misspelt key is caught, not silently ignored by the API server
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, f"{path.name}: {doc['kind']} outside {NAMESPACE}"
        if doc["kind"] in ("Deployment", "StatefulSet", "CronJob"):
            for container in _containers(doc):
                assert container.get("image"), f"{path.name}: container {container['name']} has no image"


def test_schema_validation_rejects_a_misspelt_field():
    """Guards the test above: strict validation must fail on an unknown field."""
    import kubernetes_validate

    deployment = _by_kind_and_name("Deployment", "mlflow")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["imagee"] = broken["spec"]["template"]["spec"]["containers"][
        0
    ].pop("image")
    with pytest.raises(kubernetes_validate.ValidationError, match="imagee"):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_gpu_executor_pod_template_is_a_valid_pod_requesting_a_gpu():
    import kubernetes_validate

    template_file = INFRA / "spark-connect" / "executor-pod-template-gpu.yaml"
    (pod,) = _documents(template_file)
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    assert pod["kind"] == "Pod"
    assert _containers(pod)[0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    # the GPU server's ConfigMap carries this template verbatim where gpu.conf points Spark at it
    conf_map = _by_kind_and_name("ConfigMap", "spark-connect-gpu-conf")
    assert conf_map["data"]["executor-pod-template.yaml"] == template_file.read_text()
    mounts = _containers(_by_kind_and_name("Deployment", "spark-connect-gpu"))[0]["volumeMounts"]
    assert _conf("gpu")["spark.kubernetes.executor.podTemplateFile"] in {m["mountPath"] for m in mounts}


# --- Spark Connect configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_spark_conf_keys_are_documented(variant):
    conf = _conf(variant)
    undocumented = sorted(key for key in conf if _documentation_for(key) is None)
    assert not undocumented, f"{variant}.conf uses keys no documentation names: {undocumented}"
    for key, value in REQUIRED_IN_EVERY_CONF.items():
        assert conf.get(key) == value, (variant, key, conf.get(key))


def test_allowlist_rejects_an_invented_key():
    assert _documentation_for("spark.sql.adaptive.enabeld") is None
    assert _documentation_for("spark.rapids.sql.concurentGpuTasks") is None
    assert _documentation_for("spark.kubernetes.executor.secretKeyRef.") is None
    assert _documentation_for("spark.kubernetes.executor.secretKeyRef.AWS_REGION") == SPARK_K8S_DOC


def test_gpu_conf_adds_the_rapids_accelerator_and_cpu_conf_does_not():
    cpu, gpu = _conf("cpu"), _conf("gpu")
    assert gpu["spark.plugins"] == "com.nvidia.spark.SQLPlugin"
    assert gpu["spark.rapids.sql.enabled"] == "true"
    assert float(gpu["spark.executor.resource.gpu.amount"]) == 1.0  # the plugin supports one GPU per executor
    task_share = float(gpu["spark.task.resource.gpu.amount"])
    assert int(gpu["spark.executor.cores"]) * task_share == pytest.approx(1.0)  # every core gets a task slot
    assert int(gpu["spark.rapids.sql.concurrentGpuTasks"]) <= int(gpu["spark.executor.cores"])
    assert gpu["spark.executor.resource.gpu.vendor"] == "nvidia.com"
    assert not any(key.startswith("spark.rapids.") or ".resource.gpu." in key for key in cpu)
    assert "spark.plugins" not in cpu
    # the same Delta and Spark Connect set-up on both, differing only in what the GPU needs
    assert set(cpu) <= set(gpu)


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_conf_matches_its_configmap_services_and_image(variant):
    conf = _conf(variant)
    name = "spark-connect-gpu" if variant == "gpu" else "spark-connect"
    conf_map = _by_kind_and_name("ConfigMap", f"{name}-conf")
    assert conf_map["data"]["spark-defaults.conf"] == (INFRA / "spark-connect" / f"{variant}.conf").read_text()

    # executors reach the driver through the headless Service named in spark.driver.host
    driver_service = _by_kind_and_name("Service", f"{name}-driver")
    assert driver_service["spec"]["clusterIP"] == "None"
    assert conf["spark.driver.host"] == f"{name}-driver.{NAMESPACE}.svc.cluster.local"
    driver_ports = {p["port"] for p in driver_service["spec"]["ports"]}
    assert {int(conf["spark.driver.port"]), int(conf["spark.blockManager.port"])} == driver_ports
    grpc_ports = {p["port"] for p in _by_kind_and_name("Service", name)["spec"]["ports"] if p["name"] == "grpc"}
    assert grpc_ports == {int(conf["spark.connect.grpc.binding.port"])}

    deployment = _by_kind_and_name("Deployment", name)
    pod_spec = deployment["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == conf["spark.kubernetes.authenticate.driver.serviceAccountName"]
    assert _by_kind_and_name("ServiceAccount", pod_spec["serviceAccountName"])
    assert conf["spark.kubernetes.namespace"] == NAMESPACE
    (container,) = pod_spec["containers"]
    assert container["image"] == conf["spark.kubernetes.container.image"]  # driver and executors: one image
    assert container["command"] == ["/opt/spark/sbin/start-connect-server.sh"]


def test_spark_connect_image_and_conf_pin_compatible_versions():
    dockerfile = _dockerfile("Dockerfile.spark-connect")
    for variant in ("cpu", "gpu"):
        conf, arg = _conf(variant), variant.upper()
        spark_version = re.search(
            rf"^ARG SPARK_IMAGE_{arg}=apache/spark:(\d+\.\d+\.\d+)-scala2\.13", dockerfile, re.M
        ).group(1)
        packages = re.search(rf"^ARG SPARK_PACKAGES_{arg}=(\S+)", dockerfile, re.M).group(1)
        assert conf["spark.jars.packages"] == packages  # what the image pre-resolves is what the server loads
        assert conf["spark.kubernetes.container.image"].endswith(f":{spark_version}")
        # Delta 4.0.x is built for Spark 4.0 (artifact delta-spark_2.13); from Delta 4.1 on the artifact names the
        # Spark line it is built for, delta-spark_<major.minor>_2.13 (https://docs.delta.io/releases)
        delta = re.search(r"io\.delta:delta-spark_(?:(\d+\.\d+)_)?2\.13:(\d+)\.(\d+)\.\d+", packages)
        spark_line = delta.group(1) or f"{delta.group(2)}.{delta.group(3)}"
        assert spark_line == ".".join(spark_version.split(".")[:2]), (variant, packages, spark_version)
    rapids_version = re.search(r"^ARG RAPIDS_VERSION=(\S+)", dockerfile, re.M).group(1)
    rapids_jar = f"/opt/sparkRapidsPlugin/rapids-4-spark_2.13-{rapids_version}-cuda13.jar"
    assert _conf("gpu")["spark.executor.extraClassPath"] == rapids_jar
    assert _conf("gpu")["spark.driver.extraClassPath"] == rapids_jar
    assert "/opt/sparkRapidsPlugin/getGpusResources.sh" in dockerfile
    assert _conf("gpu")["spark.executor.resource.gpu.discoveryScript"] == "/opt/sparkRapidsPlugin/getGpusResources.sh"


# --- job configuration --------------------------------------------------------------------------------------


def test_configmap_env_is_what_load_settings_reads(monkeypatch):
    from lake.config import load_settings

    env = _by_kind_and_name("ConfigMap", "distillguard-env")["data"]
    for name in list(env) + ["DG_PSEUDONYM_KEY", "DG_GROUND_TRUTH"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DG_PSEUDONYM_KEY", "from-the-secret")
    settings = load_settings()
    assert settings.lake_root == env["DG_LAKE"]
    assert settings.spark_remote == env["DG_SPARK_REMOTE"]
    assert settings.engine == env["DG_ENGINE"]
    assert settings.mlflow_tracking_uri == env["MLFLOW_TRACKING_URI"]
    assert settings.model_name == env["DG_MODEL_NAME"]
    assert settings.pseudonym_key.get_secret_value() == "from-the-secret"
    # the Spark Connect URL and the MLflow URL point at Services defined here
    host, port = env["DG_SPARK_REMOTE"].removeprefix("sc://").split(":")
    assert host == f"spark-connect.{NAMESPACE}.svc.cluster.local"
    assert int(port) in {p["port"] for p in _by_kind_and_name("Service", "spark-connect")["spec"]["ports"]}
    mlflow_host = env["MLFLOW_TRACKING_URI"].removeprefix("http://")
    assert mlflow_host == f"mlflow.{NAMESPACE}.svc.cluster.local:5000"
    assert 5000 in {p["port"] for p in _by_kind_and_name("Service", "mlflow")["spec"]["ports"]}


def test_nightly_cronjob_runs_a_real_cli_command_for_yesterday():
    from jobs.cli import build_parser

    cron = _by_kind_and_name("CronJob", "distillguard-nightly")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["timeZone"] == "Etc/UTC"
    (container,) = _containers(cron)
    (script,) = container["args"]
    assert container["command"] == ["/bin/sh", "-c"]
    argv = shlex.split(script.replace('"$(date -u -d yesterday +%F)"', "2026-11-14"))
    assert argv[:2] == ["exec", "distillguard"]
    parsed = build_parser().parse_args(argv[2:])
    assert parsed.command == "nightly" and str(parsed.date) == "2026-11-14"
    assert {"configMapRef": {"name": "distillguard-env"}} in container["envFrom"]
    secret_env = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
    assert secret_env == {"DG_PSEUDONYM_KEY": "distillguard-secrets"}


def test_mlflow_server_serves_artifacts_from_an_object_store_with_a_postgres_backend():
    deployment = _by_kind_and_name("Deployment", "mlflow")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert "--serve-artifacts" in args
    assert args[args.index("--artifacts-destination") + 1].startswith("s3://")
    assert args[args.index("--backend-store-uri") + 1] == "$(MLFLOW_BACKEND_STORE_URI)"
    backend = next(e for e in container["env"] if e["name"] == "MLFLOW_BACKEND_STORE_URI")
    assert backend["valueFrom"]["secretKeyRef"]["name"] == "distillguard-postgres"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    postgres = _by_kind_and_name("StatefulSet", "postgres")
    assert postgres["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [
        {"secretRef": {"name": "distillguard-postgres"}}
    ]


def test_airflow_values_use_documented_chart_keys_and_point_at_this_repo():
    (values,) = _documents(INFRA / "helm" / "airflow-values.yaml")
    unknown = set(values) - AIRFLOW_CHART_TOP_LEVEL_KEYS
    assert not unknown, f"not top-level values of the Airflow chart ({AIRFLOW_CHART_DOC}): {unknown}"
    assert values["executor"] in {"KubernetesExecutor", "CeleryExecutor", "CeleryKubernetesExecutor"}
    git_sync = values["dags"]["gitSync"]
    assert git_sync["enabled"] is True and (REPO / git_sync["subPath"]).is_dir()
    assert any(p.suffix == ".py" for p in (REPO / git_sync["subPath"]).iterdir())
    env_from = yaml.safe_load(values["extraEnvFrom"])  # the chart takes this one as a templated string
    assert {"configMapRef": {"name": "distillguard-env"}} in env_from
    assert {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow.distillguard.svc.cluster.local:5000"} in values[
        "env"
    ]
    assert {
        "envName": "DG_PSEUDONYM_KEY",
        "secretName": "distillguard-secrets",
        "secretKey": "DG_PSEUDONYM_KEY",
    } in values["secret"]
    # the [distillguard] section airflow_dags/distillguard_wiring.py reads at parse time
    wiring = (REPO / "airflow_dags" / "distillguard_wiring.py").read_text()
    for key in values["config"]["distillguard"]:
        assert f'get("{key}"' in wiring, f"[distillguard] {key} is not read by the DAG wiring"


# --- container images ---------------------------------------------------------------------------------------


def _from_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("FROM ")]


def test_dockerfiles_have_base_images_and_run_as_non_root():
    dockerfiles = sorted((INFRA / "docker").glob("Dockerfile.*"))
    names = {p.name for p in dockerfiles if not p.name.endswith(".dockerignore")}
    assert {"Dockerfile.cpu", "Dockerfile.gpu", "Dockerfile.spark-connect", "Dockerfile.mlflow"} <= names
    for name in names:
        text = _dockerfile(name)
        assert _from_lines(text), f"{name} has no FROM"
        users = re.findall(r"^USER (\S+)", text, re.M)
        assert users and users[-1] not in ("root", "0"), f"{name} does not end as a non-root user"


def test_cpu_image_is_the_locked_project_on_python_311():
    text = _dockerfile("Dockerfile.cpu")
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.M)
    assert "uv sync --frozen --no-dev" in text
    assert 'ENTRYPOINT ["distillguard"]' in text


def test_gpu_image_installs_the_gpu_extra_on_a_rapids_cuda13_python312_base():
    text = _dockerfile("Dockerfile.gpu")
    base = re.search(r"^ARG RAPIDS_IMAGE=(\S+)", text, re.M).group(1)
    assert base.startswith("rapidsai/") and "cuda13" in base and base.endswith("py3.12")
    assert "uv sync --frozen --no-dev --extra gpu" in text
    # the extra it installs is the project's gpu extra (cudf for CUDA 13 and XGBoost)
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(req.startswith("cudf-cu13") for req in extras["gpu"])
    assert any(req.startswith("xgboost") for req in extras["gpu"])
    # the air-gapped path follows infra/gpu/wheelhouse.sh's own install recipe
    assert "--no-index --no-deps --no-build-isolation --target /opt/gpusite" in text
    assert "sha256sum -c" in text
    assert "ENV DG_ENGINE=cudf" in text
