"""Campaign matching (models/campaigns.py): known answers on three-account cases, one per event."""

from __future__ import annotations

import datetime as dt

import pytest

from models.campaigns import (
    CONTINUED,
    MERGED,
    NEW,
    SPLIT,
    PreviousCampaign,
    match_clusters,
    new_campaign_id,
    open_campaigns,
    summarise,
)

D1, D2 = dt.date(2026, 10, 1), dt.date(2026, 10, 2)


def _previous(**campaigns: set[str]) -> list[PreviousCampaign]:
    return [PreviousCampaign(cid, frozenset(members), D1) for cid, members in campaigns.items()]


def _by_cluster(assignments):
    return {a.cluster_id: a for a in assignments}


def test_a_cluster_that_keeps_most_members_keeps_the_campaign_id():
    # {a,b,c} -> {a,b,d}: Jaccard 2/4 = 0.5 >= 0.3
    [kept] = match_clusters(_previous(cmpA={"a", "b", "c"}), {"k1": {"a", "b", "d"}}, D2, threshold=0.3)
    assert (kept.campaign_id, kept.event, kept.jaccard, kept.related) == ("cmpA", CONTINUED, 0.5, ())


def test_below_the_threshold_without_a_majority_is_a_new_campaign_with_a_stable_id():
    # {a,b,c} -> {c,d,e}: Jaccard 1/5 = 0.2 < 0.3, and only 1 of 3 members came from cmpA
    [fresh] = match_clusters(_previous(cmpA={"a", "b", "c"}), {"k1": {"c", "d", "e"}}, D2, threshold=0.3)
    assert fresh.event == NEW and fresh.jaccard is None
    assert fresh.campaign_id == new_campaign_id(D2, ["c", "d", "e"]) != new_campaign_id(D1, ["c", "d", "e"])
    again = match_clusters(_previous(cmpA={"a", "b", "c"}), {"k1": {"c", "d", "e"}}, D2, threshold=0.3)
    assert again[0].campaign_id == fresh.campaign_id  # a rerun writes the same id


def test_a_split_keeps_the_id_on_the_larger_part_and_records_the_other_as_split_from_it():
    # {a,b,c,d,e,f} -> {a,b,c,d} (J 0.67) + {e,f,g} (2 of 3 from cmpA: majority, but cmpA is taken)
    result = _by_cluster(
        match_clusters(
            _previous(cmpA={"a", "b", "c", "d", "e", "f"}), {"big": {"a", "b", "c", "d"}, "part": {"e", "f", "g"}}, D2
        )
    )
    assert (result["big"].campaign_id, result["big"].event) == ("cmpA", CONTINUED)
    assert (result["part"].event, result["part"].related) == (SPLIT, ("cmpA",))
    assert result["part"].campaign_id.startswith("cmp-")


def test_a_merge_keeps_the_stronger_id_and_records_the_absorbed_campaign():
    # cmpA {a,b,c} and cmpB {d,e} -> one cluster {a,b,c,d,e}: J(A) 0.6 wins, B (all members there) is merged
    [merged] = match_clusters(_previous(cmpA={"a", "b", "c"}, cmpB={"d", "e"}), {"k": {"a", "b", "c", "d", "e"}}, D2)
    assert (merged.campaign_id, merged.event, merged.related) == ("cmpA", MERGED, ("cmpB",))


def test_a_shrunken_campaign_keeps_its_id_through_the_majority_rule():
    # {a,b,c,d,e,f,g,h,i,j} -> {a,b,c}: Jaccard 0.3 < 0.5, but every member came from cmpA and nothing else took it
    [kept] = match_clusters(_previous(cmpA=set("abcdefghij")), {"k": {"a", "b", "c"}}, D2, threshold=0.5)
    assert (kept.campaign_id, kept.event) == ("cmpA", CONTINUED)


