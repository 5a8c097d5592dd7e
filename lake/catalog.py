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

from lake.config import Settings
from lake.errors import MissingTableError

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


# The families the `families` job scores into family_scores (jobs/families.py). The score can fuse them
# (models/fusion.py): the training set carries each as a column family_<name>, the day's scoring reads the table.
LAKE_FAMILIES = ("propagation", "peer_novelty", "switch", "resemblance")


def family_column(name: str) -> str:
    """The column of a lake family's raw score in training_sets and in scoring's inputs (null: not scored)."""
    return f"family_{name}"


def family_latest_column(name: str) -> str:
    """The column of a lake family's raw score on the training set's last scored date, per account, in
    training_sets: the evidence as it stands when the model starts scoring, which the score's stack is fitted on
    (null: the account was not scored that day)."""
    return f"family_latest_{name}"


def family_reason_column(name: str) -> str:
    """The column of a lake family's plain-language reason in scoring's inputs."""
    return f"family_reason_{name}"


def family_score_columns(rows, families: tuple[str, ...], keys: tuple[str, ...], reasons: bool = False):
    """family_scores rows (a Spark DataFrame) as one row per `keys`, with each family's raw score as a column
    (family_column) and, with `reasons`, its sentence (family_reason_column)."""
    from pyspark.sql import functions as F

    chosen = [(name, F.col("family") == F.lit(name)) for name in families]
    scores = [F.max(F.when(is_it, F.col("score"))).alias(family_column(name)) for name, is_it in chosen]
    sentences = [F.max(F.when(is_it, F.col("reason"))).alias(family_reason_column(name)) for name, is_it in chosen]
    return rows.groupBy(*keys).agg(*scores, *(sentences if reasons else []))


def fields_schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, dtype) for name, dtype in fields])


# --- raw inputs (docs/design.md §5): written by the API gateway or the simulator -----------------------

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

# bronze drops the raw IP and keeps keyed hashes of the address and of its /24 or /48 prefix, plus the
# per-request signals ingest derives from the prompt and client (features/signals.py); nothing after bronze
# reads prompt text
BRONZE_REQUEST_FIELDS = tuple(f for f in API_REQUEST_FIELDS if f[0] != "client_ip") + (
    ("ip_hash", pa.string()),
    ("ip_prefix_hash", pa.string()),
    ("prompt_prefix_truncated", pa.bool_()),  # the raw text was longer than the contract's 1024 characters
    ("ingest_run_id", pa.string()),
    ("is_cot_elicitation", pa.bool_()),
    ("is_rubric_grading", pa.bool_()),
    ("capability", pa.string()),
    ("is_non_english", pa.bool_()),
    ("prompt_fingerprint", pa.int64()),
    ("is_raw_http_client", pa.bool_()),
    ("signals_version", pa.string()),
)

