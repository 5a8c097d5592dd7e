"""The declared daily statistics and features compiled to Spark (any Spark Connect engine).

Nothing here names a statistic or a feature: `daily_aggregate` compiles features/daily_stats.py and
`account_features` compiles features/registry.py. The frame engines compile the same declarations in
features/frame_*.py.

Conventions (the same on every engine):
  * a window of `days` covers event dates in (D - days, D];
  * the accounts featured on D are those with a daily row in the longest window;
  * counts over a window without activity are 0; a ratio whose denominator is 0 is null.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from features import daily_stats, registry
from features.daily_stats import GAP_COLUMN, NEWEST_RELEASED_AT, WINDOW_DAYS, DailyStat
from features.expr import Expr, to_spark
from lake import catalog


def day_end(day: dt.date) -> Column:
    """Midnight UTC after `day` (session time zone is UTC): 'on or before the end of day' is `< day_end`."""
    return F.date_add(F.lit(day), 1).cast("timestamp")


def newest_release(model_releases: DataFrame, released_before: Column) -> DataFrame:
    """Exactly one row (newest_model, newest_released_at): the model with the latest release strictly before
    `released_before`; both null when none was released yet. Ties on the release time go to the greatest model
    name so the answer is deterministic."""
    latest = F.max_by(F.struct("model", "released_at"), F.struct("released_at", "model"))
    return (
        model_releases.where(F.col("released_at") < released_before)
        .agg(latest.alias("newest"))
        .select(F.col("newest.model").alias("newest_model"), F.col("newest.released_at").alias("newest_released_at"))
    )


def _by_name(name: str) -> Column:
    return F.col(name)


def compile_expr(expr: Expr) -> Column:
    return to_spark(expr, _by_name)


# --- one day of bronze -> account_daily -----------------------------------------------------------------


def request_rows(
    requests: DataFrame, accounts: DataFrame, model_releases: DataFrame, asn_info: DataFrame, event_date: dt.date
) -> DataFrame:
    """The day's requests with the reference values and derived columns the daily statistics read (all but
    the gap, which `with_gaps` adds to the few columns that need it)."""
    # one row per key so a duplicated registry row cannot double-count requests; min() is deterministic
    asn_category = asn_info.groupBy("asn").agg(F.min("category").alias("asn_category"))
    signup_country = accounts.groupBy("account_id").agg(F.min("signup_country").alias("signup_country"))
    newest = newest_release(model_releases, day_end(event_date)).select("newest_model")
    rows = (
        requests.where(F.col("event_date") == F.lit(event_date))
        .select(*daily_stats.BRONZE_INPUTS)
        .join(asn_category, on="asn", how="left")
        .join(signup_country, on="account_id", how="left")
        .crossJoin(newest)
    )
    for name, expr in daily_stats.REQUEST_COLUMNS.items():
        rows = rows.withColumn(name, compile_expr(expr))
    return rows


def with_gaps(rows: DataFrame, columns: set[str]) -> DataFrame:
    """account_id, event_us, `columns` and the gap since the account's previous request that day. The window
    sorts only these few columns: sorting every request column is what made this the costliest step."""
    previous = F.lag("event_us").over(Window.partitionBy("account_id").orderBy("event_us"))
    narrow = rows.select("account_id", "event_us", *sorted(columns - {"account_id", "event_us", GAP_COLUMN}))
    return narrow.withColumn(GAP_COLUMN, F.floor((F.col("event_us") - previous) / F.lit(1000)).cast("long"))


def _reads_gap(stat: DailyStat) -> bool:
    return any(e is not None and GAP_COLUMN in e.columns() for e in (stat.daily.value, stat.daily.where))


def _row_aggregate(stat: DailyStat) -> Column | None:
    """The groupBy(account_id) aggregate of a statistic that needs one pass over the rows; None for the kinds
    that group each account's rows by a key first."""
    agg = stat.daily
    if agg.kind == "count":
        return F.count(F.lit(1))
    if agg.kind not in ("sum", "count_distinct", "repeats", "min_where", "day_constant"):
        return None
    value = compile_expr(stat.value_expr())
    if agg.kind == "sum":
        return F.coalesce(F.sum(value), F.lit(0))
    if agg.kind == "count_distinct":
        return F.count_distinct(value)
    if agg.kind == "repeats":
        return F.count(value) - F.count_distinct(value)
    if agg.kind == "min_where":
        return F.min(F.when(compile_expr(stat.where_expr()), value))
    return F.max(value)  # day_constant


