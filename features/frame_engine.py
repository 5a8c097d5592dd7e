"""The declared daily statistics and features evaluated on a frame engine (cuDF on a GPU, pandas on CPU).

The sibling of features/spark_engine.py: it compiles the same declarations (features/daily_stats.py,
features/registry.py) with the same conventions, so nothing here names a statistic or a feature. Timestamps are
integer or float microseconds since the epoch throughout (cuDF's and pandas' timezone support differ, numbers
do not).

Aggregation runs in two phases so (GPU) memory stays under the engine's budget for any number of records:
  1. the day's bronze Parquet files are read a few at a time and turned, row by row, into one narrow row per
     request holding just the values the statistics aggregate; any chunking gives the same answer;
  2. those rows are split into account-hash buckets sized to the budget (moved to host memory when there is
     more than one) and each bucket is aggregated on its own: every account's rows land in exactly one bucket.
"""

from __future__ import annotations

import datetime as dt
import logging

import pyarrow as pa
import pyarrow.compute as pc

from features import daily_stats, registry
from features.daily_stats import GAP_COLUMN, NEWEST_RELEASED_AT, WINDOW_DAYS, DailyStat
from features.expr import Expr, to_frame
from lake import catalog, delta_files, frame_engines
from lake.frame_engines import FrameEngine

log = logging.getLogger(__name__)

# Bucket sizing: a bronze row expands about this much in (GPU) memory while its values are computed, and a
# narrow row about this much while it is grouped. Generous on purpose: running out of the budget fails the night.
RAW_WORKING_SET_FACTOR = 4
NARROW_BYTES_PER_ROW = 400
NARROW_WORKING_SET_FACTOR = 4
EPOCH = delta_files.EPOCH_DATE


def day_end_micros(day: dt.date) -> int:
    return (day + dt.timedelta(days=1) - EPOCH).days * 86_400_000_000


def reference_frame(engine: FrameEngine, source, columns: list[str], timestamps: tuple[str, ...] = ()):
    """`columns` of a table as a frame: read from its files (`delta_files.table_files`) by the frame library, which
    decodes them on the GPU for cuDF, or from rows already in Arrow (tests, a table that does not exist yet), or
    a frame as it is. `timestamps` become float64 µs since the epoch (missing ones null, or NaN on pandas)."""
    if isinstance(source, delta_files.PartitionFiles):
        frame = engine.read_files(source, columns)
    elif isinstance(source, pa.Table):
        frame = engine.from_arrow(source.select(columns))
    else:
        frame = source[columns]
    for name in timestamps:
        frame[name] = _micros_or_missing(engine, frame[name])
    return frame


def newest_release(engine: FrameEngine, model_releases, released_before_micros: int) -> tuple[str | None, int | None]:
    """(model, released_at in µs) of the latest release strictly before the bound; ties on the time go to the
    greatest model name (as spark_engine.newest_release). The releases are selected in the frame library; only
    the answer, one name and one time, comes to the host: every row of the day gets that name as a constant,
    and turning it into a one-row frame to broadcast would cost more than the two scalars."""
    releases = reference_frame(engine, model_releases, ["model", "released_at"], ("released_at",))
    released = releases[releases["released_at"] < released_before_micros]
    if len(released) == 0:
        return None, None
    newest = released.sort_values(["released_at", "model"]).tail(1)
    return newest["model"].iloc[0], int(newest["released_at"].iloc[0])


def _evaluate(expr: Expr, frame):
    return to_frame(expr, lambda name: frame[name], frame[frame.columns[0]])


def _reads_gap(expr: Expr | None) -> bool:
    return expr is not None and GAP_COLUMN in expr.columns()


def _value_column(stat: DailyStat) -> str:
    return f"v:{stat.name}"


def _where_column(stat: DailyStat) -> str:
    return f"w:{stat.name}"


# --- phase 1: bronze rows -> narrow rows ------------------------------------------------------------------


