"""Every daily statistic of `account_daily`, declared once: its name, type, the per-request value it aggregates,
how one day's requests become one value, and how the 1/7/28-day windows roll daily values up.

Engines compile these declarations (features/spark_engine.py, features/frame_*.py); the `account_daily`
schema is built from them (features/registry.py). A daily statistic reads only bronze columns, including the
per-request signal columns that ingest computed (features/signals.py), never prompt text.

Every statistic is a count, an integer sum, a max, a min timestamp or a small sorted set, so windows are sums,
maxes and unions of daily rows and the nightly job never rereads older days. Statistics that are not additive
across days (distinct hours, per-minute peaks, template repeats, the top system prompt) are fixed per day; the
window roll-up says how they combine. Gaps between requests are whole milliseconds, so their sums are exact
integers and a rerun gives bit-identical features whatever order an engine adds them in.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from features.expr import Expr, col, epoch_micros, fill_null, lit, when
from features.signals import CAPABILITIES

TS = pa.timestamp("us", tz="UTC")
MICROS_PER_MINUTE = 60_000_000
MICROS_PER_HOUR = 3_600_000_000
HOSTING_PROXY_CATEGORIES = ("hosting", "proxy")
BATCH_ENDPOINT = "batch"
MAX_TOKENS_STOP = "max_tokens"

# Bronze columns the daily aggregate reads. Gaps depend only on each account's sorted timestamps, so equal
# timestamps need no tie-break and request_id is not read.
BRONZE_INPUTS = (
    "account_id",
    "event_ts",
    "input_tokens",
    "output_tokens",
    "endpoint",
    "stream",
    "stop_reason",
    "system_prompt_hash",
    "ip_prefix_hash",
    "country",
    "asn",
    "model",
    "is_cot_elicitation",
    "is_rubric_grading",
    "capability",
    "is_non_english",
    "prompt_fingerprint",
    "is_raw_http_client",
)
# Reference values joined to each request: the ASN's category, the account's signup country, and the day's
# newest released model (one value for the whole day).
REFERENCE_INPUTS = ("asn_category", "signup_country", "newest_model")

# Per-request columns derived from the inputs, in dependency order. `gap_ms` (milliseconds since the account's
# previous request that day, null for its first) needs an ordered window, which each engine provides.
REQUEST_COLUMNS: dict[str, Expr] = {
    "event_us": epoch_micros(col("event_ts")),
    "minute_start": Expr("floordiv", (col("event_us"), lit(MICROS_PER_MINUTE))),
    "hour_start": Expr("floordiv", (col("event_us"), lit(MICROS_PER_HOUR))) * MICROS_PER_HOUR,  # µs, like event_us
    "hour_of_day": Expr("mod", (Expr("floordiv", (col("event_us"), lit(MICROS_PER_HOUR))), lit(24))),
    "is_newest_model": fill_null(col("model").eq(col("newest_model")), False),
    # mixed traffic: a request asking for the model's reasoning or using it as a grader is extraction-like on its
    # own, so an account forwarding such traffic stands out by its count even when most of its traffic is benign
    "is_extraction_like": fill_null(col("is_cot_elicitation"), False) | fill_null(col("is_rubric_grading"), False),
}
GAP_COLUMN = "gap_ms"


@dataclass(frozen=True)
class Agg:
    """How one account's requests of one day become a value.

    kind            value
    count           number of requests
    sum             sum of `value` (null counts as 0)
    count_distinct  distinct non-null `value`s
    repeats         non-null `value`s minus distinct ones (requests repeating an earlier value)
    min_where       min of `value` over requests where `where` holds (null when none)
    sorted_set      the sorted distinct non-null `value`s
    peak_group      the most requests sharing one non-null `value` (0 when none)
    first_majority  the smallest `value` (a group key) whose group has `where` true for more than half its
                    requests (null when none)
    day_constant    the reference value `value` names, the same for every account that day
    """

    kind: str
    value: Expr | None = None
    where: Expr | None = None


def count() -> Agg:
    return Agg("count")


def total(value: Expr) -> Agg:
    return Agg("sum", value)


def count_if(condition: Expr) -> Agg:
    return Agg("sum", when(condition, 1, 0))


ROLLUPS = ("sum", "max", "sum_on_current_newest", "min_on_current_newest", "distinct_count", "none")


@dataclass(frozen=True)
class DailyStat:
    """One `account_daily` column. `window` says how a window of daily values rolls up:
    sum / max; sum_on_current_newest and min_on_current_newest only use days whose newest model is the newest as
    of the feature date (on earlier days the value describes an older model); distinct_count is the size of the
    union of daily sets, named `window_name`; none means the column is not rolled up on its own."""

    name: str
    dtype: pa.DataType
    daily: Agg
    window: str = "sum"
    window_name: str | None = None

    def __post_init__(self) -> None:
        if self.window not in ROLLUPS:
            raise ValueError(f"daily stat {self.name}: unknown window roll-up {self.window!r}")

    @property
    def window_stat(self) -> str | None:
        return None if self.window == "none" else (self.window_name or self.name)

    def rolled_up_name(self) -> str:
        """window_stat, for a statistic the caller knows rolls up on its own (window other than "none")."""
        if self.window_stat is None:
            raise ValueError(f"daily stat {self.name} is not rolled up over windows")
        return self.window_stat

    def value_expr(self) -> Expr:
        """daily.value, for the aggregation kinds that need one (all but count)."""
        if self.daily.value is None:
            raise ValueError(f"daily stat {self.name}: aggregation {self.daily.kind!r} needs a value")
        return self.daily.value

    def where_expr(self) -> Expr:
        """daily.where, for the aggregation kinds that need one (min_where, first_majority)."""
        if self.daily.where is None:
            raise ValueError(f"daily stat {self.name}: aggregation {self.daily.kind!r} needs a where")
        return self.daily.where


def _flag(name: str, condition: Expr) -> DailyStat:
    return DailyStat(name, pa.int64(), count_if(condition))


DAILY_STATS: tuple[DailyStat, ...] = (
    DailyStat("requests", pa.int64(), count()),
    DailyStat("input_tokens", pa.int64(), total(col("input_tokens"))),
    DailyStat("output_tokens", pa.int64(), total(col("output_tokens"))),
    # distinct hours per day summed over a window is exactly the window's distinct clock hours
    DailyStat("active_hours", pa.int32(), Agg("count_distinct", col("hour_of_day"))),
    *(DailyStat(f"hour_{h:02d}", pa.int32(), count_if(col("hour_of_day").eq(h))) for h in range(24)),
    # gaps lie within one day: the first request of a day starts no gap
    DailyStat("gap_count", pa.int64(), Agg("sum", when(col(GAP_COLUMN).not_null(), 1, 0))),
    DailyStat("gap_sum_ms", pa.int64(), total(col(GAP_COLUMN))),
    # sum of squares <= (sum of gaps)^2 <= (one day in ms)^2 = 7.5e15: exact in int64, 28 days included
    DailyStat("gap_sumsq_ms2", pa.int64(), total(col(GAP_COLUMN) * col(GAP_COLUMN))),
    DailyStat("active_minutes", pa.int32(), Agg("count_distinct", col("minute_start"))),
    DailyStat("peak_rpm", pa.int32(), Agg("peak_group", col("minute_start")), window="max"),
    _flag("batch_requests", col("endpoint").eq(BATCH_ENDPOINT)),
    _flag("stream_requests", col("stream")),
    _flag("cot_requests", col("is_cot_elicitation")),
    _flag("rubric_requests", col("is_rubric_grading")),
    _flag("extraction_like_requests", col("is_extraction_like")),
    # requests without prompt text have no fingerprint and never count as repeats
    DailyStat("repeated_template_requests", pa.int64(), Agg("repeats", col("prompt_fingerprint"))),
    *(_flag(f"{c}_requests", col("capability").eq(c)) for c in CAPABILITIES),
    _flag("max_tokens_stops", col("stop_reason").eq(MAX_TOKENS_STOP)),
    _flag("non_english_requests", col("is_non_english")),
    DailyStat("top_system_prompt_requests", pa.int64(), Agg("peak_group", col("system_prompt_hash"))),
    DailyStat("newest_model", pa.string(), Agg("day_constant", col("newest_model")), window="none"),
    DailyStat("newest_model_requests", pa.int64(), count_if(col("is_newest_model")), window="sum_on_current_newest"),
    DailyStat(
        "newest_model_first_ts",
        TS,
        Agg("min_where", col("event_us"), col("is_newest_model")),
        window="min_on_current_newest",
    ),
    DailyStat(
        "newest_model_majority_hour_ts",
        TS,
        Agg("first_majority", col("hour_start"), col("is_newest_model")),
        window="min_on_current_newest",
    ),
    DailyStat(
        "ip_prefixes",
        pa.list_(pa.string()),
        Agg("sorted_set", col("ip_prefix_hash")),
        window="distinct_count",
        window_name="ip_prefix_count",
    ),
    DailyStat(
        "countries",
        pa.list_(pa.string()),
        Agg("sorted_set", col("country")),
        window="distinct_count",
        window_name="country_count",
    ),
    _flag("hosting_proxy_requests", col("asn_category").isin(*HOSTING_PROXY_CATEGORIES)),
    _flag(
        "signup_mismatch_requests",
        col("country").not_null() & col("signup_country").not_null() & col("country").ne(col("signup_country")),
    ),
    _flag("raw_http_requests", col("is_raw_http_client")),
)
DAILY_STATS_BY_NAME = {s.name: s for s in DAILY_STATS}
if len(DAILY_STATS_BY_NAME) != len(DAILY_STATS):
    raise RuntimeError("duplicate daily statistic names")

# Window statistics: the rolled-up daily stats plus the release time of the newest model as of the feature
# date, which the model-pivot features measure from. Timestamps are epoch microseconds on every engine.
NEWEST_RELEASED_AT = "newest_released_at"
WINDOW_STATS: tuple[str, ...] = (*(s.window_stat for s in DAILY_STATS if s.window_stat), NEWEST_RELEASED_AT)
# Each window also knows its own length in days, for features such as 24/7 coverage.
WINDOW_DAYS = "window_days"
TIMESTAMP_STATS = tuple(s.name for s in DAILY_STATS if s.dtype == TS)


def daily_fields() -> tuple[tuple[str, pa.DataType], ...]:
    return tuple((s.name, s.dtype) for s in DAILY_STATS)
