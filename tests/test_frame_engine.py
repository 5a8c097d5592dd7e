"""Parity of the frame engines (pandas here, cuDF on GPU machines) with the Spark engine (embedded Sail).

One small simulated lake (real prompts, campaigns, proxies, model releases) is ingested once with Sail. Spark
aggregates and builds features for every day, the tables are snapshotted, then the frame engine recomputes the
same partitions on the same lake (delta-rs writes into the Sail-created tables) and every column must match:
exactly for counts, strings, lists and timestamps, to 1e-9 relative for floats. Scoring parity uses a trained
champion on the synthetic feature lake of tests/helpers/feature_lake.py, with hand-built clusters.
"""

from __future__ import annotations

import datetime as dt
import math

import pyarrow as pa
import pytest

from compute import open_engine
from compute.spark import SparkEngine
from jobs import aggregate, cluster, features, ingest
from lake import catalog, delta_files, frame_engines
from lake.config import load_settings
from lake.errors import MissingInputError
from simulator import simulate

FIRST = dt.date(2026, 3, 2)
DAYS = 4
DATES = [FIRST + dt.timedelta(days=i) for i in range(DAYS)]
FLOAT_RTOL = 1e-9
# XGBoost adds tree outputs in float32, and on a GPU in a different order than on a CPU
GPU_SCORE_RTOL = 1e-5


def _engine_settings(settings, engine: str, **overrides):
    return settings.model_copy(update={"engine": engine, **overrides})


def _sorted_rows(table: pa.Table, keys: list[str]) -> list[dict]:
    return table.sort_by([(k, "ascending") for k in keys]).to_pylist()


def assert_tables_match(expected: pa.Table, actual: pa.Table, keys: list[str], rtol: float = FLOAT_RTOL) -> None:
    """Same rows by key; floats to FLOAT_RTOL (Spark and the frame engines add in different orders), the rest
    exactly. Column by column so a failure names the column and the key."""
    assert sorted(actual.schema.names) == sorted(expected.schema.names)
    assert actual.num_rows == expected.num_rows
    floats = {f.name for f in expected.schema if pa.types.is_floating(f.type)}
    for want, got in zip(_sorted_rows(expected, keys), _sorted_rows(actual.select(expected.schema.names), keys)):
        where = {k: want[k] for k in keys}
        for column in expected.schema.names:
            a, b = want[column], got[column]
            if column in floats and a is not None and b is not None:
                assert math.isclose(a, b, rel_tol=rtol, abs_tol=1e-12), (column, where, a, b)
            else:
                assert a == b, (column, where, a, b)


@pytest.fixture(scope="module")
def spark_lake(spark, tmp_path_factory):
    """A simulated lake ingested, aggregated and featurized on Spark; returns (settings, snapshots)."""
    root = tmp_path_factory.mktemp("frame_parity")
    settings = load_settings(
        lake_root=str(root / "lake"),
        ground_truth_root=str(root / "truth"),
        mlflow_tracking_uri=f"sqlite:///{root}/mlflow.db",
        spark_remote=None,
    )
    simulate.run(settings, start=FIRST, days=DAYS, accounts=400, seed=5)
    for day in DATES:
        ingest.run(spark, settings, day)
        aggregate.run(SparkEngine(spark), settings, day)
        cluster.run(spark, settings, day)
        features.run(SparkEngine(spark), settings, day)
    snapshot = {name: catalog.read_arrow(settings, name) for name in ("account_daily", "account_features")}
    return settings, snapshot


@pytest.fixture(scope="module")
def frame_results(spark_lake):
    """Run the frame engines over the same partitions once per engine; tables keyed by engine name."""
    cache: dict[str, dict[str, pa.Table]] = {}

    def run(engine_name: str) -> dict[str, pa.Table]:
        if engine_name not in cache:
            settings = _engine_settings(spark_lake[0], engine_name)
            with open_engine(settings) as engine:
                for day in DATES:
                    aggregate.run(engine, settings, day)
                    features.run(engine, settings, day)
            cache[engine_name] = {
                name: catalog.read_arrow(settings, name) for name in ("account_daily", "account_features")
            }
        return cache[engine_name]

    return run


