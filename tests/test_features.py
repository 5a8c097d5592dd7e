"""Every declared feature on tiny hand-built `account_daily` rows with a known answer, on every engine (Spark,
pandas, and cuDF where a GPU is visible), the window boundaries (D-w, D], the output schema, and the features
job on a real Delta lake."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import pyarrow as pa
import pytest

from features import registry
from lake import catalog
from tests.helpers.ingest_records import record_ingest_run

UTC = dt.UTC
D = dt.date(2026, 3, 28)
DAILY_COLUMNS = catalog.table("account_daily").schema


def day(days_before: int) -> dt.date:
    return D - dt.timedelta(days=days_before)


def at(days_before: int, hour: int, minute: int = 0) -> dt.datetime:
    d = day(days_before)
    return dt.datetime(d.year, d.month, d.day, hour, minute, tzinfo=UTC)


def daily_row(account_id: str, days_before: int, hours: dict[int, int] | None = None, **stats) -> dict:
    """An `account_daily` row: zero counts, empty sets and no newest-model activity unless given.
    `hours` maps hour-of-day -> requests; `requests` defaults to their sum (or 1)."""
    row: dict = {}
    for f in DAILY_COLUMNS:
        if pa.types.is_integer(f.type):
            row[f.name] = 0
        elif pa.types.is_floating(f.type):
            row[f.name] = 0.0
        elif pa.types.is_list(f.type):
            row[f.name] = []
        else:
            row[f.name] = None
    for hour, count in (hours or {}).items():
        row[f"hour_{hour:02d}"] = count
    row.update(account_id=account_id, event_date=day(days_before), requests=sum((hours or {}).values()) or 1)
    unknown = set(stats) - set(row)
    if unknown:
        raise KeyError(f"not account_daily columns: {sorted(unknown)}")
    row.update(stats)
    return row


# Newest model as of D is m2 (released D-2 06:00); m3 is released exactly at the end of D, so not yet.
RELEASES = [("m1", dt.datetime(2025, 6, 1, tzinfo=UTC)), ("m2", at(2, 6)), ("m3", at(-1, 0))]


@dataclass
class Case:
    """One account's daily rows (keyword specs for daily_row) and the feature values they must give."""

    name: str
    days: list[tuple[int, dict]]
    expected: dict[str, float | None]
    account: dict = field(default_factory=dict)


