"""Peer-group novelty and switch detection: an account compared with accounts like it, and with its own past.

An automated evaluation harness is unusual among all accounts but ordinary among automated graders, so novelty
against everyone puts harnesses at the top of the queue. Here each account is compared only with its peers: the
accounts of the same program, client class (raw HTTP or SDK), network class (mostly hosting/proxy ASNs or not) and
main capability. A peer group smaller than MIN_PEERS falls back to a coarser one (dropping capability, then network,
then client, then program). Separately, an account that switches (an ordinary chat account turned harvester) is
compared with its own earlier days by a one-sided CUSUM on its extraction-like share.

Contract (for the fusion, models/ of the detect-model work): for a scoring date D,

    peer_scores(profiles, *, min_peers=MIN_PEERS) -> DataFrame account_id, score, peer_group, peers, reason
    switch_scores(daily, scoring_date, ...)        -> DataFrame account_id, score, reason

one row per account; higher `score` = more extraction-like (peer: the largest robust z-score, above the peers'
median, of PEER_MEASURES; switch: the CUSUM statistic, 0 when the account has too little past); `reason` is one
plain-language sentence. Inputs from the lake:
  daily     account_daily rows (DAILY_COLUMNS) of the HISTORY_DAYS up to D: at most accounts x HISTORY_DAYS rows
  accounts  the accounts table (account_id, program)
  profiles  account_profiles(daily, accounts, D): one row per account active in the PROFILE_DAYS up to D
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import pandas as pd

from features.signals import CAPABILITIES

DAILY_COLUMNS = (
    "account_id",
    "event_date",
    "requests",
    "input_tokens",
    "output_tokens",
    "extraction_like_requests",
    "repeated_template_requests",
    "raw_http_requests",
    "hosting_proxy_requests",
    *(f"{c}_requests" for c in CAPABILITIES),
)
PROFILE_DAYS = 7
HISTORY_DAYS = 28
MIN_PEERS = 20
PEER_KEYS = ("program", "client", "network", "capability")  # dropped from the right while a group is too small
# measure -> (how it reads in a reason, the smallest spread a peer group is given: a group whose members all share
# a value would otherwise make any difference infinitely novel)
PEER_MEASURES = {
    "extraction_like_share": ("extraction-like share", 0.02),
    "log_requests_per_day": ("log requests per day", 0.25),
    "log_output_per_input": ("log output tokens per input token", 0.1),
    "template_repeat_share": ("repeated-template share", 0.02),
}
# CUSUM: the baseline is the account's days before the last SWITCH_RECENT_DAYS, of which it needs MIN_BASELINE_DAYS
# active ones; allowance k (in baseline standard deviations) and the smallest standard deviation allowed
SWITCH_RECENT_DAYS = 7
MIN_BASELINE_DAYS = 3
CUSUM_ALLOWANCE = 0.5
MIN_SHARE_SD = 0.05


def _share(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    return (numerator / denominator.where(denominator > 0)).fillna(0.0)


def account_profiles(
    daily: pd.DataFrame, accounts: pd.DataFrame, scoring_date: dt.date, days: int = PROFILE_DAYS
) -> pd.DataFrame:
    """Per account active in the `days` up to scoring_date: its peer keys (PEER_KEYS) and PEER_MEASURES."""
    missing = set(DAILY_COLUMNS) - set(daily.columns)
    if missing:
        raise ValueError(f"daily rows lack columns {sorted(missing)}")
    dates = pd.to_datetime(daily["event_date"]).dt.date
    first = scoring_date - dt.timedelta(days=days - 1)
    window = daily[(dates >= first) & (dates <= scoring_date)]
    totals = window.groupby("account_id")[list(DAILY_COLUMNS[2:])].sum()
    totals = totals[totals["requests"] > 0]
    requests = totals["requests"]
    capability = totals[[f"{c}_requests" for c in CAPABILITIES]].idxmax(axis=1).str.removesuffix("_requests")
    program = accounts.drop_duplicates("account_id").set_index("account_id")["program"]
    profiles = pd.DataFrame(
        {
            "program": program.reindex(totals.index).fillna("unknown"),
            "client": np.where(_share(totals["raw_http_requests"], requests) >= 0.5, "raw HTTP client", "SDK client"),
            "network": np.where(
                _share(totals["hosting_proxy_requests"], requests) >= 0.5, "hosting/proxy ASNs", "other ASNs"
            ),
            "capability": capability.where(totals[[f"{c}_requests" for c in CAPABILITIES]].sum(axis=1) > 0, "none"),
            "extraction_like_share": _share(totals["extraction_like_requests"], requests),
            "log_requests_per_day": np.log1p(requests / days),
            "log_output_per_input": np.log1p(totals["output_tokens"]) - np.log1p(totals["input_tokens"]),
            "template_repeat_share": _share(totals["repeated_template_requests"], requests),
        },
        index=totals.index,
    )
    return profiles.rename_axis("account_id").reset_index()


def _group_statistics(values: pd.Series, label: pd.Series, reference: pd.Series, floor: float):
    """Per account, the median and floored scale (1.4826 MAD) of `values` over the reference accounts of its
    label."""
    ref_values, ref_label = values[reference], label[reference]
    median = ref_values.groupby(ref_label).median()
    mad = (ref_values - ref_label.map(median)).abs().groupby(ref_label).median()
    return label.map(median), np.maximum(1.4826 * label.map(mad), floor)


def _peer_statistics(profiles: pd.DataFrame, reference: pd.Series, min_peers: int):
    """Each account's peer group (the finest prefix of PEER_KEYS whose group holds at least min_peers reference
    accounts; else all accounts), the reference accounts in it, and their median and floored scale of every
    PEER_MEASURE."""
    everyone = pd.Series("all accounts", index=profiles.index)
    group, size = everyone.copy(), pd.Series(int(reference.sum()), index=profiles.index)
    medians, scales = pd.DataFrame(index=profiles.index), pd.DataFrame(index=profiles.index)
    for measure, (_, floor) in PEER_MEASURES.items():
        medians[measure], scales[measure] = _group_statistics(profiles[measure], everyone, reference, floor)
    assigned = pd.Series(False, index=profiles.index)
    for depth in range(len(PEER_KEYS), 0, -1):
        keys = [profiles[key].astype(str) for key in PEER_KEYS[:depth]]
        label = keys[0].str.cat(keys[1:], sep=", ") if len(keys) > 1 else keys[0]
        members = label.map(label[reference].value_counts()).fillna(0).astype(int)
        take = ~assigned & (members >= min_peers)
        if not take.any():
            continue
        group[take], size[take] = label[take], members[take]
        for measure, (_, floor) in PEER_MEASURES.items():
            median, scale = _group_statistics(profiles[measure], label, reference, floor)
            medians.loc[take, measure], scales.loc[take, measure] = median[take], scale[take]
        assigned |= take
    return group, size, medians, scales


def peer_scores(
    profiles: pd.DataFrame, *, reference: Iterable[str] | None = None, min_peers: int = MIN_PEERS
) -> pd.DataFrame:
    """account_id, score, peer_group, peers, reason: the largest robust z-score (median and MAD of the peer group,
    the MAD floored per measure) by which the account exceeds its peers on PEER_MEASURES.

    `reference` names the accounts whose behaviour defines "ordinary" (default: every account). A campaign of
    hundreds of accounts is otherwise its own peer group; a fusion that holds a clean benign reference can pass
    it here. The families job passes none.
    """
    if min_peers < 2:
        raise ValueError(f"min_peers must be >= 2, got {min_peers}")
    profiles = profiles.reset_index(drop=True)
    in_reference = (
        pd.Series(True, index=profiles.index) if reference is None else profiles["account_id"].isin(set(reference))
    )
    groups, size, medians, scales = _peer_statistics(profiles, in_reference, min_peers)
    peers = size - in_reference.astype(int)  # reference accounts of its group other than itself
    z = (profiles[list(PEER_MEASURES)] - medians) / scales
    top = z.idxmax(axis=1)
    score = z.max(axis=1).clip(lower=0.0)

    def reason(i: int) -> str:
        if score[i] <= 0:
            return f"ordinary among {peers[i]} peers ({groups[i]})"
        measure = top[i]
        text, _ = PEER_MEASURES[measure]
        return (
            f"{text} {profiles.at[i, measure]:.2f} against a median of {medians.at[i, measure]:.2f} among "
            f"{peers[i]} peers ({groups[i]})"
        )

    return pd.DataFrame(
        {
            "account_id": profiles["account_id"],
            "score": score,
            "peer_group": groups,
            "peers": peers,
            "reason": [reason(i) for i in profiles.index],
        }
    )


def cusum_rows(shares: np.ndarray, baseline_mean: np.ndarray, baseline_sd: np.ndarray) -> np.ndarray:
    """Per row of an accounts x days matrix (NaN = no active day there, skipped), the largest one-sided CUSUM
    S_t = max(0, S_(t-1) + (x_t - mean) / sd - CUSUM_ALLOWANCE) over the row, against that row's mean and sd."""
    statistic = np.zeros(len(shares))
    peak = np.zeros(len(shares))
    with np.errstate(invalid="ignore"):
        for day in shares.T:
            moved = np.maximum(0.0, statistic + (day - baseline_mean) / baseline_sd - CUSUM_ALLOWANCE)
            statistic = np.where(np.isnan(day), statistic, np.nan_to_num(moved))
            peak = np.maximum(peak, statistic)
    return peak


