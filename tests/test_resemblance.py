"""Resemblance family (models/resemblance.py) on populations of a few accounts with known nearest neighbours."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from models import resemblance

D = dt.date(2026, 3, 1)


def _row(account_id: str, level: float, feature_date: dt.date = D, requests_7d: float = 10.0) -> dict:
    """An account whose every feature sits at `level`: accounts at nearby levels are near in rank space."""
    return {
        "account_id": account_id,
        "feature_date": feature_date,
        "requests_7d": requests_7d,
        **dict.fromkeys(resemblance.FEATURES, level),
    }


def _decisions(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["account_id", "label", "decided_at"])
    frame["decided_at"] = pd.to_datetime(frame["decided_at"], utc=True)
    return frame


# q sits by the caught accounts x1, x2 (nearest x2 in rank space); r by the cleared b1, b2; the decided rows are
# from the day before.
POPULATION = pd.DataFrame([_row(a, v) for a, v in [("q", 0.9), ("r", 0.1), ("x1", 0.95), ("b1", 0.05), ("z", 0.5)]])
BEFORE = D - dt.timedelta(days=1)
DECIDED_ROWS = pd.DataFrame(
    [_row("x1", 0.95, BEFORE), _row("x2", 0.85, BEFORE), _row("b1", 0.05, BEFORE), _row("b2", 0.15, BEFORE)]
)
DECISIONS = _decisions(
    [
        ("x1", "extraction", "2026-03-01T08:00:00Z"),
        ("x2", "extraction", "2026-03-01T09:00:00Z"),
        ("b1", "benign", "2026-03-01T08:00:00Z"),
        ("b2", "benign", "2026-03-01T09:00:00Z"),
    ]
)


def _scores(decisions=DECISIONS, decided_rows=DECIDED_ROWS, **options) -> pd.DataFrame:
    return resemblance.resemblance_scores(POPULATION, decided_rows, decisions, D, **options).set_index("account_id")


def test_an_account_among_caught_accounts_outscores_one_among_cleared_ones():
    scores = _scores(k=2)
    assert scores.loc["q", "score"] > scores.loc["z", "score"] > scores.loc["r", "score"]
    assert scores.loc["q", "score"] > 0 > scores.loc["r", "score"]
    assert scores.loc["q", "reason"] == (
        "closer in behaviour to accounts decided extraction (nearest: x2) than to accounts decided benign (nearest: b2)"
    )
    assert scores.loc["r", "reason"].startswith("closer in behaviour to accounts decided benign (nearest: b")


def test_a_decided_account_is_never_its_own_neighbour():
    # x1's only other decided extraction is x2; with itself left out its distance is to x2, not 0
    scores = _scores(k=1)
    ranks = resemblance.rank_space(POPULATION, [POPULATION.set_index("account_id").loc[["x1"]].reset_index()])[0]
    x2 = resemblance.rank_space(POPULATION, [DECIDED_ROWS[DECIDED_ROWS["account_id"] == "x2"]])[0]
    assert scores.loc["x1", "extraction_distance"] == pytest.approx(np.linalg.norm(ranks - x2))
    assert "nearest: x2" in scores.loc["x1", "reason"]


def test_decisions_after_the_scoring_date_are_not_evidence():
    later = DECISIONS.assign(decided_at=pd.Timestamp("2026-03-02T00:00:01Z"))
    scores = _scores(decisions=later)
    assert (scores["score"] == 0.0).all()
    assert (scores["reason"] == "no account had been decided extraction to compare it with").all()


def test_a_decided_account_is_represented_by_how_it_behaved_before_its_decision():
    # x2's row on the day of its decision (when it had gone quiet, or been banned) is not its profile
    after = pd.DataFrame([*DECIDED_ROWS.to_dict("records"), _row("x2", 0.1, D)])
    profiles = resemblance.decided_profiles(after, DECISIONS, D).set_index("account_id")
    assert profiles.loc["x2", resemblance.FEATURES[0]] == 0.85
    # and a week without traffic is no profile either
    idle = DECIDED_ROWS.assign(requests_7d=np.where(DECIDED_ROWS["account_id"] == "x2", 0.0, 10.0))
    assert "x2" not in set(resemblance.decided_profiles(idle, DECISIONS, D)["account_id"])


def test_a_decision_after_the_scoring_date_does_not_move_an_account_s_profile():
    # b2 was cleared the day before D, then decided extraction after D: as of D it is benign, profiled before its
    # clearing, not by its rows up to the later decision
    earlier = D - dt.timedelta(days=2)
    rows = pd.DataFrame([_row("b2", 0.15, earlier), _row("b2", 0.9, BEFORE)])
    decisions = _decisions([("b2", "benign", f"{BEFORE}T08:00:00Z"), ("b2", "extraction", "2026-03-03T08:00:00Z")])
    profile = resemblance.decided_profiles(rows, decisions, D).set_index("account_id")
    assert profile.loc["b2", "decision"] == "benign"
    assert profile.loc["b2", resemblance.FEATURES[0]] == 0.15


def test_with_no_benign_decision_the_score_still_orders_by_closeness_to_the_caught():
    only_extraction = DECISIONS[DECISIONS["label"] == "extraction"]
    scores = _scores(decisions=only_extraction, k=2)
    assert scores.loc["q", "score"] > scores.loc["z", "score"] > scores.loc["r", "score"]
    assert scores.loc["q", "reason"].endswith("than to any decided benign")


def test_a_population_without_a_feature_is_refused():
    with pytest.raises(ValueError, match="population lacks columns"):
        resemblance.resemblance_scores(POPULATION.drop(columns=[resemblance.FEATURES[0]]), DECIDED_ROWS, DECISIONS, D)
