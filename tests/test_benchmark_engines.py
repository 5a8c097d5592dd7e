"""The engine benchmark's building blocks on a tiny hand-built lake: the Spark Parquet stage computes what
the real jobs compute, the replicate tool multiplies rows with suffixed ids, and the report keeps skipped
engines visible. No timings are asserted."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from lake import catalog
from tests.helpers.ingest_records import record_ingest_run

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
UTC = dt.UTC
DAY1, DAY2 = dt.date(2026, 3, 27), dt.date(2026, 3, 28)


def _bench_module(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _ts(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def _request(request_id: str, account_id: str, ts: dt.datetime, **values) -> dict:
    row = {name: None for name in catalog.table("requests").columns}
    row.update(
        request_id=request_id,
        account_id=account_id,
        org_id=f"org_{account_id}",
        api_key_id=f"key_{account_id}",
        event_ts=ts,
        event_date=ts.date(),
        model="m1",
        input_tokens=10,
        output_tokens=20,
        endpoint="messages",
        stream=False,
        country="US",
        ip_prefix_hash=f"net_{account_id}",
        asn=1,
    )
    row.update(values)
    return row


@pytest.fixture()
def tiny_lake(settings):
    """Two days of bronze requests for accounts A and B plus the reference tables, written with delta-rs."""
    days = {
        DAY1: [
            _request("r1", "A", _ts(DAY1, 9)),
            _request("r2", "A", _ts(DAY1, 9, 1)),
            _request("r3", "B", _ts(DAY1, 22), country="FR"),
        ],
        DAY2: [
            _request("r4", "A", _ts(DAY2, 10), model="m2"),
            _request("r5", "B", _ts(DAY2, 11)),
            _request("r6", "B", _ts(DAY2, 11, 3), endpoint="batch"),
        ],
    }
    for day, rows in days.items():
        catalog.write_arrow(
            settings, "requests", pa.Table.from_pylist(rows, catalog.table("requests").schema), partition_value=day
        )
        record_ingest_run(settings, day)
    accounts = [
        dict(
            account_id=a,
            org_id=f"org_{a}",
            created_at=_ts(DAY1, 0) - dt.timedelta(days=30),
            signup_country="US",
            payment_fingerprint=f"pf_{a}",
            verification="card",
            program="startup",
        )
        for a in ("A", "B")
    ]
    catalog.write_arrow(settings, "accounts", pa.Table.from_pylist(accounts, catalog.table("accounts").schema))
    catalog.write_arrow(
        settings,
        "model_releases",
        pa.Table.from_pylist(
            [
                dict(model="m1", released_at=_ts(DAY1, 0) - dt.timedelta(days=90)),
                dict(model="m2", released_at=_ts(DAY2, 8)),
            ],
            catalog.table("model_releases").schema,
        ),
    )
    catalog.write_arrow(
        settings, "asn_info", pa.Table.from_pylist([dict(asn=1, category="hosting")], catalog.table("asn_info").schema)
    )
    return settings


def _rows_by_account(table: pa.Table, schema: pa.Schema) -> dict[str, dict]:
    table = table.select(schema.names).cast(schema)
    return {row["account_id"]: row for row in table.to_pylist()}


def _assert_same_rows(actual: dict[str, dict], expected: dict[str, dict]) -> None:
    assert sorted(actual) == sorted(expected)
    for account, row in expected.items():
        for column, value in row.items():
            if isinstance(value, float):
                assert actual[account][column] == pytest.approx(value, nan_ok=True), (account, column)
            else:
                assert actual[account][column] == value, (account, column)


def test_read_table_files_gives_the_partition_its_event_date(spark, tiny_lake):
    stage = _bench_module("spark_parquet_stage")
    files = stage.active_files(tiny_lake.table_uri("requests"), DAY2)
    assert files and all(f"event_date={DAY2.isoformat()}" in f for f in files)
    frame = stage.read_table_files(spark, tiny_lake.table_uri("requests"), DAY2)
    assert dict(frame.dtypes)["event_date"] == "date"
    assert sorted(r["request_id"] for r in frame.select("request_id").collect()) == ["r4", "r5", "r6"]
    assert {r["event_date"] for r in frame.select("event_date").collect()} == {DAY2}
    with pytest.raises(FileNotFoundError, match="no active Parquet files"):
        stage.read_table_files(spark, tiny_lake.table_uri("requests"), dt.date(2026, 1, 1))


@pytest.mark.slow
def test_spark_parquet_stage_matches_the_real_jobs(spark, tiny_lake, tmp_path):
    """The Parquet variant both Spark engines run writes exactly the rows the Delta jobs write (its accounts share
    no link, since the Parquet baseline has no link graph)."""
    from compute.spark import SparkEngine
    from jobs import aggregate, cluster, features

    stage = _bench_module("spark_parquet_stage")
    out = tmp_path / "stage_out"
    result = stage.run(spark, tiny_lake.lake_root, [DAY1, DAY2], out)
    assert [d["account_daily_rows"] for d in result["days"]] == [2, 2]
    assert [d["account_features_rows"] for d in result["days"]] == [2, 2]

    for day in (DAY1, DAY2):
        aggregate.run(SparkEngine(spark), tiny_lake, day)
        cluster.run(spark, tiny_lake, day)
        features.run(SparkEngine(spark), tiny_lake, day)
    daily_schema = catalog.table("account_daily").schema
    features_schema = catalog.table("account_features").schema
    for day in (DAY1, DAY2):
        _assert_same_rows(
            _rows_by_account(pq.read_table(out / "account_daily" / day.isoformat()), daily_schema),
            _rows_by_account(
                catalog.read_arrow(tiny_lake, "account_daily", filters=[("event_date", "=", day)]), daily_schema
            ),
        )
        _assert_same_rows(
            _rows_by_account(pq.read_table(out / "account_features" / day.isoformat()), features_schema),
            _rows_by_account(
                catalog.read_arrow(tiny_lake, "account_features", filters=[("feature_date", "=", day)]), features_schema
            ),
        )
    day2_features = _rows_by_account(pq.read_table(out / "account_features" / DAY2.isoformat()), features_schema)
    assert (day2_features["A"]["requests_1d"], day2_features["A"]["requests_7d"]) == (1.0, 3.0)
    assert day2_features["B"]["batch_share_1d"] == pytest.approx(0.5)


def test_replicate_lake_multiplies_rows_and_suffixes_ids(tiny_lake, tmp_path):
    from deltalake import DeltaTable

    replicate = _bench_module("replicate_lake")
    target = tmp_path / "replicated"
    result = replicate.replicate_lake(tiny_lake.lake_root, str(target), copies=3, workers=2)
    assert result["requests_rows"] == 18

    requests = DeltaTable(str(target / "requests"))
    assert requests.metadata().partition_columns == ["event_date"]
    assert {p["event_date"] for p in requests.partitions()} == {DAY1.isoformat(), DAY2.isoformat()}
    table = requests.to_pyarrow_table()
    assert table.num_rows == 18
    assert pc.count_distinct(table["request_id"]).as_py() == 18
    assert set(table["account_id"].to_pylist()) == {"A", "B", "A#r1", "B#r1", "A#r2", "B#r2"}
    rows = {r["request_id"]: r for r in table.to_pylist()}
    source = {r["request_id"]: r for r in DeltaTable(tiny_lake.table_uri("requests")).to_pyarrow_table().to_pylist()}
    for request_id, original in source.items():
        assert rows[request_id] == original  # replica 0 is the source row itself
        copy = rows[f"{request_id}#r2"]
        assert (copy["account_id"], copy["org_id"], copy["api_key_id"]) == (
            f"{original['account_id']}#r2",
            f"{original['org_id']}#r2",
            f"{original['api_key_id']}#r2",
        )
        unchanged = {k: v for k, v in original.items() if k not in replicate.SUFFIXED_COLUMNS["requests"]}
        assert {k: copy[k] for k in unchanged} == unchanged
    per_day = pa.table(requests.get_add_actions(flatten=True))
    assert sum(per_day.column("num_records").to_pylist()) == 18  # record counts are in the Delta log

    accounts = DeltaTable(str(target / "accounts")).to_pyarrow_table()
    assert sorted(accounts["account_id"].to_pylist()) == ["A", "A#r1", "A#r2", "B", "B#r1", "B#r2"]
    assert set(accounts["payment_fingerprint"].to_pylist()) == {
        f"pf_{a}{suffix}" for a in ("A", "B") for suffix in ("", "#r1", "#r2")
    }
    assert DeltaTable(str(target / "model_releases")).to_pyarrow_table().num_rows == 2  # copied once
    with pytest.raises(FileExistsError):
        replicate.replicate_lake(tiny_lake.lake_root, str(target), copies=2, workers=1)


def test_report_keeps_skipped_and_failed_engines_visible():
    engines = _bench_module("engines")
    passes = [
        {"stage_s": 2.0, "aggregate_s": 1.2, "features_s": 0.8, "account_daily_rows": 5, "account_features_rows": 6},
        {"stage_s": 1.0, "aggregate_s": 0.6, "features_s": 0.4, "account_daily_rows": 5, "account_features_rows": 6},
    ]
    child = {
        "passes": passes,
        "engine_start_s": 0.5,
        "cpu_tree_s": 3.0,
        "peak_rss_tree_mib": 100.0,
        "memory_report": None,
        "gpu": None,
        "checksums": None,
    }
    sail = engines.summarize("embedded-delta", 10, [child, {**child, "passes": [{**passes[0], "stage_s": 4.0}]}])
    assert sail["cold_stage_s"] == {"median": 3.0, "min": 2.0, "max": 4.0}
    assert sail["warm_stage_s"]["median"] == 1.0 and sail["accounts_per_s"] == pytest.approx(2.0)
    runs = {
        "embedded-delta": {**sail, "records_per_s": 300.0},
        "pandas": {"engine": "pandas", "status": "failed", "reason": "exit code 1"},
        "cudf": {"engine": "cudf", "status": "skipped", "reason": "no NVIDIA GPU visible"},
    }
    ratios = engines.ratios(runs)
    assert ratios["cudf_vs_sail"] is None and ratios["cudf_vs_sail_basis"] == "embedded-delta"
    report = {
        "label": "t",
        "machine": {"cpu_model": "cpu", "affinity_cpus": 2, "memory_gib": 4},
        "gpu": None,
        "started_at": "now",
        "load_before": 1.0,
        "load_after": 2.0,
        "window_days": 28,
        "runs": 2,
        "skipped": {"cudf": "no NVIDIA GPU visible"},
        "sizes": [
            {"size": "1M", "records": 10, "lake_setup": {"history_days_copied": 26}, "ratios": ratios, "runs": runs}
        ],
    }
    text = engines.markdown(report)
    assert "| cudf | skipped: no NVIDIA GPU visible |" in text
    assert "| pandas | failed: exit code 1 |" in text
    assert "| 1M | 10 | embedded-delta | 3.0 (2.0-4.0) | 3.5 (2.5-4.5) | 1.0 (1.0-1.0) |" in text
    assert "26 of the window's earlier days are copies" in text


def test_checksums_agree_on_reordered_rows_and_catch_a_moved_value():
    checksums = _bench_module("checksums")
    rows = [
        {"account_id": a, "n": n, "share": s, "sets": sets}
        for a, n, s, sets in (("A", 1, 0.5, ["x"]), ("B", 2, None, []), ("C", 3, 1 / 3, ["y", "z"]))
    ]
    table = pa.Table.from_pylist(rows)
    reordered = pa.Table.from_pylist(rows[::-1])
    assert checksums.table_checksum(table) == checksums.table_checksum(reordered)
    moved = pa.Table.from_pylist([{**rows[0], "n": 2}, {**rows[1], "n": 1}, rows[2]])
    rounded = pa.Table.from_pylist([rows[0], rows[1], {**rows[2], "share": 1 / 3 + 1e-15}])
    both = {"account_daily": checksums.table_checksum(table), "account_features": checksums.table_checksum(table)}
    assert checksums.compare(both, {**both, "account_daily": checksums.table_checksum(rounded)}) == []
    assert checksums.compare(both, {**both, "account_daily": checksums.table_checksum(moved)}) == [
        "account_daily.n differs"
    ]


def test_duckdb_anchor_computes_what_the_real_jobs_compute_and_its_check_catches_a_changed_value(spark, tiny_lake):
    """benchmarks/duckdb_anchor.py's DuckDB SQL gives the rows the Spark jobs write, every column of account_daily
    and every feature; and its comparison reports a value that moved."""
    import duckdb

    from compute.spark import SparkEngine
    from jobs import aggregate, cluster, features

    anchor = _bench_module("duckdb_anchor")
    for day in (DAY1, DAY2):
        aggregate.run(SparkEngine(spark), tiny_lake, day)
        cluster.run(spark, tiny_lake, day)
        features.run(SparkEngine(spark), tiny_lake, day)
    con = duckdb.connect()
    anchor.register_inputs(con, tiny_lake, DAY2)
    anchor.run_duckdb_tables(con, DAY2, anchor.Stages(records=3))
    assert con.execute("SELECT count(*) FROM duck_features").fetchone()[0] == 2
    assert anchor.compare_tables(con, tiny_lake, DAY2) == {"account_daily": {}, "account_features": {}}

    con.execute("UPDATE duck_daily SET batch_requests = batch_requests + 1 WHERE account_id = 'B'")
    con.execute("UPDATE duck_features SET requests_7d = requests_7d * (1 + 1e-6) WHERE account_id = 'A'")
    assert anchor.compare_tables(con, tiny_lake, DAY2) == {
        "account_daily": {"batch_requests": 1},
        "account_features": {"requests_7d": 1},
    }
