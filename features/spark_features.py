"""Account features on Spark: 1/7/28-day windows computed only from `account_daily` rows.

Hamilton style: one plain function per declared feature (features/registry.py), named exactly after it.
A windowed feature takes `w`, the window's aggregated statistics (`w.requests` is the Column of
requests summed over the window, `w.days` the window length), and returns a Column. An account
feature takes `a`, the account-level inputs. The cuDF/pandas engine mirrors these formulas, so each
is written out explicitly with built-in functions only.

Conventions:
  * a window of `days` covers event dates in (D - days, D];
  * the accounts scored on D are those with a daily row in the longest window;
  * counts over a window without activity are 0; a ratio whose denominator is 0 is null.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from features import registry
from features.request_signals import CAPABILITIES
from features.spark_daily import day_end, newest_release
from lake import catalog

HOURS = tuple(f"hour_{h:02d}" for h in range(24))
CAPABILITY_STATS = tuple(f"{c}_requests" for c in CAPABILITIES)

# Daily stats whose window value is the plain sum over the window's days. active_hours sums distinct
# hours per day, which is exactly the number of distinct clock hours of the window; gaps are within
# one day, so the first request of each day starts no gap; repeated templates and the top system
# prompt are decided per day.
SUMMED_STATS = (
    "requests", "input_tokens", "output_tokens", "active_hours", *HOURS,
    "gap_count", "gap_sum_s", "gap_sumsq_s", "active_minutes",
    "batch_requests", "stream_requests", "cot_requests", "rubric_requests", "repeated_template_requests",
    *CAPABILITY_STATS, "max_tokens_stops", "non_english_requests", "top_system_prompt_requests",
    "hosting_proxy_requests", "signup_mismatch_requests", "raw_http_requests",
)
# Window stats that are not plain sums. The newest_model_* stats only use days whose newest model is
# the newest model as of D (on earlier days they describe an older model).
OTHER_WINDOW_STATS = (
    "peak_rpm", "newest_model_requests", "newest_model_first_ts", "newest_model_majority_hour_ts",
    "newest_released_at", "ip_prefix_count", "country_count",
)
WINDOW_STATS = SUMMED_STATS + OTHER_WINDOW_STATS

ACCOUNT_INPUTS = ("created_at", "verification", "program", "payment_fingerprint", "same_payment_accounts",
                  "existed_at_feature_date", "feature_day_end")

VERIFICATION_LEVELS = {"none": 0, "email": 1, "card": 2, "kyc": 3}
CREDIT_PROGRAMS = ("education", "research", "startup")

SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86400.0


class WindowStats:
    """The aggregated statistics of one window, by stat name: `w.requests` -> a Column."""

    def __init__(self, days: int, column_name: Callable[[str], str] = lambda stat: stat) -> None:
        self.days = days
        self._column_name = column_name

    def __getattr__(self, stat: str) -> Column:
        if stat not in WINDOW_STATS:
            raise AttributeError(f"no window statistic {stat!r}; known: {', '.join(WINDOW_STATS)}")
        return F.col(self._column_name(stat))


class AccountInputs:
    """Account-level inputs as of the feature date, by name: `a.created_at` -> a Column."""

    def __getattr__(self, name: str) -> Column:
        if name not in ACCOUNT_INPUTS:
            raise AttributeError(f"no account input {name!r}; known: {', '.join(ACCOUNT_INPUTS)}")
        return F.col(name)


def _ratio(numerator: Column, denominator: Column) -> Column:
    """numerator / denominator, null where the denominator is 0 or null (never a division by zero)."""
    return numerator.cast("double") / F.when(denominator > 0, denominator.cast("double"))


def _sum(columns: list[Column]) -> Column:
    """Balanced sum: a left-deep chain of 24 additions nests too deep for Spark Connect's protobuf."""
    if len(columns) == 1:
        return columns[0]
    middle = len(columns) // 2
    return _sum(columns[:middle]) + _sum(columns[middle:])


