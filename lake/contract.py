"""The raw `api_requests` contract's value rules, declared once for every engine and every lookup.

Spark ingest (lake/validation.py) compiles these into SQL expressions; `reference_validate` below is the same
contract in plain Python, row by row, which the property-based test holds the engine to
(tests/test_ingest_fuzz.py). Analyst lookups (jobs/risk_query.py) accept exactly the account ids ingest lets
into bronze.

IP addresses mean what Python's `ipaddress.ip_address` says they mean:
  * IPv4 is four decimal octets without leading zeros; IPv6 follows RFC 4291 text forms (at most one `::`,
    1-4 hex digits a group, an IPv4 tail), with an optional `%zone` suffix, and never a `/`.
  * An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is the IPv4 client it carries.
  * The pseudonym hashes the canonical text (IPv4 dotted quad, IPv6 exploded lower case, no zone), so
    spellings of one address share one pseudonym; the prefix is the /24 (IPv4) or /48 (IPv6) network.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
from typing import TypeGuard

ACCOUNT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
ACCOUNT_ID_RULE = "1-128 characters of letters, digits, '_', '.', ':' or '-'"
PROMPT_PREFIX_MAX_CHARS = 1024
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "max_tokens")

_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_TEXT = rf"{_OCTET}(\.{_OCTET}){{3}}"
_H16 = r"[0-9A-Fa-f]{1,4}"
_LS32 = rf"({_H16}:{_H16}|{IPV4_TEXT})"


def _ipv6_text() -> str:
    """RFC 3986 `IPv6address`, which accepts exactly the texts Python's IPv6Address parser accepts."""

    def groups(n: int) -> str:
        return f"({_H16}:){{{n}}}" if n else ""

    def head(most: int) -> str:  # [ *most( h16 ":" ) h16 ]
        return f"(({_H16}:){{0,{most}}}{_H16})?" if most >= 0 else ""

    forms = [f"{groups(6)}{_LS32}", f"::{groups(5)}{_LS32}", f"({_H16})?::{groups(4)}{_LS32}"]
    forms += [f"{head(k)}::{groups(3 - k)}{_LS32}" for k in (1, 2, 3)]
    forms += [f"{head(4)}::{_LS32}", f"{head(5)}::{_H16}", f"{head(6)}::"]
    return "(" + "|".join(f"({form})" for form in forms) + ")"


IPV6_TEXT = _ipv6_text()
IPV4_PATTERN = f"^{IPV4_TEXT}$"
IPV6_PATTERN = f"^{IPV6_TEXT}(%[^%/]+)?$"


def is_valid_account_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and ACCOUNT_ID_PATTERN.fullmatch(value) is not None


# --- the pure-Python reference of the contract ---------------------------------------------------


def canonical_ip(text: str) -> tuple[str, str] | None:
    """(canonical address text, network prefix text) as ingest pseudonymizes them, or None if invalid."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(text.split("%", 1)[0])  # the zone names a local interface only
        address = address.ipv4_mapped or address
    if address.version == 4:
        network = ipaddress.ip_network(f"{address}/24", strict=False)
        return str(address), f"{network.network_address}/24"
    hextets = address.exploded.split(":")
    return ":".join(hextets), ":".join(hextets[:3]) + "::/48"


def keyed_hash_reference(value: str | None, key: str) -> str | None:
    if value is None:
        return None
    return hashlib.sha256(f"{key}|{value}".encode()).hexdigest()[:32]


def reference_validate(row: dict, partition_date: dt.date) -> str | None:
    """The first contract rule a typed raw row breaks, in lake/validation.py's order, or None when it is clean.

    `row` holds contract columns already parsed to Python values; a column whose raw text could not be
    parsed carries the marker `UNPARSEABLE`. Duplicate request ids are a whole-partition rule, not checked here.
    """

    def blank(value: object) -> bool:
        return value is None or (isinstance(value, str) and value.strip(" ") == "")

    if blank(row.get("account_id")):
        return "missing account_id"
    if blank(row.get("request_id")):
        return "missing request_id"
    for name, value in row.items():
        if value is UNPARSEABLE:
            return f"unparseable {name}"
    if not is_valid_account_id(row["account_id"]):
        return "malformed account_id"
    if row.get("event_ts") is None:
        return "missing event_ts"
    if row.get("event_date") is None:
        return "missing event_date"
    if min((row.get(c) or 0) for c in TOKEN_COLUMNS) < 0:
        return "negative token count"
    event_ts = row["event_ts"]
    start = dt.datetime.combine(partition_date, dt.time(), tzinfo=dt.UTC)
    if not start <= event_ts < start + dt.timedelta(days=1) or row["event_date"] != partition_date:
        return "event_ts outside partition day"
    if row.get("client_ip") is not None and canonical_ip(row["client_ip"]) is None:
        return "malformed client_ip"
    return None


class _Unparseable:
    def __repr__(self) -> str:
        return "UNPARSEABLE"


UNPARSEABLE = _Unparseable()
