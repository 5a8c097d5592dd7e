"""Propagation family: how close an account sits, in the long-memory account-artefact graph, to accounts already
decided extraction, against how close it sits to accounts decided benign.

Contract (for the fusion, models/ of the detect-model work): for a scoring date D,

    propagation_scores(incidence, decisions, scoring_date, *, accounts=None, population=None) -> DataFrame
        account_id, score, extraction_mass, benign_mass, reason

one row per account (those of `accounts`, else every account of the graph); higher `score` = more
extraction-like; `reason` is one plain-language sentence ("shares one payment method with 11 other accounts, 4 of
them decided extraction, 1 benign": the count is every account sharing the artefact, the decided ones are those
linked through it in account_edges). The inputs come from the lake:
  incidence  features.spark_edges.artefact_incidence(account_edges, D): one row per (account_id, link_type,
             artefact) seen in `account_edges` over the PROPAGATION_MEMORY_DAYS up to D, with artefact_accounts
             (the most accounts that shared it on any day). The graph is aggregated account x artefact, so it
             holds at most (linked accounts x their artefacts) rows; the job refuses more than MAX_INCIDENCE_ROWS.
  decisions  enforcement_labels rows (account_id, label, decided_at); only decisions made on or before D count
             (point in time: later ones are dropped here, whatever the caller passes).

The walk (personalised PageRank with restart RESTART): from an account to one of its artefacts, in proportion to
the artefact's smoothed IDF weight log(1 + N / artefact_accounts) (N = population) divided by how many artefacts
of that kind the account has, then to one of the artefact's members uniformly. Rare artefacts carry more; crowded
ones fade without a cap; each step is normalised by degree, so a hub spreads its mass thin, and hundreds of shared
templates count as one kind of evidence, not hundreds of cards. Two walks restart at the decided accounts, one
unit of mass per extraction decision and one per benign decision; score = extraction_mass - benign_mass, so an
account's cleared siblings count against it. A decided account's own restart mass is left out of its own score
(leave-one-out, exact), so decided accounts can serve in a benign reference.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import sparse

EXTRACTION = "extraction"
BENIGN = "benign"
RESTART = 0.15
ITERATIONS = 200  # at most; the walk stops once no mass moves by more than TOLERANCE
TOLERANCE = 1e-10
PROPAGATION_MEMORY_DAYS = 90
MAX_INCIDENCE_ROWS = 5_000_000
SEED_BLOCK = 64  # decided accounts solved together for the leave-one-out term (a dense accounts x block array)
INCIDENCE_COLUMNS = ("account_id", "link_type", "artefact", "artefact_accounts")
SCORE_COLUMNS = ("account_id", "score", "extraction_mass", "benign_mass", "reason")
ARTEFACT_NOUNS = {
    "payment": ("payment method", "payment methods"),
    "ip_prefix": ("IP prefix", "IP prefixes"),
    "template": ("rare prompt template", "rare prompt templates"),
    "timing": ("burst of synchronised activity", "bursts of synchronised activity"),
}


def latest_decisions(decisions: pd.DataFrame, scoring_date: dt.date) -> pd.DataFrame:
    """Indexed by account_id: `decision` ("extraction" | "benign") and `decided_at`, each account's latest
    extraction/benign decision made on or before scoring_date (a same-instant tie goes to extraction, as training
    reads it). Other labels are no evidence."""
    decided_at = pd.to_datetime(decisions["decided_at"], utc=True)
    day_end = pd.Timestamp(scoring_date + dt.timedelta(days=1), tz="UTC")
    known = decisions.assign(decided_at=decided_at)
    known = known[(known["decided_at"] < day_end) & known["label"].isin([EXTRACTION, BENIGN])]
    latest = known.sort_values(["decided_at", "label"], kind="stable").groupby("account_id").last()
    return latest[["label", "decided_at"]].rename(columns={"label": "decision"})


def decisions_as_of(decisions: pd.DataFrame, scoring_date: dt.date) -> pd.Series:
    """account_id -> "extraction" | "benign": latest_decisions' decision."""
    return latest_decisions(decisions, scoring_date)["decision"]