def _entropy_bits(counts: list[Column]) -> Column:
    """Shannon entropy in bits of the distribution given by `counts`, null when they are all 0:
    H = log2(T) - sum(c * log2(c)) / T with T = sum(c), which names the total only once."""
    total = _sum([c.cast("double") for c in counts])
    weighted_logs = _sum([F.when(c > 0, c.cast("double") * F.log2(c.cast("double"))).otherwise(F.lit(0.0))
                          for c in counts])
    # the identity can land a rounding error below 0 for a single non-zero count
    return F.when(total > 0, F.greatest(F.lit(0.0), F.log2(total) - _ratio(weighted_logs, total)))


def _hours_between(start: Column, end: Column) -> Column:
    return (F.unix_micros(end) - F.unix_micros(start)) / F.lit(1_000_000.0 * SECONDS_PER_HOUR)


# --- volume -----------------------------------------------------------------------------------

def requests(w: WindowStats) -> Column:
    return w.requests


def input_tokens(w: WindowStats) -> Column:
    return w.input_tokens


def output_tokens(w: WindowStats) -> Column:
    return w.output_tokens


def active_hours(w: WindowStats) -> Column:
    return w.active_hours


# --- automation and timing ----------------------------------------------------------------------

def interarrival_cv(w: WindowStats) -> Column:
    """Population standard deviation / mean of the gaps between consecutive requests of a day."""
    mean = _ratio(w.gap_sum_s, w.gap_count)
    variance = _ratio(w.gap_sumsq_s, w.gap_count) - mean * mean
    # sum-of-squares variance can dip a rounding error below 0 for near-constant gaps
    return _ratio(F.sqrt(F.greatest(variance, F.lit(0.0))), mean)


def hour_entropy(w: WindowStats) -> Column:
    return _entropy_bits([getattr(w, hour) for hour in HOURS])


def coverage_24_7(w: WindowStats) -> Column:
    return w.active_hours.cast("double") / F.lit(24.0 * w.days)


def burstiness(w: WindowStats) -> Column:
    mean_per_active_minute = _ratio(w.requests, w.active_minutes)
    return _ratio(w.peak_rpm, mean_per_active_minute)


def peak_rpm(w: WindowStats) -> Column:
    return w.peak_rpm


def batch_share(w: WindowStats) -> Column:
    return _ratio(w.batch_requests, w.requests)


def stream_share(w: WindowStats) -> Column:
    return _ratio(w.stream_requests, w.requests)


# --- content --------------------------------------------------------------------------------------

def cot_elicitation_rate(w: WindowStats) -> Column:
    return _ratio(w.cot_requests, w.requests)


def rubric_grading_rate(w: WindowStats) -> Column:
    return _ratio(w.rubric_requests, w.requests)


def template_reuse_rate(w: WindowStats) -> Column:
    return _ratio(w.repeated_template_requests, w.requests)


def coding_share(w: WindowStats) -> Column:
    return _ratio(w.coding_requests, w.requests)


def agentic_share(w: WindowStats) -> Column:
    return _ratio(w.agentic_requests, w.requests)


def tool_use_share(w: WindowStats) -> Column:
    return _ratio(w.tool_use_requests, w.requests)


def reasoning_share(w: WindowStats) -> Column:
    return _ratio(w.reasoning_requests, w.requests)


def vision_share(w: WindowStats) -> Column:
    return _ratio(w.vision_requests, w.requests)


def capability_entropy(w: WindowStats) -> Column:
    return _entropy_bits([getattr(w, stat) for stat in CAPABILITY_STATS])


def output_input_ratio(w: WindowStats) -> Column:
    return _ratio(w.output_tokens, w.input_tokens)


def max_tokens_saturation(w: WindowStats) -> Column:
    return _ratio(w.max_tokens_stops, w.requests)


def non_english_share(w: WindowStats) -> Column:
    return _ratio(w.non_english_requests, w.requests)


