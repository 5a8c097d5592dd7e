"""XGBoost models move between devices: trained on a GPU they score on a CPU and the other way round, with the
same predictions up to float32 summation order. Runs where a GPU is visible (gpu marker); the device choice
itself (auto/cuda/cpu, and refusing cuda without a GPU) is tested everywhere in test_train_and_score."""

from __future__ import annotations

import numpy as np
import pytest

from models.train import resolve_device

pytestmark = pytest.mark.gpu


def _data(seed: int = 3):
    rng = np.random.default_rng(seed)
    x = rng.random((4000, 12))
    y = (x[:, 0] + 0.5 * x[:, 3] + 0.1 * rng.standard_normal(4000) > 0.8).astype(float)
    return x, y


def _train(device: str):
    import xgboost as xgb

    x, y = _data()
    params = {"objective": "binary:logistic", "max_depth": 5, "eta": 0.2, "device": device, "tree_method": "hist"}
    return xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=40)


def _predict(raw: bytes, device: str) -> np.ndarray:
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    booster.set_param({"device": device})
    x, _ = _data(seed=9)
    return booster.predict(xgb.DMatrix(x))


def test_auto_picks_the_gpu_here():
    assert resolve_device("auto") == "cuda"


@pytest.mark.parametrize("trained_on", ["cuda", "cpu"])
def test_a_model_scores_the_same_on_either_device(trained_on):
    raw = bytes(_train(trained_on).save_raw("ubj"))
    on_cpu, on_gpu = _predict(raw, "cpu"), _predict(raw, "cuda")
    assert on_cpu.std() > 0.1  # a real model, not a constant
    np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-5, atol=1e-6)
