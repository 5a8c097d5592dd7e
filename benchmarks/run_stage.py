"""One benchmark stage in its own process: prints `RESULT {json}` with wall time, records and peak RSS.

Usage: run_stage.py STAGE LAKE START DAYS ACCOUNTS   (STAGE = simulate | ingest | features)
The embedded Sail server runs inside this process, so RUSAGE_SELF's peak RSS includes the engine.
"""

import datetime as dt
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lake.config import load_settings  # noqa: E402



def run(stage: str, lake: str, start: dt.date, days: int, accounts: int) -> dict:
    settings = load_settings(lake_root=lake, ground_truth_root=lake + "_truth",
                             mlflow_tracking_uri="sqlite:///" + lake + "/m.db")
    dates = [start + dt.timedelta(days=i) for i in range(days)]
    began = time.perf_counter()
    records = 0
    if stage == "simulate":
        from simulator import simulate

        records = simulate.run(settings, start=start, days=days, accounts=accounts, seed=11).records
    elif stage in ("ingest", "features"):
        from jobs import aggregate, features, ingest
        from lake.engine import spark_session

        with spark_session(settings) as spark:
            for day in dates:
                if stage == "ingest":
                    records += ingest.run(spark, settings, day).raw_rows
                else:
                    aggregate.run(spark, settings, day)
                    features.run(spark, settings, day)
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    return {"stage": stage, "wall_s": time.perf_counter() - began, "records": records,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


if __name__ == "__main__":
    stage_name, lake_root, first_day, n_days, n_accounts = sys.argv[1:6]
    result = run(stage_name, lake_root, dt.date.fromisoformat(first_day), int(n_days), int(n_accounts))
    print("RESULT " + json.dumps(result), flush=True)