@pytest.mark.slow
def test_the_lake_is_big_enough_to_mean_something(spark_lake):
    _, snapshot = spark_lake
    daily = snapshot["account_daily"]
    assert daily.num_rows > 500
    assert max(daily.column("requests").to_pylist()) > 300  # an account-day over int8/int16 range of one flag
    assert sum(daily.column("cot_requests").to_pylist()) > 0
    assert sum(daily.column("newest_model_requests").to_pylist()) > 0
    assert sum(daily.column("repeated_template_requests").to_pylist()) > 0


@pytest.mark.slow
def test_daily_aggregates_match_spark(spark_lake, frame_results, frame_engine_name):
    expected = spark_lake[1]["account_daily"]
    actual = frame_results(frame_engine_name)["account_daily"]
    assert_tables_match(expected, actual, ["event_date", "account_id"])


@pytest.mark.slow
def test_features_match_spark(spark_lake, frame_results, frame_engine_name):
    expected = spark_lake[1]["account_features"]
    actual = frame_results(frame_engine_name)["account_features"]
    assert_tables_match(expected, actual, ["feature_date", "account_id"])
    # the comparison covered real values, not nulls on both sides
    assert sum(v is not None for v in actual.column("cot_elicitation_rate_7d").to_pylist()) > 100


@pytest.mark.slow
def test_bucketed_aggregation_equals_the_single_pass(spark_lake, frame_engine_name):
    """One file per read and several account buckets (host spill) give the same account_daily rows."""
    from features.daily_stats import BRONZE_INPUTS
    from features.frame_daily import aggregate_partition

    settings = _engine_settings(spark_lake[0], frame_engine_name)
    day = DATES[-1]
    files = delta_files.partition_files(settings, "requests", day, list(BRONZE_INPUTS))
    assert len(delta_files.file_batches(files, 1)) == len(files.paths)  # one read per file
    refs = [delta_files.read_table(settings, name) for name in ("accounts", "model_releases", "asn_info")]
    with frame_engines.frame_engine(settings) as engine:
        bucketed = aggregate_partition(engine, files, *refs, day, read_bytes=1, buckets=5)
    expected = spark_lake[1]["account_daily"].filter(
        pa.compute.equal(spark_lake[1]["account_daily"].column("event_date"), pa.scalar(day, pa.date32()))
    )
    assert_tables_match(expected, bucketed, ["account_id"])


def test_buckets_follow_the_memory_budget():
    assert delta_files.bucket_count(estimated_bytes=10 * 2**30, budget_bytes=4 * 2**30) == 3
    assert delta_files.bucket_count(estimated_bytes=1, budget_bytes=4 * 2**30) == 1


def _feature_inputs(settings, day: dt.date):
    """What the features job hands the frame engine for `day`: the window's and the clusters' files, the
    registry, releases and decisions."""
    labels = (
        delta_files.read_table(settings, "enforcement_labels")
        if catalog.exists(settings, "enforcement_labels")
        else catalog.table("enforcement_labels").schema.empty_table()
    )
    return (
        delta_files.table_files(settings, "account_daily", features.window_start(day), day),
        delta_files.read_table(settings, "accounts"),
        delta_files.read_table(settings, "model_releases"),
        delta_files.table_files(settings, "account_clusters", day, day),
        labels,
    )