REASON_STRUCT = pa.struct(
    [
        pa.field("feature", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("contribution", pa.float64()),
        pa.field("text", pa.string()),
    ]
)

CAPABILITY_REQUESTS = pa.struct([pa.field("capability", pa.string()), pa.field("requests", pa.int64())])

# Tier names, highest first: the one definition (models/ and jobs/ import it). The benign false-positive rate
# each tier allows is a model setting (models/config.py).
RISK_TIERS = ("critical", "high", "elevated", "low")


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "api_requests",
            "raw",
            fields_schema(*API_REQUEST_FIELDS),
            "raw API request log (gateway contract)",
            ("event_date",),
            required=("request_id", "event_ts", "account_id"),
        ),
        Table(
            "accounts",
            "raw",
            fields_schema(
                ("account_id", pa.string()),
                ("org_id", pa.string()),
                ("created_at", TS),
                ("signup_country", pa.string()),
                ("payment_fingerprint", pa.string()),
                ("verification", pa.string()),
                ("program", pa.string()),
            ),
            "account registry",
            required=("account_id",),
        ),
        Table(
            "model_releases",
            "raw",
            fields_schema(("model", pa.string()), ("released_at", TS)),
            "model release times",
            required=("model", "released_at"),
        ),
        Table(
            "asn_info",
            "raw",
            fields_schema(("asn", pa.int32()), ("category", pa.string())),
            "ASN categories",
            required=("asn",),
        ),
        Table(
            "enforcement_labels",
            "raw",
            fields_schema(
                ("account_id", pa.string()),
                ("label", pa.string()),
                ("decided_at", TS),
                ("campaign_id", pa.string()),
                ("source", pa.string()),
                ("note", pa.string()),
            ),
            "analyst/rule decisions; flow back as training labels",
            required=("account_id", "label", "decided_at"),
        ),
        Table(
            "requests",
            "bronze",
            fields_schema(*BRONZE_REQUEST_FIELDS),
            "validated requests, IPs pseudonymized",
            ("event_date",),
        ),
        Table(
            "quarantine",
            "bronze",
            fields_schema(
                ("raw_record", pa.string()),
                ("reason", pa.string()),
                ("source_table", pa.string()),
                ("source_partition", pa.date32()),
                ("ingest_run_id", pa.string()),
            ),
            "rejected raw rows with the reason",
            ("source_partition",),
        ),
        Table(
            "ingest_runs",
            "ops",
            fields_schema(
                ("ingest_run_id", pa.string()),
                ("event_date", pa.date32()),
                ("raw_table_version", pa.int64()),
                ("raw_rows", pa.int64()),
                ("bronze_rows", pa.int64()),
                ("quarantined_rows", pa.int64()),
                ("quarantine_reasons", pa.string()),
            ),
            "row counts per ingest run (reasons as JSON)",
            ("event_date",),
        ),
        Table(
            "account_clusters",
            "gold",
            fields_schema(
                ("feature_date", pa.date32()),
                ("account_id", pa.string()),
                ("cluster_id", pa.string()),
                ("link_types", pa.list_(pa.string())),
                ("linked_accounts", pa.int64()),
                ("payment_links", pa.int64()),
                ("ip_prefix_links", pa.int64()),
                ("template_links", pa.int64()),
                ("timing_links", pa.int64()),
            ),
            "clusters (connected components of the cluster graph) with each account's link evidence",
            ("feature_date",),
        ),
        Table(
            "account_links",
            "gold",
            fields_schema(
                ("feature_date", pa.date32()),
                ("src", pa.string()),
                ("dst", pa.string()),
                ("strength", pa.float64()),
                ("shared_payment_methods", pa.int64()),
                ("shared_ip_prefixes", pa.int64()),
                ("shared_templates", pa.int64()),
                ("synchronised_bands", pa.int64()),
            ),
            "the cluster graph's account pairs and what they share (features/spark_clusters.py)",
            ("feature_date",),
        ),
        Table(
            "account_edges",
            "gold",
            fields_schema(
                ("feature_date", pa.date32()),
                ("src", pa.string()),
                ("dst", pa.string()),
                ("link_type", pa.string()),
                ("artefact", pa.string()),
                ("artefact_accounts", pa.int64()),
                ("strength", pa.float64()),
                ("in_cluster_graph", pa.bool_()),
                ("first_seen", pa.date32()),
                ("last_seen", pa.date32()),
            ),
            "what joined two linked accounts: one row per candidate pair and shared pseudonymised artefact "
            "(payment, IP prefix, template, timing band), with how many accounts share it (features/spark_edges.py)",
            ("feature_date",),
        ),
        Table(
            "family_scores",
            "gold",
            fields_schema(
                ("score_date", pa.date32()),
                ("account_id", pa.string()),
                ("family", pa.string()),
                ("score", pa.float64()),
                ("reason", pa.string()),
            ),
            "raw scores of the propagation, peer-novelty and switch families per account (higher = more "
            "extraction-like; not calibrated), with a plain-language reason (jobs/families.py)",
            ("score_date",),
        ),
        Table(
            "campaign_days",
            "gold",
            fields_schema(
                ("day", pa.date32()),
                ("campaign_id", pa.string()),
                ("cluster_id", pa.string()),
                ("event", pa.string()),
                ("related", pa.list_(pa.string())),
                ("jaccard", pa.float64()),
                ("members", pa.list_(pa.string())),
                ("n_members", pa.int64()),
                ("joined", pa.int64()),
                ("left", pa.int64()),
                ("requests", pa.int64()),
                ("capability_requests", pa.list_(CAPABILITY_REQUESTS)),
                ("newest_model", pa.string()),
                ("newest_model_requests", pa.int64()),
                ("extraction_decided", pa.int64()),
                ("benign_decided", pa.int64()),
                ("evidence", pa.list_(pa.string())),
            ),
            "each day's clusters as campaigns that persist across days: the id carried, how (new, continued, "
            "split from or merged with `related`), the members and their volume that day (models/campaigns.py), and "
            "the cluster's link evidence as sentences with counts, on record as of that night (models/link_evidence.py)",
            ("day",),
        ),
        Table(
            "campaigns",
            "gold",
            fields_schema(
                ("as_of", pa.date32()),
                ("campaign_id", pa.string()),
                ("status", pa.string()),
                ("merged_into", pa.string()),
                ("split_from", pa.string()),
                ("first_seen", pa.date32()),
                ("last_seen", pa.date32()),
                ("days_seen", pa.int64()),
                ("members_now", pa.int64()),
                ("members_ever", pa.int64()),
                ("peak_members", pa.int64()),
                (
                    "member_counts",
                    pa.list_(
                        pa.struct(
                            [
                                pa.field("day", pa.date32()),
                                pa.field("members", pa.int64()),
                                pa.field("requests", pa.int64()),
                            ]
                        )
                    ),
                ),
                ("requests", pa.int64()),
                ("capability_mix", pa.list_(CAPABILITY_REQUESTS)),
                ("model_pivot_day", pa.date32()),
                ("pivot_model", pa.string()),
                ("extraction_decided", pa.int64()),
                ("benign_decided", pa.int64()),
                ("decided_share", pa.float64()),
            ),
            "one row per campaign as of each night: first and last seen, members over time, volume, capability "
            "mix, model-pivot day, decided share and status (active, dormant, merged, ended)",
            ("as_of",),
        ),
        Table(
            "account_risk",
            "gold",
            fields_schema(
                ("score_date", pa.date32()),
                ("account_id", pa.string()),
                ("score", pa.float64()),
                ("tier", pa.string()),
                ("cluster_id", pa.string()),
                ("cluster_score", pa.float64()),
                ("reasons", pa.list_(REASON_STRUCT)),
                ("model_name", pa.string()),
                ("model_version", pa.string()),
                ("feature_set_version", pa.string()),
            ),
            "ranked, explained account risk; score = the share of the model's clean benign reference (its calibration "
            "accounts) the account outranks (models/fusion.py), tier = score >= 1 - the tier's benign FPR",
            ("score_date",),
        ),
        Table(
            "cluster_risk",
            "gold",
            fields_schema(
                ("score_date", pa.date32()),
                ("cluster_id", pa.string()),
                ("n_accounts", pa.int64()),
                ("requests", pa.int64()),
                ("score", pa.float64()),
                ("top_capabilities", pa.list_(pa.string())),
                ("link_evidence", pa.list_(pa.string())),
            ),
            "cluster risk with link evidence; score = mean of the cluster's three highest account scores",
            ("score_date",),
        ),
        Table(
            "score_runs",
            "ops",
            fields_schema(
                ("score_date", pa.date32()),
                ("finished_at", TS),
                ("accounts", pa.int64()),
                ("clusters", pa.int64()),
                ("model_name", pa.string()),
                ("model_version", pa.string()),
            ),
            "a score run's marker, committed after account_risk and cluster_risk: the day's two tables are complete",
            ("score_date",),
        ),
        Table(
            "risk_publications",
            "ops",
            fields_schema(
                ("score_date", pa.date32()),
                ("published_at", TS),
                ("model_name", pa.string()),
                ("model_version", pa.string()),
                ("feature_set_version", pa.string()),
                ("accounts", pa.int64()),
                ("clusters", pa.int64()),
                *((f"{tier}_accounts", pa.int64()) for tier in RISK_TIERS),
                ("account_risk_version", pa.int64()),
                ("cluster_risk_version", pa.int64()),
            ),
            "one row per published score date: what analysts got, with the Delta versions to time-travel to",
            ("score_date",),
        ),
        Table(
            "indicator_exports",
            "ops",
            fields_schema(
                ("export_id", pa.string()),
                ("exported_at", TS),
                ("operator", pa.string()),
                ("campaign_id", pa.string()),
                ("as_of", pa.date32()),
                ("format", pa.string()),
                ("raw", pa.bool_()),
                ("indicators", pa.int64()),
                ("bundle_sha256", pa.string()),
            ),
            "audit log of indicator exports (`distillguard indicators export`): who exported which campaign, and "
            "whether raw values left (raw exports need an operator's name)",
        ),
        Table(
            "tier_audits",
            "ops",
            fields_schema(
                ("score_date", pa.date32()),
                ("account_id", pa.string()),
                ("score", pa.float64()),
                ("stratum", pa.int64()),
                ("model_name", pa.string()),
                ("model_version", pa.string()),
                ("drawn_at", TS),
            ),
            "accounts drawn at random from each tier's band of a scored day for analysts to decide "
            "(`distillguard review audit`); their decisions relax or tighten the model version's tier bounds (models/tier_audit.py)",
            ("score_date",),
        ),
        Table(
            "analyst_decisions",
            "ops",
            fields_schema(
                ("decision_id", pa.string()),
                ("decided_at", TS),
                ("analyst", pa.string()),
                ("target_kind", pa.string()),
                ("target_id", pa.string()),
                ("account_id", pa.string()),
                ("label", pa.string()),
                ("note", pa.string()),
                ("campaign_id", pa.string()),
                ("previous_label", pa.string()),
                ("previous_decided_at", TS),
                ("score_date", pa.date32()),
                ("score", pa.float64()),
                ("tier", pa.string()),
                ("model_name", pa.string()),
                ("model_version", pa.string()),
            ),
            "audit log of analyst decisions (console and `review decide`): one row per labelled account, with what "
            "the analyst saw; decision_id is also in the metadata of the enforcement_labels commit",
        ),
    )
}


