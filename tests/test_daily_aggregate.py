"""The daily aggregate on a hand-built bronze day with a known answer for every daily statistic, on every engine
(the bronze signal columns come from the real ingest signals), and the aggregate job on a real Delta lake."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from features import daily_stats, registry  # noqa: F401  (registry declares the account_daily table)
from features.signals import with_request_signals
from lake import catalog
from lake.errors import MissingInputError
from tests.helpers.ingest_records import record_ingest_run

UTC = dt.UTC
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
    bronze_row(
        request_id="a1",
        event_ts=at(3, 0, 0),
        account_id="A",
        model="m-new",
        endpoint="messages",
        prompt_prefix="Explain the reasoning behind answer 12, step by step",
        user_agent="python-requests/2.31",
        asn=100,
        country="US",
        ip_prefix_hash="p1",
        stream=True,
        stop_reason="end_turn",
        system_prompt_hash="s1",
        input_tokens=100,
        output_tokens=400,
        tool_count=0,
    ),
    bronze_row(
        request_id="a2",
        event_ts=at(3, 0, 30),
        account_id="A",
        model="m-new",
        endpoint="batch",
        prompt_prefix="Explain the reasoning behind answer 57,   step by step",
        user_agent="anthropic-python/0.40 httpx/0.27",
        asn=300,
        country="FR",
        ip_prefix_hash="p2",
        stream=False,
        stop_reason="max_tokens",
        system_prompt_hash="s1",
        input_tokens=50,
        output_tokens=200,
        tool_count=4,
    ),
    bronze_row(
        request_id="a3",
        event_ts=at(3, 0, 50),
        account_id="A",
        model="m-old",
        endpoint="messages",
        prompt_prefix="Grade this response on a scale of 1 to 10 using the rubric",
        user_agent="curl/8.0",
        asn=200,
        country=None,
        ip_prefix_hash="p1",
        stop_reason="max_tokens",
        system_prompt_hash="s2",
        input_tokens=10,
        output_tokens=5,
    ),
    bronze_row(
        request_id="a4",
        event_ts=at(5, 10, 0),
        account_id="A",
        model="m-old",
        endpoint="messages",
        prompt_prefix="Опишите эту картинку",
        has_image=True,
        country="US",
        ip_prefix_hash="p3",
        stop_reason="end_turn",
    ),
    # m-future is released exactly at midnight after DAY, so it is not yet the newest model on DAY
    bronze_row(
        request_id="b1",
        event_ts=at(23, 59, 59),
        account_id="B",
        model="m-future",
        endpoint="messages",
        prompt_prefix="def foo(x): fix this bug",
        user_agent="Go-http-client/1.1",
        asn=100,
        country="DE",
        ip_prefix_hash="p4",
        system_prompt_hash="s9",
        input_tokens=7,
        output_tokens=3,
        tool_count=1,
    ),
    # another day: must not leak into DAY's aggregate
    bronze_row(request_id="c1", event_ts=at(12, day=DAY - dt.timedelta(days=1)), account_id="C", model="m-old"),
]
ACCOUNTS = [("A", "US"), ("B", "DE"), ("C", None)]
RELEASES = [
    ("m-old", dt.datetime(2025, 1, 1, tzinfo=UTC)),
    ("m-new", at(2)),
    ("m-future", dt.datetime(2026, 3, 11, tzinfo=UTC)),
]
ASN_INFO = [(100, "hosting"), (200, "residential"), (300, "proxy")]


def _hours(**counts: int) -> dict:
    return {f"hour_{h:02d}": counts.get(f"h{h:02d}", 0) for h in range(24)}


EXPECTED = {
    "A": dict(
        requests=4,
        input_tokens=160,
        output_tokens=605,
        active_hours=2,
        **_hours(h03=3, h05=1),
        # gaps 30 s, 20 s and 03:00:50 -> 05:10:00 = 7750 s
        gap_count=3,
        gap_sum_ms=7_800_000,
        gap_sumsq_ms2=30_000**2 + 20_000**2 + 7_750_000**2,
        active_minutes=2,
        peak_rpm=3,
        batch_requests=1,
        stream_requests=1,
        cot_requests=2,
        rubric_requests=1,
        extraction_like_requests=3,
        # a1 and a2 normalize to one fingerprint
        repeated_template_requests=1,
        coding_requests=0,
        agentic_requests=1,
        tool_use_requests=0,
        reasoning_requests=0,
        vision_requests=1,
        chat_requests=2,
        max_tokens_stops=2,
        non_english_requests=1,
        top_system_prompt_requests=2,
        newest_model="m-new",
        newest_model_requests=2,
        newest_model_first_ts=at(3),
        newest_model_majority_hour_ts=at(3),
        ip_prefixes=["p1", "p2", "p3"],
        countries=["FR", "US"],
        hosting_proxy_requests=2,
        signup_mismatch_requests=1,
        raw_http_requests=2,
    ),
    "B": dict(
        requests=1,
        input_tokens=7,
        output_tokens=3,
        active_hours=1,
        **_hours(h23=1),
        gap_count=0,
        gap_sum_ms=0,
        gap_sumsq_ms2=0,
        active_minutes=1,
        peak_rpm=1,
        batch_requests=0,
        stream_requests=0,
        cot_requests=0,
        rubric_requests=0,
        extraction_like_requests=0,
        repeated_template_requests=0,
        coding_requests=0,
        agentic_requests=0,
        tool_use_requests=1,
        reasoning_requests=0,
        vision_requests=0,
        chat_requests=0,
        max_tokens_stops=0,
        non_english_requests=0,
        top_system_prompt_requests=1,
        newest_model="m-new",
        newest_model_requests=0,
        newest_model_first_ts=None,
        newest_model_majority_hour_ts=None,
        ip_prefixes=["p4"],
        countries=["DE"],
        hosting_proxy_requests=1,
        signup_mismatch_requests=0,
        raw_http_requests=1,
    ),
}


def _arrow(name: str, rows: list[tuple]) -> pa.Table:
    schema = catalog.table(name).schema
    return pa.Table.from_pylist([dict(zip(schema.names, r)) for r in rows], schema)


@pytest.fixture(scope="module")
def bronze(spark) -> pa.Table:
    """BRONZE with the signal columns ingest derives from the prompt and client (features/signals.py)."""
    without_signals = [
        name
        for name in catalog.table("requests").columns
        if name
        not in (
            "is_cot_elicitation",
            "is_rubric_grading",
            "capability",
            "is_non_english",
            "prompt_fingerprint",
            "is_raw_http_client",
            "signals_version",
        )
    ]
    raw = pa.Table.from_pylist(
        [{n: r[n] for n in without_signals} for r in BRONZE],
        pa.schema([catalog.table("requests").schema.field(n) for n in without_signals]),
    )
    return catalog.conform(with_request_signals(spark.createDataFrame(raw)), "requests").toArrow()


def _inputs(engine, bronze, releases=RELEASES):
    return (
        engine.from_arrow(bronze),
        engine.from_arrow(_arrow("accounts", [(a, None, None, c, None, None, None) for a, c in ACCOUNTS])),
        engine.from_arrow(_arrow("model_releases", releases)),
        engine.from_arrow(_arrow("asn_info", ASN_INFO)),
    )


@pytest.fixture(scope="module")
def daily_rows(any_engine, bronze):
    daily = any_engine.to_arrow(any_engine.aggregate_day(*_inputs(any_engine, bronze), DAY))
    return {row["account_id"]: row for row in daily.to_pylist()}, daily.schema


def test_one_row_per_active_account_of_the_day(daily_rows):
    rows, _ = daily_rows
    assert sorted(rows) == ["A", "B"]
    assert {r["event_date"] for r in rows.values()} == {DAY}


def test_output_conforms_to_catalog(daily_rows):
    _, schema = daily_rows
    declared = catalog.table("account_daily").schema
    assert schema.names == declared.names
    assert [f.type for f in schema] == [f.type for f in declared]


@pytest.mark.parametrize("account_id", sorted(EXPECTED))
@pytest.mark.parametrize("stat", [s.name for s in daily_stats.DAILY_STATS])
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
    prompt_words = {
        word.lower() for r in BRONZE if r["prompt_prefix"] for word in r["prompt_prefix"].split() if len(word) > 4
    }
    for row in rows.values():
        for value in row.values():
            texts = value if isinstance(value, list) else [value]
            for text in texts:
                if isinstance(text, str):
                    assert not any(word in text.lower() for word in prompt_words), text


def test_no_newest_model_when_nothing_was_released_yet(any_engine, bronze):
    daily = any_engine.aggregate_day(*_inputs(any_engine, bronze, releases=[]), DAY)
    rows = {r["account_id"]: r for r in any_engine.to_arrow(daily).to_pylist()}
    assert rows["A"]["newest_model"] is None
    assert rows["A"]["newest_model_requests"] == 0
    assert rows["A"]["newest_model_first_ts"] is None
    assert rows["A"]["newest_model_majority_hour_ts"] is None


# --- the aggregate job on a real lake -------------------------------------------------------------


def write_raw_inputs(settings, bronze: pa.Table, event_dates):
    """Bronze partitions plus the raw reference tables, written with the catalog's delta-rs writer."""
    import pyarrow.compute as pc

    for day in event_dates:
        day_rows = bronze.filter(pc.equal(bronze.column("event_date"), pa.scalar(day, pa.date32())))
        catalog.write_arrow(settings, "requests", day_rows, partition_value=day)
        record_ingest_run(settings, day)
    accounts = [
        dict(
            account_id=a,
            org_id=None,
            created_at=None,
            signup_country=c,
            payment_fingerprint=None,
            verification=None,
            program=None,
        )
        for a, c in ACCOUNTS
    ]
    catalog.write_arrow(settings, "accounts", pa.Table.from_pylist(accounts, catalog.table("accounts").schema))
    catalog.write_arrow(
        settings,
        "model_releases",
        pa.Table.from_pylist(
            [dict(model=m, released_at=t) for m, t in RELEASES], catalog.table("model_releases").schema
        ),
    )
    catalog.write_arrow(
        settings,
        "asn_info",
        pa.Table.from_pylist([dict(asn=a, category=c) for a, c in ASN_INFO], catalog.table("asn_info").schema),
    )


