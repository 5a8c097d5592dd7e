"""Features on a frame engine: `account_daily` windows, the registry's declarations and the day's clusters become
`account_features`, bucket by bucket within the engine's memory budget.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from features import daily_stats, registry
from features.daily_stats import NEWEST_RELEASED_AT, WINDOW_DAYS, DailyStat
from features.expr import to_frame
from features.frame_common import (
    EPOCH,
    day_end_micros,
    micros_or_missing,
    newest_release,
    reference_frame,
)
from features.frame_daily import ACCOUNT
from features.frame_requests import smallest_per_key
from lake import catalog, delta_files, frame_engines
from lake.frame_engines import FrameEngine

log = logging.getLogger(__name__)

#
# The window's account_daily rows are read a few files at a time and split into account-hash buckets sized to the
# budget, like the aggregate's narrow rows: every window statistic is per account, so each bucket is rolled up on
# its own. Cluster features need every member of a cluster, whichever bucket it is in, so the buckets hand back
# only each account's recent request count (one row per account) and the cluster inputs are computed once, over
# the whole population, after the last bucket.

# A guess, not measured: an account_daily row (uncompressed Parquet) grows about this much in (GPU) memory while
# its bucket is rolled up (the rows, their codes, the flattened sets, one filtered copy per window).
WINDOW_WORKING_SET_FACTOR = 6
SET_STATS = tuple(s.name for s in daily_stats.DAILY_STATS if s.window == "distinct_count")
# what the cluster features read of account_clusters
CLUSTER_COLUMNS = ("account_id", "cluster_id", "link_types", "linked_accounts", "template_links")


def _day_number(day: dt.date) -> int:
    return (day - EPOCH).days


def window_frame(engine: FrameEngine, daily: pa.Table):
    """account_daily rows already in Arrow (tests, small inputs) in the form `FrameEngine.read_files` gives."""
    return engine.from_arrow(delta_files.dates_as_timestamps(daily, "event_date"))


def longest_window(engine: FrameEngine, rows, feature_date: dt.date):
    """Read account_daily rows -> those of the longest window (feature_date - 28, feature_date], with `event_day`
    (days since the epoch) in place of the date and timestamps as µs."""
    days = (rows["event_date"].astype("int64") // 86_400).astype("int32")
    last = _day_number(feature_date)
    inside = (days > last - max(registry.WINDOWS)) & (days <= last)
    rows = rows[inside].drop(columns=["event_date"]).reset_index(drop=True)
    rows["event_day"] = days[inside].reset_index(drop=True)
    for name in daily_stats.TIMESTAMP_STATS:
        rows[name] = micros_or_missing(engine, rows[name])
    return rows


def coded_window(engine: FrameEngine, rows):
    """One bucket's `longest_window` rows -> (those rows with account codes 0..n-1 in account order, the (code,
    event_day, item) rows of each set-valued statistic, the account ids in code order)."""
    codes, account_ids = engine.factorize(rows["account_id"])
    rows[ACCOUNT] = codes
    listed = {}
    for name in SET_STATS:
        items = rows[[ACCOUNT, "event_day", name]].explode(name)
        listed[name] = items[items[name].notna()].reset_index(drop=True)
    return rows.drop(columns=list(SET_STATS)), listed, account_ids


def window_stats(
    engine: FrameEngine, daily, listed: dict, feature_date: dt.date, days: int, newest_model: str | None, accounts: int
):
    """Every rolled-up window statistic for (feature_date - days, feature_date], one row per account code
    0..accounts-1. `daily` holds the longest window's account_daily rows with `event_day` (days since the epoch)
    and the code; `listed` the (code, event_day, item) rows of each set-valued statistic."""
    last = _day_number(feature_date)
    inside = daily[daily["event_day"] > last - days]
    current = inside[inside["newest_model"] == newest_model] if newest_model is not None else inside.iloc[0:0]
    by_rollup: dict[str, list[DailyStat]] = {}
    for stat in daily_stats.DAILY_STATS:
        by_rollup.setdefault(stat.window, []).append(stat)
    columns = {}
    # windows without activity count 0; a minimum over no day stays null
    for rollup, rows, func, fill in (
        ("sum", inside, "sum", 0),
        ("max", inside, "max", 0),
        ("sum_on_current_newest", current, "sum", 0),
        ("min_on_current_newest", current, "min", float("nan")),
    ):
        declared = by_rollup.get(rollup, [])
        if declared:
            rolled = rows.groupby(ACCOUNT, sort=False).agg({s.name: func for s in declared})
            for s in declared:
                columns[s.name] = engine.dense(rolled[s.name], accounts, fill)
    for stat in by_rollup.get("distinct_count", []):
        items = listed[stat.name]
        distinct = items[items["event_day"] > last - days][[ACCOUNT, stat.name]].drop_duplicates()
        columns[stat.rolled_up_name()] = engine.dense(distinct.groupby(ACCOUNT, sort=False).size(), accounts, 0)
    return engine.xp.DataFrame(columns)


def account_inputs(engine: FrameEngine, accounts, feature_date: dt.date):
    """One row per account: registry attributes (the smallest of each when the registry repeats an account, as
    on Spark) plus how many accounts existing at the end of feature_date share its payment fingerprint (itself
    included when it existed). `accounts` as `reference_frame` takes it; creation times come out in µs."""
    end = day_end_micros(feature_date)
    attributes = ["created_at", "verification", "program", "payment_fingerprint"]
    rows = smallest_per_key(
        reference_frame(engine, accounts, ["account_id", *attributes], ("created_at",)), "account_id", attributes
    )
    # an unknown creation time counts as existing: the registry has no evidence it did not
    rows["existed_at_feature_date"] = (rows["created_at"] < end) | rows["created_at"].isna()
    rows["feature_day_end"] = rows["created_at"].fillna(0) * 0 + float(end)
    existing = rows[rows["existed_at_feature_date"] & rows["payment_fingerprint"].notna()]
    per_fingerprint = (
        existing.groupby("payment_fingerprint", sort=False).size().reset_index(name="same_payment_accounts")
    )
    return rows.merge(per_fingerprint, on="payment_fingerprint", how="left")


def label_standing(engine: FrameEngine, labels, feature_date: dt.date):
    """account_id + its latest decision taken by the end of feature_date (ties on the time: the greatest label,
    as on Spark). `labels` as `reference_frame` takes it."""
    rows = reference_frame(engine, labels, ["account_id", "label", "decided_at"], ("decided_at",))
    rows = rows[rows["decided_at"] < day_end_micros(feature_date)]
    latest = rows.sort_values(["account_id", "decided_at", "label"]).drop_duplicates("account_id", keep="last")
    return latest[["account_id", "label"]].rename(columns={"label": "standing"})


def member_requests(engine: FrameEngine, rows, account_ids, feature_date: dt.date):
    """account_id + its requests over the last CLUSTER_VOLUME_DAYS, for one bucket's `coded_window` rows: what the
    cluster volume needs of each member."""
    last = _day_number(feature_date)
    recent = rows[(rows["event_day"] > last - registry.CLUSTER_VOLUME_DAYS) & (rows["event_day"] <= last)]
    totals = recent.groupby(ACCOUNT, sort=False)["requests"].sum()
    return engine.xp.DataFrame(
        {"account_id": account_ids, "member_requests": engine.dense(totals, len(account_ids), 0)}
    )


def cluster_inputs(engine: FrameEngine, clusters, registry_rows, volume, labels, feature_date: dt.date):
    """account_id + CLUSTER_INPUTS from one day's account_clusters rows (a frame) and what is known of each member.
    `registry_rows` is `account_inputs` (one row per account, creation time in µs); `volume` is `member_requests`
    over every account in the window (members without a row there had no requests)."""
    new_since = (feature_date - dt.timedelta(days=registry.NEW_ACCOUNT_DAYS - 1) - EPOCH).days * 86_400_000_000
    members = clusters[list(CLUSTER_COLUMNS)]
    kinds = ("payment", "ip_prefix", "template", "timing")  # the kinds of CLUSTER_INPUTS' cluster_<kind>_members
    links = members[["account_id", "link_types"]].explode("link_types")
    for kind in kinds:
        links[kind] = (links["link_types"] == kind).fillna(False).astype("int64")
    per_account = links.groupby("account_id", sort=False).agg({kind: "max" for kind in kinds}).reset_index()
    members = (
        members[["account_id", "cluster_id", "linked_accounts", "template_links"]]
        .merge(per_account, on="account_id", how="left")
        .merge(registry_rows[["account_id", "created_at"]], on="account_id", how="left")
        .merge(volume, on="account_id", how="left")
        .merge(label_standing(engine, labels, feature_date), on="account_id", how="left")
    )
    members["new"] = (members["created_at"] >= new_since).fillna(False).astype("int64")
    members["extraction"] = (members["standing"] == "extraction").fillna(False).astype("int64")
    members["member_requests"] = members["member_requests"].fillna(0)
    per_cluster = (
        members.groupby("cluster_id", sort=False)
        .agg(
            {
                "account_id": "count",
                **{kind: "sum" for kind in kinds},
                "new": "sum",
                "member_requests": "sum",
                "extraction": "sum",
            }
        )
        .reset_index()
        .rename(
            columns={
                "account_id": "cluster_size",
                **{kind: f"cluster_{kind}_members" for kind in kinds},
                "new": "cluster_new_members",
                "member_requests": "cluster_requests",
                "extraction": "cluster_extraction_labelled",
            }
        )
    )
    return members[["account_id", "cluster_id", "linked_accounts", "template_links"]].merge(
        per_cluster, on="cluster_id"
    )[["account_id", *registry.CLUSTER_INPUTS]]


def _compute(feature: registry.Feature, frame, days: int | None = None):
    def resolve(name: str):
        return float(days) if name == WINDOW_DAYS and days is not None else frame[name]

    return to_frame(feature.formula, resolve, frame[frame.columns[0]]).astype("float64")


def windowed_features(
    engine: FrameEngine,
    rows,
    listed: dict,
    account_ids,
    feature_date: dt.date,
    newest_model: str | None,
    newest_released_at: int | None,
) -> pa.Table:
    """account_id + every windowed feature of one bucket's accounts (Arrow, in code order)."""
    out = {"account_id": account_ids}
    for days in registry.WINDOWS:
        stats = window_stats(engine, rows, listed, feature_date, days, newest_model, len(account_ids))
        stats[NEWEST_RELEASED_AT] = float("nan") if newest_released_at is None else float(newest_released_at)
        for feature in registry.FEATURES:
            if feature.windowed:
                out[f"{feature.name}_{days}d"] = _compute(feature, stats, days)
    return engine.to_arrow(engine.xp.DataFrame(out))


