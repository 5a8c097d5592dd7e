"""The exploration queue (models/review_queue.py) on populations of a few accounts with known distances."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import resemblance
from models.review_queue import exploration_picks


def _row(account_id: str, level: float) -> dict:
    """An account whose every feature sits at `level`: accounts at nearby levels are near in rank space."""
    return {"account_id": account_id, **dict.fromkeys(resemblance.FEATURES, level)}


# Two hundred ordinary accounts spread over the range, and the queue's candidates: the three `near` ones behave like
# the account decided extraction, `far` and its twin `far2` like nobody decided, `mid` between.
FILLERS = [_row(f"f{i:03d}", i / 200) for i in range(200)]
CANDIDATES = {
    "near": (0.91, 0.99),
    "near2": (0.895, 0.985),
    "far": (0.205, 0.98),
    "near3": (0.905, 0.975),
    "far2": (0.205, 0.97),
    "mid": (0.505, 0.96),
}
POPULATION = pd.DataFrame([*FILLERS, *(_row(a, level) for a, (level, _) in CANDIDATES.items())])
QUEUE = pd.DataFrame({"account_id": list(CANDIDATES), "score": [s for _, s in CANDIDATES.values()]})
CAUGHT = pd.DataFrame([_row("caught", 0.9)])


def _points(ids) -> np.ndarray:
    rows = POPULATION.set_index("account_id").loc[list(ids)].reset_index()
    return resemblance.rank_space(POPULATION, [rows])[0]


def test_picks_are_unlike_the_caught_and_unlike_each_other_in_score_order():
    picks, spread = exploration_picks(QUEUE, POPULATION, CAUGHT, limit=10)
    assert list(picks["account_id"]) == ["far", "mid"]  # the `near` ones sit by the caught account, `far2` on `far`
    assert (picks["distance"] >= spread).all() and (picks["nearest_extraction"] == "caught").all()
    to_caught = np.linalg.norm(_points(QUEUE["account_id"]) - resemblance.rank_space(POPULATION, [CAUGHT])[0], axis=1)
    assert spread == pytest.approx(np.median(to_caught))
    far, mid = _points(["far", "mid"])
    assert np.linalg.norm(far - mid) >= spread


def test_the_limit_keeps_the_highest_scores_and_nothing_decided_spreads_the_candidates_alone():
    picks, _ = exploration_picks(QUEUE, POPULATION, CAUGHT, limit=1)
    assert list(picks["account_id"]) == ["far"]
    alone, spread = exploration_picks(QUEUE, POPULATION, CAUGHT.iloc[0:0], limit=10)
    # with nothing decided extraction, twins still count once: `far2` is too close to `far`
    assert {"far", "mid"} <= set(alone["account_id"]) and "far2" not in set(alone["account_id"])
    assert alone["distance"].isna().all() and spread > 0
    assert list(alone["account_id"]) == sorted(alone["account_id"], key=lambda a: -CANDIDATES[a][1])


def test_accounts_without_features_that_day_are_not_candidates_and_a_limit_below_one_is_refused():
    queue = pd.concat([pd.DataFrame({"account_id": ["ghost"], "score": [1.0]}), QUEUE])
    picks, _ = exploration_picks(queue, POPULATION, CAUGHT, limit=10)
    assert "ghost" not in set(picks["account_id"])
    with pytest.raises(ValueError, match="limit must be at least 1"):
        exploration_picks(QUEUE, POPULATION, CAUGHT, limit=0)
