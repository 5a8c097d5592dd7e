"""benchmarks/review_round.py: the queue a simulated analyst reviews knows only the decisions made by the day, and
what the round found is counted as found or cleared."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from deltalake import DeltaTable

from console.decisions import record_decision
from tests.helpers import benchmark_module, reviewed_lake

LAST_DAY = dt.date(2026, 3, 14)


def _review_round():
    return benchmark_module.load("review_round")


@pytest.fixture()
def lake(settings):
    info = reviewed_lake.write(settings, accounts=120, days=3, last_day=LAST_DAY)
    risk = DeltaTable(settings.table_uri("account_risk")).to_pandas()
    ranked = risk[risk["score_date"] == LAST_DAY].sort_values(["score", "account_id"], ascending=[False, True])
    top = ranked["account_id"].tolist()
    # the top account was decided extraction on the day; the second only the day after: not yet known then
    for account, day in ((top[0], LAST_DAY), (top[1], LAST_DAY + dt.timedelta(days=1))):
        record_decision(
            settings,
            analyst="alice",
            label="extraction",
            note="caught",
            account_id=account,
            now=dt.datetime.combine(day, dt.time(10), dt.UTC),
        )
    return settings, info, top


def test_the_plain_queue_skips_what_was_decided_by_the_day_and_only_that(lake):
    settings, _, top = lake
    picks = _review_round().queue_picks(settings, LAST_DAY, 3, "top")
    assert picks == top[1:4]  # top[0] decided that day; top[1]'s later decision was not made yet


def test_the_exploration_queue_leaves_out_what_was_decided_by_the_day(lake):
    settings, _, top = lake
    review_round = _review_round()
    picks = review_round.queue_picks(settings, LAST_DAY, 10, "explore")
    assert picks and top[0] not in picks
    with pytest.raises(ValueError, match="review queue must be one of"):
        review_round.queue_picks(settings, LAST_DAY, 3, "loudest")


def test_reviewed_accounts_count_as_found_or_cleared():
    truth = pd.DataFrame(
        {"account_id": ["c", "b", "other"], "is_campaign": [True, False, True], "campaign_id": ["X", None, "X"]}
    )
    found = _review_round().as_found(truth, ["c", "b"]).set_index("account_id")
    assert list(found.index) == ["c", "b"]
    assert found.loc["c", ["score", "tier"]].tolist() == [1.0, "critical"]
    assert found.loc["b", ["score", "tier"]].tolist() == [0.0, "low"]
