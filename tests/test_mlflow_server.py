"""Training and scoring against a real MLflow tracking server over HTTP (what a cluster deployment uses),
not the embedded SQLite store the other tests talk to directly.

The server runs as a subprocess with a SQLite backend and `--serve-artifacts --artifacts-destination <dir>`:
new experiments then get an `mlflow-artifacts:/` location, so the client uploads and lists artifacts through the
server's HTTP proxy. (`--default-artifact-root <local dir>` alone would hand clients a `file://` path that they
write to directly, which only works because client and server share a disk here, and would hide a broken
artifact path on a real deployment.)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lake import catalog
from lake.config import load_settings
from models import registry
from tests.helpers.feature_lake import AS_OF, CAMPAIGNS, N_BENIGN, SCORE_DATE, STRONG, synthetic_lake

pytestmark = pytest.mark.slow

# generous: on a loaded 2-core CI machine the server (DB migrations, uvicorn) can take a minute to come up
SERVER_START_TIMEOUT_S = 180
SERVER_STOP_TIMEOUT_S = 15


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_healthy(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"mlflow server not healthy after {SERVER_START_TIMEOUT_S}s:\n{log_path.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A `mlflow server` subprocess on a free loopback port; yields its http:// URL and stops it afterwards."""
    root = tmp_path_factory.mktemp("mlflow_server")
    artifacts = root / "artifacts"
    artifacts.mkdir()
    port = _free_loopback_port()
    mlflow_executable = Path(sys.executable).with_name("mlflow")
    log_path = root / "server.log"
    command = [
        str(mlflow_executable),
        "server",
        "--backend-store-uri",
        f"sqlite:///{root}/mlflow.db",
        "--serve-artifacts",
        "--artifacts-destination",
        artifacts.as_uri(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, cwd=root, env={**os.environ, "MLFLOW_TRACKING_URI": ""}
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, process, log_path)
        yield {"url": url, "artifacts": artifacts, "backend": root / "mlflow.db"}
    finally:
        process.terminate()
        try:
            process.wait(timeout=SERVER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=SERVER_STOP_TIMEOUT_S)


SENTINEL = "SENTINEL-7f3a9c"  # a password in the tracking URI: it must show up nowhere


def test_train_and_score_through_a_tracking_server(
    spark, spark_engine, mlflow_server, tmp_path, monkeypatch, capfd, caplog
):
    from mlflow.tracking import MlflowClient

    from jobs import score, train
    from lake.redact import install_log_redaction

    install_log_redaction()
    # the server has no auth and ignores the credentials; a deployment's proxy would check them
    url = mlflow_server["url"].replace("http://", f"http://distillguard:{SENTINEL}@")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    settings = load_settings(
        lake_root=str(tmp_path / "lake"),
        ground_truth_root=str(tmp_path / "truth"),
        spark_remote=None,
        model_name="dg-server-model",
    )
    assert settings.mlflow_tracking_uri == url  # resolved from the environment, as a deployed job would
    groups = synthetic_lake(settings)

    trained = train.run(spark, settings, AS_OF, STRONG)
    assert (trained.version, trained.alias) == ("1", registry.CHAMPION)

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    version = client.get_model_version(settings.model_name, trained.version)
    assert version.run_id == trained.run_id
    assert json.loads(version.tags[registry.TAG_FEATURE_COLUMNS])  # the feature contract travelled over HTTP
    champion = client.get_model_version_by_alias(settings.model_name, registry.CHAMPION)
    assert str(champion.version) == trained.version

    run = client.get_run(trained.run_id)
    metrics = run.data.metrics
    for key in ("pr_auc", "recall_at_benign_fpr_0.01", "precision_at_k", "campaign_recall"):
        assert 0.0 <= metrics[key] <= 1.0, (key, metrics.get(key))
    assert metrics["pr_auc"] == pytest.approx(trained.metrics["pr_auc"])
    assert metrics["pr_auc"] > 0.7  # the planted signal is strong; a broken pipeline sits near the base rate

    # artifacts went through the server's proxy into --artifacts-destination, not into a client-side path
    assert client.get_experiment(run.info.experiment_id).artifact_location.startswith("mlflow-artifacts:")
    top_level = {entry.path for entry in client.list_artifacts(trained.run_id)}
    plots = {entry.path for entry in client.list_artifacts(trained.run_id, "plots")}
    assert {"feature_importance.csv", "training_set_reference.json", "feature_columns.json"} <= top_level
    assert {"plots/pr_curve.png", "plots/feature_importance.png"} <= plots
    stored = {p.name for p in mlflow_server["artifacts"].rglob("*") if p.is_file()}
    assert {"pr_curve.png", "feature_importance.png", "MLmodel"} <= stored
    # the registered model's files are served over HTTP too (MLflow 3 keeps them as a LoggedModel, which the
    # version's source URI names); that is what scoring loads
    from mlflow.artifacts import list_artifacts

    assert version.source.startswith("models:/")
    model_files = {Path(entry.path).name for entry in list_artifacts(artifact_uri=version.source, tracking_uri=url)}
    assert {"MLmodel", "model.ubj"} <= model_files, model_files

    scored = score.run(spark_engine, settings, SCORE_DATE)
    assert scored.model_version == trained.version
    risk = catalog.read_arrow(settings, "account_risk", filters=[("score_date", "=", SCORE_DATE)]).to_pandas()
    assert len(risk) == N_BENIGN + sum(CAMPAIGNS.values()) == scored.accounts_scored
    assert set(risk["model_version"]) == {trained.version}
    assert set(risk["model_name"]) == {settings.model_name}
    loud_attackers = groups["camp-A"][5:]
    assert risk.set_index("account_id").loc[loud_attackers, "score"].median() > 0.9

    # the secrets scan: printed output, log records, and every param, tag and artifact name of the run
    captured = capfd.readouterr()
    scanned = {
        "stdout": captured.out,
        "stderr": captured.err,
        "logs": caplog.text,
        "params": json.dumps(run.data.params),
        "tags": json.dumps(run.data.tags),
        "artifacts": json.dumps(sorted(top_level | plots)),
        "model version": json.dumps(dict(version.tags)) + version.source,
    }
    assert [where for where, text in scanned.items() if SENTINEL in text] == []
