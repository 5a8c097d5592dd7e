"""Shared fixtures: one embedded Sail engine per test session and a throwaway lake per test."""

from __future__ import annotations

import warnings

import pytest

import features.registry  # noqa: F401  (declares the feature tables with the catalog)
from lake.config import load_settings
from lake.engine import spark_session

warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")


@pytest.fixture(scope="session")
def session_settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("session_lake")
    return load_settings(
        lake_root=str(root / "lake"),
        ground_truth_root=str(root / "truth"),
        mlflow_tracking_uri=f"sqlite:///{root}/mlflow.db",
        spark_remote=None,
    )


@pytest.fixture(scope="session")
def spark(session_settings):
    """One embedded Sail server for the whole test session (starting one takes well under a second,
    but sharing it keeps Python UDF workers warm)."""
    with spark_session(session_settings) as session:
        yield session


@pytest.fixture()
def settings(tmp_path):
    """A fresh, empty lake and MLflow store for one test."""
    return load_settings(
        lake_root=str(tmp_path / "lake"),
        ground_truth_root=str(tmp_path / "truth"),
        mlflow_tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        spark_remote=None,
    )


# --- frame engines: every frame-engine test runs on pandas, and on cuDF where a GPU is visible -------------


def _gpu_visible() -> bool:
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=False)
    return listing.returncode == 0 and "GPU" in listing.stdout


def pytest_collection_modifyitems(config, items):
    """`gpu` tests are skipped, with the reason shown, where no GPU is visible. Where one is, they run, and
    a missing cuDF fails them (the engine raises) instead of skipping: a GPU node must not quietly test CPU."""
    if any(item.get_closest_marker("gpu") for item in items) and not _gpu_visible():
        skip = pytest.mark.skip(
            reason="needs a CUDA GPU (nvidia-smi lists none here); frame-engine tests ran with pandas instead"
        )
        for item in items:
            if item.get_closest_marker("gpu"):
                item.add_marker(skip)


@pytest.fixture(params=["pandas", pytest.param("cudf", marks=pytest.mark.gpu)])
def frame_engine_name(request) -> str:
    """The frame engine under test: "pandas" everywhere, "cudf" on GPU machines."""
    return request.param


@pytest.fixture(scope="session")
def spark_engine(spark, session_settings):
    """The shared Sail session behind the engine interface (compute/), for jobs that take an engine."""
    from compute.spark import SparkEngine

    return SparkEngine(spark)


@pytest.fixture(scope="session", params=["spark", "pandas", pytest.param("cudf", marks=pytest.mark.gpu)])
def any_engine(request, session_settings):
    """Every engine through the one interface: known-answer tests of signals, daily statistics and features run
    on each of them with the same fixtures and the same expected values."""
    if request.param == "spark":
        yield request.getfixturevalue("spark_engine")
        return
    from compute.frames import frame_engine

    with frame_engine(session_settings.model_copy(update={"engine": request.param})) as engine:
        yield engine


@pytest.fixture(scope="session")
def scoring_chain(spark, tmp_path_factory):
    """training_set -> score -> publish -> decisions run once on a small feature lake with a real champion
    (tests/helpers/job_chain.py): job -> the lake it starts from, and job -> the lake it leaves. Tests copy these
    lakes (job_chain.copy_lake) and never write to them."""
    from tests.helpers.job_chain import SCORE_DAY, SCORING_CHAIN, run_chain, write_scoring_base

    root = tmp_path_factory.mktemp("scoring_chain")
    write_scoring_base(spark, root / "base")
    return run_chain(spark, root / "base", SCORING_CHAIN, root, SCORE_DAY)
