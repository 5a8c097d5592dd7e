"""One benchmark stage in its own process: prints `RESULT {json}` with wall time, records and peak RSS.

Usage: run_stage.py STAGE LAKE START DAYS ACCOUNTS [WINDOW_DAYS]
  simulate   ACCOUNTS accounts over DAYS days from START
  ingest     raw -> bronze for each day
  features   aggregate, cluster and features for each day (the nightly order; cluster runs before features)
  prepare    the history an engine benchmark's last day needs: aggregate every day, fill account_daily back to
             WINDOW_DAYS days before the last day with copies of the generated days, then cluster the last day
The embedded Sail server runs inside this process, so RUSAGE_SELF's peak RSS includes the engine.
"""

import datetime as dt
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lake.config import load_settings


def fill_history(spark, settings, generated: list[dt.date], window_days: int) -> list[dt.date]:
    """account_daily for every day of the last generated day's window that was not generated: a copy of a
    generated day's rows with its date changed. Synthetic history, but history of the real size, so the
    window features read and roll up as many daily rows as a lake with a full window would hold."""
    from pyspark.sql import functions as F

    from lake import catalog

    last = generated[-1]
    sources = generated[:-1] or generated  # the last day itself only when it is the only one
    missing = [
        last - dt.timedelta(days=i)
        for i in range(window_days - 1, 0, -1)
        if last - dt.timedelta(days=i) not in generated
    ]
    for index, day in enumerate(missing):
        source = sources[index % len(sources)]
        rows = catalog.read_partition(spark, settings, "account_daily", source).withColumn("event_date", F.lit(day))
        catalog.write_partition(rows, settings, "account_daily", day)
    return missing


def run(stage: str, lake: str, start: dt.date, days: int, accounts: int, window_days: int) -> dict:
    settings = load_settings(
        lake_root=lake, ground_truth_root=lake + "_truth", mlflow_tracking_uri="sqlite:///" + lake + "/m.db"
    )
    dates = [start + dt.timedelta(days=i) for i in range(days)]
    began = time.perf_counter()
    records = 0
    result: dict = {}
    if stage == "simulate":
        from simulator import simulate

        records = simulate.run(settings, start=start, days=days, accounts=accounts, seed=11).records
    elif stage in ("ingest", "features", "prepare"):
        from compute.spark import SparkEngine
        from jobs import aggregate, cluster, features, ingest
        from lake.engine import spark_session

        with spark_session(settings) as spark:
            engine = SparkEngine(spark)
            for day in dates:
                if stage == "ingest":
                    records += ingest.run(spark, settings, day).raw_rows
                elif stage in ("features", "prepare"):
                    aggregate.run(engine, settings, day)
                    if stage == "features":
                        cluster.run(spark, settings, day)
                        features.run(engine, settings, day)
            if stage == "prepare":
                result["history_days"] = [d.isoformat() for d in fill_history(spark, settings, dates, window_days)]
                cluster.run(spark, settings, dates[-1])
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    return {
        "stage": stage,
        "wall_s": time.perf_counter() - began,
        "records": records,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **result,
    }


if __name__ == "__main__":
    stage_name, lake_root, first_day, n_days, n_accounts = sys.argv[1:6]
    window = int(sys.argv[6]) if len(sys.argv) > 6 else 28
    outcome = run(stage_name, lake_root, dt.date.fromisoformat(first_day), int(n_days), int(n_accounts), window)
    print("RESULT " + json.dumps(outcome), flush=True)
