"""Account link graph and connected components on tiny hand-built frames with known answers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from features import spark_clusters
from jobs import cluster
from lake import catalog

D = dt.date(2026, 2, 10)
UTC = dt.UTC
CREATED = dt.datetime(2026, 1, 1, tzinfo=UTC)


def _arrow(table_name: str, rows: list[dict]) -> pa.Table:
    """A table with the catalog schema; columns a row does not mention are null."""
    schema = catalog.table(table_name).schema
    return pa.Table.from_pylist([{name: row.get(name) for name in schema.names} for row in rows], schema=schema)


def _account(account_id: str, payment: str | None, created_at: dt.datetime = CREATED) -> dict:
    return {"account_id": account_id, "payment_fingerprint": payment, "created_at": created_at}


def _day(account_id: str, prefixes: list[str], event_date: dt.date = D) -> dict:
    return {"account_id": account_id, "event_date": event_date, "ip_prefixes": prefixes, "requests": 10}


def _frames(spark, accounts: list[dict], daily: list[dict]):
    def frame(name, rows):
        return spark.createDataFrame(_arrow(name, rows).to_pandas(), schema=catalog.spark_ddl(name))

    return frame("accounts", accounts), frame("account_daily", daily)


def _edges(frame) -> set[tuple[str, str, str]]:
    return {(r.src, r.dst, r.link_type) for r in frame.collect()}


def _prefixes(stem: str) -> list[str]:
    """As many prefixes as the cluster graph needs shared artefacts to link two accounts."""
    return [f"{stem}{i}" for i in range(spark_clusters.MIN_LINK_STRENGTH)]


# a-b share a payment method: linked. b-c share one IP prefix only: a coincidence, no link. d shares nothing.
# m1..m3 share MIN_LINK_STRENGTH prefixes, each used by exactly the cap (3): linked. n1..n4 share as many
# prefixes, each used by more accounts than the cap: shared infrastructure, no link. late shares a's payment but
# was created after D; idle shares a's payment but was only active before the window.
ACCOUNTS = [
    _account("a", "pay-1"),
    _account("b", "pay-1"),
    _account("c", "pay-2"),
    _account("d", "pay-3"),
    *(_account(f"n{i}", f"pay-n{i}") for i in range(1, 5)),
    *(_account(f"m{i}", f"pay-m{i}") for i in range(1, 4)),
    _account("late", "pay-1", created_at=dt.datetime(2026, 2, 11, 0, 0, 1, tzinfo=UTC)),
    _account("idle", "pay-1"),
]
DAILY = [
    _day("a", ["p-a"]),
    _day("b", ["p-bc", "p-b"], D - dt.timedelta(days=6)),
    _day("c", ["p-bc"]),
    _day("d", ["p-d"]),
    *(_day(f"n{i}", _prefixes("p-crowd")) for i in range(1, 5)),
    *(_day(f"m{i}", _prefixes("p-small")) for i in range(1, 4)),
    _day("late", ["p-late"]),
    _day("idle", ["p-a"], D - dt.timedelta(days=7)),
]


@pytest.fixture()
def graph(spark):
    return _frames(spark, ACCOUNTS, DAILY)


def _groups(members) -> dict[str, set[str]]:
    groups: dict[str, set[str]] = {}
    for row in members.collect():
        groups.setdefault(row.item, set()).add(row.account_id)
    return groups


def test_window_is_the_trailing_seven_days(graph):
    _, daily = graph
    window = spark_clusters.window_activity(daily, D)
    assert {r.account_id for r in window.select("account_id").collect()} == {
        "a",
        "b",
        "c",
        "d",
        "n1",
        "n2",
        "n3",
        "n4",
        "m1",
        "m2",
        "m3",
        "late",
    }


def test_payment_groups_hold_accounts_active_and_created_by_the_date(graph):
    accounts, daily = graph
    members = spark_clusters.payment_members(accounts, spark_clusters.window_activity(daily, D), D)
    assert _groups(members)["pay-1"] == {"a", "b"}


def test_ip_prefix_groups_skip_crowded_prefixes(graph):
    _, daily = graph
    groups = _groups(
        spark_clusters.ip_prefix_members(spark_clusters.window_activity(daily, D), max_accounts_per_prefix=3)
    )
    assert groups == {"p-bc": {"b", "c"}, **{p: {"m1", "m2", "m3"} for p in _prefixes("p-small")}}


def test_crowded_prefix_counts_under_a_larger_cap(graph):
    _, daily = graph
    groups = _groups(
        spark_clusters.ip_prefix_members(spark_clusters.window_activity(daily, D), max_accounts_per_prefix=4)
    )
    assert groups["p-crowd0"] == {"n1", "n2", "n3", "n4"}


def test_pair_evidence_counts_what_two_accounts_share(graph):
    accounts, daily = graph
    edges = spark_clusters.link_edges(accounts, daily, D, max_accounts_per_prefix=3)
    links = {(r.src, r.dst): (r.strength, r.shared_payment_methods, r.shared_ip_prefixes) for r in edges.collect()}
    strength = spark_clusters.MIN_LINK_STRENGTH
    assert links == {
        ("a", "b"): (spark_clusters.PAYMENT_STRENGTH, 1, 0),
        ("m1", "m2"): (strength, 0, strength),
        ("m1", "m3"): (strength, 0, strength),
        ("m2", "m3"): (strength, 0, strength),
    }


def test_a_large_payment_group_is_linked_as_a_bounded_ring(spark):
    size = spark_clusters.PAIR_GROUP_LIMIT + 10
    members = spark.createDataFrame(
        [(f"r{i:03d}", "pool", "payment") for i in range(size)], "account_id string, item string, link_type string"
    )
    pairs = spark_clusters.artefact_pairs(members).collect()
    assert len(pairs) == size * spark_clusters.RING_NEIGHBOURS  # linear in the group, not size * (size - 1) / 2
    assert all(p.src < p.dst for p in pairs)
    degree: dict[str, int] = {}
    for p in pairs:
        degree[p.src] = degree.get(p.src, 0) + 1
        degree[p.dst] = degree.get(p.dst, 0) + 1
    assert set(degree.values()) == {2 * spark_clusters.RING_NEIGHBOURS}


def test_only_mutually_strongest_links_are_kept(spark):
    # x is linked to y1..y3 (y3 weakest); each y's only candidate is x. With two links kept per account, x keeps
    # y1 and y2, so x-y3 is kept by y3 alone: not mutual, dropped. w1-w2 is below the strength threshold.
    columns = (
        "src string, dst string, shared_payment_methods long, shared_ip_prefixes long, "
        "shared_templates long, synchronised_bands long, strength double"
    )
    evidence = spark.createDataFrame(
        [
            ("x", "y1", 1, 0, 0, 0, 10.0),
            ("x", "y2", 0, 4, 12, 0, 8.0),
            ("x", "y3", 0, 5, 0, 0, 5.0),
            ("w1", "w2", 0, 2, 3, 0, 3.0),
        ],
        columns,
    )
    kept = spark_clusters.cluster_links(evidence, min_strength=4, keep_strongest=2)
    assert {(r.src, r.dst) for r in kept.collect()} == {("x", "y1"), ("x", "y2")}


def _scratch(spark, tmp_path: Path):
    return cluster.delta_scratch_materializer(spark, str(tmp_path / "scratch"))


def _cluster_rows(spark, tmp_path, accounts, daily, **options):
    edges = spark_clusters.link_edges(accounts, daily, D, **options)
    components = spark_clusters.connected_components(edges, _scratch(spark, tmp_path))
    rows = spark_clusters.account_clusters(components, spark_clusters.account_link_evidence(edges), D)
    return {r.account_id: (r.cluster_id, tuple(r.link_types), r.feature_date) for r in rows.collect()}


def test_components_join_linked_accounts(spark, graph, tmp_path):
    accounts, daily = graph
    rows = _cluster_rows(spark, tmp_path, accounts, daily, max_accounts_per_prefix=3)

    assert set(rows) == {"a", "b", "m1", "m2", "m3"}  # c shares one prefix only; d, n*, late, idle nothing
    assert rows["a"][0] == rows["b"][0]
    assert rows["m1"][0] == rows["m2"][0] == rows["m3"][0] != rows["a"][0]
    assert rows["a"][1] == rows["b"][1] == ("payment",)
    assert rows["m2"][1] == ("ip_prefix",)
    assert all(feature_date == D for _, _, feature_date in rows.values())


@pytest.mark.slow
def test_cluster_id_is_derived_from_the_smallest_member(spark, graph, tmp_path):
    import hashlib

    accounts, daily = graph
    rows = _cluster_rows(spark, tmp_path, accounts, daily, max_accounts_per_prefix=3)
    assert rows["b"][0] == "c-" + hashlib.sha256(b"a").hexdigest()[:12]
    assert rows["m3"][0] == "c-" + hashlib.sha256(b"m1").hexdigest()[:12]


def _chain(spark, length: int):
    """Accounts z00 <- ... <- zNN linked pairwise through prefixes of their own; the smallest id is at one end, so
    its label has to travel the whole chain."""
    ids = [f"z{i:02d}" for i in range(length)]
    daily = [_day(account, _prefixes(f"p{i}-") + _prefixes(f"p{i + 1}-")) for i, account in enumerate(ids)]
    return _frames(spark, [_account(a, None) for a in ids], daily), ids


@pytest.mark.slow
def test_long_chain_converges_to_one_component(spark, tmp_path):
    (accounts, daily), ids = _chain(spark, 12)
    edges = spark_clusters.link_edges(accounts, daily, D)
    components = spark_clusters.connected_components(edges, _scratch(spark, tmp_path))
    assert {(r.account_id, r.component) for r in components.collect()} == {(a, "z00") for a in ids}


@pytest.mark.slow
def test_unconverged_components_raise(spark, tmp_path):
    (accounts, daily), _ = _chain(spark, 12)
    edges = spark_clusters.link_edges(accounts, daily, D)
    with pytest.raises(spark_clusters.ComponentsDidNotConverge, match="after 2 iterations"):
        spark_clusters.connected_components(edges, _scratch(spark, tmp_path), max_iterations=2)


def _request(account_id: str, minute: int, fingerprint: int | None = None, day: dt.date = D) -> dict:
    ts = dt.datetime(day.year, day.month, day.day, tzinfo=UTC) + dt.timedelta(minutes=minute)
    return dict(
        request_id=f"{account_id}-{day}-{minute}-{fingerprint}",
        event_ts=ts,
        event_date=day,
        account_id=account_id,
        prompt_fingerprint=fingerprint,
    )


# one ordinary request: no template or timing link among the accounts above
QUIET_BRONZE = [_request("a", 5, fingerprint=11)]
# t1 and t2 each send the same rare templates (as many as a link needs) twice; t3 sends them once each (a
# coincidence, no evidence); s1 and s2 are active in the same 30 minutes (a scheduler driving both, which puts them
# in every MinHash band together), s3 in 30 other minutes
TEMPLATES = range(42, 42 + spark_clusters.MIN_LINK_STRENGTH * spark_clusters.TEMPLATES_PER_POINT)
LINKING_BRONZE = [
    *(
        _request(account, minute, fingerprint=template)
        for account in ("t1", "t2")
        for minute in (1, 2)
        for template in TEMPLATES
    ),
    *(_request("t3", 3, fingerprint=template) for template in TEMPLATES),
    *(_request(account, 100 + 7 * i) for account in ("s1", "s2") for i in range(30)),
    *(_request("s3", 101 + 7 * i) for i in range(30)),
]


def _write_inputs(settings, accounts=ACCOUNTS, daily=DAILY, bronze=QUIET_BRONZE):
    catalog.write_arrow(settings, "accounts", _arrow("accounts", accounts))
    catalog.write_arrow(settings, "account_daily", _arrow("account_daily", daily))
    catalog.write_arrow(settings, "requests", _arrow("requests", bronze), partition_value=D)


def _stored_rows(settings) -> list[tuple]:
    table = DeltaTable(settings.table_uri("account_clusters")).to_pyarrow_table()
    return sorted(
        (r["feature_date"], r["account_id"], r["cluster_id"], tuple(r["link_types"])) for r in table.to_pylist()
    )


def test_job_writes_a_delta_partition_and_reruns_identically(spark, settings):
    _write_inputs(settings)
    cluster.run(spark, settings, D, max_accounts_per_prefix=3)
    first = _stored_rows(settings)
    cluster.run(spark, settings, D, max_accounts_per_prefix=3)

    assert _stored_rows(settings) == first  # replaced, not appended
    assert [account for _, account, _, _ in first] == ["a", "b", "m1", "m2", "m3"]
    assert {date for date, _, _, _ in first} == {D}
    assert len({cluster_id for _, _, cluster_id, _ in first}) == 2
    delta = DeltaTable(settings.table_uri("account_clusters"))
    assert delta.version() == 1
    assert delta.metadata().partition_columns == ["feature_date"]
    assert not (Path(settings.lake_root) / "_scratch" / "cluster_labels" / D.isoformat()).exists()


def test_job_keeps_other_dates_and_refuses_a_missing_day(spark, settings):
    # on D-1 the window is D-7..D-1: a, b and idle are active and share pay-1 (a and idle also
    # share p-a); c and the m-triangle are only active on D.
    _write_inputs(settings, daily=DAILY + [_day("a", ["p-a"], D - dt.timedelta(days=1))])
    cluster.run(spark, settings, D, max_accounts_per_prefix=3)
    cluster.run(spark, settings, D - dt.timedelta(days=1), max_accounts_per_prefix=3)

    by_date: dict[dt.date, dict[str, tuple]] = {}
    for date, account, cluster_id, link_types in _stored_rows(settings):
        by_date.setdefault(date, {})[account] = (cluster_id, link_types)
    assert sorted(by_date[D]) == ["a", "b", "m1", "m2", "m3"]
    assert sorted(by_date[D - dt.timedelta(days=1)]) == ["a", "b", "idle"]
    assert by_date[D - dt.timedelta(days=1)]["a"][1] == ("ip_prefix", "payment")
    assert by_date[D - dt.timedelta(days=1)]["a"][0] == by_date[D]["a"][0]

    with pytest.raises(ValueError, match="no rows for 2026-02-11"):
        cluster.run(spark, settings, D + dt.timedelta(days=1))


def test_rerun_after_links_disappear_empties_the_partition(spark, settings):
    _write_inputs(settings)
    cluster.run(spark, settings, D, max_accounts_per_prefix=3)
    assert len(_stored_rows(settings)) == 5

    # corrected inputs: every account pays and connects on its own
    _write_inputs(
        settings,
        accounts=[_account(a["account_id"], f"own-{a['account_id']}") for a in ACCOUNTS],
        daily=[{**row, "ip_prefixes": [f"own-{row['account_id']}"]} for row in DAILY],
    )
    cluster.run(spark, settings, D, max_accounts_per_prefix=3)
    assert _stored_rows(settings) == []
    assert DeltaTable(settings.table_uri("account_clusters")).version() == 1


def test_rare_templates_and_synchronised_minutes_link_accounts(spark, settings):
    _write_inputs(settings, bronze=QUIET_BRONZE + LINKING_BRONZE)
    cluster.run(spark, settings, D, max_accounts_per_prefix=3)
    rows = {account: (cluster_id, links) for _, account, cluster_id, links in _stored_rows(settings)}
    assert rows["t1"][0] == rows["t2"][0] and rows["t1"][1] == ("template",)
    assert "t3" not in rows  # sent each template once: coincidence, not a link
    assert rows["s1"][0] == rows["s2"][0] and rows["s1"][1] == ("timing",)
    assert "s3" not in rows  # as busy, but in other minutes

    # each link keeps its evidence for reviewers
    links = DeltaTable(settings.table_uri("account_links")).to_pyarrow_table().to_pylist()
    evidence = {(r["src"], r["dst"]): r for r in links}
    assert evidence[("t1", "t2")]["shared_templates"] == len(TEMPLATES)
    assert evidence[("s1", "s2")]["synchronised_bands"] == spark_clusters.TIMING_BANDS
    assert evidence[("a", "b")]["shared_payment_methods"] == 1
    assert all(r["feature_date"] == D for r in links)


def _stored_edges(settings) -> dict[tuple[str, str, str], list[dict]]:
    rows = DeltaTable(settings.table_uri("account_edges")).to_pyarrow_table().to_pylist()
    edges: dict[tuple[str, str, str], list[dict]] = {}
    for row in rows:
        edges.setdefault((row["src"], row["dst"], row["link_type"]), []).append(row)
    return edges


def test_job_stores_what_joined_each_pair_pseudonymised(spark, settings):
    from lake.contract import keyed_hash_reference

    _write_inputs(settings, bronze=QUIET_BRONZE + LINKING_BRONZE)
    cluster.run(spark, settings, D, max_accounts_per_prefix=3)
    edges = _stored_edges(settings)

    # a and b pay with one card that only they use (idle's activity is before the window): one payment row whose
    # artefact is the keyed hash of the fingerprint, never the fingerprint itself
    [payment] = edges[("a", "b", "payment")]
    assert payment["artefact"] == keyed_hash_reference("pay-1", settings.pseudonym_key.get_secret_value()) != "pay-1"
    assert payment["artefact_accounts"] == 2 and payment["strength"] == spark_clusters.PAYMENT_STRENGTH
    assert payment["in_cluster_graph"] is True
    # b was active on D-6 only, a on D only: both had used the card by D; the last use is D
    assert (payment["first_seen"], payment["last_seen"]) == (D, D)
    # the m-triangle shares MIN_LINK_STRENGTH prefixes, each used by the three of them: one row per prefix per pair
    for pair in (("m1", "m2"), ("m1", "m3"), ("m2", "m3")):
        rows = edges[(*pair, "ip_prefix")]
        assert sorted(r["artefact"] for r in rows) == _prefixes("p-small")
        assert {r["artefact_accounts"] for r in rows} == {3}
    # t1-t2: one row per rare template, each sent by the two of them (t3 sent each once, so it is no member)
    templates = edges[("t1", "t2", "template")]
    assert sorted(int(r["artefact"]) for r in templates) == list(TEMPLATES)
    assert {r["artefact_accounts"] for r in templates} == {2}
    assert len(edges[("s1", "s2", "timing")]) == spark_clusters.TIMING_BANDS
    # b-c share one prefix only: below the link threshold, no row
    assert not any(key[:2] == ("b", "c") for key in edges)
    assert all(r["feature_date"] == D for rows in edges.values() for r in rows)


def test_edges_are_replaced_on_rerun(spark, settings):
    _write_inputs(settings)
    cluster.run(spark, settings, D, max_accounts_per_prefix=3)
    first = sorted((k, len(v)) for k, v in _stored_edges(settings).items())
    cluster.run(spark, settings, D, max_accounts_per_prefix=3)
    assert sorted((k, len(v)) for k, v in _stored_edges(settings).items()) == first
    assert len(first) == 4  # a-b payment, the m-triangle's three ip_prefix pairs


EDGE_COLUMNS = (
    "feature_date date, src string, dst string, link_type string, artefact string, artefact_accounts bigint, "
    "strength double, in_cluster_graph boolean, first_seen date, last_seen date"
)


def test_first_seen_reaches_back_through_earlier_partitions(spark):
    from features import spark_edges

    members = spark.createDataFrame(
        [
            ("x", "pre", "ip_prefix", D - dt.timedelta(days=3), D),
            ("y", "pre", "ip_prefix", D - dt.timedelta(days=1), D),
        ],
        "account_id string, item string, link_type string, first_used date, last_used date",
    )
    pairs = spark.createDataFrame(
        [("x", "y", "ip_prefix", "pre")], "src string, dst string, link_type string, item string"
    )
    evidence = spark.createDataFrame([("x", "y", 5.0)], "src string, dst string, strength double")
    old = D - dt.timedelta(days=30)
    history = spark.createDataFrame(
        [
            (D - dt.timedelta(days=1), "x", "y", "ip_prefix", "pre", 2, 5.0, False, old, D - dt.timedelta(days=1)),
            # a rerun of D itself, or a later date, never feeds D's first_seen
            (D, "x", "y", "ip_prefix", "pre", 2, 5.0, False, D - dt.timedelta(days=60), D),
            # older than the memory: forgotten
            (D - dt.timedelta(days=200), "x", "y", "ip_prefix", "pre", 2, 5.0, False, D - dt.timedelta(days=300), D),
        ],
        EDGE_COLUMNS,
    )
    no_kept = evidence.limit(0).select("src", "dst")
    [row] = spark_edges.edge_rows(pairs, members, evidence, no_kept, D, "k", history=history).collect()
    assert (row.first_seen, row.last_seen, row.artefact_accounts, row.in_cluster_graph) == (old, D, 2, False)
    [fresh] = spark_edges.edge_rows(pairs, members, evidence, no_kept, D, "k").collect()
    assert fresh.first_seen == D - dt.timedelta(days=1)  # the first day both had used the prefix


def test_families_job_scores_every_active_account_from_the_stored_edges(spark, settings):
    from jobs import families

    daily = [{**row, "extraction_like_requests": 0, "input_tokens": 100, "output_tokens": 100} for row in DAILY]
    _write_inputs(settings, daily=daily)
    decided = dt.datetime(2026, 2, 9, 12, tzinfo=UTC)
    after = dt.datetime(2026, 2, 11, 0, 0, 1, tzinfo=UTC)
    labels = [
        {"account_id": "a", "label": "extraction", "decided_at": decided},
        {"account_id": "m1", "label": "extraction", "decided_at": after},  # decided after D: not yet evidence
    ]
    catalog.write_arrow(settings, "enforcement_labels", _arrow("enforcement_labels", labels))
    # the day's features (resemblance reads them): a's row the day before its decision, and the scored day's
    features = [
        {"account_id": r["account_id"], "feature_date": D, "requests_7d": 10.0, "stream_share_28d": 0.9}
        for r in DAILY
        if r["event_date"] == D
    ]
    features.append({"account_id": "a", "feature_date": D - dt.timedelta(days=2), "requests_7d": 10.0})
    catalog.write_arrow(settings, "account_features", _arrow("account_features", features))
    cluster.run(spark, settings, D, max_accounts_per_prefix=3)
    families.run(spark, settings, D)

    rows = DeltaTable(settings.table_uri("family_scores")).to_pyarrow_table().to_pandas()
    assert set(rows["family"]) == set(families.FAMILIES)
    assert set(rows["score_date"]) == {D}
    active = {r["account_id"] for r in DAILY if r["event_date"] > D - dt.timedelta(days=28)}
    propagation = rows[rows["family"] == "propagation"].set_index("account_id")
    assert set(propagation.index) == active
    assert propagation.loc["b", "score"] > 0  # shares a card with the decided a
    assert propagation.loc["b", "reason"] == (
        "shares one payment method with 1 other account, 1 of them decided extraction, 0 benign"
    )
    assert propagation.loc["m2", "score"] == 0.0 and propagation.loc["d", "score"] == 0.0
    resemblance = rows[rows["family"] == "resemblance"].set_index("account_id")
    assert set(resemblance.index) == {f["account_id"] for f in features if f["feature_date"] == D}
    # a, decided the day before, is every other account's nearest decided extraction, and never its own
    assert resemblance.drop(index="a")["reason"].str.contains("nearest: a\\)").all()
    assert resemblance.loc["a", "reason"] == "no other account had been decided extraction to compare it with"
    families.run(spark, settings, D)  # a rerun replaces the day
    assert len(DeltaTable(settings.table_uri("family_scores")).to_pyarrow_table()) == len(rows)