CASES = [
    # --- volume; this account also pins the window boundaries: D-7, D-28 and D+1 are outside
    Case(
        "windows",
        [
            (0, dict(requests=5)),
            (6, dict(requests=7)),
            (7, dict(requests=11)),
            (27, dict(requests=13)),
            (28, dict(requests=100)),
            (-1, dict(requests=1000)),
        ],
        {"requests_1d": 5, "requests_7d": 12, "requests_28d": 36},
    ),
    Case(
        "input_only_yesterday",
        [(1, dict(requests=3, input_tokens=300))],
        {"input_tokens_1d": 0, "input_tokens_7d": 300, "requests_1d": 0, "requests_7d": 3},
    ),
    Case(
        "output",
        [(0, dict(output_tokens=40)), (2, dict(output_tokens=60))],
        {"output_tokens_1d": 40, "output_tokens_7d": 100},
    ),
    Case(
        "active_hours",
        [(0, dict(active_hours=3)), (1, dict(active_hours=5))],
        {"active_hours_1d": 3, "active_hours_7d": 8},
    ),
    # --- automation and timing
    # gaps 10 s and 30 s: mean 20, population std 10
    Case("gaps", [(0, dict(gap_count=2, gap_sum_ms=40_000, gap_sumsq_ms2=1_000_000_000))], {"interarrival_cv_1d": 0.5}),
    Case(
        "metronome",
        [
            (0, dict(gap_count=3, gap_sum_ms=180_000, gap_sumsq_ms2=3 * 60_000**2)),
            (3, dict(gap_count=1, gap_sum_ms=60_000, gap_sumsq_ms2=60_000**2)),
        ],
        {"interarrival_cv_1d": 0.0, "interarrival_cv_7d": 0.0},
    ),
    Case("single_request", [(0, dict(gap_count=0))], {"interarrival_cv_1d": None}),
    Case(
        "hours",
        [(0, dict(hours={3: 2, 4: 2})), (1, dict(hours={5: 4, 6: 4}))],
        {"hour_entropy_1d": 1.0, "hour_entropy_7d": -2 * (1 / 6) * math.log2(1 / 6) - 2 * (1 / 3) * math.log2(1 / 3)},
    ),
    Case("flat_24_7", [(0, dict(hours={h: 5 for h in range(24)}))], {"hour_entropy_1d": math.log2(24)}),
    Case(
        "coverage",
        [(0, dict(active_hours=12)), (3, dict(active_hours=6))],
        {"coverage_24_7_1d": 0.5, "coverage_24_7_7d": 18 / 168, "coverage_24_7_28d": 18 / 672},
    ),
    Case(
        "bursty",
        [(0, dict(requests=30, active_minutes=10, peak_rpm=9)), (2, dict(requests=10, active_minutes=10, peak_rpm=4))],
        {"burstiness_1d": 3.0, "burstiness_7d": 4.5},
    ),
    Case("peak", [(0, dict(peak_rpm=4)), (5, dict(peak_rpm=9))], {"peak_rpm_1d": 4, "peak_rpm_7d": 9}),
    Case("batch", [(0, dict(requests=10, batch_requests=4))], {"batch_share_1d": 0.4}),
    Case("stream", [(0, dict(requests=8, stream_requests=2))], {"stream_share_1d": 0.25}),
    # --- content
    Case(
        "cot",
        [(0, dict(requests=10, cot_requests=3)), (4, dict(requests=10, cot_requests=9))],
        {"cot_elicitation_rate_1d": 0.3, "cot_elicitation_rate_7d": 0.6},
    ),
    Case("rubric", [(0, dict(requests=4, rubric_requests=1))], {"rubric_grading_rate_1d": 0.25}),
    # a reseller: 40 extraction-like requests hidden among 960 ordinary ones still count 40
    Case(
        "mixed_traffic",
        [(0, dict(requests=1000, extraction_like_requests=40)), (3, dict(requests=500, extraction_like_requests=10))],
        {
            "extraction_like_requests_1d": 40,
            "extraction_like_requests_7d": 50,
            "extraction_like_share_1d": 0.04,
            "extraction_like_share_7d": 50 / 1500,
        },
    ),
    Case("templates", [(0, dict(requests=10, repeated_template_requests=6))], {"template_reuse_rate_1d": 0.6}),
    Case(
        "capabilities",
        [
            (
                0,
                dict(
                    requests=10,
                    coding_requests=1,
                    agentic_requests=2,
                    tool_use_requests=3,
                    reasoning_requests=1,
                    vision_requests=2,
                    chat_requests=1,
                ),
            )
        ],
        {
            "coding_share_1d": 0.1,
            "agentic_share_1d": 0.2,
            "tool_use_share_1d": 0.3,
            "reasoning_share_1d": 0.1,
            "vision_share_1d": 0.2,
        },
    ),
    Case(
        "capability_mix",
        [(0, dict(requests=8, coding_requests=4, chat_requests=4)), (1, dict(requests=8, agentic_requests=8))],
        {"capability_entropy_1d": 1.0, "capability_entropy_7d": 1.5},
    ),
    Case("single_capability", [(0, dict(requests=6, coding_requests=6))], {"capability_entropy_1d": 0.0}),
    Case("tokens", [(0, dict(input_tokens=100, output_tokens=250))], {"output_input_ratio_1d": 2.5}),
    Case("no_input_tokens", [(0, dict(input_tokens=0, output_tokens=10))], {"output_input_ratio_1d": None}),
    Case("saturation", [(0, dict(requests=5, max_tokens_stops=1))], {"max_tokens_saturation_1d": 0.2}),
    Case("language", [(0, dict(requests=4, non_english_requests=3))], {"non_english_share_1d": 0.75}),
    Case(
        "system_prompt",
        [(0, dict(requests=10, top_system_prompt_requests=6)), (1, dict(requests=10, top_system_prompt_requests=10))],
        {"system_prompt_reuse_1d": 0.6, "system_prompt_reuse_7d": 0.8},
    ),
    # --- model pivot (m2 is newest as of D; days whose newest model was m1 do not count)
    Case(
        "pivot_share",
        [
            (0, dict(requests=10, newest_model="m2", newest_model_requests=6)),
            (3, dict(requests=10, newest_model="m1", newest_model_requests=10)),
        ],
        {"newest_model_share_1d": 0.6, "newest_model_share_7d": 0.3},
    ),
    Case(
        "pivot_first_use",
        [
            (2, dict(newest_model="m2", newest_model_requests=1, newest_model_first_ts=at(2, 8, 30))),
            (0, dict(newest_model="m2", newest_model_requests=1, newest_model_first_ts=at(0, 1))),
            (4, dict(newest_model="m1", newest_model_requests=1, newest_model_first_ts=at(4, 0))),
        ],
        {"hours_to_newest_model_7d": 2.5, "hours_to_newest_model_1d": 43.0},
    ),
    Case(
        "pivot_majority",
        [
            (1, dict(newest_model="m2", newest_model_majority_hour_ts=at(1, 10))),
            (0, dict(newest_model="m2", newest_model_majority_hour_ts=None)),
        ],
        {"hours_to_newest_majority_7d": 28.0, "hours_to_newest_majority_1d": None, "hours_to_newest_model_7d": None},
    ),
    # --- infrastructure
    Case(
        "prefixes",
        [(0, dict(ip_prefixes=["p1", "p2"])), (2, dict(ip_prefixes=["p2", "p3"])), (10, dict(ip_prefixes=["p4"]))],
        {"distinct_ip_prefixes_1d": 2, "distinct_ip_prefixes_7d": 3, "distinct_ip_prefixes_28d": 4},
    ),
    Case(
        "countries",
        [(0, dict(countries=["US"])), (1, dict(countries=["FR", "US"]))],
        {"distinct_countries_1d": 1, "distinct_countries_7d": 2},
    ),
    Case(
        "countries_yesterday",
        [(1, dict(countries=["FR"]))],
        {"distinct_countries_1d": 0, "distinct_ip_prefixes_1d": 0, "peak_rpm_1d": 0},
    ),
    Case("hosting", [(0, dict(requests=10, hosting_proxy_requests=5))], {"hosting_proxy_share_1d": 0.5}),
    Case("mismatch", [(0, dict(requests=20, signup_mismatch_requests=5))], {"signup_country_mismatch_1d": 0.25}),
    Case("raw_http", [(0, dict(requests=5, raw_http_requests=5))], {"raw_http_share_1d": 1.0}),
    # --- account level
    Case("age", [(0, {})], {"account_age_days": 9.5}, account=dict(created_at=at(9, 12))),
    *(
        Case(f"verified_{level}", [(0, {})], {"verification_level": value}, account=dict(verification=level))
        for level, value in (("none", 0), ("email", 1), ("card", 2), ("kyc", 3), ("unknown-level", None))
    ),
    *(
        Case(f"program_{program}", [(0, {})], {"credit_program": value}, account=dict(program=program))
        for program, value in (("education", 1), ("research", 1), ("startup", 1), ("standard", 0), ("enterprise", 0))
    ),
    # shares "pf1" with two other accounts that existed on D and one created after D
    Case(
        "shared_payment",
        [(0, {})],
        {"payment_shared_accounts": 2},
        account=dict(payment_fingerprint="pf1", created_at=at(30, 0)),
    ),
    Case("own_payment", [(0, {})], {"payment_shared_accounts": 0}, account=dict(payment_fingerprint="pf2")),
    Case("no_payment", [(0, {})], {"payment_shared_accounts": 0}),
    # --- cluster level: the day's account_clusters (CLUSTERS below)
    Case(
        "in_cluster",
        [(0, dict(requests=10)), (5, dict(requests=4)), (8, dict(requests=100))],
        {
            "cluster_size": 3,
            "cluster_payment_share": 2 / 3,
            "cluster_new_account_share": 1 / 3,
            # members' requests over the last 7 days: 10 + 4 (its own; day 8 is outside) + 20 (peer a)
            "cluster_requests": 34,
            "cluster_labelled_extraction_share": 1 / 3,
            # template links on it and peer b, timing on peer b; its own 2 links, one sharing templates
            "cluster_template_share": 2 / 3,
            "cluster_synchronised_share": 1 / 3,
            "linked_accounts": 2,
            "template_linked_accounts": 1,
        },
        account=dict(created_at=at(40, 0)),
    ),
    Case(
        "unclustered",
        [(0, {})],
        {
            "cluster_size": 1,
            "cluster_payment_share": 0,
            "cluster_new_account_share": 0,
            "cluster_requests": 0,
            "cluster_labelled_extraction_share": 0,
            "cluster_template_share": 0,
            "cluster_synchronised_share": 0,
            "linked_accounts": 0,
            "template_linked_accounts": 0,
        },
    ),
]
# acct_in_cluster shares a cluster with two accounts; it and one other are linked by payment, it and peer b by
# IP prefixes and templates. Peer a was created
# 10 days before D and was decided extraction on D; peer b was decided extraction only after D, which the
# features of D must not know.
LABELS = [
    dict(account_id="acct_cluster_peer_a", label="extraction", decided_at=at(0, 23), source="analyst"),
    dict(account_id="acct_cluster_peer_b", label="extraction", decided_at=at(-1, 1), source="analyst"),
    dict(account_id="acct_cluster_peer_b", label="benign", decided_at=at(3, 0), source="analyst"),
]
CLUSTERS = [
    dict(
        feature_date=D,
        account_id="acct_in_cluster",
        cluster_id="c1",
        link_types=["ip_prefix", "payment", "template"],
        linked_accounts=2,
        payment_links=1,
        ip_prefix_links=1,
        template_links=1,
        timing_links=0,
    ),
    dict(
        feature_date=D,
        account_id="acct_cluster_peer_a",
        cluster_id="c1",
        link_types=["payment"],
        linked_accounts=1,
        payment_links=1,
        ip_prefix_links=0,
        template_links=0,
        timing_links=0,
    ),
    dict(
        feature_date=D,
        account_id="acct_cluster_peer_b",
        cluster_id="c1",
        link_types=["ip_prefix", "template", "timing"],
        linked_accounts=1,
        payment_links=0,
        ip_prefix_links=1,
        template_links=1,
        timing_links=1,
    ),
]
# accounts that only exist in the registry (never active) to be counted by payment_shared_accounts
REGISTRY_ONLY_ACCOUNTS = [
    dict(account_id="acct_cluster_peer_a", created_at=at(10, 0)),
    dict(account_id="acct_cluster_peer_b", created_at=at(60, 0)),
    dict(account_id="pf1_other_a", payment_fingerprint="pf1", created_at=at(100, 0)),
    dict(account_id="pf1_other_b", payment_fingerprint="pf1", created_at=None),
    dict(account_id="pf1_after_d", payment_fingerprint="pf1", created_at=at(-1, 0)),
]
# accounts whose only activity lies outside (D-28, D]
INACTIVE = [daily_row("too_old", 28, requests=3), daily_row("future_only", -1, requests=3)]
# cluster peers' own activity (they are also featured, which the window-membership test accounts for)
PEERS = [daily_row("acct_cluster_peer_a", 2, requests=20)]


