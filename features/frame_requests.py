"""Aggregation, phase 1 on a frame engine: bronze rows become one narrow row per request holding just the values the
declared daily statistics aggregate (features/daily_stats.py). Row by row, so any chunking of the day's files
gives the same answer.
"""

from __future__ import annotations

import logging

from features import daily_stats
from features.daily_stats import DailyStat
from features.expr import Expr
from features.frame_common import evaluate, reads_gap, reference_frame, value_column, where_column
from lake.frame_engines import FrameEngine

log = logging.getLogger(__name__)


def smallest_per_key(frame, key: str, values: list[str]):
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
    asn = smallest_per_key(reference_frame(engine, asn_info, ["asn", "category"]), "asn", ["category"])
    signup = smallest_per_key(
        reference_frame(engine, accounts, ["account_id", "signup_country"]), "account_id", ["signup_country"]
    )
    return asn.rename(columns={"category": "asn_category"}), signup


def _is_flag(expr: Expr) -> bool:
    """`when(c, 1, 0)`: a 0/1 value that fits in one byte."""
    return expr.op == "when" and [a.args[0] for a in expr.args[1:]] == [1, 0]


def equality_tally(stat: DailyStat) -> tuple[str, object] | None:
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


def tally_column(column: str) -> str:
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
        rows[name] = evaluate(expr, rows)
    narrow = rows[["account_id", "event_us"]].copy()
    for stat in daily_stats.DAILY_STATS:
        agg = stat.daily
        if agg.kind in ("count", "day_constant") or reads_gap(agg.value):
            continue
        tally = equality_tally(stat)
        if tally is not None:
            if tally_column(tally[0]) not in narrow.columns:
                narrow[tally_column(tally[0])] = rows[tally[0]]
            continue
        value = evaluate(stat.value_expr(), rows)
        narrow[value_column(stat)] = value.astype("int8") if _is_flag(stat.value_expr()) else value
        if agg.where is not None:
            narrow[where_column(stat)] = evaluate(agg.where, rows).astype("bool")
    return narrow