def switch_scores(
    daily: pd.DataFrame,
    scoring_date: dt.date,
    *,
    recent_days: int = SWITCH_RECENT_DAYS,
    history_days: int = HISTORY_DAYS,
) -> pd.DataFrame:
    """account_id, score, reason for every account active in the recent_days up to scoring_date: the CUSUM of its
    daily extraction-like share over those days against its own earlier active days (request-weighted mean,
    standard deviation of the daily shares, at least MIN_SHARE_SD). Too little past scores 0."""
    if not 0 < recent_days < history_days:
        raise ValueError(f"need 0 < recent_days < history_days, got {recent_days} and {history_days}")
    dates = pd.to_datetime(daily["event_date"]).dt.date
    first = scoring_date - dt.timedelta(days=history_days - 1)
    recent_first = scoring_date - dt.timedelta(days=recent_days - 1)
    rows = daily[(dates >= first) & (dates <= scoring_date) & (daily["requests"] > 0)].assign(event_day=dates)
    rows = rows.assign(share=rows["extraction_like_requests"] / rows["requests"])
    is_recent = rows["event_day"] >= recent_first
    recent, past = rows[is_recent].sort_values(["account_id", "event_day"]), rows[~is_recent]
    sums = ["extraction_like_requests", "requests"]
    now = recent.groupby("account_id", sort=True)[sums].sum().assign(days=recent.groupby("account_id").size())
    before = (
        past.groupby("account_id")[sums]
        .sum()
        .assign(days=past.groupby("account_id").size(), sd=past.groupby("account_id")["share"].std(ddof=0))
    )
    before = before.reindex(now.index)
    past_days = before["days"].fillna(0).astype(int).to_numpy()
    mean = (before["extraction_like_requests"] / before["requests"]).to_numpy()
    sd = np.maximum(before["sd"].fillna(0.0).to_numpy(), MIN_SHARE_SD)
    # the recent days as an accounts x days matrix (in day order, gaps skipped), so the CUSUM runs over columns
    position = recent.groupby("account_id").cumcount().to_numpy()
    matrix = np.full((len(now), max(recent_days, 1)), np.nan)
    matrix[now.index.get_indexer(recent["account_id"]), position] = recent["share"].to_numpy()
    score = cusum_rows(matrix, mean, sd)
    enough = past_days >= MIN_BASELINE_DAYS
    recent_share = (now["extraction_like_requests"] / now["requests"]).to_numpy()
    reasons = [
        f"extraction-like share {share:.2f} over its last {days} active days against {base:.2f} over its {n} earlier ones"
        if ok
        else f"too little history to compare with its own past ({n} earlier days)"
        for share, days, base, n, ok in zip(recent_share, now["days"], mean, past_days, enough)
    ]
    return pd.DataFrame({"account_id": now.index, "score": np.where(enough, score, 0.0), "reason": reasons})
