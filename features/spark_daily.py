"""One day of bronze requests -> `account_daily`: one row of sufficient statistics per account-day.

Every statistic is a count, a sum, a max, a min timestamp or a small set, so the 1/7/28-day windows
in features/spark_features.py are sums/maxes/unions of daily rows and the nightly job never rereads
older raw logs. Statistics that are not additive across days (distinct hours, per-minute peaks,
template repeats, the top system prompt) are fixed per day here; the window features document how
they combine them.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from features.request_signals import CAPABILITIES, with_request_signals
from lake import catalog

HOSTING_PROXY_CATEGORIES = ("hosting", "proxy")
BATCH_ENDPOINT = "batch"
MAX_TOKENS_STOP = "max_tokens"


def day_end(day: dt.date) -> Column:
    """Midnight UTC after `day` (session time zone is UTC): 'on or before the end of day' is `< day_end`."""
    return F.date_add(F.lit(day), 1).cast("timestamp")


def newest_release(model_releases: DataFrame, released_before: Column) -> DataFrame:
    """Exactly one row (newest_model, newest_released_at): the model with the latest release strictly
    before `released_before`; both null when none was released yet. Ties on the release time go to the
    greatest model name so the answer is deterministic."""
    latest = F.max_by(F.struct("model", "released_at"), F.struct("released_at", "model"))
    return (
        model_releases.where(F.col("released_at") < released_before)
        .agg(latest.alias("newest"))
        .select(F.col("newest.model").alias("newest_model"),
                F.col("newest.released_at").alias("newest_released_at"))
    )


def _count_if(condition: Column) -> Column:
    return F.sum(F.when(condition, 1).otherwise(0))


def _request_rows(requests, accounts, model_releases, asn_info, event_date: dt.date) -> DataFrame:
    """The day's requests with their signals and the reference attributes the daily stats need."""
    # Reference tables are reduced to one row per key so a duplicated registry row cannot double-count
    # requests; min() keeps the choice deterministic.
    asn_category = asn_info.groupBy("asn").agg(F.min("category").alias("asn_category"))
    signup_country = accounts.groupBy("account_id").agg(F.min("signup_country").alias("signup_country"))
    newest = newest_release(model_releases, day_end(event_date))
    day_requests = requests.where(F.col("event_date") == F.lit(event_date))
    return (
        with_request_signals(day_requests)
        .join(asn_category, on="asn", how="left")
        .join(signup_country, on="account_id", how="left")
        .crossJoin(newest)
        .select(
            "account_id", "request_id", "event_ts", "input_tokens", "output_tokens", "endpoint", "stream",
            "stop_reason", "system_prompt_hash", "ip_prefix_hash", "country", "asn_category", "signup_country",
            "is_cot_elicitation", "is_rubric_grading", "capability", "is_non_english", "prompt_fingerprint",
            "is_raw_http_client", "newest_model",
            F.hour("event_ts").alias("hour"),
            F.date_trunc("hour", "event_ts").alias("hour_ts"),
            F.date_trunc("minute", "event_ts").alias("minute_ts"),
            F.coalesce(F.col("model") == F.col("newest_model"), F.lit(False)).alias("is_newest_model"),
        )
    )


