"""daily_aggregate on a hand-built bronze day with a known answer for every daily stat, and the
aggregate job on a real Delta lake."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from features.spark_daily import daily_aggregate
from lake import catalog
from ingest_records import record_ingest_run

UTC = dt.timezone.utc
DAY = dt.date(2026, 3, 10)


def at(hour: int, minute: int = 0, second: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


def bronze_row(**values) -> dict:
    """A bronze `requests` row: every declared column, null unless given."""
    row = {name: None for name in catalog.table("requests").columns}
    unknown = set(values) - set(row)
    if unknown:
        raise KeyError(f"not bronze columns: {sorted(unknown)}")
    row.update(values)
    if row["event_ts"] is not None and row["event_date"] is None:
        row["event_date"] = row["event_ts"].date()
    return row


BRONZE = [
    bronze_row(request_id="a1", event_ts=at(3, 0, 0), account_id="A", model="m-new", endpoint="messages",
               prompt_prefix="Explain the reasoning behind answer 12, step by step", user_agent="python-requests/2.31",
               asn=100, country="US", ip_prefix_hash="p1", stream=True, stop_reason="end_turn",
               system_prompt_hash="s1", input_tokens=100, output_tokens=400, tool_count=0),
    bronze_row(request_id="a2", event_ts=at(3, 0, 30), account_id="A", model="m-new", endpoint="batch",
               prompt_prefix="Explain the reasoning behind answer 57,   step by step",
               user_agent="anthropic-python/0.40 httpx/0.27", asn=300, country="FR", ip_prefix_hash="p2",
               stream=False, stop_reason="max_tokens", system_prompt_hash="s1", input_tokens=50, output_tokens=200,
               tool_count=4),
    bronze_row(request_id="a3", event_ts=at(3, 0, 50), account_id="A", model="m-old", endpoint="messages",
               prompt_prefix="Grade this response on a scale of 1 to 10 using the rubric", user_agent="curl/8.0",
               asn=200, country=None, ip_prefix_hash="p1", stop_reason="max_tokens", system_prompt_hash="s2",
               input_tokens=10, output_tokens=5),
    bronze_row(request_id="a4", event_ts=at(5, 10, 0), account_id="A", model="m-old", endpoint="messages",
               prompt_prefix="Опишите эту картинку", has_image=True, country="US", ip_prefix_hash="p3",
               stop_reason="end_turn"),
    # m-future is released exactly at midnight after DAY, so it is not yet the newest model on DAY
    bronze_row(request_id="b1", event_ts=at(23, 59, 59), account_id="B", model="m-future", endpoint="messages",
               prompt_prefix="def foo(x): fix this bug", user_agent="Go-http-client/1.1", asn=100, country="DE",
               ip_prefix_hash="p4", system_prompt_hash="s9", input_tokens=7, output_tokens=3, tool_count=1),
    # another day: must not leak into DAY's aggregate
    bronze_row(request_id="c1", event_ts=at(12, day=DAY - dt.timedelta(days=1)), account_id="C", model="m-old"),
]
ACCOUNTS = [("A", "US"), ("B", "DE"), ("C", None)]
RELEASES = [("m-old", dt.datetime(2025, 1, 1, tzinfo=UTC)), ("m-new", at(2)),
            ("m-future", dt.datetime(2026, 3, 11, tzinfo=UTC))]
ASN_INFO = [(100, "hosting"), (200, "residential"), (300, "proxy")]


def _hours(**counts: int) -> dict:
    return {f"hour_{h:02d}": counts.get(f"h{h:02d}", 0) for h in range(24)}


EXPECTED = {
    "A": dict(
        requests=4, input_tokens=160, output_tokens=605, active_hours=2, **_hours(h03=3, h05=1),
        # gaps 30 s, 20 s and 03:00:50 -> 05:10:00 = 7750 s
        gap_count=3, gap_sum_s=7800.0, gap_sumsq_s=30.0**2 + 20.0**2 + 7750.0**2,
        active_minutes=2, peak_rpm=3, batch_requests=1, stream_requests=1, cot_requests=2, rubric_requests=1,
        # a1 and a2 normalize to one fingerprint
        repeated_template_requests=1,
        coding_requests=0, agentic_requests=1, tool_use_requests=0, reasoning_requests=0, vision_requests=1,
        chat_requests=2, max_tokens_stops=2, non_english_requests=1, top_system_prompt_requests=2,
        newest_model="m-new", newest_model_requests=2, newest_model_first_ts=at(3),
        newest_model_majority_hour_ts=at(3), ip_prefixes=["p1", "p2", "p3"], countries=["FR", "US"],
        hosting_proxy_requests=2, signup_mismatch_requests=1, raw_http_requests=2,
    ),
    "B": dict(
        requests=1, input_tokens=7, output_tokens=3, active_hours=1, **_hours(h23=1),
        gap_count=0, gap_sum_s=0.0, gap_sumsq_s=0.0, active_minutes=1, peak_rpm=1, batch_requests=0,
        stream_requests=0, cot_requests=0, rubric_requests=0, repeated_template_requests=0,
        coding_requests=0, agentic_requests=0, tool_use_requests=1, reasoning_requests=0, vision_requests=0,
        chat_requests=0, max_tokens_stops=0, non_english_requests=0, top_system_prompt_requests=1,
        newest_model="m-new", newest_model_requests=0, newest_model_first_ts=None,
        newest_model_majority_hour_ts=None, ip_prefixes=["p4"], countries=["DE"],
        hosting_proxy_requests=1, signup_mismatch_requests=0, raw_http_requests=1,
    ),
}


def _frames(spark):
    requests = spark.createDataFrame([tuple(r.values()) for r in BRONZE], catalog.spark_ddl("requests"))
    accounts = spark.createDataFrame([(a, None, None, c, None, None, None) for a, c in ACCOUNTS],
                                     catalog.spark_ddl("accounts"))
    releases = spark.createDataFrame(RELEASES, catalog.spark_ddl("model_releases"))
    asn_info = spark.createDataFrame(ASN_INFO, catalog.spark_ddl("asn_info"))
    return requests, accounts, releases, asn_info


@pytest.fixture(scope="module")
def daily_rows(spark):
    daily = daily_aggregate(*_frames(spark), DAY)
    # via Arrow so timestamps come back as UTC-aware datetimes, independent of the test process's zone
    return {row["account_id"]: row for row in daily.toArrow().to_pylist()}, daily.schema


def test_one_row_per_active_account_of_the_day(daily_rows):
    rows, _ = daily_rows
    assert sorted(rows) == ["A", "B"]
    assert {r["event_date"] for r in rows.values()} == {DAY}


def test_output_conforms_to_catalog(daily_rows):
    _, schema = daily_rows
    declared = catalog.table("account_daily").schema
    assert schema.names == declared.names
    assert [f.dataType.simpleString() for f in schema] == [catalog.spark_type(f.type) for f in declared]


@pytest.mark.parametrize("account_id", sorted(EXPECTED))
@pytest.mark.parametrize("stat", [name for name, _ in catalog.DAILY_STAT_FIELDS])
def test_daily_stat(daily_rows, account_id, stat):
    rows, _ = daily_rows
    expected = EXPECTED[account_id][stat]
    actual = rows[account_id][stat]
    if isinstance(expected, float):
        assert actual == pytest.approx(expected)
    else:
        assert actual == expected


def test_no_prompt_text_reaches_the_daily_table(daily_rows):
    rows, _ = daily_rows
    prompt_words = {word.lower() for r in BRONZE if r["prompt_prefix"] for word in r["prompt_prefix"].split()
                    if len(word) > 4}
    for row in rows.values():
        for value in row.values():
            texts = value if isinstance(value, list) else [value]
            for text in texts:
                if isinstance(text, str):
                    assert not any(word in text.lower() for word in prompt_words), text


def test_no_newest_model_when_nothing_was_released_yet(spark):
    requests, accounts, releases, asn_info = _frames(spark)
    no_releases = releases.where("released_at > TIMESTAMP'2030-01-01 00:00:00'")
    rows = {r["account_id"]: r for r in daily_aggregate(requests, accounts, no_releases, asn_info, DAY).collect()}
    assert rows["A"]["newest_model"] is None
    assert rows["A"]["newest_model_requests"] == 0
    assert rows["A"]["newest_model_first_ts"] is None
    assert rows["A"]["newest_model_majority_hour_ts"] is None


# --- the aggregate job on a real lake -------------------------------------------------------------

def write_raw_inputs(settings, bronze_rows, event_dates):
    """Bronze partitions plus the raw reference tables, written with the catalog's delta-rs writer."""
    for day in event_dates:
        day_rows = [r for r in bronze_rows if r["event_date"] == day]
        catalog.write_arrow(settings, "requests", pa.Table.from_pylist(day_rows, catalog.table("requests").schema),
                            partition_value=day)
        record_ingest_run(settings, day)
    accounts = [dict(account_id=a, org_id=None, created_at=None, signup_country=c, payment_fingerprint=None,
                     verification=None, program=None) for a, c in ACCOUNTS]
    catalog.write_arrow(settings, "accounts", pa.Table.from_pylist(accounts, catalog.table("accounts").schema))
    catalog.write_arrow(settings, "model_releases", pa.Table.from_pylist(
        [dict(model=m, released_at=t) for m, t in RELEASES], catalog.table("model_releases").schema))
    catalog.write_arrow(settings, "asn_info", pa.Table.from_pylist(
        [dict(asn=a, category=c) for a, c in ASN_INFO], catalog.table("asn_info").schema))


