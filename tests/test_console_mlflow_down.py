"""The console never waits on MLflow: with an MLflow that accepts connections and never answers, the Model page
comes back saying since when MLflow is unreachable, and every other page keeps working."""

from __future__ import annotations

import datetime as dt
import socket

import pytest

from console.app import ConsoleConfig, create_app
from console.auth import AuthConfig, issue_token
from tests.helpers import reviewed_lake as synthetic_lake
from tests.helpers.console_client import signed_in

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


def test_model_page_says_mlflow_is_unreachable_and_nothing_waits_on_it(settings, tmp_path):
    synthetic_lake.write(settings, accounts=12, days=1, last_day=dt.date(2026, 3, 14))
    tokens = tmp_path / "console" / "tokens"
    token = issue_token(tokens, "alice")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hung = settings.model_copy(update={"mlflow_tracking_uri": f"http://127.0.0.1:{silent.getsockname()[1]}"})
        client = signed_in(create_app(hung, ConsoleConfig(auth=AuthConfig(tokens_file=tokens))), token)

        model = client.get("/model")
        assert model.status_code == 200
        assert "MLflow unreachable since" in model.text
        assert "No model version holds the champion alias" not in model.text  # unknown is not "none"
        assert client.get("/").status_code == 200
        again = client.get("/model")  # the first read still hangs: no second one piles up, same answer
        assert "MLflow unreachable since" in again.text
