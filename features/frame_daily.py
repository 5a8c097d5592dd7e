"""One day of bronze requests -> `account_daily` on a frame engine (cuDF / pandas): the sibling of
features/spark_daily.py, with the same statistics and the same definitions (see that module's docstring).

Two phases keep (GPU) memory under the engine's budget for any number of records:
  1. the day's Parquet files are read a few at a time and reduced, row by row, to compact per-request rows
     (account, timestamp in microseconds, token counts, 0/1 flags, a 64-bit prompt fingerprint); this step is
     per row, so any chunking gives the same answer;
  2. the compact rows are split into account-hash buckets sized to the budget (moved to host memory when
     there is more than one) and each bucket is aggregated on its own: every account's rows land in exactly
     one bucket, so per-account statistics are exact.
"""

from __future__ import annotations

import datetime as dt
import logging

import pyarrow as pa
import pyarrow.compute as pc

from features.frame_signals import CAPABILITY_CODES, request_signals
from features.request_signals import CAPABILITIES
from features.spark_daily import BATCH_ENDPOINT, HOSTING_PROXY_CATEGORIES, MAX_TOKENS_STOP
from lake import catalog, frames
from lake.frames import FrameEngine

log = logging.getLogger(__name__)

MICROS_PER_MINUTE = 60_000_000
MICROS_PER_HOUR = 3_600_000_000
HOURS = tuple(f"hour_{h:02d}" for h in range(24))

REQUEST_COLUMNS = ["account_id", "event_ts", "input_tokens", "output_tokens", "endpoint", "stream", "stop_reason",
                   "system_prompt_hash", "ip_prefix_hash", "country", "asn", "model", "tool_count", "has_image",
                   "prompt_prefix", "user_agent"]
# Sizing: raw rows expand about this much in (GPU) memory while signals are computed (lower-cased prompt,
# regex scratch), and compact rows about this much while they are grouped. Measured on the simulator's data
# with cuDF; generous on purpose, since running out of the budget fails the night.
RAW_WORKING_SET_FACTOR = 4
COMPACT_BYTES_PER_ROW = 160
COMPACT_WORKING_SET_FACTOR = 4

# per-request 0/1 flags summed per account, by the account_daily column they become
FLAG_SUMS = (
    "batch_requests", "stream_requests", "cot_requests", "rubric_requests",
    *(f"{c}_requests" for c in CAPABILITIES),
    "max_tokens_stops", "non_english_requests", "newest_model_requests", "hosting_proxy_requests",
    "signup_mismatch_requests", "raw_http_requests", *HOURS,
)
TIMESTAMP_OUTPUTS = ("newest_model_first_ts", "newest_model_majority_hour_ts")


# --- reference data (small; on the host) -------------------------------------------------------------

def newest_release(model_releases: pa.Table, released_before_micros: int) -> tuple[str | None, int | None]:
    """(model, released_at in µs) of the latest release strictly before the bound; ties on the time go to
    the greatest model name (spark_daily.newest_release)."""
    releases = frames.timestamps_as_micros(model_releases.select(["model", "released_at"]), ("released_at",))
    rows = [(r["released_at"], r["model"]) for r in releases.to_pylist()
            if r["released_at"] is not None and r["released_at"] < released_before_micros]
    if not rows:
        return None, None
    released_at, model = max(rows)
    return model, int(released_at)


def day_end_micros(day: dt.date) -> int:
    return int(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc).timestamp()) \
        * 1_000_000


def reference_frames(engine: FrameEngine, accounts: pa.Table, asn_info: pa.Table):
    """(asn -> asn_category, account_id -> signup_country), one row per key; min() keeps a duplicated registry
    row from double counting, as on Spark."""
    asn = asn_info.group_by("asn").aggregate([("category", "min")]).rename_columns(["asn", "asn_category"])
    signup = (accounts.group_by("account_id").aggregate([("signup_country", "min")])
              .rename_columns(["account_id", "signup_country"]))
    return engine.from_arrow(asn), engine.from_arrow(signup)


