"""A console decision posts an event for the enforcement_labels Asset to a real Airflow 3 api-server, started by the
test on loopback over a fresh metadata database with the distillguard DAGs serialized, and the retrain DAG (scheduled
on that Asset) gets a queued run. Airflow runs in subprocesses only (its configuration comes from the environment
given to them), so this module never imports Airflow itself."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from console.airflow_events import NOT_CONFIGURED, status_line
from console.decisions import record_decision
from jobs.steps import LABELS_ASSET_NAME
from tests.helpers import reviewed_lake as synthetic_lake

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")]

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
USER, PASSWORD = "dg-console", "pw-7f4c1d-not-printed"
LAST_DAY = dt.date(2026, 3, 14)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _token(base: str) -> str:
    body = json.dumps({"username": USER, "password": PASSWORD}).encode()
    request = urllib.request.Request(
        f"{base}/auth/token", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["access_token"]


@pytest.fixture(scope="module")
def airflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("airflow_api")
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(root / "home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "airflow_dags"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__DISTILLGUARD__LAKE_URI": str(root / "lake"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    for argv in (["db", "migrate"], ["dags", "reserialize"], ["dags", "unpause", "distillguard_retrain"]):
        done = subprocess.run([AIRFLOW, *argv], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"airflow {' '.join(argv)}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    port = _free_port()
    log = (root / "api-server.log").open("w")
    server = subprocess.Popen(
        [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=5):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"airflow api-server did not start: {(root / 'api-server.log').read_text()[-3000:]}")
            time.sleep(1)
    yield base, root
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


def _lake(settings, **airflow) -> object:
    synthetic_lake.write(settings, accounts=48, days=2, last_day=LAST_DAY)
    return settings.model_validate({**settings.model_dump(), **airflow})


def test_a_decision_posts_a_labels_asset_event_and_queues_the_retrain_dag(airflow_server, settings):
    base, root = airflow_server
    configured = _lake(settings, airflow_api_url=base, airflow_user=USER, airflow_password=PASSWORD)
    receipt = record_decision(
        configured, analyst="alice", label="extraction", note="shared card", cluster_id="cl-00000", score_date=LAST_DAY
    )
    assert receipt.scheduler.startswith("Airflow notified: asset event "), receipt.scheduler
    token = _token(base)
    [asset] = [a for a in _get(f"{base}/api/v2/assets?name_pattern={LABELS_ASSET_NAME}", token)["assets"]]
    assert asset["uri"].endswith("/enforcement_labels")
    events = _get(f"{base}/api/v2/assets/events?asset_id={asset['id']}", token)["asset_events"]
    assert [e["extra"]["decision_id"] for e in events] == [receipt.decision_id]
    assert events[0]["extra"]["accounts"] == 8
    queued = _get(f"{base}/api/v2/dags/distillguard_retrain/assets/queuedEvents", token)
    assert [q["asset_id"] for q in queued["queued_events"]] == [asset["id"]]
    assert PASSWORD not in receipt.scheduler and PASSWORD not in status_line(configured)
    assert PASSWORD not in (root / "api-server.log").read_text()


def test_a_wrong_password_is_reported_without_it_and_the_decision_stands(airflow_server, settings):
    from lake import catalog

    base, _ = airflow_server
    wrong = _lake(settings, airflow_api_url=base, airflow_user=USER, airflow_password="not-the-password-31")
    receipt = record_decision(wrong, analyst="alice", label="benign", note="reseller", account_id="acct-000003")
    assert receipt.scheduler == (
        "Airflow NOT notified (Airflow POST /auth/token answered HTTP 401); the weekly retrain will still use this "
        "decision."
    )
    assert "not-the-password-31" not in receipt.scheduler
    labels = [r for r in catalog.read_arrow(wrong, "enforcement_labels").to_pylist() if r["source"] == "analyst"]
    assert [r["account_id"] for r in labels] == ["acct-000003"]


def test_without_airflow_the_model_page_says_so(settings, tmp_path):
    import re

    from starlette.testclient import TestClient

    from console.app import ConsoleConfig, create_app
    from console.auth import AuthConfig, issue_token

    synthetic_lake.write(settings, accounts=48, days=2, last_day=LAST_DAY)
    tokens = tmp_path / "tokens"
    token = issue_token(tokens, "alice")
    client = TestClient(create_app(settings, ConsoleConfig(auth=AuthConfig(tokens_file=tokens))))
    login = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)
    client.post("/login", data={"token": token, "csrf_token": csrf, "next": "/model"})
    page = client.get("/model")
    assert page.status_code == 200
    assert NOT_CONFIGURED.split(" (")[0] in page.text and "weekly schedule" in page.text
    receipt = record_decision(settings, analyst="alice", label="benign", note="ok", account_id="acct-000002")
    assert receipt.scheduler == "Airflow not configured: retraining waits for its weekly run."