def _grouped_aggregate(rows: DataFrame, stat: DailyStat) -> DataFrame:
    """account_id + the statistic, for the kinds that group each account's rows by a key first. A sorted set
    too: collect_set over every request costs Sail several times more than collecting the distinct pairs."""
    agg = stat.daily
    keyed = rows.withColumn("_key", compile_expr(stat.value_expr())).where(F.col("_key").isNotNull())
    if agg.kind == "peak_group":
        per_key = keyed.groupBy("account_id", "_key").agg(F.count(F.lit(1)).alias("_n"))
        return per_key.groupBy("account_id").agg(F.max("_n").alias(stat.name))
    if agg.kind == "first_majority":
        hit = F.when(compile_expr(stat.where_expr()), 1).otherwise(0)
        per_key = keyed.groupBy("account_id", "_key").agg(F.count(F.lit(1)).alias("_n"), F.sum(hit).alias("_hits"))
        return per_key.where(F.col("_hits") * 2 > F.col("_n")).groupBy("account_id").agg(F.min("_key").alias(stat.name))
    if agg.kind == "sorted_set":
        pairs = keyed.select("account_id", "_key").distinct()
        return pairs.groupBy("account_id").agg(F.array_sort(F.collect_list("_key")).alias(stat.name))
    raise ValueError(f"daily stat {stat.name}: unknown aggregation {agg.kind!r}")


def _as_declared(stat: DailyStat, column: Column) -> Column:
    """Timestamps are computed as epoch microseconds; the table stores them as timestamps."""
    if stat.dtype == daily_stats.TS:
        return F.timestamp_micros(column)
    return column


def daily_aggregate(
    requests: DataFrame, accounts: DataFrame, model_releases: DataFrame, asn_info: DataFrame, event_date: dt.date
) -> DataFrame:
    """Bronze requests of `event_date` -> one `account_daily` row per active account (catalog schema).
    `requests` may hold more than one day; only `event_date` is aggregated.

    Without cache, every branch joined back below rescans the day's bronze, but only the few columns it
    reads; each branch costs less than what it replaces (a sort of whole request rows, collect_set)."""
    rows = request_rows(requests, accounts, model_releases, asn_info, event_date)
    one_pass = {s.name: agg for s in daily_stats.DAILY_STATS if (agg := _row_aggregate(s)) is not None}
    plain = [s for s in daily_stats.DAILY_STATS if s.name in one_pass and not _reads_gap(s)]
    gapped = [s for s in daily_stats.DAILY_STATS if s.name in one_pass and _reads_gap(s)]
    daily = rows.groupBy("account_id").agg(*(one_pass[s.name].alias(s.name) for s in plain))
    if gapped:
        needed = set().union(*(e.columns() for s in gapped for e in (s.daily.value, s.daily.where) if e is not None))
        daily = daily.join(
            with_gaps(rows, needed).groupBy("account_id").agg(*(one_pass[s.name].alias(s.name) for s in gapped)),
            on="account_id",
            how="left",
        )
    for stat in daily_stats.DAILY_STATS:
        if stat.name not in one_pass:
            daily = daily.join(_grouped_aggregate(rows, stat), on="account_id", how="left")
            if stat.daily.kind == "peak_group":
                daily = daily.withColumn(stat.name, F.coalesce(F.col(stat.name), F.lit(0)))
            elif stat.daily.kind == "sorted_set":  # an account without any value has an empty set, not null
                daily = daily.withColumn(
                    stat.name, F.coalesce(F.col(stat.name), F.array().cast(catalog.spark_type(stat.dtype)))
                )
    daily = daily.select(
        "account_id",
        F.lit(event_date).alias("event_date"),
        *(_as_declared(s, F.col(s.name)).alias(s.name) for s in daily_stats.DAILY_STATS),
    )
    return catalog.conform(daily, "account_daily")


# --- account_daily windows + registry + clusters -> account_features ---------------------------------------


def in_window(feature_date: dt.date, days: int) -> Column:
    """event_date in (feature_date - days, feature_date]."""
    return (F.col("event_date") > F.date_sub(F.lit(feature_date), days)) & (F.col("event_date") <= F.lit(feature_date))


