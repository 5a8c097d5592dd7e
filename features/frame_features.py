"""Account features on a frame engine (cuDF / pandas): the sibling of features/spark_features.py.

One plain function per declared feature, named after it, with the same formula and the same conventions
(see spark_features.py): `w.requests` is the window's summed requests as a Series, `w.days` its length,
`a.created_at` an account input. Ratios with a zero denominator are null; windows without activity count 0.
Timestamps are float microseconds since the epoch here (lake/frames.timestamps_as_micros).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from features import registry
from features.frame_daily import day_end_micros, newest_release
from features.spark_features import (ACCOUNT_INPUTS, CAPABILITY_STATS, CREDIT_PROGRAMS, HOURS, SECONDS_PER_DAY,
                                     SECONDS_PER_HOUR, SUMMED_STATS, VERIFICATION_LEVELS, WINDOW_STATS)
from lake import catalog, frames
from lake.frames import FrameEngine


class WindowStats:
    """The aggregated statistics of one window, by stat name: `w.requests` -> a Series."""

    def __init__(self, stats, days: int) -> None:
        self._stats = stats
        self.days = days

    def __getattr__(self, stat: str):
        if stat not in WINDOW_STATS:
            raise AttributeError(f"no window statistic {stat!r}; known: {', '.join(WINDOW_STATS)}")
        return self._stats[stat]


class AccountInputs:
    def __init__(self, inputs) -> None:
        self._inputs = inputs

    def __getattr__(self, name: str):
        if name not in ACCOUNT_INPUTS:
            raise AttributeError(f"no account input {name!r}; known: {', '.join(ACCOUNT_INPUTS)}")
        return self._inputs[name]


def _ratio(numerator, denominator):
    """numerator / denominator, null where the denominator is 0 or null."""
    return numerator.astype("float64") / denominator.astype("float64").where(denominator > 0)


def _entropy_bits(counts: list):
    """Shannon entropy in bits, null when all counts are 0: log2(T) - sum(c * log2(c)) / T."""
    as_float = [c.astype("float64") for c in counts]
    total = sum(as_float[1:], as_float[0])
    weighted_logs = sum((c * np.log2(c.where(c > 0, 1.0)) for c in as_float[1:]),
                        as_float[0] * np.log2(as_float[0].where(as_float[0] > 0, 1.0)))
    entropy = (np.log2(total.where(total > 0)) - _ratio(weighted_logs, total)).clip(lower=0.0)
    return entropy.where(total > 0)


def _hours_between(start, end):
    return (end - start) / (1_000_000.0 * SECONDS_PER_HOUR)


# --- volume -------------------------------------------------------------------------------------------

def requests(w: WindowStats):
    return w.requests


def input_tokens(w: WindowStats):
    return w.input_tokens


def output_tokens(w: WindowStats):
    return w.output_tokens


def active_hours(w: WindowStats):
    return w.active_hours


# --- automation and timing ------------------------------------------------------------------------------

def interarrival_cv(w: WindowStats):
    mean = _ratio(w.gap_sum_s, w.gap_count)
    variance = _ratio(w.gap_sumsq_s, w.gap_count) - mean * mean
    return _ratio(np.sqrt(variance.clip(lower=0.0)), mean)


def hour_entropy(w: WindowStats):
    return _entropy_bits([getattr(w, hour) for hour in HOURS])


def coverage_24_7(w: WindowStats):
    return w.active_hours.astype("float64") / (24.0 * w.days)


def burstiness(w: WindowStats):
    return _ratio(w.peak_rpm, _ratio(w.requests, w.active_minutes))


def peak_rpm(w: WindowStats):
    return w.peak_rpm


def batch_share(w: WindowStats):
    return _ratio(w.batch_requests, w.requests)


def stream_share(w: WindowStats):
    return _ratio(w.stream_requests, w.requests)


# --- content --------------------------------------------------------------------------------------------

def cot_elicitation_rate(w: WindowStats):
    return _ratio(w.cot_requests, w.requests)


def rubric_grading_rate(w: WindowStats):
    return _ratio(w.rubric_requests, w.requests)


def template_reuse_rate(w: WindowStats):
    return _ratio(w.repeated_template_requests, w.requests)


def coding_share(w: WindowStats):
    return _ratio(w.coding_requests, w.requests)


def agentic_share(w: WindowStats):
    return _ratio(w.agentic_requests, w.requests)


def tool_use_share(w: WindowStats):
    return _ratio(w.tool_use_requests, w.requests)


def reasoning_share(w: WindowStats):
    return _ratio(w.reasoning_requests, w.requests)


def vision_share(w: WindowStats):
    return _ratio(w.vision_requests, w.requests)


def capability_entropy(w: WindowStats):
    return _entropy_bits([getattr(w, stat) for stat in CAPABILITY_STATS])


def output_input_ratio(w: WindowStats):
    return _ratio(w.output_tokens, w.input_tokens)


def max_tokens_saturation(w: WindowStats):
    return _ratio(w.max_tokens_stops, w.requests)


def non_english_share(w: WindowStats):
    return _ratio(w.non_english_requests, w.requests)


def system_prompt_reuse(w: WindowStats):
    return _ratio(w.top_system_prompt_requests, w.requests)


# --- model pivot ----------------------------------------------------------------------------------------

def newest_model_share(w: WindowStats):
    return _ratio(w.newest_model_requests, w.requests)


def hours_to_newest_model(w: WindowStats):
    return _hours_between(w.newest_released_at, w.newest_model_first_ts)


def hours_to_newest_majority(w: WindowStats):
    return _hours_between(w.newest_released_at, w.newest_model_majority_hour_ts)


# --- infrastructure -------------------------------------------------------------------------------------

def distinct_ip_prefixes(w: WindowStats):
    return w.ip_prefix_count


def hosting_proxy_share(w: WindowStats):
    return _ratio(w.hosting_proxy_requests, w.requests)


def distinct_countries(w: WindowStats):
    return w.country_count


def signup_country_mismatch(w: WindowStats):
    return _ratio(w.signup_mismatch_requests, w.requests)


def raw_http_share(w: WindowStats):
    return _ratio(w.raw_http_requests, w.requests)


# --- account and cluster (not windowed) -------------------------------------------------------------------

def account_age_days(a: AccountInputs):
    return (a.feature_day_end - a.created_at) / (1_000_000.0 * SECONDS_PER_DAY)


def verification_level(a: AccountInputs):
    return a.verification.map({name: float(level) for name, level in VERIFICATION_LEVELS.items()}).astype("float64")


def credit_program(a: AccountInputs):
    in_program = a.program.isin(list(CREDIT_PROGRAMS)).astype("float64")
    return in_program.where(a.program.notna())


def payment_shared_accounts(a: AccountInputs):
    others = a.same_payment_accounts.fillna(0) - a.existed_at_feature_date.astype("int64")
    return others.astype("float64").where(a.payment_fingerprint.notna(), 0.0)


FRAME_FEATURES: dict[str, Callable] = registry.implementations(globals())


# --- window statistics ------------------------------------------------------------------------------------

EPOCH = dt.date(1970, 1, 1)


def _day_number(day: dt.date) -> int:
    return (day - EPOCH).days


def _constant(like, value: float | None):
    """A float Series shaped like `like` holding `value` (null when None)."""
    zeros = like.astype("float64") * 0.0
    return zeros + value if value is not None else zeros.where(zeros > 0)


def _distinct_in_window(rows, list_column: str, name: str):
    """account_id + the number of distinct list elements over the window's rows."""
    exploded = rows[["account_id", list_column]].explode(list_column).dropna().drop_duplicates()
    return exploded.groupby("account_id", sort=False).size().reset_index(name=name)