def _per_account_totals(rows: DataFrame) -> DataFrame:
    previous_ts = F.lag("event_ts").over(Window.partitionBy("account_id").orderBy("event_ts", "request_id"))
    gap_s = (F.unix_micros("event_ts") - F.unix_micros(previous_ts)) / F.lit(1_000_000.0)
    mismatch = F.col("country").isNotNull() & F.col("signup_country").isNotNull() & (
        F.col("country") != F.col("signup_country"))
    return (
        rows.withColumn("gap_s", gap_s)
        .groupBy("account_id")
        .agg(
            F.count(F.lit(1)).alias("requests"),
            F.coalesce(F.sum("input_tokens"), F.lit(0)).alias("input_tokens"),
            F.coalesce(F.sum("output_tokens"), F.lit(0)).alias("output_tokens"),
            F.count_distinct("hour").alias("active_hours"),
            *(_count_if(F.col("hour") == h).alias(f"hour_{h:02d}") for h in range(24)),
            F.count("gap_s").alias("gap_count"),
            F.coalesce(F.sum("gap_s"), F.lit(0.0)).alias("gap_sum_s"),
            F.coalesce(F.sum(F.col("gap_s") * F.col("gap_s")), F.lit(0.0)).alias("gap_sumsq_s"),
            _count_if(F.col("endpoint") == BATCH_ENDPOINT).alias("batch_requests"),
            _count_if(F.col("stream")).alias("stream_requests"),
            _count_if(F.col("is_cot_elicitation")).alias("cot_requests"),
            _count_if(F.col("is_rubric_grading")).alias("rubric_requests"),
            # requests whose fingerprint repeats one already seen that day (requests without prompt text
            # have no fingerprint and never count as repeats)
            (F.count("prompt_fingerprint") - F.count_distinct("prompt_fingerprint")).alias(
                "repeated_template_requests"),
            *(_count_if(F.col("capability") == c).alias(f"{c}_requests") for c in CAPABILITIES),
            _count_if(F.col("stop_reason") == MAX_TOKENS_STOP).alias("max_tokens_stops"),
            _count_if(F.col("is_non_english")).alias("non_english_requests"),
            F.max("newest_model").alias("newest_model"),
            _count_if(F.col("is_newest_model")).alias("newest_model_requests"),
            F.min(F.when(F.col("is_newest_model"), F.col("event_ts"))).alias("newest_model_first_ts"),
            F.array_sort(F.collect_set("ip_prefix_hash")).alias("ip_prefixes"),
            F.array_sort(F.collect_set("country")).alias("countries"),
            _count_if(F.col("asn_category").isin(*HOSTING_PROXY_CATEGORIES)).alias("hosting_proxy_requests"),
            _count_if(mismatch).alias("signup_mismatch_requests"),
            _count_if(F.col("is_raw_http_client")).alias("raw_http_requests"),
        )
    )


def _per_account_minutes(rows: DataFrame) -> DataFrame:
    per_minute = rows.groupBy("account_id", "minute_ts").agg(F.count(F.lit(1)).alias("minute_requests"))
    return per_minute.groupBy("account_id").agg(
        F.count(F.lit(1)).alias("active_minutes"), F.max("minute_requests").alias("peak_rpm"))


def _per_account_top_system_prompt(rows: DataFrame) -> DataFrame:
    per_prompt = (rows.where(F.col("system_prompt_hash").isNotNull())
                  .groupBy("account_id", "system_prompt_hash").agg(F.count(F.lit(1)).alias("prompt_requests")))
    return per_prompt.groupBy("account_id").agg(F.max("prompt_requests").alias("top_system_prompt_requests"))


def _per_account_newest_majority_hour(rows: DataFrame) -> DataFrame:
    per_hour = rows.groupBy("account_id", "hour_ts").agg(
        F.count(F.lit(1)).alias("hour_requests"), _count_if(F.col("is_newest_model")).alias("hour_newest"))
    return (per_hour.where(F.col("hour_newest") * 2 > F.col("hour_requests"))
            .groupBy("account_id").agg(F.min("hour_ts").alias("newest_model_majority_hour_ts")))


def daily_aggregate(requests: DataFrame, accounts: DataFrame, model_releases: DataFrame, asn_info: DataFrame,
                    event_date: dt.date) -> DataFrame:
    """Bronze requests of `event_date` -> one `account_daily` row per active account (catalog schema).

    `requests` may hold more than one day; only `event_date` is aggregated. The newest model is the one
    with the latest release on or before the end of `event_date`.
    """
    rows = _request_rows(requests, accounts, model_releases, asn_info, event_date)
    daily = (
        _per_account_totals(rows)
        .join(_per_account_minutes(rows), on="account_id", how="left")
        .join(_per_account_top_system_prompt(rows), on="account_id", how="left")
        .join(_per_account_newest_majority_hour(rows), on="account_id", how="left")
        .withColumn("top_system_prompt_requests", F.coalesce(F.col("top_system_prompt_requests"), F.lit(0)))
        .withColumn("event_date", F.lit(event_date))
    )
    return catalog.conform(daily, "account_daily")
