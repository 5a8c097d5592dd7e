"""How fast the console answers on a 20k-account day: queue (plain, filtered, page 10), account, cluster, campaign,
CSV export.

Usage: python benchmarks/console_pages.py [--accounts 20000] [--days 14] [--repeats 7] [--out benchmarks/results]

Writes a synthetic reviewed lake (tests/helpers/reviewed_lake.py: account_risk, cluster_risk, account_clusters,
account_features, account_daily with the catalog's schemas; 20k accounts x 14 days = 280k risk rows; account_links
and account_edges between cluster members, so the cluster page carries its graph, and the campaigns job over every
day), signs in, and
times each page through the whole ASGI app in process (Starlette's test client: routing, auth, Delta reads,
templates; no network hop). Reports the median and the slowest of `--repeats` requests after one warm-up request,
with 30 analyst decisions already in the label tables. Writes JSON with the machine's facts.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import machine_facts

LAST_DAY = dt.date(2026, 3, 14)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()

    import warnings

    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

    from console import decisions
    from console.app import ConsoleConfig, create_app
    from console.auth import AuthConfig, issue_token
    from console.campaign_page import campaign_of_cluster
    from jobs import campaigns
    from lake.config import load_settings
    from tests.helpers import reviewed_lake

    with tempfile.TemporaryDirectory(prefix="dg-console-bench-") as tmp:
        settings = load_settings(lake_root=f"{tmp}/lake", mlflow_tracking_uri=f"sqlite:///{tmp}/mlflow.db")
        started = time.perf_counter()
        info = reviewed_lake.write(settings, accounts=args.accounts, days=args.days, last_day=LAST_DAY)
        reviewed_lake.write_cluster_links(settings, info["days"])
        reviewed_lake.write_cluster_edges(settings, info["days"])
        for day in info["days"]:  # the campaigns job over every day, as the nightly chain runs it
            with contextlib.redirect_stdout(io.StringIO()):
                campaigns.run(None, settings, day)
        lake_seconds = time.perf_counter() - started
        for n, account in enumerate(info["campaign_accounts"][:30]):
            decisions.record_decision(
                settings, analyst="bench", account_id=account, label="extraction", note=f"benchmark decision {n}"
            )
        token = issue_token(Path(tmp) / "tokens", "bench")
        client = TestClient(
            create_app(settings, ConsoleConfig(auth=AuthConfig(tokens_file=Path(tmp) / "tokens"))),
            base_url="http://127.0.0.1:8050",
        )
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
        assert (
            client.post("/login", data={"token": token, "csrf_token": csrf}, follow_redirects=False).status_code == 303
        )

        account = info["campaign_accounts"][5]
        pages = {
            "queue": "/",
            "queue, tier high + undecided + new": "/?tier=high&undecided=1&new=1",
            "queue, capability reasoning": "/?capability=reasoning",
            "queue, page 10": "/?page=10",
            "account": f"/account/{account}",
            "cluster": f"/cluster/{info['clusters'][3]}",
            "campaign": f"/campaign/{campaign_of_cluster(settings, info['clusters'][3], LAST_DAY)}",
            "queue CSV export (whole day)": "/queue.csv",
        }
        results = []
        for name, path in pages.items():
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code, response.text[:300])
            if name == "cluster":  # the page carries the graph of its stored links, not the "no links" note
                assert 'id="cluster-graph-data"' in response.text, "the cluster page drew no graph"
            timings = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                response = client.get(path)
                timings.append(time.perf_counter() - t0)
                assert response.status_code == 200
            results.append(
                {
                    "page": name,
                    "path": path,
                    "median_s": round(statistics.median(timings), 4),
                    "max_s": round(max(timings), 4),
                    "bytes": len(response.content),
                }
            )
            print(
                f"{name:38s} median {statistics.median(timings) * 1000:7.0f} ms   max {max(timings) * 1000:7.0f} ms",
                flush=True,
            )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": "console_pages",
        "accounts_per_day": args.accounts,
        "days": args.days,
        "risk_rows": args.accounts * args.days,
        "repeats": args.repeats,
        "synthetic_lake_write_s": round(lake_seconds, 1),
        "pages": results,
        "machine": machine_facts(),
        # the machine is shared: its load says how much of the wall time was waiting for a core
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    (out / "console_pages.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"-> {out / 'console_pages.json'}")


if __name__ == "__main__":
    main()