def window_stats(daily, feature_date: dt.date, days: int, newest_model: str | None,
                 newest_released_at: float | None, accounts):
    """One row per account of `accounts` (a frame with account_id) with every WINDOW_STATS column for the window
    (feature_date - days, feature_date]. `daily` holds account_daily rows with `event_day` (days since epoch)."""
    last = _day_number(feature_date)
    inside = daily[(daily["event_day"] > last - days) & (daily["event_day"] <= last)]
    sums = inside.groupby("account_id", sort=False).agg(
        {**{stat: "sum" for stat in SUMMED_STATS}, "peak_rpm": "max"}).reset_index()
    # newest_model_* stats only count days whose newest model is the newest as of feature_date
    current = inside[inside["newest_model"] == newest_model] if newest_model is not None else inside.iloc[0:0]
    pivot = current.groupby("account_id", sort=False).agg(
        {"newest_model_requests": "sum", "newest_model_first_ts": "min",
         "newest_model_majority_hour_ts": "min"}).reset_index()
    stats = (accounts.merge(sums, on="account_id", how="left")
             .merge(pivot, on="account_id", how="left")
             .merge(_distinct_in_window(inside, "ip_prefixes", "ip_prefix_count"), on="account_id", how="left")
             .merge(_distinct_in_window(inside, "countries", "country_count"), on="account_id", how="left"))
    for stat in (*SUMMED_STATS, "peak_rpm", "newest_model_requests", "ip_prefix_count", "country_count"):
        stats[stat] = stats[stat].fillna(0)
    stats["newest_released_at"] = _constant(stats["requests"], newest_released_at)
    return stats