def window_buckets(
    engine: FrameEngine,
    daily: pa.Table | delta_files.PartitionFiles,
    feature_date: dt.date,
    buckets: int | None = None,
    read_bytes: int | None = None,
) -> frame_engines.AccountBuckets:
    """The longest window's account_daily rows in account-hash buckets sized to the engine's budget, read from the
    table's files in budget-sized batches (or from rows already in Arrow). `buckets` and `read_bytes`
    (uncompressed Parquet per read) default to what the budget allows."""
    reads: list[Callable[[], Any]]  # each returns one read's rows as a frame of the engine's library
    if isinstance(daily, pa.Table):
        estimated, reads = daily.nbytes, [lambda: window_frame(engine, daily)]
    else:
        columns = catalog.table("account_daily").schema.names
        batches = delta_files.file_batches(daily, read_bytes or engine.memory_budget_bytes // WINDOW_WORKING_SET_FACTOR)
        estimated = daily.total_bytes
        reads = [partial(engine.read_files, batch, columns) for batch in batches]
    count = buckets or delta_files.bucket_count(estimated * WINDOW_WORKING_SET_FACTOR, engine.memory_budget_bytes)
    log.info("features %s: window of %d read(s), %d account bucket(s)", feature_date, len(reads), count)
    window = frame_engines.AccountBuckets(engine, count)
    for read in reads:
        window.add(longest_window(engine, read(), feature_date))
        engine.note_device_usage()
    return window


def _by_account(bucket_outputs: list[pa.Table]) -> pa.Table:
    """Buckets' outputs as one table in account order, which is the order one bucket gives."""
    table = pa.concat_tables(bucket_outputs)
    if len(bucket_outputs) == 1:
        return table
    return table.take(pc.sort_indices(table, [("account_id", "ascending")]))


def account_features(
    engine: FrameEngine,
    daily: pa.Table | delta_files.PartitionFiles,
    accounts,
    model_releases,
    clusters,
    labels,
    feature_date: dt.date,
    buckets: int | None = None,
    read_bytes: int | None = None,
) -> pa.Table:
    """`account_features` rows (Arrow, catalog schema) for feature_date from the account_daily window (its files,
    or rows in Arrow), the registry, releases and decisions (as `reference_frame` takes them: the jobs hand over
    their files) and the day's account_clusters (its files, a frame, or Arrow). Accounts are those with a
    daily row in the longest window, in account order. The window is rolled up bucket by bucket (`window_buckets`);
    within a bucket accounts are codes 0..n-1 and every per-account result is a dense array on those codes. The
    registry and cluster inputs, one row per account, are joined once over all buckets' accounts."""
    newest_model, newest_released_at = newest_release(engine, model_releases, day_end_micros(feature_date))
    window = window_buckets(engine, daily, feature_date, buckets, read_bytes)
    windowed, volume = [], []
    for bucket in range(window.count):
        rows = window.take(bucket)
        if rows is None or len(rows) == 0:
            continue
        rows, listed, account_ids = coded_window(engine, rows)
        windowed.append(
            windowed_features(engine, rows, listed, account_ids, feature_date, newest_model, newest_released_at)
        )
        volume.append(member_requests(engine, rows, account_ids, feature_date))
        del rows, listed
        engine.note_device_usage()
    decl = catalog.table("account_features").schema
    if not windowed:
        return decl.empty_table()
    windowed_table = _by_account(windowed)
    account_ids = engine.from_arrow(windowed_table.select(["account_id"]))["account_id"]
    n = len(account_ids)

    clusters = reference_frame(engine, clusters, list(CLUSTER_COLUMNS))
    registry_rows = account_inputs(engine, accounts, feature_date)
    per_account = (
        engine.xp.DataFrame({"account_id": account_ids, ACCOUNT: engine.array_module.arange(n)})
        .merge(registry_rows, on="account_id", how="left")
        .merge(
            cluster_inputs(engine, clusters, registry_rows, engine.concat(volume), labels, feature_date),
            on="account_id",
            how="left",
        )
        .sort_values(ACCOUNT)
        .reset_index(drop=True)
    )
    out = {"account_id": account_ids}
    for feature in registry.FEATURES:
        if not feature.windowed:
            out[feature.name] = _compute(feature, per_account)
    table = engine.to_arrow(engine.xp.DataFrame(out))
    for name in windowed_table.column_names[1:]:
        table = table.append_column(name, windowed_table.column(name))
    table = table.append_column("feature_date", pa.array([feature_date] * n, pa.date32()))
    table = table.append_column("feature_set_version", pa.array([registry.feature_set_version()] * n, pa.string()))
    return delta_files.nan_to_null(table.select(decl.names).cast(decl))