def system_prompt_reuse(w: WindowStats) -> Column:
    return _ratio(w.top_system_prompt_requests, w.requests)


# --- model pivot ----------------------------------------------------------------------------------

def newest_model_share(w: WindowStats) -> Column:
    return _ratio(w.newest_model_requests, w.requests)


def hours_to_newest_model(w: WindowStats) -> Column:
    return _hours_between(w.newest_released_at, w.newest_model_first_ts)


def hours_to_newest_majority(w: WindowStats) -> Column:
    return _hours_between(w.newest_released_at, w.newest_model_majority_hour_ts)


# --- infrastructure -------------------------------------------------------------------------------

def distinct_ip_prefixes(w: WindowStats) -> Column:
    return w.ip_prefix_count


def hosting_proxy_share(w: WindowStats) -> Column:
    return _ratio(w.hosting_proxy_requests, w.requests)


def distinct_countries(w: WindowStats) -> Column:
    return w.country_count


def signup_country_mismatch(w: WindowStats) -> Column:
    return _ratio(w.signup_mismatch_requests, w.requests)


def raw_http_share(w: WindowStats) -> Column:
    return _ratio(w.raw_http_requests, w.requests)


# --- account and cluster (not windowed) -----------------------------------------------------------

def account_age_days(a: AccountInputs) -> Column:
    return (F.unix_micros(a.feature_day_end) - F.unix_micros(a.created_at)) / F.lit(1_000_000.0 * SECONDS_PER_DAY)


def verification_level(a: AccountInputs) -> Column:
    level = F.lit(None).cast("double")
    for name, value in VERIFICATION_LEVELS.items():
        level = F.when(a.verification == name, F.lit(float(value))).otherwise(level)
    return level


def credit_program(a: AccountInputs) -> Column:
    return F.when(a.program.isin(*CREDIT_PROGRAMS), F.lit(1.0)).when(a.program.isNotNull(), F.lit(0.0))


def payment_shared_accounts(a: AccountInputs) -> Column:
    others = a.same_payment_accounts - F.when(a.existed_at_feature_date, F.lit(1)).otherwise(F.lit(0))
    return F.when(a.payment_fingerprint.isNull(), F.lit(0.0)).otherwise(F.coalesce(others, F.lit(0)).cast("double"))


SPARK_FEATURES: dict[str, Callable] = registry.implementations(globals())


# --- window statistics ----------------------------------------------------------------------------

def in_window(feature_date: dt.date, days: int) -> Column:
    """event_date in (feature_date - days, feature_date]."""
    return (F.col("event_date") > F.date_sub(F.lit(feature_date), days)) & (F.col("event_date") <= F.lit(feature_date))


def _window_aggregates(feature_date: dt.date, days: int) -> dict[str, Column]:
    """One aggregate per window stat over daily rows that carry `current_newest_model`/`_released_at`."""
    inside = in_window(feature_date, days)
    on_current_newest = inside & (F.col("newest_model") == F.col("current_newest_model"))

    def distinct_in_window(array_column: str) -> Column:
        union = F.array_distinct(F.flatten(F.collect_list(F.when(inside, F.col(array_column)))))
        return F.coalesce(F.size(union), F.lit(0))

    aggregates = {stat: F.sum(F.when(inside, F.coalesce(F.col(stat), F.lit(0))).otherwise(F.lit(0)))
                  for stat in SUMMED_STATS}
    aggregates.update(
        peak_rpm=F.coalesce(F.max(F.when(inside, F.col("peak_rpm"))), F.lit(0)),
        newest_model_requests=F.sum(
            F.when(on_current_newest, F.coalesce(F.col("newest_model_requests"), F.lit(0))).otherwise(F.lit(0))),
        newest_model_first_ts=F.min(F.when(on_current_newest, F.col("newest_model_first_ts"))),
        newest_model_majority_hour_ts=F.min(F.when(on_current_newest, F.col("newest_model_majority_hour_ts"))),
        newest_released_at=F.max("current_newest_released_at"),
        ip_prefix_count=distinct_in_window("ip_prefixes"),
        country_count=distinct_in_window("countries"),
    )
    if tuple(aggregates) != WINDOW_STATS:
        raise RuntimeError("window aggregates out of step with WINDOW_STATS")
    return aggregates


