"""The night's steps on the project's engine and on DuckDB, side by side in one process: CPU-µs per record (user +
sys) and cores busy per stage, with every output checked equal.

Usage: python benchmarks/duckdb_anchor.py --records 1e6 [--records 1e7] [--threads 2] [--label cpu-2core]
                                          [--work-dir /tmp/dg-anchor] [--keep]

Per size: two days of about --records raw records each are simulated; the first day is ingested and aggregated and
account_daily is filled back to a 28-day window with copies of it (benchmarks/run_stage.py fill_history: synthetic
history of the real size). The second day is the measured one. In one process (embedded Sail runs inside it,
DuckDB too, so RUSAGE_SELF counts both engines' threads):
  project   engine start, then jobs/ingest.py, aggregate.py, cluster.py and features.py on the day (Delta in and out)
  duckdb    signals   the bronze signal columns from the raw day's Parquet files (listed by delta-rs)
            aggregate account_daily from the project's bronze files of the day
            features  account_features from the window's account_daily files, the registry, the day's clusters
Each DuckDB stage reads what the project's matching stage read, so the two are checked on every row: the signals
per request (the fingerprint as a grouping: the same prompts share one), account_daily on every column,
account_features to 1e-9 relative. What the DuckDB side leaves out is listed in benchmarks/duckdb_sql.py
(no validation, quarantine or pseudonymisation, no clustering, no Delta writes). Writes
benchmarks/results/duckdb-anchor-<label>.json and .md with the machine's facts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(REPO))

import duckdb_sql  # noqa: E402
from machine import machine_facts  # noqa: E402

START = dt.date(2026, 3, 2)
WINDOW_DAYS = 28
# simulated raw records per account and day, to size the population: 17.5 measured with the extended scenario on
# 20,170 accounts (seed 3); with seed 11 a day came out at 20.5 (1,176,686 records for --records 1e6)
RECORDS_PER_ACCOUNT_DAY = 17.6
FLOAT_TOLERANCE = 1e-9


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Stages:
    """Wall and CPU seconds of named stages, measured around each `with stages.measure(name)` block."""

    def __init__(self, records: int):
        self.records = records
        self.results: dict[str, dict] = {}

    def measure(self, name: str):
        stages = self

        class _Block:
            def __enter__(self):
                self.wall, self.cpu = time.perf_counter(), cpu_s()

            def __exit__(self, *exc):
                wall, cpu = time.perf_counter() - self.wall, cpu_s() - self.cpu
                stages.results[name] = {
                    "wall_s": round(wall, 3),
                    "cpu_s": round(cpu, 3),
                    "cpu_us_per_record": round(cpu / stages.records * 1e6, 3),
                    "cores_busy": round(cpu / wall, 2) if wall > 0 else None,
                }

        return _Block()


def files(settings, name: str, first: dt.date | None = None, last: dt.date | None = None) -> list[str]:
    from lake.delta_files import table_files

    return list(table_files(settings, name, first, last).paths)


def parquet(paths: list[str]) -> str:
    # no hive partitioning: a Delta table's partition values are its log's, not its directory names'
    return "read_parquet([" + ", ".join(duckdb_sql.literal(p) for p in paths) + "], hive_partitioning = false)"


def partitions(settings, name: str, first: dt.date, last: dt.date) -> str:
    """The Parquet files delta-rs lists for first..last, with the partition column (which Delta keeps in its log,
    not in the files) put back; empty when there are none."""
    from lake.delta_files import table_files

    listed = table_files(settings, name, first, last)
    by_day: dict[dt.date, list[str]] = {}
    for path, value in zip(listed.paths, listed.partition_values):
        by_day.setdefault(value, []).append(path)
    import pyarrow.parquet as pq

    column = listed.partition_column
    in_files = bool(listed.paths) and column in pq.read_schema(listed.paths[0]).names
    return " UNION ALL BY NAME ".join(
        f"SELECT *{'' if in_files else f', {duckdb_sql.literal(value)} AS {column}'} FROM {parquet(paths)}"
        for value, paths in sorted(by_day.items())
    )


def prepare(settings, accounts: int, day: dt.date) -> None:
    """Simulate two days; ingest, aggregate and fill the window of the first (not measured)."""
    from run_stage import fill_history

    from compute.spark import SparkEngine
    from jobs import aggregate, ingest
    from lake.engine import spark_session
    from simulator import simulate

    simulate.run(settings, start=START, days=2, accounts=accounts, seed=11, scenario="extended")
    with spark_session(settings) as spark:
        ingest.run(spark, settings, START)
        aggregate.run(SparkEngine(spark), settings, START)
        fill_history(spark, settings, [START, day], WINDOW_DAYS)


def run_project(settings, day: dt.date, stages: Stages) -> None:
    from compute.spark import SparkEngine
    from jobs import aggregate, cluster, features, ingest
    from lake.engine import spark_session

    with stages.measure("project engine start"):
        session = spark_session(settings)
        spark = session.__enter__()
    try:
        engine = SparkEngine(spark)
        with stages.measure("project ingest"):
            ingest.run(spark, settings, day)
        with stages.measure("project aggregate"):
            aggregate.run(engine, settings, day)
        with stages.measure("project cluster"):
            cluster.run(spark, settings, day)
        with stages.measure("project features"):
            features.run(engine, settings, day)
    finally:
        session.__exit__(None, None, None)


def register_inputs(con, settings, day: dt.date) -> None:
    from lake import catalog

    first = day - dt.timedelta(days=WINDOW_DAYS - 1)
    for view, name, since in (
        ("raw", "api_requests", day),
        ("bronze", "requests", day),
        ("daily", "account_daily", first),
        ("clusters", "account_clusters", day),
    ):
        if not catalog.exists(settings, name):
            continue
        listed = partitions(settings, name, since, day)
        if listed:
            con.execute(f"CREATE VIEW {view} AS {listed}")
        else:  # a partition without files (a day without clusters): the table's columns, no rows
            con.register(f"{view}_empty", catalog.table(name).schema.empty_table())
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM {view}_empty")
    for name in ("accounts", "model_releases", "asn_info"):
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM {parquet(files(settings, name))}")
    if catalog.exists(settings, "enforcement_labels"):
        con.execute(f"CREATE VIEW labels AS SELECT * FROM {parquet(files(settings, 'enforcement_labels'))}")
    else:
        con.execute("CREATE TABLE labels (account_id VARCHAR, label VARCHAR, decided_at TIMESTAMPTZ)")


def run_duckdb(con, day: dt.date, stages: Stages) -> None:
    with stages.measure("duckdb signals"):
        con.execute(
            f"CREATE TABLE duck_signals AS SELECT request_id, {duckdb_sql.signals_select()} FROM raw "
            f"WHERE event_date = {duckdb_sql.literal(day)}"
        )
    run_duckdb_tables(con, day, stages)


def run_duckdb_tables(con, day: dt.date, stages: Stages) -> None:
    """account_daily and account_features of `day` as DuckDB tables duck_daily and duck_features."""
    with stages.measure("duckdb aggregate"):
        con.execute(f"CREATE OR REPLACE TEMP VIEW request_rows AS {duckdb_sql.request_rows_sql(day)}")
        con.execute(f"CREATE OR REPLACE TABLE duck_daily AS {duckdb_sql.account_daily_sql(day)}")
    with stages.measure("duckdb features"):
        con.execute(f"CREATE OR REPLACE TABLE duck_features AS {duckdb_sql.account_features_sql(day)}")


def _column_mismatches(con, left: str, right: str, key: str, columns: list[str], floats: set[str]) -> dict[str, int]:
    """Per column, the rows whose values differ (floats beyond FLOAT_TOLERANCE relative), plus keys on one side."""
    checks = []
    for column in columns:
        a, b = f"l.{duckdb_sql.quote(column)}", f"r.{duckdb_sql.quote(column)}"
        if column in floats:
            same = (
                f"(({a} IS NULL AND {b} IS NULL) OR (isnan({a}) AND isnan({b})) OR "
                f"abs({a} - {b}) <= {FLOAT_TOLERANCE} * greatest(abs({a}), abs({b}), 1))"
            )
        else:
            same = f"({a} IS NOT DISTINCT FROM {b})"
        checks.append(f"sum(CASE WHEN coalesce({same}, FALSE) THEN 0 ELSE 1 END) AS {duckdb_sql.quote(column)}")
    row = con.execute(
        f"SELECT count(*) FILTER (WHERE l.{key} IS NULL OR r.{key} IS NULL) AS unmatched_keys, "
        f"{', '.join(checks)} FROM {left} l FULL OUTER JOIN {right} r USING ({key})"
    ).fetchone()
    names = ["unmatched_keys", *columns]
    return {name: int(value or 0) for name, value in zip(names, row) if value}


def compare(con, settings, day: dt.date) -> dict:
    """Every DuckDB output against the project's Delta partition of the day; {} per table means equal."""
    from features import signals

    # raw request ids repeat (duplicates: bronze keeps one, quarantine the others), so only ids raw holds once are
    # compared; that is every bronze row but the kept duplicates
    con.execute(
        "CREATE TEMP TABLE compared AS SELECT b.*, d.prompt_fingerprint AS duck_fingerprint FROM bronze b "
        "JOIN (SELECT request_id FROM raw GROUP BY request_id HAVING count(*) = 1) USING (request_id) "
        "JOIN duck_signals d USING (request_id)"
    )
    plain = [c for c in signals.SIGNAL_COLUMNS if c != "prompt_fingerprint"]
    signal_mismatches = _column_mismatches(
        con,
        "(SELECT request_id, " + ", ".join(plain) + " FROM compared)",
        "(SELECT * FROM duck_signals WHERE request_id IN (SELECT request_id FROM compared))",
        "request_id",
        plain,
        set(),
    )
    # the same prompts share a fingerprint on both sides: as many groups on each as pairs of the two
    fingerprints = con.execute(
        "SELECT count(DISTINCT prompt_fingerprint), count(DISTINCT duck_fingerprint), "
        "count(DISTINCT (prompt_fingerprint, duck_fingerprint)) FROM compared WHERE prompt_fingerprint IS NOT NULL"
    ).fetchone()
    if len(set(fingerprints)) != 1:
        signal_mismatches["prompt_fingerprint groups (project, duckdb, pairs)"] = list(fingerprints)
    compared_rows = con.execute("SELECT count(*) FROM compared").fetchone()[0]
    return {
        "bronze rows compared": compared_rows,
        "bronze signals": signal_mismatches,
        **compare_tables(con, settings, day),
    }


