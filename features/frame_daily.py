"""Aggregation, phase 2 on a frame engine: narrow rows of whole accounts become `account_daily`, and the day's
driver that runs both phases within the engine's memory budget.

The narrow rows are split into account-hash buckets sized to the budget (moved to host memory when there is more
than one) and each bucket is aggregated on its own: every account's rows land in exactly one bucket.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pyarrow as pa

from features import daily_stats
from features.daily_stats import GAP_COLUMN
from features.frame_common import (
    day_end_micros,
    epoch_micros,
    evaluate,
    newest_release,
    reads_gap,
    value_column,
    where_column,
)
from features.frame_requests import equality_tally, narrow_rows, reference_frames, tally_column
from lake import catalog, delta_files, frame_engines
from lake.frame_engines import FrameEngine

log = logging.getLogger(__name__)

# Bucket sizing: a bronze row expands about this much in (GPU) memory while its values are computed, and a
# narrow row about this much while it is grouped. Generous on purpose: running out of the budget fails the night.
RAW_WORKING_SET_FACTOR = 4
NARROW_BYTES_PER_ROW = 400
NARROW_WORKING_SET_FACTOR = 4

#
# Accounts become int32 codes 0..n-1 (sorted by account id) once per bucket. Every statistic that is a sum, a
# count or a minimum comes from one groupby over the codes; the kinds that group by a second key (distinct
# values, peaks, majorities, sets, equality counts) from one groupby each over (code, key). Each result lands in
# a dense array indexed by code, so nothing is merged or reindexed back into place.

ACCOUNT = "_a"


# Accounts and microseconds within the day packed into one int64 sort key while both fit: one argsort of
# one column instead of a two-column sort.
DAY_MICROS_BITS = 37  # 2**37 µs > 38 hours


def _with_gaps(engine: FrameEngine, rows):
    """Milliseconds since the account's previous request that day (null for its first). Only the keys are
    sorted, as arrays, and the gaps scattered back by row position: sorting every column cost more than all
    the aggregations together. Gaps depend only on the sorted timestamps, so equal ones need no tie-break."""
    xp = engine.array_module
    account, micros = engine.values(rows[ACCOUNT]).astype("int64"), engine.values(rows["event_us"])
    since_start = micros - micros.min()
    if len(rows) and int(account.max()) < 2 ** (63 - DAY_MICROS_BITS) and int(since_start.max()) < 2**DAY_MICROS_BITS:
        order = xp.argsort((account << DAY_MICROS_BITS) | since_start)
    else:
        order = xp.lexsort(xp.stack([micros, account]))
    account, micros = account[order], micros[order]
    gaps = xp.full(len(rows), xp.nan)
    gaps[order[1:]] = xp.where(account[1:] == account[:-1], (micros[1:] - micros[:-1]) // 1000, xp.nan)
    rows[GAP_COLUMN] = gaps
    for stat in daily_stats.DAILY_STATS:
        if reads_gap(stat.daily.value):
            rows[value_column(stat)] = evaluate(stat.value_expr(), rows)
    return rows


def _per_key(rows, key: str):
    """(code, key value) -> requests, for the rows with a non-null key."""
    return rows[rows[key].notna()].groupby([ACCOUNT, key], sort=False).size().reset_index(name="_n")


def _sorted_sets(engine: FrameEngine, rows, value: str, accounts: int) -> pa.Array:
    """The sorted distinct non-null values of each code as an Arrow list array (empty for codes without any),
    built from the sorted pairs' offsets: no Python per account."""
    import numpy as np

    pairs = rows[rows[value].notna()][[ACCOUNT, value]].drop_duplicates().sort_values([ACCOUNT, value])
    table = engine.to_arrow(pairs)
    counts = np.bincount(table.column(ACCOUNT).to_numpy(), minlength=accounts)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), table.column(value).combine_chunks())


