"""Raw → bronze validation: pure DataFrame transforms, no I/O.

`validate_requests` splits one day of raw `api_requests` into rows fit for bronze and rows for
quarantine, each quarantined row carrying its first failing reason. Every raw row ends up in
exactly one of the two outputs, so nothing is dropped silently.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lake.catalog import API_REQUEST_FIELDS, spark_type, table
from lake.contract import ACCOUNT_ID_PATTERN, IPV4_PATTERN, IPV6_PATTERN, PROMPT_PREFIX_MAX_CHARS, TOKEN_COLUMNS

_RAW = "__raw_"  # prefix for the original (uncast) value of each contract column
_REPEATED = "__repeated_id"


class RawContractError(ValueError):
    """The raw table cannot be read under the contract at all (as opposed to individual bad rows)."""


def conform_raw(raw: DataFrame) -> DataFrame:
    """Map a raw frame onto the contract: extra columns are ignored, missing optional ones become null,
    present ones are cast with try_cast so an unparseable value becomes null (and is caught below).

    Every original column is kept as `__raw_<col>` so a quarantined row can be stored exactly as it
    arrived; the JSON of it is only built for quarantined rows (serializing every row costs more than
    the whole rest of ingest).
    """
    present = list(raw.columns)
    missing_required = [c for c in table("api_requests").required if c not in present]
    if missing_required:
        raise RawContractError(
            f"raw api_requests lacks required column(s) {missing_required}; it has {sorted(present)}"
        )
    selected: list[Column] = [F.col(c).alias(_RAW + c) for c in present]
    for name, dtype in API_REQUEST_FIELDS:
        target = spark_type(dtype)
        if name in present:
            selected.append(F.expr(f"try_cast(`{name}` AS {target})").alias(name))
        else:
            selected.append(F.lit(None).cast(target).alias(name))
    return raw.select(*selected)


def raw_delivery(raw_table: DataFrame, partition_date: dt.date) -> DataFrame:
    """Every raw row that belongs to `partition_date`: its partition, plus rows whose partition value is null
    but whose event_ts falls on that day. Those sit in no valid partition, so reading the partition alone
    would lose them silently; here they reach quarantine ("missing event_date") and the run's counts."""
    event_ts = F.expr("try_cast(event_ts AS timestamp)")
    return raw_table.where(
        (F.col("event_date") == F.lit(partition_date))
        | (F.col("event_date").isNull() & (F.to_date(event_ts) == F.lit(partition_date)))
    )


def _first_failure(partition_date: dt.date, raw_columns: list[str]) -> Column:
    """The first rule a row breaks, in order of severity, or null when it is clean."""
    day_start = F.lit(f"{partition_date.isoformat()} 00:00:00").cast("timestamp")
    day_end = F.lit(f"{(partition_date + dt.timedelta(days=1)).isoformat()} 00:00:00").cast("timestamp")
    rules: list[tuple[Column, str]] = [
        (F.col("account_id").isNull() | (F.trim(F.col("account_id")) == ""), "missing account_id"),
        (F.col("request_id").isNull() | (F.trim(F.col("request_id")) == ""), "missing request_id"),
    ]
    for name, _ in API_REQUEST_FIELDS:
        if name in raw_columns:
            rules.append((F.col(_RAW + name).isNotNull() & F.col(name).isNull(), f"unparseable {name}"))
    rules += [
        (~F.col("account_id").rlike(ACCOUNT_ID_PATTERN.pattern), "malformed account_id"),
        (F.col("event_ts").isNull(), "missing event_ts"),
        (F.col("event_date").isNull(), "missing event_date"),
        (F.least(*[F.coalesce(F.col(c), F.lit(0)) for c in TOKEN_COLUMNS]) < 0, "negative token count"),
        ((F.col("event_ts") < day_start) | (F.col("event_ts") >= day_end), "event_ts outside partition day"),
        (
            F.col("client_ip").isNotNull()
            & ~(F.col("client_ip").rlike(IPV4_PATTERN) | F.col("client_ip").rlike(IPV6_PATTERN)),
            "malformed client_ip",
        ),
    ]
    # One flat CASE WHEN: nesting when/otherwise 30 levels deep makes Sail's planner blow up.
    first_condition, first_text = rules[0]
    reason = F.when(first_condition, F.lit(first_text))
    for condition, text in rules[1:]:
        reason = reason.when(condition, F.lit(text))
    return reason