def _account_id(case: Case) -> str:
    return f"acct_{case.name}"


def _table(name: str, rows: list[dict]) -> pa.Table:
    schema = catalog.table(name).schema
    return pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in rows], schema)


def _all_daily_rows() -> list[dict]:
    rows = [daily_row(_account_id(case), days_before, **spec) for case in CASES for days_before, spec in case.days]
    return rows + INACTIVE + PEERS


def _inputs() -> list[pa.Table]:
    """account_daily, accounts, model_releases, account_clusters and enforcement_labels of the cases, as Arrow."""
    accounts = [{"account_id": _account_id(c), "created_at": at(40, 0)} | c.account for c in CASES]
    return [
        _table(name, rows)
        for name, rows in (
            ("account_daily", _all_daily_rows()),
            ("accounts", accounts + REGISTRY_ONLY_ACCOUNTS),
            ("model_releases", [dict(model=m, released_at=t) for m, t in RELEASES]),
            ("account_clusters", CLUSTERS),
            ("enforcement_labels", LABELS),
        )
    ]


@pytest.fixture(scope="module")
def features(any_engine):
    """account_features of D computed by the engine under test, as Arrow and by account."""
    inputs = [any_engine.from_arrow(table) for table in _inputs()]
    table = any_engine.to_arrow(any_engine.account_features(*inputs, D))
    return table, {row["account_id"]: row for row in table.to_pylist()}