@pytest.mark.slow
def test_bucketed_features_equal_one_bucket(spark_lake, frame_engine_name):
    """The window read one file at a time and rolled up in three account-hash buckets gives the same
    account_features rows, values and order as one bucket, clusters whose members sit in different buckets
    included."""
    from features.frame_windows import account_features

    settings = _engine_settings(spark_lake[0], frame_engine_name)
    day = DATES[-1]
    inputs = _feature_inputs(settings, day)
    assert len(inputs[0].paths) > 1
    with frame_engines.frame_engine(settings) as engine:
        whole = account_features(engine, *inputs, day, buckets=1)
        bucketed = account_features(engine, *inputs, day, buckets=3, read_bytes=1)
        clusters = engine.to_arrow(engine.read_files(inputs[3], ["account_id", "cluster_id"]))
        buckets = (
            engine.to_arrow(
                engine.xp.DataFrame({"b": engine.account_bucket(engine.from_arrow(clusters)["account_id"], 3)})
            )
            .column("b")
            .to_pylist()
        )
    spans: dict[str, set[int]] = {}
    for cluster_id, bucket in zip(clusters.column("cluster_id").to_pylist(), buckets):
        spans.setdefault(cluster_id, set()).add(bucket)
    assert any(len(b) > 1 for b in spans.values())  # some cluster's members are rolled up in different buckets
    assert whole.num_rows > 100
    assert bucketed.equals(whole)


@pytest.mark.slow
def test_window_buckets_follow_the_memory_budget(spark_lake, frame_engine_name):
    from features.frame_windows import window_buckets

    day = DATES[-1]
    for budget_gb, more_than_one in ((None, False), (1e-5, True)):  # the default 4 GiB, or about 10 KiB
        settings = _engine_settings(spark_lake[0], frame_engine_name, gpu_memory_budget_gb=budget_gb)
        daily = delta_files.table_files(settings, "account_daily", features.window_start(day), day)
        with frame_engines.frame_engine(settings) as engine:
            assert (window_buckets(engine, daily, day).count > 1) is more_than_one


@pytest.mark.slow
def test_window_read_through_the_frame_library_equals_delta(spark_lake, frame_engine_name):
    """Files read by the frame library, the partition column put back from the Delta log: the rows delta-rs
    reads, and the dates of the files with rows."""
    from compute.frames import FrameEngines

    settings = _engine_settings(spark_lake[0], frame_engine_name)
    columns = ["account_id", "event_date", "requests", "newest_model_first_ts", "ip_prefixes"]
    files = delta_files.table_files(settings, "account_daily", DATES[1], DATES[-1], columns)
    with frame_engines.frame_engine(settings) as engine:
        read = engine.to_arrow(engine.read_files(files, columns))
        assert FrameEngines(engine).dates_in(files, "event_date") == set(DATES[1:])
    read = read.set_column(1, "event_date", read.column("event_date").cast(pa.date32()))
    expected = catalog.read_arrow(settings, "account_daily", filters=[("event_date", ">=", DATES[1])]).select(columns)
    assert read.num_rows == expected.num_rows > 0
    assert_tables_match(expected, read.cast(expected.schema), ["event_date", "account_id"])


@pytest.mark.slow
def test_files_from_different_writers_read_as_one_frame(spark_lake, frame_engine_name, tmp_path):
    """A table's files need not agree on nullability (Sail writes `requests` as not null, delta-rs and the frame
    engines as nullable): the engine benchmark's lake, whose window mixes both, failed to read before."""
    import pyarrow.parquet as pq

    strict = pa.schema([pa.field("account_id", pa.string()), pa.field("requests", pa.int64(), nullable=False)])
    paths = (str(tmp_path / "sail.parquet"), str(tmp_path / "delta-rs.parquet"))
    pq.write_table(pa.table({"account_id": ["a"], "requests": [3]}, schema=strict), paths[0])
    pq.write_table(
        pa.table(
            {"account_id": ["b"], "requests": [None]},
            schema=pa.schema([pa.field("account_id", pa.string()), pa.field("requests", pa.int64())]),
        ),
        paths[1],
    )
    files = delta_files.PartitionFiles("account_daily", paths, (0, 0), (1, 1), "event_date", (DATES[0], DATES[1]))
    with frame_engines.frame_engine(_engine_settings(spark_lake[0], frame_engine_name)) as engine:
        read = engine.to_arrow(engine.read_files(files, ["account_id", "requests", "event_date"]))
    assert read.column("account_id").to_pylist() == ["a", "b"]
    assert read.column("requests").to_pylist() == [3, None]
    assert read.column("event_date").cast(pa.date32()).to_pylist() == [DATES[0], DATES[1]]


