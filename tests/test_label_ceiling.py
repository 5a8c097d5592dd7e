"""benchmarks/label_ceiling.py: its recall measure, and that it keeps to development seeds."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.helpers import benchmark_module


def _label_ceiling():
    return benchmark_module.load("label_ceiling")


def test_recall_is_counted_above_the_benign_quantile_and_is_none_without_rows():
    ceiling = _label_ceiling()
    benign = np.arange(1000) / 1000  # 0.000 ... 0.999: the 1% threshold is about 0.990
    campaign = np.array([0.9995, 0.995, 0.5, 0.1])
    scores = np.r_[benign, campaign]
    is_campaign = np.r_[np.zeros(1000, bool), np.ones(4, bool)]
    assert ceiling.recall_at(scores, is_campaign, is_campaign, 0.01) == 0.5
    assert ceiling.recall_at(scores, is_campaign, is_campaign, 0.001) == 0.25
    assert ceiling.recall_at(scores, is_campaign, np.zeros_like(is_campaign), 0.01) is None


def test_a_report_seed_is_refused(monkeypatch, tmp_path):
    ceiling = _label_ceiling()
    monkeypatch.setattr(sys, "argv", ["label_ceiling.py", "--lakes", str(tmp_path), "--seeds", "101", "201"])
    with pytest.raises(SystemExit, match="development seeds"):
        ceiling.main()
