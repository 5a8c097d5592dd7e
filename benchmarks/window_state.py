"""Windows: re-reading 28 days of account_daily every night against carrying rolling state, on Sail and pandas.

Usage: python benchmarks/window_state.py LAKE DAY [--engines embedded,pandas] [--repeat 3] [--label cpu-2core]

LAKE is a prepared benchmark lake (benchmarks/engines.py: a day with its 28-day account_daily history). Three
timings per engine, each forced to completion by an aggregate over every output column:

  reread       the window roll-up as the features job runs it: the 28 days read, every statistic rolled up
               over the 1/7/28-day windows
  carry_sums   what carrying state can replace: yesterday's 7- and 28-day sums per account (written once,
               untimed) plus today's rows minus the rows of the days leaving each window (the day 7 days back,
               and for the 28-day window the oldest day present, standing in for the one that just left),
               written as the next night's state
  still_reread the roll-ups that cannot be carried by adding and subtracting days, which need the window's
               rows anyway: maxima, distinct counts over the union of daily sets, and the model-pivot stats,
               whose newest model changes with each release

Carrying state pays only if carry_sums + still_reread < reread. Writes <out>/window-state-<label>.json/.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

from machine import machine_facts  # noqa: E402 - importable only once sys.path holds benchmarks/ and the repository

WINDOW = 28


def _sum_stats():
    from features import daily_stats

    return [s for s in daily_stats.DAILY_STATS if s.window == "sum"]


def _other_stats():
    from features import daily_stats

    return [s for s in daily_stats.DAILY_STATS if s.window_stat and s.window != "sum"]


def _timed(fn, repeat: int) -> dict:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


# --- Sail -------------------------------------------------------------------------------------------


def sail(lake: str, day: dt.date, repeat: int, scratch: str) -> dict:
    from pyspark.sql import functions as F

    from features import registry
    from features import spark_engine as se
    from lake import catalog
    from lake.config import load_settings
    from lake.engine import spark_session

    settings = load_settings(lake_root=lake, mlflow_tracking_uri=f"sqlite:///{scratch}/m.db")
    oldest = day - dt.timedelta(days=WINDOW - 1)

    def force(frame) -> None:
        frame.agg(F.count(F.lit(1)), F.sum(F.xxhash64(*frame.columns))).collect()

    with spark_session(settings) as spark:
        daily = catalog.read(spark, settings, "account_daily")
        releases = catalog.read(spark, settings, "model_releases")
        state_path = f"{scratch}/sail-state"
        sums = [s.name for s in _sum_stats()]
        previous = daily.where(se.in_window(day - dt.timedelta(days=1), WINDOW))
        (
            previous.groupBy("account_id")
            .agg(
                *(
                    F.sum(F.when(se.in_window(day - dt.timedelta(days=1), w), F.col(n)).otherwise(0)).alias(f"{n}__{w}")
                    for w in (7, WINDOW)
                    for n in sums
                )
            )
            .write.mode("overwrite")
            .parquet(state_path)
        )

        def reread() -> None:
            force(se.window_stats(daily.where(se.in_window(day, WINDOW)), releases, day))

        def carry_sums() -> None:
            state = spark.read.parquet(state_path)
            parts = [state]
            for source, signs in (
                (day, {7: 1, WINDOW: 1}),
                (day - dt.timedelta(days=7), {7: -1, WINDOW: 0}),
                (oldest, {7: 0, WINDOW: -1}),
            ):
                rows = catalog.read_partition(spark, settings, "account_daily", source)
                parts.append(
                    rows.select(
                        "account_id",
                        *(
                            (F.coalesce(F.col(n), F.lit(0)) * signs[w]).cast("long").alias(f"{n}__{w}")
                            for w in (7, WINDOW)
                            for n in sums
                        ),
                    )
                )
            union = parts[0]
            for part in parts[1:]:
                union = union.unionByName(part)
            (
                union.groupBy("account_id")
                .agg(*(F.sum(c).alias(c) for c in state.columns if c != "account_id"))
                .write.mode("overwrite")
                .parquet(f"{scratch}/sail-state-next")
            )

        def still_reread() -> None:
            current = se.newest_release(releases, se.day_end(day)).select(
                F.col("newest_model").alias("_current_newest_model")
            )
            rows = daily.where(se.in_window(day, WINDOW))
            stats = (
                rows.crossJoin(current)
                .groupBy("account_id")
                .agg(
                    *(
                        se._window_aggregate(s, w, day).alias(f"{s.window_stat}__{w}")
                        for w in registry.WINDOWS
                        for s in _other_stats()
                        if s.window != "distinct_count"
                    )
                )
            )
            for s in _other_stats():
                if s.window == "distinct_count":
                    stats = stats.join(se._distinct_counts(rows, s, day, registry.WINDOWS), "account_id", "left")
            force(stats)

        return {
            name: _timed(fn, repeat)
            for name, fn in (("reread", reread), ("carry_sums", carry_sums), ("still_reread", still_reread))
        }


# --- pandas -------------------------------------------------------------------------------------------


def pandas_engine(lake: str, day: dt.date, repeat: int, scratch: str) -> dict:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from features import frame_common, frame_daily, frame_windows, registry
    from lake import delta_files, frame_engines
    from lake.config import load_settings

    settings = load_settings(lake_root=lake, mlflow_tracking_uri=f"sqlite:///{scratch}/m.db", engine="pandas")
    oldest = day - dt.timedelta(days=WINDOW - 1)
    sums = [s.name for s in _sum_stats()]
    with frame_engines.frame_engine(settings) as engine:
        releases = delta_files.table_files(settings, "model_releases")
        newest_model, _ = frame_common.newest_release(engine, releases, frame_common.day_end_micros(day))

        def window_rows(first: dt.date, last: dt.date):
            table = delta_files.read_table(
                settings, "account_daily", filters=[("event_date", ">=", first), ("event_date", "<=", last)]
            )
            rows, listed, accounts = frame_windows.coded_window(
                engine, frame_windows.longest_window(engine, frame_windows.window_frame(engine, table), last)
            )
            return rows, listed, len(accounts)

        previous, _, _ = window_rows(oldest - dt.timedelta(days=1), day - dt.timedelta(days=1))
        last_previous = frame_windows._day_number(day - dt.timedelta(days=1))
        state = {"account_id": previous["account_id"]}
        for w in (7, WINDOW):
            inside = previous["event_day"] > last_previous - w
            for n in sums:
                state[f"{n}__{w}"] = previous[n].where(inside, 0)
        state = pd.DataFrame(state).groupby("account_id", sort=False).sum().reset_index()
        state_path = f"{scratch}/pandas-state.parquet"
        pq.write_table(pa.Table.from_pandas(state, preserve_index=False), state_path)

        def reread() -> None:
            rows, listed, n = window_rows(oldest, day)
            for days in registry.WINDOWS:
                frame_windows.window_stats(engine, rows, listed, day, days, newest_model, n)

        def carry_sums() -> None:
            parts = [pq.read_table(state_path).to_pandas()]
            for source, signs in (
                (day, {7: 1, WINDOW: 1}),
                (day - dt.timedelta(days=7), {7: -1, WINDOW: 0}),
                (oldest, {7: 0, WINDOW: -1}),
            ):
                rows = delta_files.read_table(settings, "account_daily", filters=[("event_date", "=", source)])
                rows = rows.select(["account_id", *sums]).to_pandas()
                part = {"account_id": rows["account_id"]}
                for w in (7, WINDOW):
                    for n in sums:
                        part[f"{n}__{w}"] = rows[n].fillna(0) * signs[w]
                parts.append(pd.DataFrame(part))
            carried = pd.concat(parts, ignore_index=True).groupby("account_id", sort=False).sum().reset_index()
            pq.write_table(pa.Table.from_pandas(carried, preserve_index=False), f"{scratch}/pandas-state-next.parquet")

        def still_reread() -> None:
            rows, listed, _ = window_rows(oldest, day)
            last = frame_windows._day_number(day)
            for days in registry.WINDOWS:
                inside = rows[rows["event_day"] > last - days]
                current = inside[inside["newest_model"] == newest_model]
                for stat in _other_stats():
                    if stat.window == "max":
                        inside.groupby(frame_daily.ACCOUNT, sort=False)[stat.name].max()
                    elif stat.window in ("sum_on_current_newest", "min_on_current_newest"):
                        current.groupby(frame_daily.ACCOUNT, sort=False)[stat.name].agg(
                            "sum" if stat.window.startswith("sum") else "min"
                        )
                    elif stat.window == "distinct_count":
                        items = listed[stat.name]
                        items[items["event_day"] > last - days][
                            [frame_daily.ACCOUNT, stat.name]
                        ].drop_duplicates().groupby(frame_daily.ACCOUNT, sort=False).size()

        return {
            name: _timed(fn, repeat)
            for name, fn in (("reread", reread), ("carry_sums", carry_sums), ("still_reread", still_reread))
        }


def markdown(report: dict) -> str:
    lines = [
        f"# Windows: re-read against rolling state ({report['label']})",
        "",
        f"Lake {report['lake']}, day {report['day']}, {report['account_daily_rows']:,} account_daily rows in the "
        f"28-day window; {report['repeat']} repeats, median (min-max) seconds; 1-minute load "
        f"{report['load_before']:.1f} before, {report['load_after']:.1f} after.",
        "",
        "| engine | re-read window | carried sums | roll-ups still re-read | carry total | re-read / carry |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for engine, r in report["engines"].items():
        carry = r["carry_sums"]["median_s"] + r["still_reread"]["median_s"]
        cell = {k: f"{v['median_s']:.2f} ({v['min_s']:.2f}-{v['max_s']:.2f})" for k, v in r.items()}
        lines.append(
            f"| {engine} | {cell['reread']} | {cell['carry_sums']} | {cell['still_reread']} | {carry:.2f} | "
            f"{r['reread']['median_s'] / carry:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake")
    parser.add_argument("day", type=dt.date.fromisoformat)
    parser.add_argument("--engines", default="embedded,pandas")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--label", default="cpu-2core")
    parser.add_argument("--out", default=str(BENCH_DIR / "results"))
    args = parser.parse_args()
    from deltalake import DeltaTable

    runners = {"embedded": sail, "pandas": pandas_engine}
    unknown = [e for e in args.engines.split(",") if e not in runners]
    if unknown:
        parser.error(f"unknown engines {unknown}; choose from {', '.join(runners)}")
    daily = DeltaTable(f"{args.lake}/account_daily")
    oldest = args.day - dt.timedelta(days=WINDOW - 1)
    import pyarrow as pa

    actions = pa.table(daily.get_add_actions(flatten=True)).to_pylist()
    rows = sum(int(a["num_records"]) for a in actions if oldest <= a["partition.event_date"] <= args.day)
    report = {
        "benchmark": "window_state",
        "label": args.label,
        "lake": args.lake,
        "day": args.day.isoformat(),
        "account_daily_rows": rows,
        "repeat": args.repeat,
        "machine": machine_facts(),
        "load_before": os.getloadavg()[0],
        "engines": {},
    }
    with tempfile.TemporaryDirectory(prefix="dg-window-") as scratch:
        for engine in args.engines.split(","):
            report["engines"][engine] = runners[engine](args.lake, args.day, args.repeat, scratch)
            print(engine, json.dumps(report["engines"][engine]), flush=True)
    report["load_after"] = os.getloadavg()[0]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"window-state-{args.label}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"window-state-{args.label}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