def _windowed(stat: str, days: int) -> str:
    return f"{stat}__{days}d"


def _window_aggregate(stat: DailyStat, days: int, feature_date: dt.date) -> Column:
    inside = in_window(feature_date, days)
    on_current = inside & (F.col("newest_model") == F.col("_current_newest_model"))
    value = F.col(stat.name)
    if stat.dtype == daily_stats.TS:
        value = F.unix_micros(value)
    if stat.window == "sum":
        return F.sum(F.when(inside, F.coalesce(value, F.lit(0))).otherwise(F.lit(0)))
    if stat.window == "max":
        return F.coalesce(F.max(F.when(inside, value)), F.lit(0))
    if stat.window == "sum_on_current_newest":
        return F.sum(F.when(on_current, F.coalesce(value, F.lit(0))).otherwise(F.lit(0)))
    if stat.window == "min_on_current_newest":
        return F.min(F.when(on_current, value))
    raise ValueError(f"daily stat {stat.name}: unknown window roll-up {stat.window!r}")


def _distinct_counts(rows: DataFrame, stat: DailyStat, feature_date: dt.date, windows: tuple[int, ...]) -> DataFrame:
    """account_id + the size of the union of the daily sets over each window: an item is in a window when the
    last day it appeared is. Unioning collected lists per account cost Sail most of the window step."""
    items = rows.select("account_id", "event_date", F.explode(stat.name).alias("_item"))
    last_seen = items.groupBy("account_id", "_item").agg(F.max("event_date").alias("_last"))
    return last_seen.groupBy("account_id").agg(
        *(
            F.sum(F.when(F.col("_last") > F.date_sub(F.lit(feature_date), days), 1).otherwise(0))
            .cast("int")
            .alias(_windowed(stat.rolled_up_name(), days))
            for days in windows
        )
    )


def window_stats(
    daily: DataFrame, model_releases: DataFrame, feature_date: dt.date, windows: tuple[int, ...] = registry.WINDOWS
) -> DataFrame:
    """account_id + `<stat>__<w>d` for every window statistic and window: one pass over the longest window's daily
    rows, plus one over the item lists of each set-valued statistic. The newest model is the one as of
    feature_date, which the model-pivot stats are about."""
    current = newest_release(model_releases, day_end(feature_date)).select(
        F.col("newest_model").alias("_current_newest_model"),
        F.unix_micros("newest_released_at").alias(NEWEST_RELEASED_AT),
    )
    rows = daily.where(in_window(feature_date, max(windows)))
    aggregates = [
        _window_aggregate(stat, days, feature_date).alias(_windowed(stat.window_stat, days))
        for days in windows
        for stat in daily_stats.DAILY_STATS
        if stat.window_stat and stat.window != "distinct_count"
    ]
    aggregates += [F.max(NEWEST_RELEASED_AT).alias(_windowed(NEWEST_RELEASED_AT, days)) for days in windows]
    stats = rows.crossJoin(current).groupBy("account_id").agg(*aggregates)
    for stat in daily_stats.DAILY_STATS:
        if stat.window == "distinct_count":
            stats = stats.join(_distinct_counts(rows, stat, feature_date, windows), on="account_id", how="left")
            for days in windows:  # an account whose days hold no item at all has none in any window
                name = _windowed(stat.rolled_up_name(), days)
                stats = stats.withColumn(name, F.coalesce(F.col(name), F.lit(0)))
    return stats


def account_inputs(accounts: DataFrame, feature_date: dt.date) -> DataFrame:
    """One row per account: registry attributes plus how many accounts existing at the end of feature_date share
    its payment fingerprint (itself included when it existed). A duplicated registry row keeps the values the
    frame engines keep too: the smallest of each attribute."""
    end = day_end(feature_date)
    registry_rows = (
        accounts.groupBy("account_id")
        .agg(*(F.min(c).alias(c) for c in ("created_at", "verification", "program", "payment_fingerprint")))
        .select(
            "account_id",
            "created_at",
            "verification",
            "program",
            "payment_fingerprint",
            # an unknown creation time counts as existing: the registry has no evidence it did not
            F.coalesce(F.col("created_at") < end, F.lit(True)).alias("existed_at_feature_date"),
            end.alias("feature_day_end"),
        )
    )
    per_fingerprint = (
        registry_rows.where(F.col("existed_at_feature_date") & F.col("payment_fingerprint").isNotNull())
        .groupBy("payment_fingerprint")
        .agg(F.count(F.lit(1)).alias("same_payment_accounts"))
    )
    return registry_rows.join(per_fingerprint, on="payment_fingerprint", how="left")