def test_aggregate_job_writes_the_partition_and_reruns_idempotently(spark_engine, bronze, settings, capsys):
    from jobs import aggregate

    write_raw_inputs(settings, bronze, [DAY, DAY - dt.timedelta(days=1)])
    assert aggregate.run(spark_engine, settings, DAY) == 2
    assert "2 account-day rows" in capsys.readouterr().out
    first = catalog.read_arrow(settings, "account_daily").sort_by("account_id")
    assert aggregate.run(spark_engine, settings, DAY - dt.timedelta(days=1)) == 1
    assert aggregate.run(spark_engine, settings, DAY) == 2  # rerun replaces DAY's partition only
    rerun = catalog.read_arrow(settings, "account_daily", filters=[("event_date", "=", DAY)]).sort_by("account_id")
    assert rerun.equals(first.select(rerun.schema.names))  # bit for bit, floats included

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


def test_aggregate_job_refuses_a_missing_bronze_day(spark_engine, bronze, settings):
    from jobs import aggregate
    from lake.errors import MissingInputError

    write_raw_inputs(settings, bronze, [DAY])
    with pytest.raises(MissingInputError, match="0 ingest run records for 2026-03-12"):
        aggregate.run(spark_engine, settings, DAY + dt.timedelta(days=2))
    assert not catalog.exists(settings, "account_daily")


def test_aggregate_job_refuses_a_lake_without_bronze(spark_engine, settings):
    from jobs import aggregate

    with pytest.raises(MissingInputError, match="no ingest run is recorded"):
        aggregate.run(spark_engine, settings, DAY)
