"""The table catalog: every Delta table's name, layer, schema and partitioning, declared once.

Schemas are Arrow schemas so that Spark jobs, the deltalake (delta-rs) writers and Spark-free
readers all agree on one declaration. `spark_ddl()` turns them into Spark types.

Spark writes go through `write_partition`: one Delta commit each, so a job killed
mid-write leaves the table at its previous version, and a rerun for the same partition replaces
exactly that partition (idempotent).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa

from features.registry import feature_columns
from lake.config import Settings

TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Table:
    name: str
    layer: str  # raw | bronze | silver | gold | ops
    schema: pa.Schema
    description: str
    partition_by: tuple[str, ...] = ()
    required: tuple[str, ...] = ()  # raw contract: rows with these null are quarantined

    @property
    def columns(self) -> list[str]:
        return self.schema.names


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, dtype) for name, dtype in fields])


# --- raw inputs (DESIGN.md §5): written by the API gateway or the simulator -----------------------

API_REQUEST_FIELDS = (
    ("request_id", pa.string()),
    ("event_ts", TS),
    ("event_date", pa.date32()),
    ("account_id", pa.string()),
    ("org_id", pa.string()),
    ("api_key_id", pa.string()),
    ("model", pa.string()),
    ("endpoint", pa.string()),
    ("client_ip", pa.string()),
    ("asn", pa.int32()),
    ("country", pa.string()),
    ("user_agent", pa.string()),
    ("input_tokens", pa.int32()),
    ("output_tokens", pa.int32()),
    ("max_tokens", pa.int32()),
    ("stop_reason", pa.string()),
    ("latency_ms", pa.int32()),
    ("status_code", pa.int32()),
    ("tool_count", pa.int32()),
    ("has_image", pa.bool_()),
    ("stream", pa.bool_()),
    ("system_prompt_hash", pa.string()),
    ("prompt_prefix", pa.string()),
)

# bronze drops the raw IP and keeps keyed hashes of the address and of its /24 or /48 prefix
BRONZE_REQUEST_FIELDS = tuple(f for f in API_REQUEST_FIELDS if f[0] != "client_ip") + (
    ("ip_hash", pa.string()),
    ("ip_prefix_hash", pa.string()),
    ("prompt_prefix_truncated", pa.bool_()),  # the raw text was longer than the contract's 1024 characters
    ("ingest_run_id", pa.string()),
)

REASON_STRUCT = pa.struct([
    pa.field("feature", pa.string()),
    pa.field("value", pa.float64()),
    pa.field("contribution", pa.float64()),
    pa.field("text", pa.string()),
])

# Per account-day sufficient statistics; the 1/7/28-day windows are sums/maxes/unions of these rows,
# so the nightly job reads one day of raw logs.
DAILY_STAT_FIELDS = (
    ("requests", pa.int64()),
    ("input_tokens", pa.int64()),
    ("output_tokens", pa.int64()),
    ("active_hours", pa.int32()),
    *((f"hour_{h:02d}", pa.int32()) for h in range(24)),
    ("gap_count", pa.int64()),
    ("gap_sum_s", pa.float64()),
    ("gap_sumsq_s", pa.float64()),
    ("active_minutes", pa.int32()),
    ("peak_rpm", pa.int32()),
    ("batch_requests", pa.int64()),
    ("stream_requests", pa.int64()),
    ("cot_requests", pa.int64()),
    ("rubric_requests", pa.int64()),
    ("repeated_template_requests", pa.int64()),
    ("coding_requests", pa.int64()),
    ("agentic_requests", pa.int64()),
    ("tool_use_requests", pa.int64()),
    ("reasoning_requests", pa.int64()),
    ("vision_requests", pa.int64()),
    ("chat_requests", pa.int64()),
    ("max_tokens_stops", pa.int64()),
    ("non_english_requests", pa.int64()),
    ("top_system_prompt_requests", pa.int64()),
    ("newest_model", pa.string()),
    ("newest_model_requests", pa.int64()),
    ("newest_model_first_ts", TS),
    ("newest_model_majority_hour_ts", TS),
    ("ip_prefixes", pa.list_(pa.string())),
    ("countries", pa.list_(pa.string())),
    ("hosting_proxy_requests", pa.int64()),
    ("signup_mismatch_requests", pa.int64()),
    ("raw_http_requests", pa.int64()),
)


def _account_features_schema() -> pa.Schema:
    return _schema(
        ("account_id", pa.string()),
        ("feature_date", pa.date32()),
        *((column, pa.float64()) for column in feature_columns()),
        ("feature_set_version", pa.string()),
    )


# Tier names, highest first, as models/config.py TIERS (not imported: lake/ stays independent of models/).
RISK_TIERS = ("critical", "high", "elevated", "low")


def _training_sets_schema() -> pa.Schema:
    return _schema(
        ("as_of", pa.date32()),
        ("account_id", pa.string()),
        ("feature_date", pa.date32()),
        *((column, pa.float64()) for column in feature_columns()),
        ("label", pa.int32()),
        ("resolved", pa.bool_()),
        ("campaign_id", pa.string()),
        ("benign_segment", pa.string()),
        ("feature_set_version", pa.string()),
        ("reference", pa.string()),  # JSON: the pinned input table versions and labelling rules
    )


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table("api_requests", "raw", _schema(*API_REQUEST_FIELDS),
              "raw API request log (gateway contract)", ("event_date",),
              required=("request_id", "event_ts", "account_id")),
        Table("accounts", "raw", _schema(
            ("account_id", pa.string()), ("org_id", pa.string()), ("created_at", TS),
            ("signup_country", pa.string()), ("payment_fingerprint", pa.string()),
            ("verification", pa.string()), ("program", pa.string())),
            "account registry", required=("account_id",)),
        Table("model_releases", "raw", _schema(("model", pa.string()), ("released_at", TS)),
              "model release times", required=("model", "released_at")),
        Table("asn_info", "raw", _schema(("asn", pa.int32()), ("category", pa.string())),
              "ASN categories", required=("asn",)),
        Table("enforcement_labels", "raw", _schema(
            ("account_id", pa.string()), ("label", pa.string()), ("decided_at", TS),
            ("campaign_id", pa.string()), ("source", pa.string()), ("note", pa.string())),
            "analyst/rule decisions; flow back as training labels", required=("account_id", "label", "decided_at")),
        Table("requests", "bronze", _schema(*BRONZE_REQUEST_FIELDS),
              "validated requests, IPs pseudonymized", ("event_date",)),
        Table("quarantine", "bronze", _schema(
            ("raw_record", pa.string()), ("reason", pa.string()), ("source_table", pa.string()),
            ("source_partition", pa.date32()), ("ingest_run_id", pa.string())),
            "rejected raw rows with the reason", ("source_partition",)),
        Table("ingest_runs", "ops", _schema(
            ("ingest_run_id", pa.string()), ("event_date", pa.date32()), ("raw_table_version", pa.int64()),
            ("raw_rows", pa.int64()), ("bronze_rows", pa.int64()), ("quarantined_rows", pa.int64()),
            ("quarantine_reasons", pa.string())),
            "row counts per ingest run (reasons as JSON)", ("event_date",)),
        Table("account_daily", "silver", _schema(
            ("account_id", pa.string()), ("event_date", pa.date32()), *DAILY_STAT_FIELDS),
            "per account-day sufficient statistics", ("event_date",)),
        Table("account_features", "gold", _account_features_schema(),
              "per-account features over 1/7/28-day windows", ("feature_date",)),
        Table("account_clusters", "gold", _schema(
            ("feature_date", pa.date32()), ("account_id", pa.string()), ("cluster_id", pa.string()),
            ("link_types", pa.list_(pa.string()))),
            "connected components of linked accounts", ("feature_date",)),
        Table("account_risk", "gold", _schema(
            ("score_date", pa.date32()), ("account_id", pa.string()), ("score", pa.float64()),
            ("tier", pa.string()), ("cluster_id", pa.string()), ("cluster_score", pa.float64()),
            ("reasons", pa.list_(REASON_STRUCT)), ("model_name", pa.string()), ("model_version", pa.string()),
            ("feature_set_version", pa.string())),
            "ranked, explained account risk", ("score_date",)),
        Table("cluster_risk", "gold", _schema(
            ("score_date", pa.date32()), ("cluster_id", pa.string()), ("n_accounts", pa.int64()),
            ("requests", pa.int64()), ("score", pa.float64()), ("top_capabilities", pa.list_(pa.string())),
            ("link_evidence", pa.list_(pa.string()))),
            "cluster risk with link evidence", ("score_date",)),
        Table("risk_publications", "ops", _schema(
            ("score_date", pa.date32()), ("published_at", TS), ("model_name", pa.string()),
            ("model_version", pa.string()), ("feature_set_version", pa.string()), ("accounts", pa.int64()),
            ("clusters", pa.int64()), *((f"{tier}_accounts", pa.int64()) for tier in RISK_TIERS),
            ("account_risk_version", pa.int64()), ("cluster_risk_version", pa.int64())),
            "one row per published score date: what analysts got, with the Delta versions to time-travel to",
            ("score_date",)),
        Table("training_sets", "gold", _training_sets_schema(),
              "point-in-time training sets (features + labels), one partition per as_of", ("as_of",)),
    )
}


def table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; declared tables: {sorted(TABLES)}") from None


# --- Arrow -> Spark types ------------------------------------------------------------------------

def spark_type(dtype: pa.DataType) -> str:
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "string"
    if pa.types.is_timestamp(dtype):
        return "timestamp"
    if pa.types.is_date32(dtype):
        return "date"
    if pa.types.is_boolean(dtype):
        return "boolean"
    if pa.types.is_int32(dtype):
        return "int"
    if pa.types.is_int64(dtype):
        return "bigint"
    if pa.types.is_float64(dtype):
        return "double"
    if pa.types.is_list(dtype):
        return f"array<{spark_type(dtype.value_type)}>"
    if pa.types.is_struct(dtype):
        inner = ", ".join(f"{f.name}: {spark_type(f.type)}" for f in dtype)
        return f"struct<{inner}>"
    raise TypeError(f"no Spark type declared for Arrow type {dtype}")


def spark_ddl(name: str) -> str:
    return ", ".join(f"{f.name} {spark_type(f.type)}" for f in table(name).schema)


# --- Spark reads and writes --------------------------------------------------------------------

def exists(settings: Settings, name: str) -> bool:
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(settings.table_uri(name))


def read(spark, settings: Settings, name: str):
    if not exists(settings, name):
        raise FileNotFoundError(
            f"Delta table {name!r} not found at {settings.table_uri(name)}; run the job that produces it first")
    return spark.read.format("delta").load(settings.table_uri(name))


def read_partition(spark, settings: Settings, name: str, partition_value: dt.date):
    """One date partition of a table, filtered on the column the catalog declares it is partitioned by."""
    from pyspark.sql import functions as F

    decl = table(name)
    if len(decl.partition_by) != 1:
        raise ValueError(f"table {name} is not partitioned by a single date column")
    return read(spark, settings, name).where(F.col(decl.partition_by[0]) == F.lit(partition_value))


def conform(df, name: str):
    """Select exactly the declared columns in declared order, cast to declared types."""
    from pyspark.sql import functions as F

    decl = table(name)
    return df.select(*(F.col(f.name).cast(spark_type(f.type)).alias(f.name) for f in decl.schema))


def _date_literal(value: dt.date) -> str:
    if not isinstance(value, dt.date):
        raise TypeError(f"partition value must be a date, got {value!r}")
    return value.isoformat()


def ensure_table(settings: Settings, name: str) -> None:
    """Create the table empty from its declared schema if it does not exist yet; safe to run concurrently
    (lake/table_creation.py). Tables with list columns are created by their first Spark write instead, see
    `write_partition`."""
    from lake.table_creation import create_empty_table

    decl = table(name)
    create_empty_table(settings, name, decl.schema, list(decl.partition_by))


def write_partition(df, settings: Settings, name: str, partition_value: dt.date) -> None:
    """Atomically replace one date partition (replaceWhere, one Delta commit). The table is created first,
    race-free: empty from its declared schema, or, with list columns (a Sail 0.7 limit), by this write."""
    from lake.table_creation import create_by_first_spark_write, has_list_columns, retry_on_conflict

    decl = table(name)
    if len(decl.partition_by) != 1:
        raise ValueError(f"table {name} is not partitioned by a single date column")
    column = decl.partition_by[0]
    conformed = conform(df, name)

    def replace_partition() -> None:
        (conformed.write.format("delta").mode("overwrite")
         .option("replaceWhere", f"{column} = DATE'{_date_literal(partition_value)}'")
         .partitionBy(column).save(settings.table_uri(name)))

    if has_list_columns(decl.schema):
        if not exists(settings, name) and create_by_first_spark_write(
                lambda uri: conformed.write.format("delta").mode("overwrite").partitionBy(column).save(uri),
                settings, name):
            return
    else:
        ensure_table(settings, name)
    retry_on_conflict(replace_partition, f"writing {name} partition {partition_value}")


# --- Spark-free access (delta-rs), for writers outside Spark and for readers of the risk tables ---

def read_arrow(settings: Settings, name: str, filters=None) -> pa.Table:
    from deltalake import DeltaTable

    return DeltaTable(settings.table_uri(name)).to_pyarrow_table(filters=filters)


def write_arrow(settings: Settings, name: str, data: pa.Table, partition_value: dt.date | None = None) -> None:
    """Write with delta-rs: whole table, or replace one date partition atomically."""
    from deltalake import write_deltalake

    decl = table(name)
    data = data.select(decl.schema.names).cast(decl.schema)
    uri = settings.table_uri(name)
    if partition_value is None:
        write_deltalake(uri, data, mode="overwrite", partition_by=list(decl.partition_by) or None,
                        schema_mode="overwrite")
        return
    from lake.table_creation import retry_on_conflict

    column = decl.partition_by[0]
    ensure_table(settings, name)
    retry_on_conflict(
        lambda: write_deltalake(uri, data, mode="overwrite",
                                predicate=f"{column} = '{_date_literal(partition_value)}'"),
        f"writing {name} partition {partition_value}")
