"""Shared fixtures: one embedded Sail engine per test session and a throwaway lake per test."""

from __future__ import annotations

import warnings

import pytest

from lake.config import load_settings
from lake.engine import spark_session

warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")


@pytest.fixture(scope="session")
def session_settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("session_lake")
    return load_settings(lake_root=str(root / "lake"), ground_truth_root=str(root / "truth"),
                         mlflow_tracking_uri=f"sqlite:///{root}/mlflow.db", spark_remote=None)


@pytest.fixture(scope="session")
def spark(session_settings):
    """One embedded Sail server for the whole test session (starting one takes well under a second,
    but sharing it keeps Python UDF workers warm)."""
    with spark_session(session_settings) as session:
        yield session


@pytest.fixture()
def settings(tmp_path):
    """A fresh, empty lake and MLflow store for one test."""
    return load_settings(lake_root=str(tmp_path / "lake"), ground_truth_root=str(tmp_path / "truth"),
                         mlflow_tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", spark_remote=None)
