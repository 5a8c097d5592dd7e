"""Nothing hangs on a remote service: a Spark Connect server that accepts and never answers, and an MLflow that
cannot be reached, each end in one line naming the host (never a credential) and the setting to change, with
the exit code for an unreachable service. Errors are classified by type: a missing table is exit 4."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
from pathlib import Path

from lake.errors import MissingInputError, ServiceUnreachableError

REPO = Path(__file__).resolve().parents[1]
SENTINEL = "SENTINEL-c41d"
# a liveness bound far above each deadline below; reaching it means a hang
HANG_S = 150


def _cli(*argv: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=HANG_S,
        env={**os.environ, **env},
    )


def test_a_spark_connect_server_that_never_answers_ends_in_one_line(tmp_path):
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        result = _cli(
            "--remote",
            f"sc://127.0.0.1:{port}/;token={SENTINEL}",
            "ingest",
            "--date",
            "2026-06-01",
            env={"DG_CONNECT_TIMEOUT_S": "2", "DG_LAKE": str(tmp_path / "lake")},
        )
    assert result.returncode == ServiceUnreachableError.exit_code, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"127.0.0.1:{port} (no answer within 2 s)" in result.stderr
    assert "DG_CONNECT_TIMEOUT_S" in result.stderr and SENTINEL not in result.stderr + result.stdout


def test_score_against_an_unreachable_mlflow_ends_in_one_line(settings):
    from tests.helpers import reviewed_lake as synthetic_lake

    last_day = dt.date(2026, 3, 14)
    synthetic_lake.write(settings, accounts=12, days=1, last_day=last_day)
    result = _cli(
        "--lake",
        settings.lake_root,
        "--engine",
        "pandas",
        "score",
        "--date",
        last_day.isoformat(),
        env={"MLFLOW_TRACKING_URI": f"http://dg:{SENTINEL}@127.0.0.1:9/", "DG_MLFLOW_TIMEOUT_S": "2"},
    )
    assert result.returncode == ServiceUnreachableError.exit_code, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "MLflow at 127.0.0.1:9 did not answer" in result.stderr and "DG_MLFLOW_TIMEOUT_S" in result.stderr
    assert SENTINEL not in result.stderr + result.stdout and "Traceback" not in result.stderr


def test_a_missing_upstream_table_is_exit_4(tmp_path):
    result = _cli("--lake", str(tmp_path / "lake"), "risk", "top", "--date", "2026-06-01", env={})
    assert result.returncode == MissingInputError.exit_code, result.stderr
    assert "account_risk" in result.stderr and len(result.stderr.strip().splitlines()) == 1