def compare_tables(con, settings, day: dt.date) -> dict:
    """DuckDB's account_daily and account_features against the project's partitions of the day."""
    con.execute(f"CREATE OR REPLACE VIEW project_daily AS {partitions(settings, 'account_daily', day, day)}")
    con.execute(f"CREATE OR REPLACE VIEW project_features AS {partitions(settings, 'account_features', day, day)}")
    daily_columns = [c for c in con.execute("SELECT * FROM duck_daily LIMIT 0").fetchdf().columns if c != "account_id"]
    feature_columns = [
        c
        for c in con.execute("SELECT * FROM duck_features LIMIT 0").fetchdf().columns
        if c not in ("account_id", "feature_date")
    ]
    return {
        "account_daily": _column_mismatches(
            con, "project_daily", "duck_daily", "account_id", [c for c in daily_columns if c != "event_date"], set()
        ),
        "account_features": _column_mismatches(
            con, "project_features", "duck_features", "account_id", feature_columns, set(feature_columns)
        ),
    }


def benchmark_size(target: float, work_dir: Path, threads: int, keep: bool) -> dict:
    import duckdb
    import pyarrow.parquet as pq

    from lake.config import load_settings

    accounts = max(1000, int(target / RECORDS_PER_ACCOUNT_DAY))
    lake = work_dir / f"lake_{int(target)}"
    settings = load_settings(
        lake_root=str(lake), ground_truth_root=f"{lake}_truth", mlflow_tracking_uri=f"sqlite:///{lake}/m.db"
    )
    day = START + dt.timedelta(days=1)
    print(f"== {target:,.0f} records a day: {accounts:,} accounts; preparing the lake", flush=True)
    if (lake / "api_requests").exists():
        print(f"   reusing the lake in {lake}", flush=True)  # the measured jobs replace the day's partitions
    else:
        prepare(settings, accounts, day)
    raw_records = sum(pq.ParquetFile(path).metadata.num_rows for path in files(settings, "api_requests", day, day))
    stages = Stages(raw_records)
    run_project(settings, day, stages)
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    register_inputs(con, settings, day)
    run_duckdb(con, day, stages)
    mismatches = compare(con, settings, day)
    counts = {
        "duckdb account_daily rows": con.execute("SELECT count(*) FROM duck_daily").fetchone()[0],
        "duckdb account_features rows": con.execute("SELECT count(*) FROM duck_features").fetchone()[0],
    }
    con.close()
    if not keep:
        shutil.rmtree(lake, ignore_errors=True)
        shutil.rmtree(f"{lake}_truth", ignore_errors=True)
    return {
        "target_records": target,
        "raw_records": raw_records,
        "accounts": accounts,
        "day": day.isoformat(),
        "window_days": WINDOW_DAYS,
        "duckdb_threads": threads,
        "stages": stages.results,
        "mismatches": mismatches,
        "equal": all(not m for name, m in mismatches.items() if name != "bronze rows compared"),
        **counts,
    }


