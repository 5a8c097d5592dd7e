"""Propagation family on three- and four-account graphs with known answers."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from models import propagation

D = dt.date(2026, 3, 1)
BEFORE = pd.Timestamp("2026-02-20T10:00:00Z")


def _incidence(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(propagation.INCIDENCE_COLUMNS))


def _decisions(rows: list[tuple[str, str, pd.Timestamp]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["account_id", "label", "decided_at"])


def _scores(incidence, decisions, **options) -> pd.DataFrame:
    return propagation.propagation_scores(incidence, decisions, D, **options).set_index("account_id")


# a, b, c share one card; a is decided extraction. x shares nothing with anyone.
CARD = _incidence([("a", "payment", "h1", 3), ("b", "payment", "h1", 3), ("c", "payment", "h1", 3)])


def test_three_accounts_on_one_card_share_the_decided_ones_mass_exactly():
    scores = _scores(CARD, _decisions([("a", "extraction", BEFORE)]), accounts=["a", "b", "c", "x"])
    # one artefact of three members: T is 1/3 everywhere, so p = r e_a + (1 - r) * mean(p); mean(p) = r/3 / r = 1/3
    # at the fixpoint, hence p_b = (1 - r) / 3
    expected = (1 - propagation.RESTART) / 3
    assert scores.loc["b", "extraction_mass"] == pytest.approx(expected, rel=1e-6)
    assert scores.loc["c", "score"] == pytest.approx(expected, rel=1e-6)
    # leave-one-out: a's own restart does not count for a, and its siblings are undecided
    assert scores.loc["a", "score"] == pytest.approx(0.0, abs=1e-9)
    assert scores.loc["x", "score"] == 0.0
    assert scores.loc["x", "reason"] == "shares no linking artefact with another account"
    assert (
        scores.loc["b", "reason"]
        == "shares one payment method with 2 other accounts, 1 of them decided extraction, 0 benign"
    )


def test_benign_siblings_pull_an_account_down():
    decisions = _decisions([("a", "extraction", BEFORE), ("b", "benign", BEFORE)])
    scores = _scores(CARD, decisions)
    # a and b sit symmetrically around c: their masses cancel on c
    assert scores.loc["c", "extraction_mass"] == pytest.approx(scores.loc["c", "benign_mass"], rel=1e-9)
    assert scores.loc["c", "score"] == pytest.approx(0.0, abs=1e-12)
    # b's own benign decision is left out; a's extraction reaches it
    assert scores.loc["b", "score"] > 0


def test_decisions_after_the_scoring_date_are_not_evidence():
    late = pd.Timestamp(D + dt.timedelta(days=1), tz="UTC")  # the first instant after the scoring day
    scores = _scores(CARD, _decisions([("a", "extraction", late), ("b", "benign", BEFORE)]))
    assert scores.loc["c", "extraction_mass"] == 0.0 and scores.loc["c", "score"] < 0
    # the latest decision on or before the date wins; needs_more_info is no evidence either way
    history = _decisions(
        [("a", "benign", BEFORE), ("a", "extraction", BEFORE + pd.Timedelta(days=1)), ("b", "needs_more_info", BEFORE)]
    )
    assert propagation.decisions_as_of(history, D).to_dict() == {"a": "extraction"}


def test_rare_artefacts_carry_more_than_crowded_ones():
    # the decided a shares a rare template with d and a crowded IP prefix (40 accounts, most outside the graph)
    # with e; the graph is otherwise symmetric, so only the artefacts' weights tell d from e
    def graph(prefix_accounts: int) -> pd.DataFrame:
        return _incidence(
            [
                ("a", "template", "t1", 2),
                ("d", "template", "t1", 2),
                ("a", "ip_prefix", "p1", prefix_accounts),
                ("e", "ip_prefix", "p1", prefix_accounts),
            ]
        )

    n = 1000
    weights = propagation.artefact_weights(pd.Series([2, 40]), n)
    assert weights == pytest.approx([np.log(1 + 1000 / 2), np.log(1 + 1000 / 40)])
    decided = _decisions([("a", "extraction", BEFORE)])
    scores = _scores(graph(40), decided, population=n)
    # a walks to t1 with probability w_t / (w_t + w_p), then to d with 1/2: d's mass over e's is the weights' ratio
    assert scores.loc["d", "score"] / scores.loc["e", "score"] == pytest.approx(weights[0] / weights[1], rel=1e-6)
    even = _scores(graph(2), decided, population=n)
    assert even.loc["d", "score"] == pytest.approx(even.loc["e", "score"], rel=1e-9)
    assert scores.loc["d", "reason"] == (
        "shares one rare prompt template with 1 other account, 1 of them decided extraction, 0 benign"
    )


def test_a_hub_spreads_its_mass_thin():
    # one decided account on a card shared with two accounts, and on another shared with twenty
    small = [("a", "payment", "small", 3), ("s1", "payment", "small", 3), ("s2", "payment", "small", 3)]
    large = [("a", "payment", "large", 21)] + [(f"l{i}", "payment", "large", 21) for i in range(20)]
    scores = _scores(_incidence(small + large), _decisions([("a", "extraction", BEFORE)]))
    assert scores.loc["s1", "score"] > 5 * scores.loc["l0", "score"] > 0


def test_many_artefacts_of_one_kind_weigh_as_one_kind():
    # a has ten templates, each shared with one t-account, and one card shared with c; all artefacts are shared
    # by two accounts, so they weigh alike, and the templates together get the card's share: c gets what the ten
    # t-accounts get together
    rows = [("a", "payment", "card", 2), ("c", "payment", "card", 2)]
    rows += [row for i in range(10) for row in (("a", "template", f"t{i}", 2), (f"t{i}", "template", f"t{i}", 2))]
    scores = _scores(_incidence(rows), _decisions([("a", "extraction", BEFORE)]))
    together = sum(scores.loc[f"t{i}", "score"] for i in range(10))
    assert scores.loc["c", "score"] == pytest.approx(together, rel=1e-9)
    assert scores.loc["t0", "score"] == pytest.approx(scores.loc["c", "score"] / 10, rel=1e-9)


def test_missing_columns_are_refused():
    with pytest.raises(ValueError, match="incidence lacks columns"):
        propagation.propagation_scores(CARD.drop(columns="artefact_accounts"), _decisions([]), D)


def test_incidence_is_the_edges_ends_over_the_memory(spark):
    from features import spark_edges

    columns = (
        "feature_date date, src string, dst string, link_type string, artefact string, artefact_accounts bigint, "
        "strength double, in_cluster_graph boolean, first_seen date, last_seen date"
    )
    day = lambda n: D - dt.timedelta(days=n)  # noqa: E731
    edges = spark.createDataFrame(
        [
            (day(0), "a", "b", "payment", "h1", 2, 10.0, True, day(0), day(0)),
            (day(5), "a", "c", "payment", "h1", 3, 10.0, False, day(5), day(5)),  # the card had a third user then
            (day(10), "a", "z", "template", "t9", 2, 4.0, True, day(10), day(10)),  # before the memory: forgotten
            (day(-1), "a", "y", "template", "t8", 2, 4.0, True, day(-1), day(-1)),  # after the date: not yet known
        ],
        columns,
    )
    rows = spark_edges.artefact_incidence(edges, D, memory_days=10).collect()
    assert sorted(tuple(r) for r in rows) == [
        ("a", "payment", "h1", 3),
        ("b", "payment", "h1", 3),
        ("c", "payment", "h1", 3),
    ]


def test_the_same_graph_in_another_row_order_scores_and_explains_the_same():
    """The engine returns account_edges' rows in any order: a rerun must write the same family_scores."""
    rng = np.random.default_rng(3)
    rows = [
        (f"a{i}", kind, f"{kind}-{rng.integers(6)}", 4)
        for i in range(40)
        for kind in ("payment", "template")
        if rng.random() < 0.7
    ]
    incidence = pd.DataFrame(rows, columns=list(propagation.INCIDENCE_COLUMNS))
    decisions = pd.DataFrame(
        {
            "account_id": ["a0", "a1", "a2"],
            "label": ["extraction", "extraction", "benign"],
            "decided_at": pd.to_datetime(["2026-03-01"] * 3, utc=True),
        }
    )
    day = dt.date(2026, 3, 2)
    first = propagation.propagation_scores(incidence, decisions, day)
    shuffled = propagation.propagation_scores(incidence.sample(frac=1.0, random_state=5), decisions, day)
    pd.testing.assert_frame_equal(first, shuffled, check_exact=True)
