"""The exploration queue: high-scoring undecided accounts whose behaviour is unlike every account decided extraction,
and unlike each other.

Why: analysts working the plain queue (highest score first) confirm the siblings of campaigns they already caught,
because resemblance and propagation lift those to the top. The model then learns nothing new: on the benchmark's
development lakes, the first few hundred undecided accounts of the queue belong to campaigns with labels, and the
campaigns nobody labelled start lower down. A model fitted on ground truth finds most of those campaigns, one fitted
on the decisions does not (benchmarks/label_ceiling.py): the decisions, not the features, are what is missing.

What: walk the queue's top CANDIDATES accounts in score order and keep an account when its behaviour, in the
resemblance family's rank space (models/resemblance.py FEATURES, each feature the account's rank among the day's
accounts), lies at least `spread` from every account decided extraction and from every account already kept.
`spread` is the median, over those candidates, of the distance to the nearest account decided extraction (to the
nearest other candidate while nothing is decided extraction): half the candidates are near enough to a caught
campaign to be left to the plain queue.

Pure: pandas and numpy in, a frame out (jobs/risk_query.py reads the lake for it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from models.resemblance import FEATURES, rank_space

# How deep into the plain queue the exploration looks. Set on the benchmark's development lakes (24,000 accounts,
# seeds 101 and 102, 2026-12-07): there the first accounts of campaigns nobody labelled sat at ranks 150-950.
CANDIDATES = 3_000
# The spread is the median distance (module docstring): chosen on the same lakes against fixed spreads of 1.1, 1.25
# and 1.3; at the median, 50 picks reached 9-11 accounts of campaigns with no label, the plain queue's top 50 none.
PICK_COLUMNS = ("account_id", "score", "distance", "nearest_extraction")


def exploration_picks(
    queue: pd.DataFrame,
    population: pd.DataFrame,
    extraction: pd.DataFrame,
    limit: int,
    candidates: int = CANDIDATES,
) -> tuple[pd.DataFrame, float]:
    """(picks, spread). `queue`: undecided accounts (account_id, score); `population`: the day's account_features
    rows (account_id and FEATURES), the yardstick of the ranks; `extraction`: the accounts decided extraction as
    they behaved when caught (account_id and FEATURES, models/resemblance.decided_profiles). Picks: at most `limit`
    rows of PICK_COLUMNS in queue order, `distance` to the nearest account decided extraction (None when none is)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    population = population.drop_duplicates("account_id")
    ranked = queue[queue["account_id"].isin(population["account_id"])]
    ranked = ranked.sort_values(["score", "account_id"], ascending=[False, True], kind="stable").head(candidates)
    if ranked.empty:
        return pd.DataFrame(columns=list(PICK_COLUMNS)), 0.0
    rows = population.set_index("account_id").loc[ranked["account_id"], list(FEATURES)].reset_index()
    points, caught = rank_space(population, [rows, extraction])
    if len(caught):
        found = cKDTree(caught).query(points, k=1)
        to_caught = np.asarray(found[0], dtype=np.float64)
        nearest = extraction["account_id"].to_numpy(dtype=object)[np.asarray(found[1], dtype=np.int64)]
        spread = float(np.median(to_caught))
    else:
        to_caught = np.full(len(points), np.inf)
        nearest = np.full(len(points), None, dtype=object)
        spread = float(np.median(cKDTree(points).query(points, k=2)[0][:, 1])) if len(points) > 1 else 0.0
    kept: list[int] = []
    for i in np.flatnonzero(to_caught >= spread):
        if kept and np.min(np.linalg.norm(points[kept] - points[i], axis=1)) < spread:
            continue
        kept.append(int(i))
        if len(kept) == limit:
            break
    picks = pd.DataFrame(
        {
            "account_id": ranked["account_id"].to_numpy()[kept],
            "score": ranked["score"].to_numpy()[kept],
            "distance": [None if np.isinf(d) else float(d) for d in to_caught[kept]],
            "nearest_extraction": nearest[kept],
        }
    )
    return picks, spread