def artefact_weights(artefact_accounts: pd.Series, population: int) -> np.ndarray:
    """Smoothed IDF weight of each artefact, log(1 + N / accounts sharing it): falls as the artefact gets more
    common, without a cap and without reaching 0."""
    shared = np.maximum(artefact_accounts.to_numpy(dtype=float), 1.0)
    return np.log1p(population / shared)


def _transition(incidence: pd.DataFrame, population: int):
    """accounts index, artefact codes, and the account -> account transition T = A @ B (A: account -> artefact by
    weight, B: artefact -> member uniformly); rows of accounts with no weighted artefact are zero."""
    accounts = pd.Index(sorted(incidence["account_id"].unique()))
    keys = incidence["link_type"].astype(str) + "\x1f" + incidence["artefact"].astype(str)
    artefact_codes, artefacts = pd.factorize(keys)
    rows = accounts.get_indexer(incidence["account_id"])
    sizes = incidence.groupby(artefact_codes)["artefact_accounts"].max().reindex(range(len(artefacts)))
    # an account's artefacts of one kind share that kind's weight: six hundred templates are one kind of evidence,
    # not six hundred times one card
    same_kind = incidence.groupby(["account_id", "link_type"])["artefact"].transform("size").to_numpy()
    weights = artefact_weights(sizes, population)[artefact_codes] / same_kind
    shape = (len(accounts), len(artefacts))
    weighted = sparse.csr_matrix((weights, (rows, artefact_codes)), shape=shape)
    out_weight = np.asarray(weighted.sum(axis=1)).ravel()
    to_artefact = sparse.diags(np.divide(1.0, out_weight, out=np.zeros_like(out_weight), where=out_weight > 0))
    membership = sparse.csr_matrix((np.ones(len(rows)), (artefact_codes, rows)), shape=shape[::-1])
    members = np.asarray(membership.sum(axis=1)).ravel()
    to_member = sparse.diags(np.divide(1.0, members, out=np.zeros_like(members), where=members > 0))
    return accounts, artefact_codes, (to_artefact @ weighted) @ (to_member @ membership)


def _ppr(transition_t, seeds: np.ndarray, restart: float, iterations: int) -> np.ndarray:
    """Personalised PageRank mass, p = restart * seeds + (1 - restart) * T' p, by power iteration until it
    settles (seeds may be a vector or an accounts x k block)."""
    mass = restart * seeds
    for _ in range(iterations):
        updated = restart * seeds + (1.0 - restart) * (transition_t @ mass)
        settled = np.abs(updated - mass).max(initial=0.0) <= TOLERANCE
        mass = updated
        if settled:
            break
    return mass


def _self_mass(transition_t, seed_rows: np.ndarray, n: int, restart: float, iterations: int) -> np.ndarray:
    """For each seed account, the mass its own restart leaves on itself (the diagonal of the PPR matrix)."""
    own = np.zeros(len(seed_rows))
    for start in range(0, len(seed_rows), SEED_BLOCK):
        block = seed_rows[start : start + SEED_BLOCK]
        seeds = np.zeros((n, len(block)))
        seeds[block, np.arange(len(block))] = 1.0
        own[start : start + len(block)] = _ppr(transition_t, seeds, restart, iterations)[block, np.arange(len(block))]
    return own