def _smallest_per_key(frame, key: str, values: list[str]):
    """One row per `key`: the smallest non-null of each of `values` (null when a key has none), as Spark's min().
    A null key is a group of its own, as on Spark (nothing refuses one in a whole-table reference write).

    Sorted and de-duplicated instead of groupby().min(): pandas has no vectorised min for Arrow-backed strings and
    fell back to one Python call per group (189 of 217 s of the engine benchmark's 2M-record pandas day)."""
    smallest = frame[[key]].drop_duplicates()
    for value in values:
        ranked = frame[[key, value]].dropna(subset=[value]).sort_values([key, value])
        smallest = smallest.merge(ranked.drop_duplicates(subset=[key], keep="first"), on=key, how="left")
    return smallest.reset_index(drop=True)


def reference_frames(engine: FrameEngine, accounts, asn_info):
    """(asn -> asn_category, account_id -> signup_country), one row per key; min() keeps a duplicated registry
    row from double counting, as on Spark. `accounts` and `asn_info` as `reference_frame` takes them."""
    asn = _smallest_per_key(reference_frame(engine, asn_info, ["asn", "category"]), "asn", ["category"])
    signup = _smallest_per_key(
        reference_frame(engine, accounts, ["account_id", "signup_country"]), "account_id", ["signup_country"]
    )
    return asn.rename(columns={"category": "asn_category"}), signup


def _is_flag(expr: Expr) -> bool:
    """`when(c, 1, 0)`: a 0/1 value that fits in one byte."""
    return expr.op == "when" and [a.args[0] for a in expr.args[1:]] == [1, 0]


def _equality_tally(stat: DailyStat) -> tuple[str, object] | None:
    """(column, constant) for a statistic that counts the requests whose column equals a constant
    (`count_if(col(c).eq(k))`). Families of these (24 hours, 6 capabilities) come from one count per
    (account, value) instead of one flag column per statistic on every request."""
    value = stat.daily.value
    if stat.daily.kind != "sum" or value is None or not _is_flag(value):
        return None
    condition = value.args[0]
    if condition.op == "eq" and condition.args[0].op == "col" and condition.args[1].op == "lit":
        return condition.args[0].args[0], condition.args[1].args[0]
    return None


def _tally_column(column: str) -> str:
    return f"t:{column}"


def narrow_rows(engine: FrameEngine, requests, asn_category, signup_country, newest_model: str | None):
    """Bronze request columns (event_ts as integer µs) -> account_id, event_us and one column per value the
    daily statistics aggregate (those that read gaps are evaluated per bucket, once an account's rows are
    together; equality counts keep the one column they compare)."""
    rows = requests.reset_index(drop=True)
    rows = rows.merge(asn_category, on="asn", how="left").merge(signup_country, on="account_id", how="left")
    if newest_model is None:  # nothing released yet: an all-null string column
        rows["newest_model"] = rows["model"].where(rows["account_id"].isna())
    else:
        rows["newest_model"] = newest_model
    for name, expr in daily_stats.REQUEST_COLUMNS.items():
        rows[name] = _evaluate(expr, rows)
    narrow = rows[["account_id", "event_us"]].copy()
    for stat in daily_stats.DAILY_STATS:
        agg = stat.daily
        if agg.kind in ("count", "day_constant") or _reads_gap(agg.value):
            continue
        tally = _equality_tally(stat)
        if tally is not None:
            if _tally_column(tally[0]) not in narrow.columns:
                narrow[_tally_column(tally[0])] = rows[tally[0]]
            continue
        value = _evaluate(agg.value, rows)
        narrow[_value_column(stat)] = value.astype("int8") if _is_flag(agg.value) else value
        if agg.where is not None:
            narrow[_where_column(stat)] = _evaluate(agg.where, rows).astype("bool")
    return narrow


