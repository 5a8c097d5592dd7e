"""Campaign tracking quality against ground truth (models/campaign_metrics.py), on hand-made days."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from models.campaign_metrics import replay, threshold_sweep, tracking_quality

D = [dt.date(2026, 10, 1) + dt.timedelta(days=i) for i in range(3)]
TRUTH = pd.DataFrame(
    {
        "account_id": ["a", "b", "c", "x", "y", "n"],
        "campaign_id": ["A", "A", "A", "X", "X", None],
        "is_campaign": [True, True, True, True, True, False],
    }
)


def test_an_id_change_breaks_continuity_and_a_shared_id_breaks_purity():
    days = pd.DataFrame(
        {
            "day": [D[0], D[1], D[2], D[0], D[1]],
            "campaign_id": ["c1", "c1", "c2", "c9", "c2"],
            "members": [["a", "b"], ["a", "b", "c"], ["a", "b", "c"], ["x", "y"], ["x", "y", "n"]],
        }
    )
    quality = tracking_quality(days, TRUTH)
    # A: c1 -> c1 (kept), c1 -> c2 (lost); X: c9 -> c2 (lost)
    assert (quality["continuity"], quality["day_transitions"]) == (1 / 3, 3)
    # c2 is the dominant id of both A (day 3) and X (day 2): one of three ids is shared
    assert (quality["ids_shared_by_true_campaigns"], quality["campaign_ids"]) == (1, 3)
    assert quality["purity"] == 2 / 3


def test_replay_keeps_one_id_where_raw_cluster_ids_change():
    clusters = pd.DataFrame(
        {
            "feature_date": [D[0]] * 3 + [D[1]] * 3,
            "cluster_id": ["k-a"] * 3 + ["k-b"] * 3,
            "account_id": ["a", "b", "c", "b", "c", "n"],
        }
    )
    sweep = threshold_sweep(clusters, TRUTH, [0.3, 0.9])
    assert sweep["0.3"]["continuity"] == 1.0  # J({a,b,c},{b,c,n}) = 0.5
    assert sweep["0.9"]["events"] == {"continued": 1, "new": 1}  # the majority rule keeps the id below 0.9 too
    raw = clusters.rename(columns={"feature_date": "day", "cluster_id": "campaign_id"})
    raw = raw.groupby(["day", "campaign_id"])["account_id"].apply(list).rename("members").reset_index()
    assert tracking_quality(raw, TRUTH)["continuity"] == 0.0
    assert len(replay({}, 0.3)) == 0