@pytest.mark.slow
def test_reference_tables_read_through_the_frame_library_equal_delta(spark_lake, frame_engine_name):
    """An unpartitioned (reference) table's files read by the frame library: the rows delta-rs reads. A date range
    is refused for such a table and required for a partitioned one; a table without files reads as no rows with
    the declared columns."""
    settings = _engine_settings(spark_lake[0], frame_engine_name)
    with frame_engines.frame_engine(settings) as engine:
        for name in ("accounts", "model_releases", "asn_info", "enforcement_labels"):
            files = delta_files.table_files(settings, name)
            assert files.partition_column is None and files.paths
            columns = catalog.table(name).schema.names
            expected = catalog.read_arrow(settings, name).select(columns)
            read = engine.to_arrow(engine.read_files(files, columns)).cast(expected.schema)
            order = [(c, "ascending") for c in columns]
            assert read.num_rows == expected.num_rows > 0
            assert read.sort_by(order).equals(expected.sort_by(order)), name
        empty = delta_files.PartitionFiles("enforcement_labels", (), (), (), None, ())
        assert list(engine.read_files(empty, ["account_id", "decided_at"]).columns) == ["account_id", "decided_at"]
    with pytest.raises(ValueError, match="refused for an unpartitioned"):
        delta_files.table_files(settings, "accounts", FIRST, FIRST)
    with pytest.raises(ValueError, match="needed for a partitioned"):
        delta_files.table_files(settings, "account_daily")


def test_window_read_refuses_a_table_with_deletion_vectors(settings):
    from deltalake import write_deltalake

    write_deltalake(
        settings.table_uri("account_daily"),
        pa.table({"account_id": ["a"], "event_date": pa.array([FIRST], pa.date32())}),
        partition_by=["event_date"],
        configuration={"delta.enableDeletionVectors": "true"},
    )
    with pytest.raises(delta_files.UnsupportedTableError, match="deletionVectors"):
        delta_files.table_files(settings, "account_daily", FIRST, FIRST)


def test_kvikio_threads_default_to_the_cpu_count_and_refuse_nonsense(tmp_path, monkeypatch):
    """The cuDF engine sets KvikIO's read threads from this before its first read (lake/frame_engines.py
    use_kvikio_threads); that call needs cuDF and is not run here."""
    import os

    from lake.errors import InputError

    def load(**overrides):
        return load_settings(lake_root=str(tmp_path / "lake"), mlflow_tracking_uri="sqlite:///x.db", **overrides)

    monkeypatch.delenv("DG_KVIKIO_THREADS", raising=False)
    assert load().kvikio_thread_count == (os.cpu_count() or 1)
    monkeypatch.setenv("DG_KVIKIO_THREADS", "12")
    assert load().kvikio_thread_count == 12
    for bad in ("0", "many", "2.5"):
        monkeypatch.setenv("DG_KVIKIO_THREADS", bad)
        with pytest.raises(InputError, match="kvikio_threads") as error:
            load()
        assert "\n" not in str(error.value)


def test_frame_engine_refuses_tables_it_cannot_read(tmp_path):
    from deltalake import DeltaTable, write_deltalake

    uri = str(tmp_path / "dv_table")
    write_deltalake(uri, pa.table({"x": [1, 2]}), configuration={"delta.enableDeletionVectors": "true"})
    protocol = DeltaTable(uri).protocol()
    assert "deletionVectors" in (protocol.reader_features or [])
    with pytest.raises(delta_files.UnsupportedTableError, match="deletionVectors"):
        delta_files.check_readable(uri)


