"""`distillguard demo`: the whole pipeline on a fresh simulated lake, on the embedded engine.

simulate two weeks → the nightly steps (ingest, aggregate, cluster, features) for every day → train as of the
last day → score the last day → print the top-risk accounts with reasons, and how well the champion
did on the campaign accounts that carry **no label** (ground truth from the simulator, which no job
reads). Benign false-positive rates are also measured on unlabeled accounts only.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path
from typing import Any

from lake import catalog
from lake.config import Settings
from lake.dates import date_range
from lake.engine import spark_session
from lake.errors import InputError
from lake.redact import redact
from models.detection_report import (
    OPERATING_POINTS,
    evaluate_unlabeled,
    evaluation_rows,
    recall_at_benign_fpr,
    tier_headline,
    unlabelled,
)

DEMO_START = dt.date(2026, 11, 1)
DEMO_MARKER = ".distillguard-demo"


def _prepare_lake(settings: Settings, fresh: bool) -> None:
    """Wipe the previous demo lake, but never a directory the demo did not create."""
    if not settings.is_local_lake:
        raise InputError("the demo runs on a local lake; set DG_LAKE to a local path")
    root = Path(settings.lake_root)
    truth = Path(settings.ground_truth_root)
    if fresh and root.exists() and any(root.iterdir()):
        if not (root / DEMO_MARKER).exists():
            raise InputError(
                f"{root} exists and was not created by the demo; refusing to wipe it "
                "(point DG_LAKE or --lake at another directory)"
            )
        shutil.rmtree(root)
        shutil.rmtree(truth, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    (root / DEMO_MARKER).write_text("created by `distillguard demo`; safe to delete\n")


def _print_evaluation(report: dict[str, dict[str, Any]], intervals: dict[str, dict[str, Any]]) -> None:
    """The tier table; `intervals` (`tier_headline`) gives each tier's 95% intervals from a bootstrap over clusters."""
    from rich.table import Table

    from jobs.console import console as make_console

    console = make_console()
    first = next(iter(report.values()))
    campaigns = sorted(first["per_campaign_recall"])
    grid = Table(
        title=f"Detection on UNLABELED accounts: {first['unlabeled_campaign_accounts']:,} campaign, "
        f"{first['unlabeled_benign_accounts']:,} benign (simulator ground truth, never seen in training)"
    )
    for column in (
        "flag at tier",
        "recall",
        "95% CI",
        *(f"camp. {c}" for c in campaigns),
        "campaigns hit",
        "benign FPR",
        "95% CI",
        "benign flagged",
    ):
        grid.add_column(column, justify="right")
    for min_tier, row in report.items():
        recall, fpr = intervals[min_tier]["recall"], intervals[min_tier]["benign_fpr"]
        grid.add_row(
            f"≥ {min_tier}",
            f"{row['campaign_recall']:.1%}",
            f"{recall['low']:.1%}-{recall['high']:.1%}",
            *(f"{row['per_campaign_recall'][c]:.1%}" for c in campaigns),
            f"{row['campaigns_detected']}/{row['campaigns_total']}",
            f"{row['benign_false_positive_rate']:.2%}",
            f"{fpr['low']:.2%}-{fpr['high']:.2%}",
            f"{row['false_positives']:,}",
        )
    console.print(grid)
    widest = report[OPERATING_POINTS[-1]]
    segments = Table(title=f"benign FPR by segment at ≥ {OPERATING_POINTS[-1]}")
    segments.add_column("segment")
    segments.add_column("FPR", justify="right")
    for name, share in sorted(widest["per_segment_fpr"].items(), key=lambda item: -item[1]):
        segments.add_row(name, f"{share:.2%}")
    console.print(segments)


def _print_recall_at_fpr(at_fpr: dict[str, Any]) -> None:
    """The detection benchmark's headline table (benchmarks/detection.py) for the demo's one lake."""
    from rich.table import Table

    from jobs.console import console as make_console

    levels = at_fpr["levels"]
    campaigns = sorted({c for level in levels.values() for c in level["per_campaign_recall"]})
    grid = Table(
        title=f"Recall at a benign false-positive rate, UNLABELED accounts ({at_fpr['benign_accounts']:,} benign)"
    )
    grid.add_column("campaign")
    for level in levels:
        grid.add_column(f"@{float(level):.2%} FPR", justify="right")
    for campaign in campaigns:
        grid.add_row(
            campaign, *(f"{levels[level]['per_campaign_recall'].get(campaign, float('nan')):.1%}" for level in levels)
        )
    grid.add_row("all", *(f"{levels[level]['recall']:.1%}" for level in levels))
    make_console().print(grid)


def run(
    settings: Settings, accounts: int, days: int, seed: int, fresh: bool = True, scenario: str = "classic"
) -> dict[str, Any]:
    from jobs import nightly, risk_query, train
    from jobs.steps import STEP_NAMES
    from simulator import simulate

    began = time.perf_counter()
    _prepare_lake(settings, fresh)
    dates = date_range(DEMO_START, days)
    last = dates[-1]
    print(
        f"demo: lake {settings.lake_root}, {scenario} scenario, {accounts:,} accounts × {days} days, MLflow {redact(settings.mlflow_tracking_uri)}",
        flush=True,
    )
    simulate.run(settings, start=DEMO_START, days=days, accounts=accounts, seed=seed, scenario=scenario)

    # every night's steps up to features, as the nightly DAG runs them; then one training run and one scoring
    before_scoring = [name for name in STEP_NAMES if name != "score"]
    for index, day in enumerate(dates, start=1):
        print(
            f"[day {index}/{len(dates)}] {day}: {' -> '.join(before_scoring)}  "
            f"(elapsed {time.perf_counter() - began:.0f}s)",
            flush=True,
        )
        nightly.run(settings, day, steps=before_scoring)
    print(f"[train] as of {last}  (elapsed {time.perf_counter() - began:.0f}s)", flush=True)
    with spark_session(settings) as spark:
        train.run(spark, settings, last)
    print(f"[score] {last}  (elapsed {time.perf_counter() - began:.0f}s)", flush=True)
    nightly.run(settings, last, steps=["score"])

    risk_query.print_top(settings, score_date=last, limit=15, tier=None)
    risk = catalog.read_arrow(settings, "account_risk").to_pandas()
    risk = risk[risk["score_date"] == last]
    labels = catalog.read_arrow(settings, "enforcement_labels").to_pandas()
    truth = simulate.read_ground_truth(settings)
    report = evaluate_unlabeled(risk, truth, labels, last)
    scope = unlabelled(risk, truth, labels, last)
    _print_recall_at_fpr(recall_at_benign_fpr(scope))
    clusters = catalog.read_arrow(settings, "account_clusters", filters=[("feature_date", "=", last)]).to_pandas()
    accounts = catalog.read_arrow(settings, "accounts").to_pandas()
    _print_evaluation(report, tier_headline(evaluation_rows(scope, clusters, accounts)))
    print(
        f"\ndemo finished in {time.perf_counter() - began:.0f}s. Try:\n"
        f"  uv run distillguard --lake {settings.lake_root} risk top --date {last} --tier critical\n"
        f"  uv run mlflow ui --backend-store-uri {redact(settings.mlflow_tracking_uri)}",
        flush=True,
    )
    return report
