"""Property test: Spark ingest validation agrees row for row with the pure-Python contract (lake/contract.py).

Hypothesis generates raw deliveries of hostile rows (unicode, quotes, newlines, very long text, near-miss IP
texts, unparseable numbers, null and foreign partition values, repeated request ids), at least 1,200 rows per
run. Each delivery goes through a real Delta raw table, `raw_delivery` and `validate_requests` on the embedded
Spark engine (ingest runs on Spark only). Every row of the delivery must land in bronze or quarantine with
the reference's reason, and bronze rows must carry the reference's IP pseudonyms and cut prompt.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from lake import catalog
from lake.contract import PROMPT_PREFIX_MAX_CHARS, UNPARSEABLE, canonical_ip, keyed_hash_reference, reference_validate
from lake.validation import raw_delivery, validate_requests

DAY = dt.date(2026, 5, 4)
UTC = dt.UTC
KEY = "fuzz-key"
# Hypothesis caps the bytes one example may draw, so the >= 1,000 rows per run come as 10 deliveries of >= 100
# rows, with long texts built from a drawn character and length rather than drawn character by character.
EXAMPLES = 10
MIN_ROWS = 100

HOSTILE = st.one_of(
    st.text(max_size=8),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=6),
    st.sampled_from(
        [
            "",
            " ",
            "'",
            '"',
            "\n",
            "a\nb",
            "x" * 129,
            "x" * 5000,
            "ünï",
            "a b",
            "a;DROP",
            "🙂",
            "acct-1\n",
            "\x00",
            "null",
        ]
    ),
)
ACCOUNT_IDS = st.one_of(st.from_regex(r"\A[A-Za-z0-9_.:-]{1,20}\Z"), HOSTILE, st.none())
IPS = st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses(v=6).map(lambda a: a.exploded.upper()),
    st.ip_addresses(v=4).map(lambda a: f"::ffff:{a}"),
    st.ip_addresses(v=6).map(lambda a: f"{a}%eth0"),
    st.sampled_from(
        [
            ":::",
            "dead:beef",
            "1.2.3",
            "01.2.3.4",
            "256.1.1.1",
            "1::2::3",
            "::ffff:999.0.0.1",
            "1:2:3:4:5:6:7:8:9",
            "fe80::1%",
            "1.2.3.4/24",
            " 1.2.3.4",
            "1.2.3.4\n",
            "::1.2.3.4",
        ]
    ),
    st.text(alphabet="0123456789abcdefABCDEF:.%", max_size=12),
    HOSTILE,
    st.none(),
)
TOKENS = st.one_of(st.integers(-5, 10**6).map(str), st.sampled_from(["many", "", "1e3", "--1"]), st.none())
LONG_TEXT = st.tuples(st.sampled_from(["x", "ä", "🙂", " ", "\n", "'", "a\u0301"]), st.integers(1000, 1100)).map(
    lambda char_and_length: char_and_length[0] * char_and_length[1]
)
PROMPTS = st.one_of(st.text(max_size=10), LONG_TEXT, st.sampled_from(["x" * 1024, "x" * 1025, "ä" * 5000]), st.none())


@st.composite
def raw_row(draw):
    day_offset = draw(st.sampled_from([0, 0, 0, 0, 0, 0, 1, -1]))  # mostly this day, some straying
    event_ts = dt.datetime.combine(DAY + dt.timedelta(days=day_offset), dt.time(), tzinfo=UTC) + dt.timedelta(
        seconds=draw(st.integers(0, 86_399))
    )
    partition = draw(st.sampled_from(["own", "own", "own", "own", "null", "next"]))
    return {
        "request_id": draw(st.one_of(st.none(), st.just(""), st.just("dup"), HOSTILE)),
        "event_ts": None if draw(st.integers(0, 30)) == 0 else event_ts,
        "event_date": {"own": DAY, "null": None, "next": DAY + dt.timedelta(days=1)}[partition],
        "account_id": draw(ACCOUNT_IDS),
        "client_ip": draw(IPS),
        "input_tokens": draw(TOKENS),
        "output_tokens": draw(st.one_of(st.integers(-3, 5000), st.none())),
        "prompt_prefix": draw(PROMPTS),
    }


RAW_SCHEMA = pa.schema(
    [
        ("row_no", pa.int64()),
        ("request_id", pa.string()),
        ("event_ts", catalog.TS),
        ("event_date", pa.date32()),
        ("account_id", pa.string()),
        ("client_ip", pa.string()),
        ("input_tokens", pa.string()),
        ("output_tokens", pa.int32()),
        ("prompt_prefix", pa.string()),
    ]
)


def _numbered(rows: list[dict]) -> list[dict]:
    """Give every row a number, and make request ids unique except the deliberate repeats ("dup"), whose
    timestamps are then made distinct so the earliest copy is well defined."""
    out = []
    for i, row in enumerate(rows):
        row = {"row_no": i, **row}
        rid = row["request_id"]
        if rid == "dup" and row["event_ts"] is not None:
            row["event_ts"] = row["event_ts"].replace(microsecond=i)
        elif rid is not None and rid.strip(" ") != "":  # incl. a "dup" without timestamp: ties are hashed
            row["request_id"] = f"{rid}#{i}"
        out.append(row)
    return out


def _parse_tokens(text: str | None):
    if text is None:
        return None
    stripped = text.strip()
    digits = stripped[1:] if stripped.startswith("-") else stripped
    return int(stripped) if digits.isascii() and digits.isdigit() else UNPARSEABLE


def _reference(rows: list[dict]) -> dict[int, str | None]:
    """row_no -> reason (None = bronze) for the rows that belong to DAY's delivery."""
    delivery = [
        r
        for r in rows
        if r["event_date"] == DAY
        or (r["event_date"] is None and r["event_ts"] is not None and r["event_ts"].date() == DAY)
    ]
    reasons = {}
    for r in delivery:
        typed = {
            "request_id": r["request_id"],
            "event_ts": r["event_ts"],
            "event_date": r["event_date"],
            "account_id": r["account_id"],
            "client_ip": r["client_ip"],
            "input_tokens": _parse_tokens(r["input_tokens"]),
            "output_tokens": r["output_tokens"],
            "prompt_prefix": r["prompt_prefix"],
        }
        reasons[r["row_no"]] = reference_validate(typed, DAY)
    by_id: dict[str, list[dict]] = {}
    for r in delivery:
        if r["request_id"] is not None:
            by_id.setdefault(r["request_id"], []).append(r)
    for copies in by_id.values():
        copies.sort(key=lambda r: (r["event_ts"] is None, r["event_ts"] or dt.datetime.min.replace(tzinfo=UTC)))
        for later in copies[1:]:
            if reasons[later["row_no"]] is None:
                reasons[later["row_no"]] = "duplicate request_id"
    return reasons