def test_account_buckets_give_the_one_bucket_answer(frame_engine_name, session_settings):
    """The frame engines roll the window up in account-hash buckets; the cluster of acct_in_cluster then spans
    buckets, and its members' volume, new accounts and labels must still all count."""
    from features.frame_windows import account_features
    from lake import frame_engines

    inputs = _inputs()
    with frame_engines.frame_engine(session_settings.model_copy(update={"engine": frame_engine_name})) as engine:
        whole = account_features(engine, *inputs, D, buckets=1)
        bucketed = account_features(engine, *inputs, D, buckets=3)
        members = engine.xp.Series(["acct_in_cluster", "acct_cluster_peer_a", "acct_cluster_peer_b"])
        spread = set(
            engine.to_arrow(engine.xp.DataFrame({"b": engine.account_bucket(members, 3)})).column("b").to_pylist()
        )
    assert len(spread) > 1  # the cluster is split over buckets, so this compares something
    assert bucketed.equals(whole)


@pytest.mark.parametrize(
    "case,column,expected",
    [
        pytest.param(case, column, expected, id=f"{column}-{case.name}")
        for case in CASES
        for column, expected in case.expected.items()
    ],
)
def test_feature_value(features, case, column, expected):
    _, rows = features
    actual = rows[_account_id(case)][column]
    if expected is None:
        assert actual is None
    else:
        assert actual == pytest.approx(expected, abs=1e-9)