def table(results: list[dict]) -> str:
    lines = [
        "| records | stage | project CPU-µs/rec | project cores busy | DuckDB CPU-µs/rec | DuckDB cores busy |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    pairs = (
        ("engine start", "project engine start", None),
        ("ingest / signals", "project ingest", "duckdb signals"),
        ("aggregate", "project aggregate", "duckdb aggregate"),
        ("cluster", "project cluster", None),
        ("features", "project features", "duckdb features"),
    )
    for result in results:
        stages = result["stages"]
        for label, ours, theirs in pairs:
            a, b = stages.get(ours, {}), stages.get(theirs, {}) if theirs else {}
            lines.append(
                f"| {result['raw_records']:,} | {label} | {a.get('cpu_us_per_record', '–')} | "
                f"{a.get('cores_busy', '–')} | {b.get('cpu_us_per_record', '–')} | {b.get('cores_busy', '–')} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=float, nargs="+", default=[1e6])
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads (the project's engine uses the cores)")
    parser.add_argument("--label", default="cpu-2core")
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the simulated lakes")
    parser.add_argument("--out", default=str(BENCH_DIR / "results"))
    args = parser.parse_args()
    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="dg-anchor-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    began, load_at_start = time.time(), round(os.getloadavg()[0], 2)
    results = [benchmark_size(target, work_dir, args.threads, args.keep) for target in args.records]
    report = {
        "benchmark": "duckdb_anchor",
        "started_at": dt.datetime.fromtimestamp(began, dt.UTC).isoformat(timespec="seconds"),
        "machine": {**machine_facts(), "duckdb": __import__("duckdb").__version__},
        # a shared machine: other processes' load shrinks cores busy (CPU-µs per record much less so)
        "load_average_1m": {"start": load_at_start, "end": round(os.getloadavg()[0], 2)},
        "results": results,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"duckdb-anchor-{args.label}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    text = table(results)
    (out / f"duckdb-anchor-{args.label}.md").write_text(text)
    print("\n" + text)
    for result in results:
        print(f"{result['raw_records']:,} records: outputs equal: {result['equal']} {result['mismatches']}")


if __name__ == "__main__":
    main()