# --- phase 1: raw requests -> compact rows --------------------------------------------------------------

def compact_rows(engine: FrameEngine, requests, asn_category, signup_country, newest_model: str | None):
    """Raw request columns (event_ts as integer microseconds) -> one compact row per request."""
    requests = requests.reset_index(drop=True)
    signals = request_signals(engine, requests)
    rows = requests[["account_id", "event_ts", "ip_prefix_hash", "country", "asn", "system_prompt_hash"]].copy()
    rows = rows.rename(columns={"event_ts": "event_us"})
    rows["input_tokens"] = requests["input_tokens"].fillna(0).astype("int64")
    rows["output_tokens"] = requests["output_tokens"].fillna(0).astype("int64")

    def flag(condition):
        return condition.fillna(False).astype("int8")

    rows["batch_requests"] = flag(requests["endpoint"] == BATCH_ENDPOINT)
    rows["stream_requests"] = flag(requests["stream"])
    rows["cot_requests"] = flag(signals["is_cot_elicitation"])
    rows["rubric_requests"] = flag(signals["is_rubric_grading"])
    for name, code in CAPABILITY_CODES.items():
        rows[f"{name}_requests"] = flag(signals["capability_code"] == code)
    rows["max_tokens_stops"] = flag(requests["stop_reason"] == MAX_TOKENS_STOP)
    rows["non_english_requests"] = flag(signals["is_non_english"])
    rows["raw_http_requests"] = flag(signals["is_raw_http_client"])
    rows["newest_model_requests"] = flag(requests["model"].isin([newest_model] if newest_model else []))
    rows["prompt_fingerprint"] = signals["prompt_fingerprint"]
    hour = (rows["event_us"] // MICROS_PER_HOUR) % 24
    for h, column in enumerate(HOURS):
        rows[column] = flag(hour == h)
    rows["hour"] = hour.astype("int8")

    rows = rows.merge(asn_category, on="asn", how="left").merge(signup_country, on="account_id", how="left")
    rows["hosting_proxy_requests"] = flag(rows["asn_category"].isin(list(HOSTING_PROXY_CATEGORIES)))
    rows["signup_mismatch_requests"] = flag(rows["country"].notna() & rows["signup_country"].notna()
                                            & (rows["country"] != rows["signup_country"]))
    # a system prompt only matters through which requests share it: a hash is enough
    rows["system_prompt_key"] = engine.hash64(rows["system_prompt_hash"]).where(rows["system_prompt_hash"].notna())
    return rows.drop(columns=["asn", "asn_category", "signup_country", "system_prompt_hash"])


# --- phase 2: compact rows -> account_daily -------------------------------------------------------------

def _gap_stats(engine: FrameEngine, rows):
    """gap_count / gap_sum_s / gap_sumsq_s: gaps between consecutive requests of an account that day. The
    gaps only depend on the sorted timestamps, so ties need no tie-break."""
    ordered = rows[["account_id", "event_us"]].sort_values(["account_id", "event_us"]).reset_index(drop=True)
    same_account = ordered["account_id"] == ordered["account_id"].shift(1)
    gap_s = (ordered["event_us"] - ordered["event_us"].shift(1)).astype("float64") / 1_000_000.0
    ordered["gap_s"] = gap_s.where(same_account)
    ordered["gap_sq"] = ordered["gap_s"] * ordered["gap_s"]
    stats = ordered.groupby("account_id", sort=False).agg(
        {"gap_s": ["count", "sum"], "gap_sq": "sum"})
    stats.columns = ["gap_count", "gap_sum_s", "gap_sumsq_s"]
    return stats.reset_index()


def _minute_stats(rows):
    per_minute = (rows.assign(minute=rows["event_us"] // MICROS_PER_MINUTE)
                  .groupby(["account_id", "minute"], sort=False).size().reset_index(name="n"))
    stats = per_minute.groupby("account_id", sort=False).agg({"n": ["count", "max"]})
    stats.columns = ["active_minutes", "peak_rpm"]
    return stats.reset_index()


def _top_system_prompt(rows):
    with_prompt = rows[rows["system_prompt_key"].notna()]
    per_prompt = (with_prompt.groupby(["account_id", "system_prompt_key"], sort=False).size()
                  .reset_index(name="n"))
    return (per_prompt.groupby("account_id", sort=False).agg({"n": "max"}).reset_index()
            .rename(columns={"n": "top_system_prompt_requests"}))


def _newest_model_timing(rows):
    """newest_model_first_ts and newest_model_majority_hour_ts (µs): the first request on the newest model,
    and the start of the first clock hour in which it served most of the account's requests."""
    newest = rows[rows["newest_model_requests"] == 1]
    first = (newest.groupby("account_id", sort=False).agg({"event_us": "min"}).reset_index()
             .rename(columns={"event_us": "newest_model_first_ts"}))
    per_hour = (rows.assign(hour_start=(rows["event_us"] // MICROS_PER_HOUR) * MICROS_PER_HOUR)
                .groupby(["account_id", "hour_start"], sort=False)
                .agg({"event_us": "count", "newest_model_requests": "sum"}).reset_index())
    majority = per_hour[per_hour["newest_model_requests"] * 2 > per_hour["event_us"]]
    first_majority = (majority.groupby("account_id", sort=False).agg({"hour_start": "min"}).reset_index()
                      .rename(columns={"hour_start": "newest_model_majority_hour_ts"}))
    return first, first_majority


def account_daily_rows(engine: FrameEngine, rows, event_date: dt.date, newest_model: str | None):
    """Compact rows of one day (every request of each account present) -> account_daily rows as Arrow."""
    sums = {"input_tokens": "sum", "output_tokens": "sum", **{flag: "sum" for flag in FLAG_SUMS}}
    totals = rows.groupby("account_id", sort=False).agg(
        {**sums, "event_us": "count", "hour": "nunique", "prompt_fingerprint": ["count", "nunique"]})
    totals.columns = [*sums, "requests", "active_hours", "fingerprints", "distinct_fingerprints"]
    totals = totals.reset_index()
    totals["repeated_template_requests"] = totals["fingerprints"] - totals["distinct_fingerprints"]
    totals = totals.drop(columns=["fingerprints", "distinct_fingerprints"])

    first, first_majority = _newest_model_timing(rows)
    daily = (totals.merge(_gap_stats(engine, rows), on="account_id", how="left")
             .merge(_minute_stats(rows), on="account_id", how="left")
             .merge(_top_system_prompt(rows), on="account_id", how="left")
             .merge(first, on="account_id", how="left")
             .merge(first_majority, on="account_id", how="left")
             .merge(engine.sorted_sets(rows, "account_id", "ip_prefix_hash")
                    .rename(columns={"ip_prefix_hash": "ip_prefixes"}), on="account_id", how="left")
             .merge(engine.sorted_sets(rows, "account_id", "country")
                    .rename(columns={"country": "countries"}), on="account_id", how="left"))
    # cuDF sums a group of only nulls to null where Spark's coalesce(sum, 0) says 0
    for column in ("top_system_prompt_requests", "gap_sum_s", "gap_sumsq_s"):
        daily[column] = daily[column].fillna(0)
    table = engine.to_arrow(daily)
    return _finish(table, event_date, newest_model)


def _finish(table: pa.Table, event_date: dt.date, newest_model: str | None) -> pa.Table:
    """Constant columns, empty lists for accounts without an IP/country, microseconds -> timestamps."""
    n = table.num_rows
    table = table.append_column("newest_model", pa.array([newest_model] * n, pa.string()))
    table = table.append_column("event_date", pa.array([event_date] * n, pa.date32()))
    for name in ("ip_prefixes", "countries"):
        column = table.column(name)
        index = table.schema.get_field_index(name)
        empty = pa.scalar([], type=pa.list_(pa.string()))
        table = table.set_column(index, name, pc.fill_null(column.cast(pa.list_(pa.string())), empty))
    table = frames.micros_as_timestamps(table, TIMESTAMP_OUTPUTS)
    decl = catalog.table("account_daily").schema
    return table.select(decl.names).cast(decl)


def daily_aggregate(engine: FrameEngine, requests, accounts: pa.Table, model_releases: pa.Table,
                    asn_info: pa.Table, event_date: dt.date) -> pa.Table:
    """One frame of the day's requests (event_ts in µs) -> account_daily rows (Arrow, catalog schema).
    The in-memory form of what `aggregate_partition` does bucket by bucket."""
    newest_model, _ = newest_release(model_releases, day_end_micros(event_date))
    asn_category, signup_country = reference_frames(engine, accounts, asn_info)
    rows = compact_rows(engine, requests, asn_category, signup_country, newest_model)
    return account_daily_rows(engine, rows, event_date, newest_model)


def aggregate_partition(engine: FrameEngine, files: frames.PartitionFiles, accounts: pa.Table,
                        model_releases: pa.Table, asn_info: pa.Table, event_date: dt.date,
                        read_bytes: int | None = None, buckets: int | None = None) -> pa.Table:
    """The day's bronze Parquet files -> account_daily rows, within the engine's memory budget.
    `read_bytes` (uncompressed Parquet per read) and `buckets` default to what the budget allows."""
    newest_model, _ = newest_release(model_releases, day_end_micros(event_date))
    asn_category, signup_country = reference_frames(engine, accounts, asn_info)
    read_batches = frames.file_batches(files, read_bytes or engine.memory_budget_bytes // RAW_WORKING_SET_FACTOR)
    buckets = buckets or frames.bucket_count(files.rows * COMPACT_BYTES_PER_ROW * COMPACT_WORKING_SET_FACTOR,
                                             engine.memory_budget_bytes)
    log.info("aggregate %s: %d rows in %d file reads, %d account bucket(s)", event_date, files.rows,
             len(read_batches), buckets)
    pieces: list[list] = [[] for _ in range(buckets)]
    for paths in read_batches:
        raw = engine.read_parquet(paths, REQUEST_COLUMNS)
        raw["event_ts"] = epoch_micros(engine, raw["event_ts"])
        rows = compact_rows(engine, raw, asn_category, signup_country, newest_model)
        del raw
        engine.note_device_usage()
        if buckets == 1:
            pieces[0].append(rows)
            continue
        bucket = engine.hash64(rows["account_id"]) % buckets
        for b in range(buckets):  # spill to host memory: only one bucket is on the device at a time
            pieces[b].append(engine.to_arrow(rows[bucket == b]))
        del rows
    outputs = []
    for bucket_pieces in pieces:
        if not bucket_pieces:
            continue
        rows = (engine.concat(bucket_pieces) if buckets == 1
                else engine.from_arrow(pa.concat_tables(bucket_pieces)))
        bucket_pieces.clear()
        outputs.append(account_daily_rows(engine, rows, event_date, newest_model))
        del rows
        engine.note_device_usage()
    return pa.concat_tables(outputs) if outputs else catalog.table("account_daily").schema.empty_table()


def epoch_micros(engine: FrameEngine, timestamps):
    """A timestamp column as int64 microseconds since the epoch, whatever unit/zone the reader gave it."""
    if engine.on_gpu:
        return timestamps.astype("datetime64[us]").astype("int64")
    if getattr(timestamps.dt, "tz", None) is not None:
        timestamps = timestamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return timestamps.astype("datetime64[us]").astype("int64")