def _windowed_column(stat: str, days: int) -> str:
    return f"{stat}__{days}d"


def _all_window_stats(daily: DataFrame, model_releases: DataFrame, feature_date: dt.date,
                      windows: tuple[int, ...]) -> DataFrame:
    """account_id + `<stat>__<w>d` for every window, in one pass over the longest window's daily rows."""
    current_newest = newest_release(model_releases, day_end(feature_date)).select(
        F.col("newest_model").alias("current_newest_model"),
        F.col("newest_released_at").alias("current_newest_released_at"))
    rows = daily.where(in_window(feature_date, max(windows))).crossJoin(current_newest)
    aggregates = [aggregate.alias(_windowed_column(stat, days))
                  for days in windows for stat, aggregate in _window_aggregates(feature_date, days).items()]
    return rows.groupBy("account_id").agg(*aggregates)


def window_stats(daily: DataFrame, feature_date: dt.date, days: int, model_releases: DataFrame) -> DataFrame:
    """account_id + one column per WINDOW_STATS entry for the window (feature_date - days, feature_date],
    one row per account with a daily row in that window. `model_releases` fixes the newest model as of
    feature_date, which the model-pivot stats are about."""
    wide = _all_window_stats(daily, model_releases, feature_date, (days,))
    return wide.select("account_id", *(F.col(_windowed_column(stat, days)).alias(stat) for stat in WINDOW_STATS))


def account_inputs(accounts: DataFrame, feature_date: dt.date) -> DataFrame:
    """One row per account: registry attributes plus how many accounts existing at the end of
    feature_date share its payment fingerprint (itself included when it existed)."""
    end = day_end(feature_date)
    registry_rows = accounts.dropDuplicates(["account_id"]).select(
        "account_id", "created_at", "verification", "program", "payment_fingerprint",
        # an unknown creation time counts as existing: the registry has no evidence it did not
        F.coalesce(F.col("created_at") < end, F.lit(True)).alias("existed_at_feature_date"),
        end.alias("feature_day_end"))
    per_fingerprint = (registry_rows.where(F.col("existed_at_feature_date") & F.col("payment_fingerprint").isNotNull())
                       .groupBy("payment_fingerprint").agg(F.count(F.lit(1)).alias("same_payment_accounts")))
    return registry_rows.join(per_fingerprint, on="payment_fingerprint", how="left")


def account_features(daily: DataFrame, accounts: DataFrame, model_releases: DataFrame,
                     feature_date: dt.date) -> DataFrame:
    """`account_features` rows (catalog schema) for feature_date, from `account_daily` rows alone.

    `daily` may hold any days; only (feature_date - 28, feature_date] is read. Accounts missing from
    the registry keep null account-level features.
    """
    stats = _all_window_stats(daily, model_releases, feature_date, registry.WINDOWS)
    inputs = stats.join(account_inputs(accounts, feature_date), on="account_id", how="left")
    columns = []
    for feature in registry.FEATURES:
        compute = SPARK_FEATURES[feature.name]
        if feature.windowed:
            for days in registry.WINDOWS:
                w = WindowStats(days, lambda stat, days=days: _windowed_column(stat, days))
                columns.append(compute(w).cast("double").alias(f"{feature.name}_{days}d"))
        else:
            columns.append(compute(AccountInputs()).cast("double").alias(feature.name))
    features = inputs.select(
        "account_id",
        F.lit(feature_date).alias("feature_date"),
        *columns,
        F.lit(registry.feature_set_version()).alias("feature_set_version"),
    )
    return catalog.conform(features, "account_features")
