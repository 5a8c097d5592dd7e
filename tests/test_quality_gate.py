"""Quality gate and publish: pure checks on hand-built summaries, the Spark summaries on tiny frames, and both
jobs on a tiny hand-built lake."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from features.registry import feature_columns, feature_set_version
from jobs import publish, quality_gate
from jobs.quality_gate import (
    FAIL,
    PASS,
    SKIPPED,
    IngestDaySummary,
    QualityGateConfig,
    QualityGateError,
    ScoreDaySummary,
    check_quarantine,
    check_risk_partition,
    check_score_distribution,
)
from lake import catalog
from lake.errors import ConflictError, MissingInputError
from models.config import TIERS

DAY = dt.date(2026, 3, 10)
CONFIG = QualityGateConfig()


def _day(offset: int) -> dt.date:
    return DAY + dt.timedelta(days=offset)


def _scores(offset: int, mean: float, flagged: float, version: str = "3", accounts: int = 1000) -> ScoreDaySummary:
    return ScoreDaySummary(_day(offset), accounts, mean, flagged, (version,))


HISTORY = [_scores(-3, 0.10, 0.010), _scores(-2, 0.12, 0.012), _scores(-1, 0.11, 0.011)]


def _by_name(results):
    return {r.name: r for r in results}


def test_risk_partition_must_exist_and_cover_every_featured_account():
    assert check_risk_partition(None, 100).status == FAIL
    assert check_risk_partition(_scores(0, 0.1, 0.01, accounts=0), 0).status == FAIL
    missing = check_risk_partition(_scores(0, 0.1, 0.01, accounts=90), 100)
    assert missing.status == FAIL and "90 accounts scored but account_features has 100" in missing.detail
    assert check_risk_partition(_scores(0, 0.1, 0.01, accounts=100), 100).status == PASS


def test_score_distribution_within_history_passes():
    results = _by_name(check_score_distribution(_scores(0, 0.115, 0.013), HISTORY, CONFIG))
    assert results["flagged_share"].status == PASS and results["mean_score"].status == PASS


def test_flagged_share_spike_and_mean_shift_fail_against_history():
    # median 1.1%: limit max(3.3%, 6.1%) = 6.1%; 8% is a spike
    spike = _by_name(check_score_distribution(_scores(0, 0.11, 0.08), HISTORY, CONFIG))
    assert spike["flagged_share"].status == FAIL and "limit 6.10%" in spike["flagged_share"].detail
    # trailing range 0.10..0.12, margin max(0.05, 0.02) -> allowed 0.05..0.17
    shifted = _by_name(check_score_distribution(_scores(0, 0.18, 0.011), HISTORY, CONFIG))
    assert shifted["mean_score"].status == FAIL and "allowed 0.0500..0.1700" in shifted["mean_score"].detail
    collapsed = _by_name(check_score_distribution(_scores(0, 0.01, 0.0), HISTORY, CONFIG))
    assert collapsed["mean_score"].status == FAIL


def test_history_of_another_model_version_is_not_compared_but_the_ceiling_always_applies():
    other_model = _by_name(check_score_distribution(_scores(0, 0.6, 0.2, version="4"), HISTORY, CONFIG))
    assert other_model["flagged_share"].status == SKIPPED and other_model["mean_score"].status == SKIPPED
    assert "0 trailing score date(s) with model v4" in other_model["mean_score"].detail
    broken = _by_name(check_score_distribution(_scores(0, 0.7, 0.6, version="4"), HISTORY, CONFIG))
    assert broken["flagged_share"].status == FAIL and "above the ceiling 50.0%" in broken["flagged_share"].detail


def test_quarantine_spike_against_the_trailing_median():
    history = [IngestDaySummary(_day(-i), 10_000, q) for i, q in ((1, 10), (2, 12), (3, 8), (4, 11))]
    assert check_quarantine(IngestDaySummary(DAY, 10_000, 30), history, CONFIG).status == PASS  # 0.3% < 1.1%
    spike = check_quarantine(IngestDaySummary(DAY, 10_000, 500), history, CONFIG)  # 5% > 1.1%
    assert spike.status == FAIL and "500 of 10,000 raw rows quarantined (5.00%)" in spike.detail
    assert check_quarantine(None, history, CONFIG).status == FAIL
    assert check_quarantine(IngestDaySummary(DAY, 100, 30), [], CONFIG).status == FAIL  # 30% > ceiling
    assert check_quarantine(IngestDaySummary(DAY, 100, 5), [], CONFIG).status == SKIPPED


def test_enforce_names_every_failed_check():
    results = [
        quality_gate.CheckResult("mean_score", FAIL, "mean 0.9"),
        quality_gate.CheckResult("quarantine_share", FAIL, "5%"),
        quality_gate.CheckResult("risk_partition", PASS, "ok"),
    ]
    with pytest.raises(QualityGateError, match=r"2026-03-10: mean_score: mean 0.9; quarantine_share: 5%"):
        quality_gate.enforce(DAY, results)
    quality_gate.enforce(DAY, results[2:])


def _risk_rows(day: dt.date, tiers: list[str], scores: list[float], version: str = "3") -> list[dict]:
    return [
        {
            "score_date": day,
            "account_id": f"a{i}",
            "score": s,
            "tier": t,
            "cluster_id": None,
            "cluster_score": None,
            "reasons": [],
            "model_name": "m",
            "model_version": version,
            "feature_set_version": feature_set_version(),
        }
        for i, (t, s) in enumerate(zip(tiers, scores))
    ]


def test_score_day_summaries_on_a_tiny_frame(spark):
    rows = _risk_rows(_day(0), ["critical", "high", "low", "low"], [0.9, 0.7, 0.1, 0.1])
    rows += _risk_rows(_day(-1), ["low", "low"], [0.2, 0.4], version="2")
    frame = spark.createDataFrame(
        [(r["score_date"], r["score"], r["tier"], r["model_version"]) for r in rows],
        "score_date date, score double, tier string, model_version string",
    )
    got = {r["score_date"]: r for r in quality_gate.score_day_summaries(frame).collect()}
    assert (got[_day(0)]["accounts"], got[_day(0)]["flagged_share"], list(got[_day(0)]["model_versions"])) == (
        4,
        0.5,
        ["3"],
    )
    assert got[_day(0)]["mean_score"] == pytest.approx(0.45)
    assert got[_day(-1)]["mean_score"] == pytest.approx(0.3) and got[_day(-1)]["flagged_share"] == 0.0


def _tiny_lake(settings, day: dt.date, quarantined: int) -> None:
    tiers = ["critical", "high", "elevated"] + ["low"] * 17
    scores = [0.95, 0.8, 0.5] + [0.05] * 17
    catalog.write_arrow(
        settings,
        "account_risk",
        pa.Table.from_pylist(_risk_rows(day, tiers, scores), schema=catalog.table("account_risk").schema),
        partition_value=day,
    )
    _score_marker(settings, day)
    columns = feature_columns()
    catalog.write_arrow(
        settings,
        "account_features",
        pa.table(
            {
                "account_id": [f"a{i}" for i in range(20)],
                "feature_date": [day] * 20,
                **{c: [0.0] * 20 for c in columns},
                "feature_set_version": [feature_set_version()] * 20,
            }
        ),
        partition_value=day,
    )
    catalog.write_arrow(
        settings,
        "ingest_runs",
        pa.Table.from_pylist(
            [
                {
                    "ingest_run_id": f"ingest-{day}-v0",
                    "event_date": day,
                    "raw_table_version": 0,
                    "raw_rows": 1000,
                    "bronze_rows": 1000 - quarantined,
                    "quarantined_rows": quarantined,
                    "quarantine_reasons": "{}",
                }
            ],
            schema=catalog.table("ingest_runs").schema,
        ),
        partition_value=day,
    )
    catalog.write_arrow(
        settings,
        "cluster_risk",
        pa.Table.from_pylist(
            [
                {
                    "score_date": day,
                    "cluster_id": "c1",
                    "n_accounts": 3,
                    "requests": 10,
                    "score": 0.9,
                    "top_capabilities": ["coding"],
                    "link_evidence": ["payment"],
                }
            ],
            schema=catalog.table("cluster_risk").schema,
        ),
        partition_value=day,
    )


def test_gate_job_passes_a_normal_day_and_fails_a_quarantine_spike(spark, settings):
    for offset in range(-4, 0):
        _tiny_lake(settings, _day(offset), quarantined=2)
    _tiny_lake(settings, DAY, quarantined=2)
    results = _by_name(quality_gate.run(spark, settings, DAY))
    assert results["risk_partition"].status == PASS
    assert results["flagged_share"].status == PASS and results["mean_score"].status == PASS
    assert results["quarantine_share"].status == PASS

    _tiny_lake(settings, DAY, quarantined=150)
    with pytest.raises(QualityGateError, match=r"quarantine_share: 150 of 1,000 raw rows quarantined \(15.00%\)"):
        quality_gate.run(spark, settings, DAY)


def test_gate_job_fails_a_day_that_was_not_scored(spark, settings):
    _tiny_lake(settings, _day(-1), quarantined=2)
    with pytest.raises(QualityGateError, match="risk_partition: account_risk has no rows for the day"):
        quality_gate.run(spark, settings, DAY)


def test_risk_day_summary_counts_tiers(spark):
    rows = _risk_rows(DAY, ["critical", "low", "low", "high"], [0.9, 0.1, 0.2, 0.7])
    frame = spark.createDataFrame(
        [(r["tier"], r["model_name"], r["model_version"], r["feature_set_version"]) for r in rows],
        "tier string, model_name string, model_version string, feature_set_version string",
    )
    got = publish.risk_day_summary(frame).collect()[0]
    assert got["accounts"] == 4
    assert {t: got[f"{t}_accounts"] for t in TIERS} == {"critical": 1, "high": 1, "elevated": 0, "low": 2}
    assert list(got["model_versions"]) == ["3"]


def test_publish_records_one_row_per_day_and_a_rerun_replaces_it(spark, settings):
    _tiny_lake(settings, _day(-1), quarantined=2)
    _tiny_lake(settings, DAY, quarantined=2)
    first = publish.run(spark, settings, _day(-1))
    publish.run(spark, settings, DAY)
    again = publish.run(spark, settings, DAY)
    table = catalog.read_arrow(settings, "risk_publications").to_pandas().sort_values("score_date")
    assert list(table["score_date"]) == [_day(-1), DAY]
    row = table.iloc[1]
    assert (row["accounts"], row["clusters"], row["model_name"], row["model_version"]) == (20, 1, "m", "3")
    assert (row["critical_accounts"], row["high_accounts"], row["elevated_accounts"], row["low_accounts"]) == (
        1,
        1,
        1,
        17,
    )
    assert row["account_risk_version"] == again.account_risk_version
    assert first.tier_counts == again.tier_counts


def test_publish_refuses_a_day_scored_by_two_model_versions(spark, settings):
    rows = _risk_rows(DAY, ["low", "low"], [0.1, 0.2])
    rows[1]["model_version"] = "4"
    catalog.write_arrow(
        settings,
        "account_risk",
        pa.Table.from_pylist(rows, schema=catalog.table("account_risk").schema),
        partition_value=DAY,
    )
    _score_marker(settings, DAY)
    with pytest.raises(ValueError, match=r"2 model versions \['3', '4'\]"):
        publish.run(spark, settings, DAY)


def _score_marker(settings, day):
    from jobs.score import write_marker
    from models.scoring import ScoreResult

    write_marker(settings, day, ScoreResult(day, "m", "3", "fs", 20, {}, 1))


def test_publish_refuses_a_day_whose_score_run_did_not_finish(spark, settings):
    """score removes the day's marker first and commits it last: a run killed between its two tables leaves
    account_risk without its cluster_risk and no marker, and publish refuses the day."""
    from jobs.backfill import step_done
    from jobs.score import clear_marker

    _tiny_lake(settings, DAY, quarantined=2)
    assert step_done(settings, "score", DAY)
    clear_marker(settings, DAY)  # as a score run that stopped after account_risk leaves it
    with pytest.raises(MissingInputError, match=f"the score run for {DAY} did not finish"):
        publish.run(spark, settings, DAY)
    assert not catalog.exists(settings, "risk_publications")
    assert not step_done(settings, "score", DAY), "a backfill reruns the day"


def test_catalog_tier_columns_follow_the_model_tiers():
    assert catalog.RISK_TIERS == TIERS


@pytest.mark.parametrize("rescore", ["started", "finished"])
def test_publish_records_nothing_when_the_day_is_rescored_while_it_reads(spark, settings, monkeypatch, rescore):
    """publish reads the marker, the table versions and the counts, then the marker again: a rescore that starts
    (clears the marker) or even finishes (a new marker) in between is a conflict, and nothing is recorded."""
    from jobs.score import clear_marker

    _tiny_lake(settings, DAY, quarantined=2)
    summary = publish.risk_day_summary

    def rescored_meanwhile(risk_day):
        clear_marker(settings, DAY)
        if rescore == "finished":
            _score_marker(settings, DAY)
        return summary(risk_day)

    monkeypatch.setattr(publish, "risk_day_summary", rescored_meanwhile)
    with pytest.raises(ConflictError, match=f"{DAY} was rescored while it was being published"):
        publish.run(spark, settings, DAY)
    assert not catalog.exists(settings, "risk_publications")