def test_cudf_without_a_gpu_stack_is_an_error_not_a_cpu_fallback(settings):
    pytest.importorskip("pyarrow")
    try:
        import cudf  # noqa: F401 - importing it is the probe: is a GPU stack here?

        pytest.skip("cuDF is installed here; the refusal is for hosts without it")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="engine 'cudf' needs RAPIDS cuDF"):
        with open_engine(_engine_settings(settings, "cudf")):
            pass


@pytest.mark.slow
def test_features_job_refuses_a_day_without_daily_rows(spark_lake, frame_engine_name):
    settings = _engine_settings(spark_lake[0], frame_engine_name)
    with open_engine(settings) as engine:
        with pytest.raises(MissingInputError, match="account_daily has no rows for 2026-04-01"):
            features.run(engine, settings, dt.date(2026, 4, 1))


# --- scoring -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scored_on_spark(spark, tmp_path_factory):
    """The synthetic feature lake (tests/helpers/feature_lake.py), a trained champion, hand-built clusters for the score
    date, and the Spark engine's account_risk / cluster_risk for that date."""
    from jobs import score, train
    from tests.helpers.feature_lake import SCORE_DATE, STRONG, synthetic_lake

    root = tmp_path_factory.mktemp("frame_scoring")
    settings = load_settings(
        lake_root=str(root / "lake"),
        ground_truth_root=str(root / "truth"),
        mlflow_tracking_uri=f"sqlite:///{root}/mlflow.db",
        spark_remote=None,
        model_name="dg-frame-parity",
    )
    groups = synthetic_lake(settings)
    train.run(spark, settings, SCORE_DATE, STRONG)
    members = {
        "c-hydra": (groups["camp-A"][:8], ["payment"]),
        "c-mixed": (groups["benign"][:3] + groups["camp-B"][:2], ["ip_prefix", "payment"]),
        "c-quiet": (groups["benign"][10:12], ["ip_prefix"]),
    }
    catalog.write_arrow(
        settings,
        "account_clusters",
        pa.Table.from_pylist(
            [
                dict(feature_date=SCORE_DATE, account_id=account, cluster_id=cluster, link_types=links)
                for cluster, (accounts, links) in members.items()
                for account in accounts
            ],
            schema=catalog.table("account_clusters").schema,
        ),
        SCORE_DATE,
    )
    score.run(SparkEngine(spark), settings, SCORE_DATE)
    snapshot = {name: catalog.read_arrow(settings, name) for name in ("account_risk", "cluster_risk")}
    return settings, SCORE_DATE, snapshot


@pytest.mark.slow
def test_scores_tiers_reasons_and_clusters_match_spark(scored_on_spark, frame_engine_name):
    from jobs import score

    spark_settings, score_date, expected = scored_on_spark
    settings = _engine_settings(spark_settings, frame_engine_name)
    with open_engine(settings) as engine:
        result = score.run(engine, settings, score_date)
    assert result.clusters_scored == 3
    actual = {name: catalog.read_arrow(settings, name) for name in ("account_risk", "cluster_risk")}
    rtol = GPU_SCORE_RTOL if frame_engine_name == "cudf" else FLOAT_RTOL
    assert_tables_match(
        expected["account_risk"].drop(["reasons"]), actual["account_risk"].drop(["reasons"]), ["account_id"], rtol
    )
    reasons = {r["account_id"]: r["reasons"] for r in expected["account_risk"].to_pylist()}
    for row in actual["account_risk"].to_pylist():
        want = reasons[row["account_id"]]
        assert [r["feature"] for r in row["reasons"]] == [r["feature"] for r in want]
        assert [r["text"] for r in row["reasons"]] == [r["text"] for r in want]
    assert_tables_match(expected["cluster_risk"], actual["cluster_risk"], ["cluster_id"], rtol)
    assert {t for t in actual["account_risk"].column("tier").to_pylist()} - {"low"}  # some accounts are flagged
