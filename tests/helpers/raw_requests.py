"""Raw `api_requests` days written by hand with delta-rs, for tests that start at ingest.

contract_rows / write_raw   one day (CONTRACT_DAY) with a row for each way a record can break the contract
two_days_rows / write_two_days   two clean-ish days (TWO_DAYS), 12 rows each, two of them quarantined per day
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from lake import catalog

UTC = dt.UTC
CONTRACT_DAY = dt.date(2026, 3, 2)
TWO_DAYS = (dt.date(2026, 6, 1), dt.date(2026, 6, 2))


def at_hour(hour: int, day: dt.date = CONTRACT_DAY) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, 0, tzinfo=UTC)


def contract_rows() -> list[dict]:
    """Two good rows, then one each: no account, negative tokens, a timestamp on another day, a bad IP, a duplicate
    request id."""
    good = dict(
        request_id="r1",
        event_ts=at_hour(1),
        event_date=CONTRACT_DAY,
        account_id="acct-1",
        model="m-1",
        client_ip="203.0.113.7",
        input_tokens=10,
        output_tokens=100,
        max_tokens=1024,
        prompt_prefix="explain step by step",
        extra_gateway_column="ignored",
    )
    return [
        good,
        {**good, "request_id": "r2", "client_ip": "2001:db8:aa:1::5", "event_ts": at_hour(2)},
        {**good, "request_id": "r3", "account_id": None},
        {**good, "request_id": "r4", "output_tokens": -5},
        {**good, "request_id": "r5", "event_ts": at_hour(3, CONTRACT_DAY + dt.timedelta(days=1))},
        {**good, "request_id": "r6", "client_ip": "999.1.2"},
        {**good, "event_ts": at_hour(4)},  # a second r1: duplicate
    ]


def write_raw(settings, rows: list[dict], schema: pa.Schema | None = None) -> None:
    """Overwrite the lake's api_requests with `rows` (contract types where the contract names the column)."""
    contract = {f.name: f.type for f in catalog.table("api_requests").schema}
    columns = sorted({k for row in rows for k in row})
    schema = schema or pa.schema([(c, contract.get(c, pa.string())) for c in columns])
    data = pa.Table.from_pylist([{c: row.get(c) for c in schema.names} for row in rows], schema=schema)
    write_deltalake(settings.table_uri("api_requests"), data, mode="overwrite", partition_by=["event_date"])


def two_days_rows() -> list[dict]:
    rows = []
    for day in TWO_DAYS:
        for i in range(12):
            rows.append(
                dict(
                    request_id=f"{day}-r{i}",
                    event_ts=dt.datetime(day.year, day.month, day.day, i, tzinfo=UTC),
                    event_date=day,
                    account_id=f"acct-{i % 4}",
                    model="m-1",
                    client_ip="203.0.113.7" if i % 5 else "not-an-ip",
                    input_tokens=10,
                    output_tokens=-1 if i == 3 else 100,
                    max_tokens=1024,
                    prompt_prefix="explain",
                )
            )
    return rows


def write_two_days(lake: Path) -> None:
    """api_requests under the lake folder `lake` with the rows of two_days_rows()."""
    rows = two_days_rows()
    schema = pa.schema([f for f in catalog.table("api_requests").schema if f.name in rows[0]])
    write_deltalake(str(lake / "api_requests"), pa.Table.from_pylist(rows, schema=schema), partition_by=["event_date"])