def test_aggregate_job_writes_the_partition_and_reruns_idempotently(spark, settings, capsys):
    from jobs import aggregate

    write_raw_inputs(settings, BRONZE, [DAY, DAY - dt.timedelta(days=1)])
    assert aggregate.run(spark, settings, DAY) == 2
    assert "2 account-day rows" in capsys.readouterr().out
    assert aggregate.run(spark, settings, DAY - dt.timedelta(days=1)) == 1
    assert aggregate.run(spark, settings, DAY) == 2  # rerun replaces DAY's partition only

    declared = catalog.table("account_daily").schema
    written = catalog.read_arrow(settings, "account_daily")
    assert sorted(written.schema.names) == sorted(declared.names)
    written = written.select(declared.names).cast(declared)  # raises unless every type matches the catalog
    assert written.num_rows == 3  # the rerun replaced DAY's rows instead of appending
    by_key = {(r["account_id"], r["event_date"]): r for r in written.to_pylist()}
    assert sorted(by_key) == [("A", DAY), ("B", DAY), ("C", DAY - dt.timedelta(days=1))]
    assert by_key[("A", DAY)]["requests"] == 4
    assert by_key[("A", DAY)]["peak_rpm"] == 3
    assert by_key[("C", DAY - dt.timedelta(days=1))]["newest_model"] == "m-old"


def test_aggregate_job_refuses_a_missing_bronze_day(spark, settings):
    from jobs import aggregate

    write_raw_inputs(settings, BRONZE, [DAY])
    with pytest.raises(ValueError, match="0 ingest run records for 2026-03-12"):
        aggregate.run(spark, settings, DAY + dt.timedelta(days=2))
    assert not catalog.exists(settings, "account_daily")


def test_aggregate_job_refuses_a_lake_without_bronze(spark, settings):
    from jobs import aggregate

    with pytest.raises(ValueError, match="no ingest run is recorded"):
        aggregate.run(spark, settings, DAY)