@pytest.mark.timeout(300)
@hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(rows=st.lists(raw_row(), min_size=MIN_ROWS, max_size=MIN_ROWS + 50))
@pytest.mark.slow
def test_spark_ingest_agrees_with_the_python_contract_row_for_row(spark, tmp_path_factory, rows):
    rows = _numbered(rows)
    uri = str(tmp_path_factory.mktemp("fuzz") / "api_requests")
    write_deltalake(uri, pa.Table.from_pylist(rows, schema=RAW_SCHEMA), partition_by=["event_date"])
    expected = _reference(rows)

    bronze, quarantine = validate_requests(raw_delivery(spark.read.format("delta").load(uri), DAY), DAY, KEY, "run")
    bronze_rows = {r["request_id"]: r.asDict() for r in bronze.collect()}
    quarantined = {json.loads(r["raw_record"])["row_no"]: r["reason"] for r in quarantine.collect()}

    by_no = {r["row_no"]: r for r in rows}
    expected_bronze = {by_no[n]["request_id"]: n for n, reason in expected.items() if reason is None}
    assert len(bronze_rows) + len(quarantined) == len(expected), "every row of the day's delivery lands once"
    assert set(bronze_rows) == set(expected_bronze)
    assert quarantined == {n: reason for n, reason in expected.items() if reason is not None}
    for request_id, row_no in expected_bronze.items():
        raw, got = by_no[row_no], bronze_rows[request_id]
        ip = canonical_ip(raw["client_ip"]) if raw["client_ip"] is not None else (None, None)
        assert (got["ip_hash"], got["ip_prefix_hash"]) == (
            keyed_hash_reference(ip[0], KEY),
            keyed_hash_reference(ip[1], KEY),
        ), raw["client_ip"]
        prompt = raw["prompt_prefix"]
        assert got["prompt_prefix"] == (None if prompt is None else prompt[:PROMPT_PREFIX_MAX_CHARS])
        assert got["prompt_prefix_truncated"] == (prompt is not None and len(prompt) > PROMPT_PREFIX_MAX_CHARS)


def test_ipaddress_semantics_on_known_texts(spark):
    """The cases the hostile tester found, spelled out: invalid texts refused, IPv4-mapped IPv6 accepted."""
    texts = [":::", "dead:beef", "::ffff:192.0.2.1", "2001:db8::1", "192.0.2.1", "01.2.3.4"]
    accepted = {t for t in texts if canonical_ip(t) is not None}
    assert accepted == {"::ffff:192.0.2.1", "2001:db8::1", "192.0.2.1"}
    assert canonical_ip("::ffff:192.0.2.1") == ("192.0.2.1", "192.0.2.0/24")
    assert all((canonical_ip(t) is not None) == _python_accepts(t) for t in texts)


def _python_accepts(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
