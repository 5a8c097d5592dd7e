"""Peer-group novelty and switch detection on hand-built accounts with known answers."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from models import peer_novelty

D = dt.date(2026, 3, 1)


def _day(account: str, days_before: int, requests: int, extraction_like: int = 0, **counts) -> dict:
    row = {column: 0 for column in peer_novelty.DAILY_COLUMNS}
    row.update(
        account_id=account,
        event_date=D - dt.timedelta(days=days_before),
        requests=requests,
        extraction_like_requests=extraction_like,
        **counts,
    )
    return row


def test_profiles_read_peer_keys_and_measures_from_the_window():
    daily = pd.DataFrame(
        [
            _day("a", 0, 10, 4, raw_http_requests=10, hosting_proxy_requests=2, reasoning_requests=7, chat_requests=3),
            _day("a", 6, 10, 6, raw_http_requests=10, reasoning_requests=10, input_tokens=99, output_tokens=999),
            _day("a", 7, 50, 50, chat_requests=50),  # before the window
            _day("b", 1, 4, chat_requests=4, hosting_proxy_requests=4, repeated_template_requests=1),
        ]
    )
    accounts = pd.DataFrame({"account_id": ["a", "b"], "program": ["startup", None]})
    profiles = peer_novelty.account_profiles(daily, accounts, D).set_index("account_id")
    a, b = profiles.loc["a"], profiles.loc["b"]
    assert (a.program, a.client, a.network, a.capability) == ("startup", "raw HTTP client", "other ASNs", "reasoning")
    assert (b.program, b.client, b.network, b.capability) == ("unknown", "SDK client", "hosting/proxy ASNs", "chat")
    assert a.extraction_like_share == pytest.approx(0.5) and b.template_repeat_share == pytest.approx(0.25)
    assert a.log_output_per_input == pytest.approx(2.302585, rel=1e-5)  # log(1000 / 100)


def _profile(account: str, share: float, client: str, network: str, capability: str, program="standard") -> dict:
    return dict(
        account_id=account,
        program=program,
        client=client,
        network=network,
        capability=capability,
        extraction_like_share=share,
        log_requests_per_day=3.0,
        log_output_per_input=0.5,
        template_repeat_share=0.1,
    )


def test_a_harness_is_ordinary_among_graders_and_a_chat_account_grading_is_not():
    graders = [_profile(f"g{i}", 0.9, "raw HTTP client", "hosting/proxy ASNs", "reasoning") for i in range(20)]
    chatters = [_profile(f"c{i}", 0.0, "SDK client", "other ASNs", "chat") for i in range(20)]
    harness = _profile("harness", 0.92, "raw HTTP client", "hosting/proxy ASNs", "reasoning")
    switched = _profile("switched", 0.9, "SDK client", "other ASNs", "chat")
    scores = peer_novelty.peer_scores(pd.DataFrame([*graders, *chatters, harness, switched])).set_index("account_id")
    # graders' median 0.9 with no spread: the harness is (0.92 - 0.9) / floor 0.02 = 1 scale above
    assert scores.loc["harness", "score"] == pytest.approx(1.0)
    assert scores.loc["harness", "peers"] == 20
    # among chat accounts (median 0, no spread) a 0.9 extraction-like share is 0.9 / 0.02 = 45 scales above
    assert scores.loc["switched", "score"] == pytest.approx(45.0)
    assert scores.loc["switched", "reason"] == (
        "extraction-like share 0.90 against a median of 0.00 among 20 peers (standard, SDK client, other ASNs, chat)"
    )
    assert scores.loc["g3", "score"] == 0.0 and scores.loc["g3", "reason"].startswith("ordinary among 20 peers")


def test_a_fleet_is_not_its_own_yardstick_when_a_reference_is_given():
    # thirty linked accounts behave alike among twenty ordinary ones: against everyone they set the median
    chatters = [_profile(f"c{i}", 0.0, "SDK client", "other ASNs", "chat") for i in range(20)]
    fleet = [_profile(f"f{i}", 0.9, "SDK client", "other ASNs", "chat") for i in range(30)]
    profiles = pd.DataFrame([*chatters, *fleet])
    alone = peer_novelty.peer_scores(profiles).set_index("account_id")
    assert alone.loc["f0", "score"] == 0.0
    against = peer_novelty.peer_scores(profiles, reference=[f"c{i}" for i in range(20)]).set_index("account_id")
    assert against.loc["f0", "score"] == pytest.approx(0.9 / 0.02)
    assert against.loc["f0", "peers"] == 20 and against.loc["c0", "peers"] == 19


def test_small_groups_fall_back_to_coarser_peers():
    # three SDK vision accounts are too few for a group of their own: they join every SDK account on other ASNs
    chatters = [_profile(f"c{i}", 0.0, "SDK client", "other ASNs", "chat") for i in range(20)]
    vision = [_profile(f"v{i}", 0.1, "SDK client", "other ASNs", "vision") for i in range(3)]
    scores = peer_novelty.peer_scores(pd.DataFrame([*chatters, *vision]), min_peers=20).set_index("account_id")
    assert scores.loc["v0", "peer_group"] == "standard, SDK client, other ASNs"
    assert scores.loc["v0", "peers"] == 22
    assert scores.loc["c0", "peer_group"] == "standard, SDK client, other ASNs, chat"
    assert scores.loc["v0", "score"] == pytest.approx(0.1 / 0.02)


def test_cusum_finds_an_account_that_switched():
    daily = pd.DataFrame(
        [
            *(_day("switch", d, 10, 0) for d in (20, 15, 10)),  # clean past
            _day("switch", 3, 10, 5),
            _day("switch", 0, 10, 10),
            *(_day("steady", d, 10, 5) for d in (20, 15, 10, 3, 0)),
            _day("young", 8, 10, 0),
            _day("young", 9, 10, 0),
            _day("young", 1, 10, 10),
            _day("gone", 12, 10, 10),  # no recent activity: no row
        ]
    )
    scores = peer_novelty.switch_scores(daily, D).set_index("account_id")
    assert set(scores.index) == {"switch", "steady", "young"}
    # baseline mean 0, sd floored at 0.05: S = 0.5/0.05 - 0.5 = 9.5, then 9.5 + 1.0/0.05 - 0.5 = 29
    assert scores.loc["switch", "score"] == pytest.approx(29.0)
    assert scores.loc["switch", "reason"] == (
        "extraction-like share 0.75 over its last 2 active days against 0.00 over its 3 earlier ones"
    )
    assert scores.loc["steady", "score"] == 0.0
    assert scores.loc["young", "score"] == 0.0 and "too little history" in scores.loc["young", "reason"]


def test_bad_windows_are_refused():
    with pytest.raises(ValueError, match="recent_days"):
        peer_novelty.switch_scores(pd.DataFrame([_day("a", 0, 1)]), D, recent_days=30, history_days=28)
    with pytest.raises(ValueError, match="lack columns"):
        peer_novelty.account_profiles(pd.DataFrame({"account_id": ["a"]}), pd.DataFrame(), D)