_DOTTED = r"\d+\.\d+\.\d+\.\d+"
_MAPPED_PREFIX = "0000:0000:0000:0000:0000:ffff:"


def _ipv6_exploded(ipv6: Column) -> Column:
    """Valid IPv6 text without zone -> 8 lower-case 4-digit hextets joined by ':' (Python's `exploded`)."""
    text = F.lower(ipv6)
    v4_tail = F.regexp_extract(text, f"({_DOTTED})$", 1)
    octet = [
        F.regexp_extract(v4_tail, f"^{_DOTTED.replace(chr(92) + 'd+', '(' + chr(92) + 'd+)')}$", i).cast("int")
        for i in (1, 2, 3, 4)
    ]
    tail_hextets = F.concat(
        F.lower(F.hex(octet[0] * 256 + octet[1])), F.lit(":"), F.lower(F.hex(octet[2] * 256 + octet[3]))
    )
    text = F.when(v4_tail != "", F.concat(F.regexp_extract(text, f"^(.*?){_DOTTED}$", 1), tail_hextets)).otherwise(text)
    high = F.regexp_extract(text, "^(.*?)(::|$)", 1)  # valid text holds at most one '::'
    low = F.regexp_extract(text, "::(.*)$", 1)

    def hextets(part: Column) -> Column:
        return F.filter(F.split(part, ":"), lambda group: group != "")

    high_groups, low_groups = hextets(high), hextets(low)
    zeros = F.array_repeat(F.lit("0"), F.lit(8) - F.size(high_groups) - F.size(low_groups))
    groups = F.concat(high_groups, zeros, low_groups)
    return F.array_join(F.transform(groups, lambda group: F.lpad(group, 4, "0")), ":")


def with_canonical_ip(frame: DataFrame, ip_column: str, canonical: str, prefix: str) -> DataFrame:
    """Add the canonical address text and network prefix text of a valid client IP, as lake/contract.py
    canonical_ip: IPv4 dotted quad and its /24; IPv4-mapped IPv6 as its IPv4; other IPv6 exploded and its /48.

    Built as successive columns, not one expression: inlining the shared sub-expressions makes Sail plan a tree
    many times larger. Only IPv6 text is exploded: a CASE branch runs on the rows it selects, and spelling out
    IPv6 for every (mostly IPv4) address is a measurable share of ingest's CPU (docs/history.md)."""
    no_zone, exploded = "__ip_no_zone", "__ip_exploded"
    frame = frame.withColumn(no_zone, F.regexp_replace(F.col(ip_column), r"%(?s:.)*$", "")).withColumn(
        exploded, F.when(F.col(no_zone).contains(":"), _ipv6_exploded(F.col(no_zone)))
    )
    is_v4 = F.col(no_zone).rlike(IPV4_PATTERN)
    mapped = F.col(exploded).startswith(_MAPPED_PREFIX)
    mapped_v4 = F.concat_ws(".", *(F.conv(F.substring(exploded, start, 2), 16, 10) for start in (31, 33, 36, 38)))
    frame = frame.withColumn(
        canonical, F.when(is_v4, F.col(no_zone)).when(mapped, mapped_v4).otherwise(F.col(exploded))
    )
    prefix_v4 = F.concat(F.regexp_extract(canonical, r"^(\d+\.\d+\.\d+)\.\d+$", 1), F.lit(".0/24"))
    frame = frame.withColumn(
        prefix,
        F.when(F.col(canonical).contains("."), prefix_v4).otherwise(
            F.concat(F.substring(exploded, 1, 14), F.lit("::/48"))
        ),
    )
    return frame.drop(no_zone, exploded)