def test_open_campaigns_skip_merged_and_expired_ones_and_take_the_latest_members():
    rows = [
        {"day": D1, "campaign_id": "cmpA", "members": ["a", "b"], "event": NEW, "related": []},
        {"day": D2, "campaign_id": "cmpA", "members": ["a", "b", "c"], "event": MERGED, "related": ["cmpB"]},
        {"day": D1, "campaign_id": "cmpB", "members": ["c"], "event": NEW, "related": []},
        {"day": D1 - dt.timedelta(days=30), "campaign_id": "cmpOld", "members": ["z"], "event": NEW, "related": []},
    ]
    [only] = open_campaigns(rows, D2 + dt.timedelta(days=1), lookback_days=7)
    assert (only.campaign_id, only.members, only.last_seen) == ("cmpA", frozenset("abc"), D2)


def test_threshold_out_of_range_is_refused():
    with pytest.raises(ValueError, match="threshold"):
        match_clusters([], {}, D2, threshold=0)


def _day(day, campaign, members, requests, newest_model, on_newest, event=CONTINUED, related=(), extraction=0):
    return {
        "day": day,
        "campaign_id": campaign,
        "event": event,
        "related": list(related),
        "members": list(members),
        "n_members": len(members),
        "requests": requests,
        "capability_requests": [{"capability": "coding", "requests": requests}],
        "newest_model": newest_model,
        "newest_model_requests": on_newest,
        "extraction_decided": extraction,
        "benign_decided": 0,
    }


def test_summary_finds_the_model_pivot_day_the_merge_and_the_decided_share():
    d3 = D2 + dt.timedelta(days=1)
    rows = [
        _day(D1, "cmpA", "ab", 100, "m1", 90, event=NEW),
        _day(D2, "cmpA", "abc", 120, "m2", 10),  # m2 released: still on m1
        _day(d3, "cmpA", "abcd", 200, "m2", 150, event=MERGED, related=["cmpB"], extraction=1),  # pivot
        _day(D1, "cmpB", "d", 5, "m1", 5, event=NEW),
    ]
    summary = {row["campaign_id"]: row for row in summarise(rows, d3, lookback_days=7)}
    a, b = summary["cmpA"], summary["cmpB"]
    assert (a["status"], a["first_seen"], a["last_seen"], a["days_seen"]) == ("active", D1, d3, 3)
    assert (a["model_pivot_day"], a["pivot_model"]) == (d3, "m2")
    assert (a["members_now"], a["members_ever"], a["peak_members"], a["requests"]) == (4, 4, 4, 420)
    assert a["decided_share"] == 0.25
    assert [p["members"] for p in a["member_counts"]] == [2, 3, 4]
    assert (b["status"], b["merged_into"], b["model_pivot_day"]) == ("merged", "cmpA", None)


# --- the job on a real lake: Delta tables in, Delta tables out -------------------------------------------------


def _write_day(settings, day, clusters: dict[str, list[str]], requests: int = 10):
    import pyarrow as pa

    from lake import catalog

    members = [(cid, a) for cid, accounts in clusters.items() for a in accounts]
    schema = catalog.table("account_clusters").schema
    rows = [{"feature_date": day, "account_id": a, "cluster_id": cid, "link_types": ["payment"]} for cid, a in members]
    catalog.write_arrow(settings, "account_clusters", pa.Table.from_pylist(rows, schema=schema), partition_value=day)
    daily = [
        {"account_id": a, "event_date": day, "requests": requests, "coding_requests": requests, "newest_model": "m1"}
        for _, a in members
    ]
    from features import registry  # noqa: F401  (declares account_daily)

    decl = catalog.table("account_daily")
    table = pa.table({f.name: pa.array([r.get(f.name) for r in daily], f.type) for f in decl.schema})
    catalog.write_arrow(settings, "account_daily", table, partition_value=day)