def _masses(transition_t, accounts: pd.Index, seeds: pd.Index, restart: float, iterations: int) -> np.ndarray:
    rows = accounts.get_indexer(seeds)
    rows = rows[rows >= 0]
    vector = np.zeros(len(accounts))
    vector[rows] = 1.0
    mass = _ppr(transition_t, vector, restart, iterations)
    mass[rows] -= _self_mass(transition_t, rows, len(accounts), restart, iterations)
    return np.maximum(mass, 0.0)  # the subtraction's float error aside, mass is never negative


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _reasons(incidence: pd.DataFrame, decision: pd.Series) -> pd.Series:
    """account_id -> the sentence for its artefact with the most decided co-members (extraction first)."""
    labelled = incidence.assign(decision=incidence["account_id"].map(decision))
    per_artefact = labelled.groupby(["link_type", "artefact"]).agg(
        extraction=("decision", lambda d: int((d == EXTRACTION).sum())),
        benign=("decision", lambda d: int((d == BENIGN).sum())),
    )
    rows = labelled.join(per_artefact, on=["link_type", "artefact"])
    # the account's own decision is not evidence about itself
    rows["extraction"] -= (rows["decision"] == EXTRACTION).astype(int)
    rows["benign"] -= (rows["decision"] == BENIGN).astype(int)
    # ties broken by the artefact itself, so a rerun over the same graph writes the same sentence
    rows = rows.sort_values(
        ["extraction", "benign", "artefact_accounts", "link_type", "artefact"],
        ascending=[False, False, True, True, True],
        kind="stable",
    )
    best = rows.drop_duplicates("account_id").set_index("account_id")

    def sentence(row) -> str:
        one, _ = ARTEFACT_NOUNS.get(row.link_type, (row.link_type, row.link_type))
        others = int(row.artefact_accounts) - 1
        text = f"shares one {one} with {_count(others, 'other account', 'other accounts')}"
        if row.extraction == 0 and row.benign == 0:
            return text + ", none of them decided"
        return f"{text}, {row.extraction} of them decided extraction, {row.benign} benign"

    return best.apply(sentence, axis=1) if len(best) else pd.Series(dtype=object)


def propagation_scores(
    incidence: pd.DataFrame,
    decisions: pd.DataFrame,
    scoring_date: dt.date,
    *,
    accounts: Iterable[str] | None = None,
    population: int | None = None,
    restart: float = RESTART,
    iterations: int = ITERATIONS,
) -> pd.DataFrame:
    """One row per account: SCORE_COLUMNS (see the module docstring). `population` (N of the IDF weight) is the
    number of accounts active over the memory; it defaults to the graph's accounts."""
    missing = set(INCIDENCE_COLUMNS) - set(incidence.columns)
    if missing:
        raise ValueError(f"incidence lacks columns {sorted(missing)}; expected {list(INCIDENCE_COLUMNS)}")
    if not 0.0 < restart < 1.0:
        raise ValueError(f"restart must be in (0, 1), got {restart}")
    # the engine returns the graph's rows in any order; sorted, the sums run in one order and reruns agree bit for bit
    incidence = incidence.drop_duplicates(["account_id", "link_type", "artefact"]).sort_values(
        ["account_id", "link_type", "artefact"], kind="stable", ignore_index=True
    )
    decision = decisions_as_of(decisions, scoring_date)
    graph_accounts = pd.Index(sorted(incidence["account_id"].unique()))
    population = max(population or 0, len(graph_accounts))
    if len(graph_accounts):
        index, _, transition = _transition(incidence, population)
        transition_t = transition.T.tocsr()
        extraction = _masses(transition_t, index, decision.index[decision == EXTRACTION], restart, iterations)
        benign = _masses(transition_t, index, decision.index[decision == BENIGN], restart, iterations)
        scored = pd.DataFrame({"account_id": index, "extraction_mass": extraction, "benign_mass": benign})
        scored["reason"] = scored["account_id"].map(_reasons(incidence, decision))
    else:
        scored = pd.DataFrame(columns=["account_id", "extraction_mass", "benign_mass", "reason"])
    wanted = pd.Index(graph_accounts if accounts is None else pd.unique(pd.Series(list(accounts), dtype=object)))
    out = scored.set_index("account_id").reindex(wanted)
    out[["extraction_mass", "benign_mass"]] = out[["extraction_mass", "benign_mass"]].astype(float).fillna(0.0)
    out["reason"] = out["reason"].fillna("shares no linking artefact with another account")
    out["score"] = out["extraction_mass"] - out["benign_mass"]
    return out.rename_axis("account_id").reset_index()[list(SCORE_COLUMNS)]