def label_standing(labels: DataFrame, feature_date: dt.date) -> DataFrame:
    """account_id + its latest decision taken by the end of feature_date (later decisions are the future)."""
    decided = labels.where(F.col("decided_at") < day_end(feature_date))
    return decided.groupBy("account_id").agg(F.max_by("label", F.struct("decided_at", "label")).alias("standing"))


def cluster_inputs(
    clusters: DataFrame, registry_rows: DataFrame, daily: DataFrame, labels: DataFrame, feature_date: dt.date
) -> DataFrame:
    """account_id + CLUSTER_INPUTS from one day's account_clusters rows and what is known of each member;
    `registry_rows` is `account_inputs` (one row per account, with its creation time)."""
    new_since = F.date_sub(F.lit(feature_date), registry.NEW_ACCOUNT_DAYS - 1).cast("timestamp")
    created = registry_rows.select("account_id", "created_at")
    volume = (
        daily.where(in_window(feature_date, registry.CLUSTER_VOLUME_DAYS))
        .groupBy("account_id")
        .agg(F.sum("requests").alias("member_requests"))
    )
    members = (
        clusters.select("account_id", "cluster_id", "link_types", "linked_accounts", "template_links")
        .join(created, "account_id", "left")
        .join(volume, "account_id", "left")
        .join(label_standing(labels, feature_date), "account_id", "left")
    )

    def count_if(condition: Column) -> Column:
        return F.sum(F.when(condition, 1).otherwise(0))

    per_cluster = members.groupBy("cluster_id").agg(
        F.count(F.lit(1)).alias("cluster_size"),
        count_if(F.array_contains("link_types", "payment")).alias("cluster_payment_members"),
        count_if(F.array_contains("link_types", "ip_prefix")).alias("cluster_ip_prefix_members"),
        count_if(F.array_contains("link_types", "template")).alias("cluster_template_members"),
        count_if(F.array_contains("link_types", "timing")).alias("cluster_timing_members"),
        count_if(F.col("created_at") >= new_since).alias("cluster_new_members"),
        F.coalesce(F.sum("member_requests"), F.lit(0)).alias("cluster_requests"),
        count_if(F.col("standing") == "extraction").alias("cluster_extraction_labelled"),
    )
    return members.join(per_cluster, on="cluster_id").select("account_id", *registry.CLUSTER_INPUTS)


def _feature_columns(feature: registry.Feature) -> list[Column]:
    if not feature.windowed:
        return [compile_expr(feature.formula).cast("double").alias(feature.name)]
    columns = []
    for days in registry.WINDOWS:

        def resolve(name: str, days=days) -> Column:
            return F.lit(float(days)) if name == WINDOW_DAYS else F.col(_windowed(name, days))

        columns.append(to_spark(feature.formula, resolve).cast("double").alias(f"{feature.name}_{days}d"))
    return columns


def account_features(
    daily: DataFrame,
    accounts: DataFrame,
    model_releases: DataFrame,
    clusters: DataFrame,
    labels: DataFrame,
    feature_date: dt.date,
) -> DataFrame:
    """`account_features` rows (catalog schema) for feature_date, from `account_daily` rows, the account
    registry, the day's `account_clusters` and the enforcement decisions taken by then. Accounts missing from the
    registry keep null account features."""
    registry_rows = account_inputs(accounts, feature_date)
    inputs = (
        window_stats(daily, model_releases, feature_date)
        .join(registry_rows, on="account_id", how="left")
        .join(cluster_inputs(clusters, registry_rows, daily, labels, feature_date), on="account_id", how="left")
    )
    features = inputs.select(
        "account_id",
        F.lit(feature_date).alias("feature_date"),
        *(column for feature in registry.FEATURES for column in _feature_columns(feature)),
        F.lit(registry.feature_set_version()).alias("feature_set_version"),
    )
    return catalog.conform(features, "account_features")