def test_every_feature_has_a_known_answer_case():
    tested = {registry.feature_for_column(column)[0].name for case in CASES for column in case.expected}
    assert tested == set(registry.FEATURES_BY_NAME)


def test_accounts_are_those_active_in_the_28_day_window(features):
    _, rows = features
    assert set(rows) == {_account_id(c) for c in CASES} | {"acct_cluster_peer_a"}


def test_output_conforms_to_the_catalog(features):
    table, rows = features
    declared = catalog.table("account_features").schema
    assert table.schema.names == declared.names
    assert [f.type for f in table.schema] == [f.type for f in declared]
    assert table.schema.names[2:-1] == registry.feature_columns()
    row = rows[_account_id(CASES[0])]
    assert row["feature_date"] == D
    assert row["feature_set_version"] == registry.feature_set_version()


def test_empty_window_counts_are_zero_not_null(features):
    _, rows = features
    yesterday_only = rows["acct_input_only_yesterday"]
    for feature in registry.FEATURES:
        if feature.windowed and feature.unit == "count":
            assert yesterday_only[f"{feature.name}_1d"] == 0.0, feature.name
    assert yesterday_only["cot_elicitation_rate_1d"] is None  # a share of zero requests is undefined


# --- the features job on a real lake --------------------------------------------------------------


def bronze_row(request_id: str, account_id: str, ts: dt.datetime, **values) -> dict:
    row = {name: None for name in catalog.table("requests").columns}
    row.update(
        request_id=request_id,
        account_id=account_id,
        event_ts=ts,
        event_date=ts.date(),
        model="m1",
        input_tokens=10,
        output_tokens=20,
        **values,
    )
    return row