def register(declaration: Table) -> None:
    """Declare a table whose columns come from a layer above lake/: account_daily's from the daily statistics,
    account_features' and training_sets' from the feature registry (features/registry.py registers them)."""
    TABLES[declaration.name] = declaration


def table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        hint = (
            " (feature tables are declared by features/registry.py: import it first)" if name in FEATURE_TABLES else ""
        )
        raise KeyError(f"unknown table {name!r}; declared tables: {sorted(TABLES)}{hint}") from None


FEATURE_TABLES = ("account_daily", "account_features", "training_sets")


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
        raise MissingTableError(
            f"Delta table {name!r} not found at {settings.table_uri(name)}; run the job that produces it first"
        )
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
        (
            conformed.write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", f"{column} = DATE'{_date_literal(partition_value)}'")
            .partitionBy(column)
            .save(settings.table_uri(name))
        )

    if has_list_columns(decl.schema):
        if not exists(settings, name) and create_by_first_spark_write(
            lambda uri: conformed.write.format("delta").mode("overwrite").partitionBy(column).save(uri), settings, name
        ):
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
        write_deltalake(
            uri, data, mode="overwrite", partition_by=list(decl.partition_by) or None, schema_mode="overwrite"
        )
        return
    from lake.table_creation import retry_on_conflict

    column = decl.partition_by[0]
    ensure_table(settings, name)
    retry_on_conflict(
        lambda: write_deltalake(
            uri, data, mode="overwrite", predicate=f"{column} = '{_date_literal(partition_value)}'"
        ),
        f"writing {name} partition {partition_value}",
    )
