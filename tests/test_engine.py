"""The engine seam: embedded Sail starts and stops cleanly; --remote runs the same job on another server."""

from __future__ import annotations

import pytest
from deltalake import DeltaTable

from jobs.cli import main
from lake.config import load_settings
from lake.engine import spark_engine_key, spark_session
from tests.helpers import spark_servers
from tests.helpers.raw_requests import CONTRACT_DAY as DAY
from tests.helpers.raw_requests import contract_rows, write_raw


@pytest.fixture()
def sail_server(tmp_path):
    with spark_servers.sail_server(tmp_path / "sail_logs") as url:
        yield url


def test_embedded_engine_stops_its_server_on_exit(tmp_path):
    settings = load_settings(lake_root=str(tmp_path / "lake"), mlflow_tracking_uri="sqlite:///x.db")
    assert spark_engine_key(settings) == "embedded"
    with spark_session(settings) as spark:
        assert spark.range(5).count() == 5
    with pytest.raises(Exception):  # noqa: B017 - the closed session raises whatever the client library raises; only that it fails matters
        spark.range(5).count()
    with spark_session(settings) as spark:  # and a new one starts on another free port
        assert spark.range(3).count() == 3


def test_remote_flag_runs_a_job_on_a_separate_spark_connect_server(tmp_path, sail_server, capsys):
    lake = tmp_path / "lake"
    settings = load_settings(
        lake_root=str(lake),
        ground_truth_root=str(tmp_path / "truth"),
        mlflow_tracking_uri=f"sqlite:///{tmp_path}/m.db",
        spark_remote=sail_server,
    )
    assert spark_engine_key(settings) == "remote"
    write_raw(settings, contract_rows())

    exit_code = main(["--lake", str(lake), "--remote", sail_server, "ingest", "--date", DAY.isoformat()])

    assert exit_code == 0
    assert "7 raw -> 2 bronze, 5 quarantined" in capsys.readouterr().out
    assert DeltaTable(settings.table_uri("requests")).to_pyarrow_table().num_rows == 2


def test_remote_url_must_be_spark_connect(tmp_path):
    with pytest.raises(ValueError, match="sc://host:port"):
        load_settings(lake_root=str(tmp_path), mlflow_tracking_uri="sqlite:///x.db", spark_remote="http://x:1")