def write_lake(settings, bronze_days: dict[dt.date, list[dict]]):
    schema = catalog.table("requests").schema
    for event_date, rows in bronze_days.items():
        catalog.write_arrow(settings, "requests", pa.Table.from_pylist(rows, schema), partition_value=event_date)
        record_ingest_run(settings, event_date)
    accounts = [
        dict(
            account_id=a,
            org_id=None,
            created_at=at(50, 0),
            signup_country="US",
            payment_fingerprint="pf",
            verification="card",
            program="standard",
        )
        for a in ("A", "B")
    ]
    catalog.write_arrow(settings, "accounts", pa.Table.from_pylist(accounts, catalog.table("accounts").schema))
    catalog.write_arrow(
        settings,
        "model_releases",
        pa.Table.from_pylist(
            [dict(model=m, released_at=t) for m, t in RELEASES], catalog.table("model_releases").schema
        ),
    )
    catalog.write_arrow(
        settings, "asn_info", pa.Table.from_pylist([dict(asn=1, category="hosting")], catalog.table("asn_info").schema)
    )


@pytest.mark.slow
def test_features_job_builds_windows_from_daily_partitions(spark, spark_engine, settings, capsys):
    from jobs import aggregate, cluster
    from jobs import features as features_job

    write_lake(
        settings,
        {
            day(1): [bronze_row("y1", "A", at(1, 9)), bronze_row("y2", "B", at(1, 9, 5))],
            day(0): [bronze_row("t1", "A", at(0, 10), asn=1), bronze_row("t2", "A", at(0, 10, 1), asn=1)],
        },
    )
    aggregate.run(spark_engine, settings, day(1))  # the previous night's run
    aggregate.run(spark_engine, settings, D)
    cluster.run(spark, settings, D)
    assert features_job.run(spark_engine, settings, D) == 2
    assert "2 accounts" in capsys.readouterr().out
    assert features_job.run(spark_engine, settings, D) == 2  # rerun replaces the partition

    table = catalog.read_arrow(settings, "account_features")
    declared = catalog.table("account_features").schema
    assert sorted(table.schema.names) == sorted(declared.names)
    assert table.num_rows == 2  # the rerun replaced the partition instead of appending
    rows = {r["account_id"]: r for r in table.select(declared.names).cast(declared).to_pylist()}
    assert sorted(rows) == ["A", "B"]
    assert (rows["A"]["requests_1d"], rows["A"]["requests_7d"]) == (2.0, 3.0)
    assert (rows["B"]["requests_1d"], rows["B"]["requests_7d"]) == (0.0, 1.0)
    assert rows["A"]["hosting_proxy_share_1d"] == 1.0
    assert rows["A"]["payment_shared_accounts"] == 1.0
    # A and B share a payment fingerprint, so the link graph put them in one cluster
    assert (rows["A"]["cluster_size"], rows["A"]["cluster_payment_share"]) == (2.0, 1.0)
    assert {r["feature_date"] for r in rows.values()} == {D}
    daily_dates = set(catalog.read_arrow(settings, "account_daily").column("event_date").to_pylist())
    assert daily_dates == {day(1), day(0)}


def test_features_job_refuses_a_day_without_its_daily_aggregate(spark_engine, settings):
    from jobs import aggregate
    from jobs import features as features_job
    from lake.errors import MissingInputError

    write_lake(settings, {day(1): [bronze_row("y1", "A", at(1, 9))]})
    aggregate.run(spark_engine, settings, day(1))
    with pytest.raises(MissingInputError, match=f"account_daily has no rows for {D.isoformat()}"):
        features_job.run(spark_engine, settings, D)
    assert not catalog.exists(settings, "account_features")


def test_features_job_refuses_a_day_that_was_not_clustered(spark_engine, settings):
    from jobs import aggregate
    from jobs import features as features_job
    from lake.errors import MissingInputError

    write_lake(settings, {D: [bronze_row("t1", "A", at(0, 9))]})
    aggregate.run(spark_engine, settings, D)
    with pytest.raises(MissingInputError, match="run `distillguard cluster"):
        features_job.run(spark_engine, settings, D)
