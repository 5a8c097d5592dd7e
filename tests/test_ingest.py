"""Ingest: raw contract handling, quarantine reasons, pseudonymization and idempotent reruns."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from jobs import ingest
from lake import catalog
from lake.validation import RawContractError
from tests.helpers.raw_requests import CONTRACT_DAY, write_raw
from tests.helpers.raw_requests import at_hour as _ts
from tests.helpers.raw_requests import contract_rows as _raw_rows

DAY = CONTRACT_DAY


def _sorted_rows(settings, name: str) -> list[dict]:
    rows = DeltaTable(settings.table_uri(name)).to_pyarrow_table().to_pylist()
    return sorted(rows, key=lambda r: json.dumps(r, default=str, sort_keys=True))


def test_bad_rows_are_quarantined_with_reasons_and_nothing_is_lost(spark, settings):
    write_raw(settings, _raw_rows())
    result = ingest.run(spark, settings, DAY)

    assert result.raw_rows == 7
    assert result.bronze_rows == 2
    assert result.quarantine_reasons == {
        "missing account_id": 1,
        "negative token count": 1,
        "event_ts outside partition day": 1,
        "malformed client_ip": 1,
        "duplicate request_id": 1,
    }
    quarantine = DeltaTable(settings.table_uri("quarantine")).to_pyarrow_table().to_pylist()
    by_reason = {row["reason"]: json.loads(row["raw_record"]) for row in quarantine}
    assert by_reason["negative token count"]["output_tokens"] == -5
    assert by_reason["malformed client_ip"]["client_ip"] == "999.1.2"
    assert {row["source_partition"] for row in quarantine} == {DAY}
    assert {row["ingest_run_id"] for row in quarantine} == {result.ingest_run_id}

    bronze = DeltaTable(settings.table_uri("requests")).to_pyarrow_table()
    assert "client_ip" not in bronze.column_names and "prompt_prefix" in bronze.column_names
    rows = {r["request_id"]: r for r in bronze.to_pylist()}
    assert set(rows) == {"r1", "r2"}
    assert rows["r1"]["event_ts"] == _ts(1), "the earliest copy of a duplicated request id is kept"
    assert len(rows["r1"]["ip_hash"]) == 32 and "203.0.113" not in rows["r1"]["ip_prefix_hash"]
    assert rows["r1"]["ip_hash"] != rows["r2"]["ip_hash"]

    runs = DeltaTable(settings.table_uri("ingest_runs")).to_pyarrow_table().to_pylist()
    assert runs[0]["raw_rows"] == 7 and runs[0]["bronze_rows"] == 2 and runs[0]["quarantined_rows"] == 5


def test_same_slash24_shares_a_prefix_hash_but_not_an_ip_hash(spark, settings):
    rows = _raw_rows()[:1]
    rows.append({**rows[0], "request_id": "r9", "client_ip": "203.0.113.200"})
    rows.append({**rows[0], "request_id": "r10", "client_ip": "198.51.100.1"})
    write_raw(settings, rows)
    ingest.run(spark, settings, DAY)
    bronze = {r["request_id"]: r for r in DeltaTable(settings.table_uri("requests")).to_pyarrow_table().to_pylist()}
    assert bronze["r1"]["ip_prefix_hash"] == bronze["r9"]["ip_prefix_hash"]
    assert bronze["r1"]["ip_hash"] != bronze["r9"]["ip_hash"]
    assert bronze["r1"]["ip_prefix_hash"] != bronze["r10"]["ip_prefix_hash"]


def test_rerun_of_the_same_date_leaves_identical_tables(spark, settings):
    write_raw(settings, _raw_rows())
    ingest.run(spark, settings, DAY)
    before = {name: _sorted_rows(settings, name) for name in ("requests", "quarantine", "ingest_runs")}
    ingest.run(spark, settings, DAY)
    after = {name: _sorted_rows(settings, name) for name in ("requests", "quarantine", "ingest_runs")}
    assert after == before


def test_exact_copies_of_a_request_keep_one_and_quarantine_the_rest(spark, settings):
    """A gateway re-delivering the same row: copies are indistinguishable, so one reaches bronze and every
    other copy is quarantined, whichever way the engine orders them; the staged repeated ids leave nothing."""
    good = _raw_rows()[0]
    later = {**good, "request_id": "r2", "event_ts": _ts(2)}
    write_raw(settings, [good, good, good, later, {**later, "event_ts": _ts(3)}])
    result = ingest.run(spark, settings, DAY)
    assert (result.raw_rows, result.bronze_rows) == (5, 2)
    assert result.quarantine_reasons == {"duplicate request_id": 3}
    bronze = {
        r["request_id"]: r["event_ts"]
        for r in DeltaTable(settings.table_uri("requests")).to_pyarrow_table().to_pylist()
    }
    assert bronze == {"r1": _ts(1), "r2": _ts(2)}
    assert not (Path(settings.lake_root) / "_staging").exists()


def test_missing_optional_columns_become_null_and_unparseable_values_are_quarantined(spark, settings):
    # A gateway that writes token counts as text and omits most optional columns.
    schema = pa.schema(
        [
            ("request_id", pa.string()),
            ("event_ts", catalog.TS),
            ("event_date", pa.date32()),
            ("account_id", pa.string()),
            ("input_tokens", pa.string()),
        ]
    )
    rows = [
        dict(request_id="a", event_ts=_ts(5), event_date=DAY, account_id="acct", input_tokens="42"),
        dict(request_id="b", event_ts=_ts(6), event_date=DAY, account_id="acct", input_tokens="forty"),
    ]
    write_raw(settings, rows, schema)
    result = ingest.run(spark, settings, DAY)
    assert result.quarantine_reasons == {"unparseable input_tokens": 1}
    bronze = DeltaTable(settings.table_uri("requests")).to_pyarrow_table().to_pylist()
    assert len(bronze) == 1 and bronze[0]["input_tokens"] == 42
    assert bronze[0]["model"] is None and bronze[0]["ip_hash"] is None


def test_a_raw_table_without_a_required_column_is_refused(spark, settings):
    schema = pa.schema([("request_id", pa.string()), ("event_ts", catalog.TS), ("event_date", pa.date32())])
    write_raw(settings, [dict(request_id="a", event_ts=_ts(5), event_date=DAY)], schema)
    with pytest.raises(RawContractError, match="account_id"):
        ingest.run(spark, settings, DAY)


def test_an_empty_day_is_refused_not_published(spark, settings):
    write_raw(settings, _raw_rows())
    with pytest.raises(ValueError, match="no raw api_requests rows"):
        ingest.run(spark, settings, DAY + dt.timedelta(days=3))


def test_a_missing_raw_table_is_a_clear_error(spark, settings):
    with pytest.raises(FileNotFoundError, match="api_requests"):
        ingest.run(spark, settings, DAY)


def test_rows_without_a_partition_value_are_quarantined_and_counted(spark, settings):
    """A null event_date puts a row in no partition; the day its event_ts falls on still claims it, so the run's
    reconciliation (raw = bronze + quarantine) covers the whole delivery."""
    good = _raw_rows()[0]
    rows = [
        good,
        {**good, "request_id": "no-date", "event_date": None},
        {**good, "request_id": "no-date-other-day", "event_date": None, "event_ts": _ts(3, DAY + dt.timedelta(days=1))},
    ]
    write_raw(settings, rows)
    result = ingest.run(spark, settings, DAY)
    assert (result.raw_rows, result.bronze_rows) == (2, 1)
    assert result.quarantine_reasons == {"missing event_date": 1}
    quarantined = DeltaTable(settings.table_uri("quarantine")).to_pyarrow_table().to_pylist()
    assert [json.loads(r["raw_record"])["request_id"] for r in quarantined] == ["no-date"]
