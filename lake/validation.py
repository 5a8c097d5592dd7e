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

IPV4 = r"^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$"
IPV6 = r"^[0-9a-fA-F:]*:[0-9a-fA-F:]*$"
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "max_tokens")
_RAW = "__raw_"  # prefix for the original (uncast) value of each contract column


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
        raise RawContractError(f"raw api_requests lacks required column(s) {missing_required}; "
                               f"it has {sorted(present)}")
    selected: list[Column] = [F.col(c).alias(_RAW + c) for c in present]
    for name, dtype in API_REQUEST_FIELDS:
        target = spark_type(dtype)
        if name in present:
            selected.append(F.expr(f"try_cast(`{name}` AS {target})").alias(name))
        else:
            selected.append(F.lit(None).cast(target).alias(name))
    return raw.select(*selected)


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
        (F.col("event_ts").isNull(), "missing event_ts"),
        (F.least(*[F.coalesce(F.col(c), F.lit(0)) for c in TOKEN_COLUMNS]) < 0, "negative token count"),
        ((F.col("event_ts") < day_start) | (F.col("event_ts") >= day_end), "event_ts outside partition day"),
        (F.col("client_ip").isNotNull() & ~(F.col("client_ip").rlike(IPV4) | F.col("client_ip").rlike(IPV6)),
         "malformed client_ip"),
    ]
    # One flat CASE WHEN: nesting when/otherwise 30 levels deep makes Sail's planner blow up.
    first_condition, first_text = rules[0]
    reason = F.when(first_condition, F.lit(first_text))
    for condition, text in rules[1:]:
        reason = reason.when(condition, F.lit(text))
    return reason


def _ip_prefix(ip: Column) -> Column:
    """/24 for IPv4, the first three hextets (/48) for IPv6 text.

    Compressed IPv6 (`2001:db8::1`) keeps whatever precedes `::` when fewer than three hextets are
    spelled out; that groups such addresses a little more coarsely than /48, which is fine for linking.
    """
    v4 = F.regexp_extract(ip, r"^(\d+\.\d+\.\d+)\.\d+$", 1)
    v6 = F.regexp_extract(F.lower(ip), r"^([0-9a-f]{0,4}:[0-9a-f]{0,4}:[0-9a-f]{0,4})", 1)
    return F.when(ip.rlike(IPV4), F.concat(v4, F.lit(".0/24"))).otherwise(F.concat(v6, F.lit("::/48")))


def keyed_hash(value: Column, key: str) -> Column:
    """Pseudonym of a value under a secret key (sha256 of key|value, 128-bit hex)."""
    return F.substring(F.sha2(F.concat(F.lit(key + "|"), value), 256), 1, 32)


def validate_requests(raw: DataFrame, partition_date: dt.date, pseudonym_key: str,
                      ingest_run_id: str) -> tuple[DataFrame, DataFrame]:
    """Split one raw partition into (bronze rows, quarantine rows). Pure; the caller writes both."""
    raw_columns = list(raw.columns)
    conformed = conform_raw(raw).withColumn("reason", _first_failure(partition_date, raw_columns))
    # A repeated request_id keeps its earliest record. The tie-break hashes the whole raw row, so equal
    # timestamps resolve the same way on every rerun.
    row_hash = F.xxhash64(*[F.col(_RAW + c) for c in raw_columns])
    first_of_id = Window.partitionBy("request_id").orderBy(F.col("event_ts").asc_nulls_last(), row_hash)
    conformed = conformed.withColumn(
        "reason",
        F.when(F.col("reason").isNull() & (F.row_number().over(first_of_id) > 1), F.lit("duplicate request_id"))
        .otherwise(F.col("reason")),
    )
    bronze = (
        conformed.where(F.col("reason").isNull())
        .withColumn("ip_hash", keyed_hash(F.col("client_ip"), pseudonym_key))
        .withColumn("ip_prefix_hash", keyed_hash(_ip_prefix(F.col("client_ip")), pseudonym_key))
        .withColumn("ingest_run_id", F.lit(ingest_run_id))
        .drop("client_ip", *[_RAW + c for c in raw_columns])
    )
    quarantine = conformed.where(F.col("reason").isNotNull()).select(
        # microseconds spelled out: JVM Spark's default format keeps milliseconds only (Sail writes all six)
        F.to_json(F.struct(*[F.col(_RAW + c).alias(c) for c in raw_columns]),
                  {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"}).alias("raw_record"),
        "reason",
        F.lit("api_requests").alias("source_table"),
        F.lit(partition_date).alias("source_partition"),
        F.lit(ingest_run_id).alias("ingest_run_id"),
    )
    return bronze, quarantine
