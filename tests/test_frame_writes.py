"""The frame engines' write path: Parquet written by the frame library (pandas here, cuDF on GPU machines),
committed to the Delta log in one transaction (lake/delta_writes.py write_partition). Sail must read the result
back exactly, list columns and timestamps included; a rerun of a partition replaces it; a file that does not
match the table is refused before anything is committed."""

from __future__ import annotations

import datetime as dt
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from lake import catalog, delta_writes, frame_engines
from lake.delta_writes import InvalidOutputError

D1, D2 = dt.date(2026, 3, 2), dt.date(2026, 3, 3)
UTC = dt.UTC
SCHEMA = catalog.table("account_daily").schema


def _daily(day: dt.date, accounts: list[str], first_hour: int = 1) -> pa.Table:
    """account_daily rows with every column filled from the account's position; lists, timestamps and nulls
    vary from row to row."""
    rows = []
    for i, account in enumerate(accounts):
        row = {}
        for field in SCHEMA:
            if field.name == "account_id":
                row[field.name] = account
            elif field.name == "event_date":
                row[field.name] = day
            elif pa.types.is_list(field.type):
                row[field.name] = [f"{field.name[:2]}{j}" for j in range(i % 3)]
            elif pa.types.is_timestamp(field.type):
                row[field.name] = (
                    None
                    if i % 2
                    else dt.datetime(day.year, day.month, day.day, first_hour + i, 7, 3, 123456, tzinfo=UTC)
                )
            elif pa.types.is_string(field.type):
                row[field.name] = None if i % 2 else f"model-{i}"
            else:
                row[field.name] = i * 3 + first_hour
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def _by_key(table: pa.Table) -> list[dict]:
    return sorted(table.select(SCHEMA.names).to_pylist(), key=lambda r: (r["event_date"], r["account_id"]))


def _last_commit(settings, name: str) -> list[dict]:
    table = DeltaTable(settings.table_uri(name))
    log = os.path.join(settings.table_uri(name), "_delta_log", f"{table.version():020d}.json")
    with open(log) as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture()
def frame_engine(settings, frame_engine_name):
    with frame_engines.frame_engine(settings.model_copy(update={"engine": frame_engine_name})) as engine:
        yield engine


def test_sail_reads_back_what_the_frame_engine_committed_and_a_rerun_replaces_the_partition(
    spark, settings, frame_engine
):
    day1, day2 = _daily(D1, ["a1", "a2", "a3"]), _daily(D2, ["b1", "b2"], first_hour=5)
    assert delta_writes.write_partition(frame_engine, settings, "account_daily", day1, D1) == 3
    assert delta_writes.write_partition(frame_engine, settings, "account_daily", day2, D2) == 2

    on_sail = catalog.read(spark, settings, "account_daily").toArrow()
    assert _by_key(on_sail) == _by_key(pa.concat_tables([day1, day2]))

    rerun = _daily(D1, ["a1", "a9"], first_hour=9)
    version = DeltaTable(settings.table_uri("account_daily")).version()
    delta_writes.write_partition(frame_engine, settings, "account_daily", rerun, D1)
    assert DeltaTable(settings.table_uri("account_daily")).version() == version + 1, "one commit per write"
    actions = _last_commit(settings, "account_daily")
    assert not any("metaData" in a for a in actions), "the table's own schema goes back: no schema change"
    assert [a["add"]["partitionValues"] for a in actions if "add" in a] == [{"event_date": D1.isoformat()}]
    assert {a["remove"]["partitionValues"]["event_date"] for a in actions if "remove" in a} == {D1.isoformat()}

    on_sail = catalog.read(spark, settings, "account_daily").toArrow()
    assert _by_key(on_sail) == _by_key(pa.concat_tables([rerun, day2]))
    delta_writes.write_partition(frame_engine, settings, "account_daily", rerun, D1)
    assert _by_key(catalog.read(spark, settings, "account_daily").toArrow()) == _by_key(
        pa.concat_tables([rerun, day2])
    ), "the same rerun again is idempotent"


def test_an_empty_day_replaces_the_partition_with_nothing(spark, settings, frame_engine):
    delta_writes.write_partition(frame_engine, settings, "account_daily", _daily(D1, ["a1", "a2"]), D1)
    assert delta_writes.write_partition(frame_engine, settings, "account_daily", SCHEMA.empty_table(), D1) == 0
    assert catalog.read(spark, settings, "account_daily").count() == 0


def _write_naive_file(data, path: str, schema: pa.Schema) -> int:
    """A writer that gets timestamps and integer widths wrong, as a frame library could."""
    wrong = pa.schema(
        [
            pa.field(
                f.name,
                pa.timestamp("us") if pa.types.is_timestamp(f.type) else pa.int32() if f.type == pa.int64() else f.type,
            )
            for f in schema
        ]
    )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(data.select(schema.names).cast(wrong, safe=False), path)
    return data.num_rows


def test_a_file_that_does_not_match_the_table_is_refused_and_nothing_is_committed(settings, frame_engine, monkeypatch):
    delta_writes.write_partition(frame_engine, settings, "account_daily", _daily(D1, ["a1"]), D1)
    version = DeltaTable(settings.table_uri("account_daily")).version()
    monkeypatch.setattr(frame_engine, "write_parquet", _write_naive_file)
    with pytest.raises(InvalidOutputError, match="not a UTC-adjusted microsecond timestamp") as refused:
        delta_writes.write_partition(frame_engine, settings, "account_daily", _daily(D1, ["a2"]), D1)
    assert "requests is int32, the table needs int64" in str(refused.value)
    assert DeltaTable(settings.table_uri("account_daily")).version() == version
    files = {os.path.basename(p) for p in DeltaTable(settings.table_uri("account_daily")).file_uris()}
    on_disk = set(os.listdir(os.path.join(settings.table_uri("account_daily"), f"event_date={D1.isoformat()}")))
    assert on_disk == files, "the refused file is removed, not left beside the table"


def test_nulls_in_a_not_null_column_are_refused(settings, frame_engine):
    """Tables Sail created can declare NOT NULL columns; the commit call would not check them."""
    not_null = pa.schema([f.with_nullable(f.name != "account_id") for f in SCHEMA])
    DeltaTable.create(settings.table_uri("account_daily"), schema=not_null, partition_by=["event_date"])
    bad = _daily(D1, ["a1", "a2"]).set_column(0, "account_id", pa.array(["a1", None]))
    with pytest.raises(InvalidOutputError, match="account_id is NOT NULL in the table but holds 1 nulls"):
        delta_writes.write_partition(frame_engine, settings, "account_daily", bad, D1)
    assert DeltaTable(settings.table_uri("account_daily")).version() == 0