def keyed_hash(value: Column, key: str) -> Column:
    """Pseudonym of a value under a secret key (sha256 of key|value, 128-bit hex)."""
    return F.substring(F.sha2(F.concat(F.lit(key + "|"), value), 256), 1, 32)


def duplicate_request_ids(raw: DataFrame) -> DataFrame:
    """The request ids that occur more than once in a raw delivery: one column, `request_id`. Key-only, so
    finding them groups one short string per row instead of shuffling and sorting whole raw rows."""
    request_id = F.expr("try_cast(`request_id` AS string)")
    return (
        raw.select(request_id.alias("request_id"))
        .where(F.col("request_id").isNotNull())
        .groupBy("request_id")
        .agg(F.count(F.lit(1)).alias("_copies"))
        .where(F.col("_copies") > 1)
        .select("request_id")
    )


def validate_requests(
    raw: DataFrame,
    partition_date: dt.date,
    pseudonym_key: str,
    ingest_run_id: str,
    duplicate_ids: DataFrame | None = None,
) -> tuple[DataFrame, DataFrame]:
    """Split one raw partition into (bronze rows, quarantine rows). Pure; the caller writes both.
    `duplicate_ids` is `duplicate_request_ids(raw)`, which a caller writing both outputs computes once."""
    raw_columns = list(raw.columns)
    if duplicate_ids is None:
        duplicate_ids = duplicate_request_ids(raw)
    conformed = (
        conform_raw(raw)
        .withColumn("reason", _first_failure(partition_date, raw_columns))
        .join(F.broadcast(duplicate_ids.withColumn(_REPEATED, F.lit(True))), on="request_id", how="left")
    )
    # A repeated request_id keeps its earliest record. The tie-break hashes the whole raw row, so equal
    # timestamps resolve the same way on every rerun; exact copies are interchangeable, so which one stays
    # does not matter. Only rows whose id repeats are ordered: the rest pass through without a sort.
    row_hash = F.xxhash64(*[F.col(_RAW + c) for c in raw_columns])
    first_of_id = Window.partitionBy("request_id").orderBy(F.col("event_ts").asc_nulls_last(), row_hash)
    repeated = conformed.where(F.col(_REPEATED)).withColumn(
        "reason",
        F.when(
            F.col("reason").isNull() & (F.row_number().over(first_of_id) > 1), F.lit("duplicate request_id")
        ).otherwise(F.col("reason")),
    )
    conformed = conformed.where(F.col(_REPEATED).isNull()).unionByName(repeated).drop(_REPEATED)
    bronze = (
        with_canonical_ip(conformed.where(F.col("reason").isNull()), "client_ip", "__ip", "__ip_prefix")
        .withColumn("ip_hash", keyed_hash(F.col("__ip"), pseudonym_key))
        .withColumn("ip_prefix_hash", keyed_hash(F.col("__ip_prefix"), pseudonym_key))
        # the contract keeps at most the first 1024 characters; longer text is cut and flagged, not refused
        .withColumn(
            "prompt_prefix_truncated", F.coalesce(F.length("prompt_prefix") > PROMPT_PREFIX_MAX_CHARS, F.lit(False))
        )
        .withColumn("prompt_prefix", F.substring("prompt_prefix", 1, PROMPT_PREFIX_MAX_CHARS))
        .withColumn("ingest_run_id", F.lit(ingest_run_id))
        .drop("client_ip", "__ip", "__ip_prefix", *[_RAW + c for c in raw_columns])
    )
    quarantine = conformed.where(F.col("reason").isNotNull()).select(
        # microseconds spelled out: JVM Spark's default format keeps milliseconds only (Sail writes all six)
        F.to_json(
            F.struct(*[F.col(_RAW + c).alias(c) for c in raw_columns]),
            {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"},
        ).alias("raw_record"),
        "reason",
        F.lit("api_requests").alias("source_table"),
        F.lit(partition_date).alias("source_partition"),
        F.lit(ingest_run_id).alias("ingest_run_id"),
    )
    return bronze, quarantine