def account_daily_rows(engine: FrameEngine, rows, event_date: dt.date, newest_model: str | None) -> pa.Table:
    """Narrow rows of one day (every request of each account present) -> account_daily rows as Arrow."""
    codes, account_ids = engine.factorize(rows["account_id"])
    rows = rows.drop(columns=["account_id"]).reset_index(drop=True)
    rows[ACCOUNT] = codes.reset_index(drop=True)
    n = len(account_ids)
    rows = _with_gaps(engine, rows)

    main: dict[str, str] = {}
    for stat in daily_stats.DAILY_STATS:
        kind, value = stat.daily.kind, value_column(stat)
        if kind == "sum" and equality_tally(stat) is None:
            main[value] = "sum"
        elif kind == "repeats":
            main[value] = "count"  # non-null values; the distinct ones are subtracted below
        elif kind == "min_where":
            rows[value] = rows[value].where(rows[where_column(stat)])
            main[value] = "min"
    by_account = rows.groupby(ACCOUNT, sort=True)  # every code has a row, so the result is codes 0..n-1
    totals = by_account.agg(main).reset_index(drop=True)  # Series with a RangeIndex line up with the arrays
    columns = {"account_id": account_ids, "__requests": by_account.size().reset_index(drop=True)}
    tallies: dict[str, Any] = {}  # column -> per-key request counts (a frame of the engine's library)
    lists: dict[str, pa.Array] = {}
    for stat in daily_stats.DAILY_STATS:
        kind, value = stat.daily.kind, value_column(stat)
        tally = equality_tally(stat)
        if kind == "count":
            columns[stat.name] = columns["__requests"]
        elif tally is not None:
            column, constant = tally
            if column not in tallies:
                tallies[column] = _per_key(rows, tally_column(column))
            counts = tallies[column]
            matching = counts[counts[tally_column(column)] == constant]
            columns[stat.name] = engine.dense(matching.set_index(ACCOUNT)["_n"], n, 0)
        elif kind == "sum":  # a group of only nulls sums to 0, as coalesce does on Spark
            columns[stat.name] = totals[value].fillna(0)
        elif kind == "min_where":
            columns[stat.name] = totals[value]
        elif kind in ("count_distinct", "repeats"):
            distinct = engine.dense(_per_key(rows, value).groupby(ACCOUNT, sort=False).size(), n, 0)
            columns[stat.name] = distinct if kind == "count_distinct" else totals[value] - distinct
        elif kind == "peak_group":
            columns[stat.name] = engine.dense(_per_key(rows, value).groupby(ACCOUNT, sort=False)["_n"].max(), n, 0)
        elif kind == "first_majority":
            keyed = rows[rows[value].notna()]
            hits = keyed.assign(_hit=keyed[where_column(stat)].astype("int64"))
            per_key = hits.groupby([ACCOUNT, value], sort=False).agg({"_hit": ["count", "sum"]})
            per_key.columns = ["n", "hits"]
            per_key = per_key.reset_index()
            majority = per_key[per_key["hits"] * 2 > per_key["n"]]
            columns[stat.name] = engine.dense(majority.groupby(ACCOUNT, sort=False)[value].min(), n, float("nan"))
        elif kind == "sorted_set":
            lists[stat.name] = _sorted_sets(engine, rows, value, n)
        elif kind != "day_constant":
            raise ValueError(f"daily stat {stat.name}: unknown aggregation {kind!r}")
    del columns["__requests"]
    table = delta_files.nan_to_null(engine.to_arrow(engine.xp.DataFrame(columns)))
    for name, values in lists.items():
        table = table.append_column(name, values)
    table = table.append_column("newest_model", pa.array([newest_model] * n, pa.string()))
    table = table.append_column("event_date", pa.array([event_date] * n, pa.date32()))
    table = delta_files.micros_as_timestamps(table, daily_stats.TIMESTAMP_STATS)
    decl = catalog.table("account_daily").schema
    return table.select(decl.names).cast(decl)


def _bronze(engine: FrameEngine, raw):
    """Timestamps as epoch microseconds, the frame engines' form of a timestamp (`epoch_micros` is then the
    identity, as features/expr.py expects)."""
    raw["event_ts"] = epoch_micros(engine, raw["event_ts"])
    return raw


def day_references(engine: FrameEngine, accounts, model_releases, asn_info, event_date: dt.date):
    """(newest model at the end of event_date, asn -> asn_category, account_id -> signup_country): what the
    aggregate joins the day's requests with."""
    newest_model, _ = newest_release(engine, model_releases, day_end_micros(event_date))
    return (newest_model, *reference_frames(engine, accounts, asn_info))


def daily_aggregate(engine: FrameEngine, requests, accounts, model_releases, asn_info, event_date: dt.date) -> pa.Table:
    """One frame of the day's bronze requests -> account_daily rows (Arrow, catalog schema): the in-memory form
    of what `aggregate_partition` does bucket by bucket. The reference tables as `reference_frame` takes them."""
    newest_model, asn_category, signup_country = day_references(engine, accounts, model_releases, asn_info, event_date)
    rows = narrow_rows(
        engine,
        _bronze(engine, requests[list(daily_stats.BRONZE_INPUTS)].copy()),
        asn_category,
        signup_country,
        newest_model,
    )
    return account_daily_rows(engine, rows, event_date, newest_model)


def aggregate_partition(
    engine: FrameEngine,
    files: delta_files.PartitionFiles,
    accounts,
    model_releases,
    asn_info,
    event_date: dt.date,
    read_bytes: int | None = None,
    buckets: int | None = None,
) -> pa.Table:
    """The day's bronze Parquet files -> account_daily rows, within the engine's memory budget; the reference
    tables as `reference_frame` takes them (their files, read by the frame library, in the jobs).
    `read_bytes` (uncompressed Parquet per read) and `buckets` default to what the budget allows."""
    newest_model, asn_category, signup_country = day_references(engine, accounts, model_releases, asn_info, event_date)
    read_batches = delta_files.file_batches(files, read_bytes or engine.memory_budget_bytes // RAW_WORKING_SET_FACTOR)
    buckets = buckets or delta_files.bucket_count(
        files.rows * NARROW_BYTES_PER_ROW * NARROW_WORKING_SET_FACTOR, engine.memory_budget_bytes
    )
    log.info(
        "aggregate %s: %d rows in %d file reads, %d account bucket(s)",
        event_date,
        files.rows,
        len(read_batches),
        buckets,
    )
    narrow = frame_engines.AccountBuckets(engine, buckets)
    for batch in read_batches:
        raw = _bronze(engine, engine.read_files(batch, list(daily_stats.BRONZE_INPUTS)))
        narrow.add(narrow_rows(engine, raw, asn_category, signup_country, newest_model))
        del raw
        engine.note_device_usage()
    outputs = []
    for bucket in range(buckets):
        rows = narrow.take(bucket)
        if rows is None:
            continue
        outputs.append(account_daily_rows(engine, rows, event_date, newest_model))
        del rows
        engine.note_device_usage()
    return pa.concat_tables(outputs) if outputs else catalog.table("account_daily").schema.empty_table()