def test_the_job_keeps_a_campaign_id_when_the_cluster_id_changes_and_reruns_identically(settings):
    from jobs import campaigns as job
    from lake import catalog

    d3 = D2 + dt.timedelta(days=1)
    _write_day(settings, D1, {"cl-a": ["a", "b", "c", "d"]})
    _write_day(settings, D2, {"cl-b": ["b", "c", "d", "e"]})  # "a" left: the cluster id changes
    _write_day(settings, d3, {"cl-b": ["b", "c"], "cl-x": ["x", "y"]})
    for day in (D1, D2, d3):
        job.run(None, settings, day)
    days = catalog.read_arrow(settings, "campaign_days").to_pandas().sort_values(["day", "cluster_id"])
    first = days.iloc[0]["campaign_id"]
    assert list(days["campaign_id"][:3]) == [first, first, first]
    assert list(days["event"]) == [NEW, CONTINUED, CONTINUED, NEW]
    assert list(days["requests"]) == [40, 40, 20, 20]
    again = job.run(None, settings, d3)
    assert [r["campaign_id"] for r in again] == list(days["campaign_id"][2:])
    summary = catalog.read_arrow(settings, "campaigns", filters=[("as_of", "=", d3)]).to_pylist()
    kept = next(r for r in summary if r["campaign_id"] == first)
    assert (kept["first_seen"], kept["last_seen"], kept["members_ever"], kept["members_now"]) == (D1, d3, 5, 2)


def test_risk_campaign_prints_the_history_in_every_format(settings, capsys, monkeypatch):
    import csv
    import io
    import json

    from jobs import campaigns as job
    from jobs.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    _write_day(settings, D1, {"cl-a": ["a", "b", "c"]})
    _write_day(settings, D2, {"cl-a": ["a", "b", "c", "d"]}, requests=5)
    [first] = job.run(None, settings, D1)
    job.run(None, settings, D2)
    lake = ["--lake", settings.lake_root]
    campaign_id = first["campaign_id"]
    assert main([*lake, "risk", "campaign", campaign_id]) == 0
    out = capsys.readouterr().out
    assert f"campaign {campaign_id} as of 2026-10-02: active; seen 2026-10-01 .. 2026-10-02 (2 days)" in out
    assert "4 members now, 4 ever, peak 4; 50 requests (coding 50)" in out
    assert "d (undecided)" in out
    assert "evidence on 2026-10-02: 4 members: 0 already decided as extraction, 0 as benign, 4 undecided" in out
    assert main([*lake, "risk", "campaign", campaign_id, "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [d["event"] for d in document["days"]] == ["new", "continued"]
    assert document["campaign"]["member_counts"][1] == {"day": "2026-10-02", "members": 4, "requests": 20}
    assert main([*lake, "risk", "campaign", campaign_id, "--format", "csv", "--date", "2026-10-01"]) == 0
    [row] = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert (row["day"], row["joined"], row["n_members"]) == ("2026-10-01", "3", "3")
    assert main([*lake, "risk", "campaign", "cmp-nope"]) == 4
    assert "no campaign 'cmp-nope'" in capsys.readouterr().err


def test_review_decide_labels_every_member_of_a_campaign(settings, capsys):
    import json

    from jobs import campaigns as job
    from jobs.cli import main
    from lake import catalog

    _write_day(settings, D1, {"cl-a": ["a", "b", "c"]})
    [row] = job.run(None, settings, D1)
    argv = ["--lake", settings.lake_root, "review", "decide", "--campaign", row["campaign_id"]]
    assert main([*argv, "--label", "extraction", "--note", "one operator", "--analyst", "bob"]) == 0
    receipt = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert receipt["accounts"] == ["a", "b", "c"]
    labels = catalog.read_arrow(settings, "enforcement_labels").to_pylist()
    assert {(r["account_id"], r["campaign_id"]) for r in labels} == {(a, row["campaign_id"]) for a in "abc"}


def test_the_job_refuses_a_day_that_was_not_aggregated_or_clustered(settings):
    from jobs import campaigns as job
    from lake.errors import MissingInputError

    with pytest.raises(MissingInputError, match="run `distillguard aggregate --date 2026-10-01` first"):
        job.run(None, settings, D1)