# --- phase 2: narrow rows of whole accounts -> account_daily ------------------------------------------------
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
        if _reads_gap(stat.daily.value):
            rows[_value_column(stat)] = _evaluate(stat.daily.value, rows)
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
        kind, value = stat.daily.kind, _value_column(stat)
        if kind == "sum" and _equality_tally(stat) is None:
            main[value] = "sum"
        elif kind == "repeats":
            main[value] = "count"  # non-null values; the distinct ones are subtracted below
        elif kind == "min_where":
            rows[value] = rows[value].where(rows[_where_column(stat)])
            main[value] = "min"
    by_account = rows.groupby(ACCOUNT, sort=True)  # every code has a row, so the result is codes 0..n-1
    totals = by_account.agg(main).reset_index(drop=True)  # Series with a RangeIndex line up with the arrays
    columns = {"account_id": account_ids, "__requests": by_account.size().reset_index(drop=True)}
    tallies: dict[str, object] = {}
    lists: dict[str, pa.Array] = {}
    for stat in daily_stats.DAILY_STATS:
        kind, value = stat.daily.kind, _value_column(stat)
        tally = _equality_tally(stat)
        if kind == "count":
            columns[stat.name] = columns["__requests"]
        elif tally is not None:
            column, constant = tally
            if column not in tallies:
                tallies[column] = _per_key(rows, _tally_column(column))
            counts = tallies[column]
            matching = counts[counts[_tally_column(column)] == constant]
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
            hits = keyed.assign(_hit=keyed[_where_column(stat)].astype("int64"))
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


def epoch_micros(engine: FrameEngine, timestamps):
    """A timestamp column as int64 microseconds since the epoch, whatever unit/zone the reader gave it."""
    if not engine.on_gpu and getattr(timestamps.dt, "tz", None) is not None:
        timestamps = timestamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return timestamps.astype("datetime64[us]").astype("int64")


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


# --- account_daily windows + registry + clusters -> account_features ---------------------------------------
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


def _micros_or_missing(engine: FrameEngine, timestamps):
    """A nullable timestamp column as float64 µs since the epoch (exact: microsecond epochs stay below 2**53): null
    on cuDF, which keeps nulls through the casts, NaN on pandas, which cannot turn NaT into an integer."""
    if engine.on_gpu:
        return epoch_micros(engine, timestamps).astype("float64")
    return epoch_micros(engine, timestamps.dropna()).astype("float64").reindex(timestamps.index)


def longest_window(engine: FrameEngine, rows, feature_date: dt.date):
    """Read account_daily rows -> those of the longest window (feature_date - 28, feature_date], with `event_day`
    (days since the epoch) in place of the date and timestamps as µs."""
    days = (rows["event_date"].astype("int64") // 86_400).astype("int32")
    last = _day_number(feature_date)
    inside = (days > last - max(registry.WINDOWS)) & (days <= last)
    rows = rows[inside].drop(columns=["event_date"]).reset_index(drop=True)
    rows["event_day"] = days[inside].reset_index(drop=True)
    for name in daily_stats.TIMESTAMP_STATS:
        rows[name] = _micros_or_missing(engine, rows[name])
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
        columns[stat.window_stat] = engine.dense(distinct.groupby(ACCOUNT, sort=False).size(), accounts, 0)
    return engine.xp.DataFrame(columns)


def account_inputs(engine: FrameEngine, accounts, feature_date: dt.date):
    """One row per account: registry attributes (the smallest of each when the registry repeats an account, as
    on Spark) plus how many accounts existing at the end of feature_date share its payment fingerprint (itself
    included when it existed). `accounts` as `reference_frame` takes it; creation times come out in µs."""
    end = day_end_micros(feature_date)
    attributes = ["created_at", "verification", "program", "payment_fingerprint"]
    rows = _smallest_per_key(
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
        return float(days) if name == WINDOW_DAYS else frame[name]

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
    if isinstance(daily, pa.Table):
        estimated, reads = daily.nbytes, [lambda: window_frame(engine, daily)]
    else:
        columns = catalog.table("account_daily").schema.names
        batches = delta_files.file_batches(daily, read_bytes or engine.memory_budget_bytes // WINDOW_WORKING_SET_FACTOR)
        estimated = daily.total_bytes
        reads = [lambda batch=batch: engine.read_files(batch, columns) for batch in batches]
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