def account_inputs(engine: FrameEngine, accounts: pa.Table, feature_date: dt.date):
    """One row per account: registry attributes plus how many accounts existing at the end of feature_date
    share its payment fingerprint (itself included when it existed)."""
    end = day_end_micros(feature_date)
    table = frames.timestamps_as_micros(
        accounts.select(["account_id", "created_at", "verification", "program", "payment_fingerprint"]),
        ("created_at",))
    registry_rows = engine.from_arrow(table).drop_duplicates(subset=["account_id"])
    # an unknown creation time counts as existing: the registry has no evidence it did not
    registry_rows["existed_at_feature_date"] = ((registry_rows["created_at"] < end)
                                                | registry_rows["created_at"].isna())
    registry_rows["feature_day_end"] = _constant(registry_rows["existed_at_feature_date"], float(end))
    existing = registry_rows[registry_rows["existed_at_feature_date"] & registry_rows["payment_fingerprint"].notna()]
    per_fingerprint = (existing.groupby("payment_fingerprint", sort=False).size()
                       .reset_index(name="same_payment_accounts"))
    return registry_rows.merge(per_fingerprint, on="payment_fingerprint", how="left")


def _feature_columns(frame, compute: dict[str, Callable]):
    """account_id + one float column per entry of `compute` (column -> function of `frame`)."""
    out = frame[["account_id"]].copy()
    for column, fn in compute.items():
        out[column] = fn(frame).astype("float64")
    return out


def account_features(engine: FrameEngine, daily: pa.Table, accounts: pa.Table, model_releases: pa.Table,
                     feature_date: dt.date) -> pa.Table:
    """`account_features` rows (Arrow, catalog schema) for feature_date from account_daily rows alone.
    Accounts are those with a daily row in the longest window; accounts missing from the registry keep null
    account-level features."""
    newest_model, newest_released_at = newest_release(model_releases, day_end_micros(feature_date))
    daily = frames.timestamps_as_micros(daily, ("newest_model_first_ts", "newest_model_majority_hour_ts"))
    daily = daily.append_column("event_day", daily.column("event_date").cast(pa.int32())).drop(["event_date"])
    daily = engine.from_arrow(daily)
    last = _day_number(feature_date)
    in_longest = daily[(daily["event_day"] > last - max(registry.WINDOWS)) & (daily["event_day"] <= last)]
    account_ids = in_longest[["account_id"]].drop_duplicates()

    inputs = account_ids.merge(account_inputs(engine, accounts, feature_date), on="account_id", how="left")
    out = _feature_columns(inputs, {f.name: (lambda frame, f=f: FRAME_FEATURES[f.name](AccountInputs(frame)))
                                    for f in registry.FEATURES if not f.windowed})
    for days in registry.WINDOWS:
        stats = window_stats(in_longest, feature_date, days, newest_model, newest_released_at, account_ids)
        windowed = _feature_columns(stats, {
            f"{f.name}_{days}d": (lambda frame, f=f, days=days: FRAME_FEATURES[f.name](WindowStats(frame, days)))
            for f in registry.FEATURES if f.windowed})
        out = out.merge(windowed, on="account_id", how="left")
    table = engine.to_arrow(out.sort_values("account_id"))
    n = table.num_rows
    table = table.append_column("feature_date", pa.array([feature_date] * n, pa.date32()))
    table = table.append_column("feature_set_version", pa.array([registry.feature_set_version()] * n, pa.string()))
    decl = catalog.table("account_features").schema
    return frames.nan_to_null(table.select(decl.names).cast(decl))
