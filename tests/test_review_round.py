"""benchmarks/review_round.py: the queue a simulated analyst reviews knows only the decisions made by the day, and
what the round found is counted as found or cleared."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

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


def _write_truth(settings, accounts: list[str]) -> pd.DataFrame:
    """Ground truth for the reviewed lake: its campaign-like accounts (every 40th) are one campaign, X."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from simulator.simulate import ground_truth_path

    campaign = [i % 40 == 0 for i in range(len(accounts))]
    truth = pd.DataFrame(
        {"account_id": accounts, "is_campaign": campaign, "campaign_id": ["X" if c else None for c in campaign]}
    )
    path = Path(ground_truth_path(settings))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(truth, preserve_index=False), path)
    return truth.set_index("account_id")


def test_the_mixed_queue_takes_half_from_exploration_and_the_rest_from_the_plain_queue(lake):
    settings, _, top = lake
    review_round = _review_round()
    explored = review_round.queue_picks(settings, LAST_DAY, 5, "explore")
    picks = review_round.queue_picks(settings, LAST_DAY, 10, "mixed")
    assert picks[:5] == explored
    plain = [a for a in top[1:] if a not in explored][:5]  # top[0] was decided on the day
    assert picks[5:] == plain and len(set(picks)) == 10


def test_daily_rounds_score_each_day_before_its_review_and_a_day_knows_the_days_before(settings):
    info = reviewed_lake.write(settings, accounts=120, days=3, last_day=LAST_DAY)
    risk = DeltaTable(settings.table_uri("account_risk")).to_pandas()
    truth = _write_truth(settings, sorted(risk["account_id"].unique()))
    days = info["days"]
    calls: list[tuple] = []
    result = _review_round().daily(settings, days, 4, "top", lambda lake, *argv: calls.append((lake, argv)))

    # the jobs in the nightly order: the first day is only scored, a later one recomputes what reads decisions first
    def backfill(day, *steps):
        return ("backfill", "--from", day.isoformat(), "--to", day.isoformat(), "--steps", *steps)

    # --force: the benchmark's daily jobs already ran for these days, and a backfill skips days it has done
    recompute = ("features", "families", "--force")
    later = [job for day in days[1:] for job in (backfill(day, *recompute), backfill(day, "score"))]
    assert [argv for _, argv in calls] == [backfill(days[0], "score"), *later]
    assert {lake for lake, _ in calls} == {Path(settings.lake_root)}

    ids = result["account_ids"]
    assert len(ids) == 12 and len(set(ids)) == 12  # no day reviews an account an earlier day decided
    labels = DeltaTable(settings.table_uri("enforcement_labels")).to_pandas()
    reviews = labels["note"].str.startswith("benchmark review round")
    earlier = set(labels.loc[~reviews, "account_id"])  # the helper's own decision, made on the first day
    first_day = risk[(risk["score_date"] == days[0]) & ~risk["account_id"].isin(earlier)]
    first_day_queue = first_day.sort_values(["score", "account_id"], ascending=[False, True])["account_id"]
    assert ids[:4] == first_day_queue.head(4).tolist() and not earlier & set(ids)

    labels = labels[reviews].set_index("account_id")
    assert sorted(labels.index) == sorted(ids)
    expected = ["extraction" if truth.at[a, "is_campaign"] else "benign" for a in ids]
    assert labels.loc[ids, "label"].tolist() == expected
    decided_on = pd.to_datetime(labels.loc[ids, "decided_at"], utc=True).dt.date.tolist()
    assert decided_on == [day for day in days for _ in range(4)]

    per_day = result["days"]
    assert [d["day"] for d in per_day] == [d.isoformat() for d in days]
    assert all(d["extraction"] + d["benign"] == 4 for d in per_day)
    found_first = [d["campaigns_first_labelled"] for d in per_day if d["extraction"]]
    assert found_first and found_first[0] == ["X"] and all(f == [] for f in found_first[1:])


def test_daily_retraining_trains_as_of_each_later_day_before_scoring_it(settings):
    info = reviewed_lake.write(settings, accounts=120, days=3, last_day=LAST_DAY)
    _write_truth(settings, sorted(DeltaTable(settings.table_uri("account_risk")).to_pandas()["account_id"].unique()))
    calls: list[tuple] = []
    result = _review_round().daily(settings, info["days"], 0, "top", lambda _, *argv: calls.append(argv), retrain=True)
    jobs = [argv[0] if argv[0] == "train" else " ".join(argv[argv.index("--steps") + 1 :]) for argv in calls]
    recompute = "features families --force"
    assert jobs == ["score", recompute, "train", "score", recompute, "train", "score"]
    assert [argv[2] for argv in calls if argv[0] == "train"] == [d.isoformat() for d in info["days"][1:]]
    assert result["account_ids"] == [] and all(d["reviewed"] == 0 for d in result["days"])  # budget 0: no reviews
    assert {d["model_version"] for d in result["days"]} == {reviewed_lake.MODEL_VERSION}  # what scored each day


def test_audited_queues_take_the_tier_audit_and_fill_from_exploration(lake, monkeypatch):
    """`explore-audit` spends half the budget on the audit draw, `explore-plus-audit` draws as many on top of a
    whole exploration budget; neither reviews an account twice."""
    from models import tier_audit

    settings, _, _ = lake
    review_round = _review_round()
    explored = review_round.queue_picks(settings, LAST_DAY, 12, "explore")
    asked = []

    def fake_draw(settings, day, per_stratum):  # the model registry's bounds are not in this lake
        asked.append(per_stratum)
        drawn = [explored[0], *(f"drawn-{i}" for i in range(per_stratum * len(tier_audit.STRATA) - 1))]
        return pd.DataFrame({"account_id": drawn})

    monkeypatch.setattr(tier_audit, "draw_for_day", fake_draw)
    half = review_round.queue_picks(settings, LAST_DAY, 8, "explore-audit")
    assert asked[-1] == 1 and len(half) == 8 and len(set(half)) == 8
    assert half[:4] == [explored[0], "drawn-0", "drawn-1", "drawn-2"] and half[4:] == explored[1:5]
    on_top = review_round.queue_picks(settings, LAST_DAY, 8, "explore-plus-audit")
    assert asked[-1] == 2 and len(on_top) == 16 and len(set(on_top)) == 16
    assert on_top[:8] == [explored[0], *(f"drawn-{i}" for i in range(7))] and on_top[8:] == explored[1:9]
