"""The same nightly jobs on real distributed engines, compared with embedded Sail on the same lake.

Reference: one small simulated lake is ingested, aggregated, clustered and featurized day by day on embedded
Sail, a champion is trained on embedded Sail (on the planted-signal feature lake of tests/helpers/feature_lake.py: a lake
small enough for CI carries too few labels to train on), and the last day is scored. Then, per engine, a copy
of that lake gets the last day's whole nightly chain again through the real CLI (`distillguard --remote
sc://... nightly --date D`, so the jobs run in whatever order and form jobs/nightly.py gives them), with the
risk tables deleted first so that engine's Delta writer creates them. Every table's last-day partition must
equal the reference: exactly for counts, keys, strings, lists and timestamps, to 1e-9 relative for floats.

Engines, one class each so only one server runs at a time (its fixture is class-scoped and stops every
process it started, by id, also when a test fails):
  TestJvmSparkCluster     JVM Spark 4.2 + delta-spark, started from infra/spark-connect/cpu.conf (loopback
                          overrides in tests/helpers/spark_servers.py), as the driver of a Spark standalone cluster
                          (master + 2 one-core workers). One server and one chain carry every JVM assertion:
                          parity, tasks on both workers, delta-spark <-> delta-rs/polars/Sail in both directions,
                          and the server's shuffle partitions kept by a remote session.
  TestSailLocalCluster    Sail's local-cluster mode, 2 workers x 4 task slots, 4 shuffle partitions
Both run in `make test`; select them with `-m jvm` (JVM Spark) or `-m distributed` (both, plus the reference).
Time on a 2-core machine: docs/operations.md, "Running on a cluster".
"""

from __future__ import annotations

import datetime as dt
import math
import re
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from compute.spark import SparkEngine
from jobs import aggregate, cluster, families, features, ingest, score, train
from jobs.cli import main
from jobs.steps import runs_on_frame_engine
from lake import catalog
from lake.config import Settings, load_settings
from lake.engine import EMBEDDED_SHUFFLE_PARTITIONS, spark_session
from simulator import simulate
from tests.helpers.feature_lake import AS_OF as TRAIN_AS_OF
from tests.helpers.feature_lake import STRONG, synthetic_lake
from tests.helpers.spark_servers import (
    CPU_CONF,
    jvm_connect_server,
    read_spark_conf,
    sail_cluster_env,
    sail_server,
    spark_home,
    standalone_cluster,
)

pytestmark = pytest.mark.distributed

FIRST = dt.date(2026, 3, 2)
DAYS = 3
ACCOUNTS = 300
DATES = [FIRST + dt.timedelta(days=i) for i in range(DAYS)]
DAY = DATES[-1]
# table -> (columns identifying a row, columns that differ by design between two runs: a fresh uuid per run)
PARITY_TABLES = {
    "requests": (["request_id"], ["ingest_run_id"]),
    "quarantine": (["raw_record", "reason"], ["ingest_run_id"]),
    "ingest_runs": (["event_date"], ["ingest_run_id"]),
    "account_daily": (["account_id"], []),
    "account_features": (["account_id"], []),
    "account_clusters": (["account_id"], []),
    "account_edges": (["src", "dst", "link_type", "artefact"], []),
    "account_risk": (["account_id"], []),
    "cluster_risk": (["cluster_id"], []),
}
# Tables only `score` writes: deleted from each engine's copy so that engine's Delta writer creates them.
CREATED_BY_THE_ENGINE = ("account_risk", "cluster_risk")


@dataclass(frozen=True)
class Reference:
    settings: Settings
    tables: dict[str, pa.Table]  # the last day's partition of every PARITY_TABLES table, from embedded Sail


def _day_partition(settings: Settings, name: str) -> pa.Table:
    column = catalog.table(name).partition_by[0]
    return catalog.read_arrow(settings, name, filters=[(column, "=", DAY)])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    root = tmp_path_factory.mktemp("distributed_reference")
    mlflow_uri = f"sqlite:///{root}/mlflow.db"
    settings = load_settings(
        lake_root=str(root / "lake"),
        ground_truth_root=str(root / "truth"),
        mlflow_tracking_uri=mlflow_uri,
        spark_remote=None,
    )
    training = load_settings(
        lake_root=str(root / "training_lake"),
        ground_truth_root=str(root / "truth"),
        mlflow_tracking_uri=mlflow_uri,
        spark_remote=None,
    )
    simulate.run(settings, start=FIRST, days=DAYS, accounts=ACCOUNTS, seed=5)
    with spark_session(settings) as spark:
        synthetic_lake(training)
        train.run(spark, training, TRAIN_AS_OF, STRONG)
        engine = SparkEngine(spark)
        for day in DATES:
            for job in (ingest, aggregate, cluster, features, families):
                job.run(engine if runs_on_frame_engine(job.__name__.rsplit(".", 1)[-1]) else spark, settings, day)
        score.run(engine, settings, DAY)
    return Reference(settings, {name: _day_partition(settings, name) for name in PARITY_TABLES})


def run_jobs_remote(
    reference: Reference, url: str, work: Path, jobs: tuple[str, ...] = ("nightly",), *flags: str
) -> Settings:
    """A copy of the reference lake (less the risk tables when the jobs rewrite them), then the last day's `jobs`
    through the CLI on `url`: by default the whole nightly chain."""
    lake = work / "lake"
    shutil.copytree(reference.settings.lake_root, lake)
    if {"nightly", "score"} & set(jobs):
        for name in CREATED_BY_THE_ENGINE:
            shutil.rmtree(lake / name)
    settings = reference.settings.model_copy(update={"lake_root": str(lake), "spark_remote": url})
    for job in jobs:
        exit_code = main(
            [
                "--lake",
                str(lake),
                "--mlflow-uri",
                settings.mlflow_tracking_uri,
                "--remote",
                url,
                *flags,
                job,
                "--date",
                DAY.isoformat(),
            ]
        )
        assert exit_code == 0, job
    return settings


FLOAT_RTOL, FLOAT_ATOL = 1e-9, 1e-12


def _close(expected, actual) -> bool:
    """Equal, with floats (also inside lists and structs, e.g. risk reasons) equal to FLOAT_RTOL: the engines
    add in different orders (an entropy of 0.0 on one is 8.9e-16 on the other)."""
    if isinstance(expected, float) and isinstance(actual, float):
        return math.isclose(expected, actual, rel_tol=FLOAT_RTOL, abs_tol=FLOAT_ATOL)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(map(_close, expected, actual))
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(_close(expected[k], actual[k]) for k in expected)
    return expected == actual


def assert_tables_match(expected: pa.Table, actual: pa.Table, keys: list[str]) -> None:
    """Same columns and rows by key; every value equal, floats to FLOAT_RTOL. Column by column so a failure names
    the column and the key."""
    assert sorted(actual.schema.names) == sorted(expected.schema.names)
    assert actual.num_rows == expected.num_rows
    order = [(k, "ascending") for k in keys]
    wanted = expected.sort_by(order).to_pylist()
    got = actual.select(expected.schema.names).sort_by(order).to_pylist()
    for want, have in zip(wanted, got):
        for column in expected.schema.names:
            assert _close(want[column], have[column]), (column, {k: want[k] for k in keys}, want[column], have[column])


def assert_same_tables_as_embedded(reference: Reference, settings: Settings, names=tuple(PARITY_TABLES)) -> None:
    for name in names:
        keys, run_specific = PARITY_TABLES[name]
        expected = reference.tables[name].drop_columns(run_specific)
        actual = _day_partition(settings, name).drop_columns(run_specific)
        assert actual.num_rows == expected.num_rows > 0, name
        assert_tables_match(expected, actual, keys)


@pytest.mark.slow
def test_reference_lake_has_every_kind_of_row(reference):
    tables = reference.tables
    assert tables["quarantine"].num_rows > 0
    assert pc.sum(tables["account_daily"].column("cot_requests")).as_py() > 0
    assert len(set(tables["account_clusters"].column("cluster_id").to_pylist())) > 3
    assert set(tables["account_edges"].column("link_type").to_pylist()) >= {"payment", "ip_prefix"}
    assert len(set(tables["account_risk"].column("tier").to_pylist())) > 1
    assert tables["cluster_risk"].num_rows > 3


def test_infra_conf_names_the_delta_build_for_the_installed_spark():
    """cpu.conf (what the tests start) must name delta-spark for this Spark line: from Delta 4.1 on the artifact
    is delta-spark_<spark major.minor>_2.13, and its version must be the delta-spark package in uv.lock."""
    packages = read_spark_conf(CPU_CONF)["spark.jars.packages"].split(",")
    spark_minor = ".".join(metadata.version("pyspark").split(".")[:2])
    assert f"io.delta:delta-spark_{spark_minor}_2.13:{metadata.version('delta-spark')}" in packages
    # the full package and the Connect client share the `pyspark` import package: only identical files can
    assert metadata.version("pyspark") == metadata.version("pyspark-client")
    assert (spark_home() / "jars").is_dir()


@pytest.fixture(scope="class")
def jvm_cluster(tmp_path_factory):
    """A Spark standalone master and two 1-core workers, and the JVM Spark + delta-spark Connect server (from
    infra/spark-connect/cpu.conf) as the cluster's driver. Class-scoped: it runs only while TestJvmSparkCluster
    does; every process is stopped by id when the class ends, also after a failure."""
    logs = tmp_path_factory.mktemp("jvm_cluster_logs")
    with (
        standalone_cluster(logs, workers=2, cores=1, memory="1g") as cluster_,
        jvm_connect_server(logs, master=cluster_.master_url) as server,
    ):
        yield server


@pytest.fixture(scope="class")
def jvm_lake(reference, jvm_cluster, tmp_path_factory) -> Settings:
    """The last day's whole nightly chain through `distillguard --remote`, run once on the cluster."""
    return run_jobs_remote(reference, jvm_cluster.url, tmp_path_factory.mktemp("jvm_cluster"))


@pytest.mark.jvm
class TestJvmSparkCluster:
    """One JVM server for every JVM assertion: the nightly chain on a JVM costs minutes on a 2-core machine, so
    it runs once, on the standalone cluster (a local[N] server would prove a subset of the same)."""

    def test_nightly_on_jvm_spark_with_delta_equals_embedded_sail(self, reference, jvm_lake):
        assert_same_tables_as_embedded(reference, jvm_lake)

    def test_the_chain_ran_tasks_on_both_workers(self, jvm_cluster, jvm_lake):
        (application,) = jvm_cluster.rest("applications")
        executors = [
            e for e in jvm_cluster.rest(f"applications/{application['id']}/allexecutors") if e["id"] != "driver"
        ]
        # each worker runs its executors under its own web UI port, which the executor log links name
        worker_of = {e["id"]: re.search(r"//[^/]+:(\d+)/", e["executorLogs"]["stdout"]).group(1) for e in executors}
        busy_workers = {worker_of[e["id"]] for e in executors if e["totalTasks"] > 0}
        assert len(busy_workers) == 2, executors

    def test_delta_spark_writes_what_delta_rs_and_polars_read(self, jvm_lake):
        import polars as pl
        from deltalake import DeltaTable

        for name in CREATED_BY_THE_ENGINE:
            table = DeltaTable(jvm_lake.table_uri(name))
            engine_info = str(table.history(1)[0].get("engineInfo", ""))
            assert "Apache-Spark/4.2" in engine_info and "Delta-Lake/" in engine_info, engine_info
            assert pl.read_delta(jvm_lake.table_uri(name)).height == table.to_pyarrow_table().num_rows > 0

    def test_delta_spark_reads_what_sail_wrote(self, reference, jvm_cluster):
        remote = reference.settings.model_copy(update={"spark_remote": jvm_cluster.url})
        with spark_session(remote) as spark:
            for name in ("account_daily", "account_features", "account_risk"):
                rows = spark.read.format("delta").load(reference.settings.table_uri(name)).count()
                assert rows == catalog.read_arrow(reference.settings, name).num_rows > 0, name

    def test_a_remote_session_keeps_the_servers_shuffle_partitions_unless_set(self, reference, jvm_cluster):
        remote = reference.settings.model_copy(update={"spark_remote": jvm_cluster.url})
        assert remote.shuffle_partitions is None
        with spark_session(remote) as spark:
            assert spark.conf.get("spark.sql.shuffle.partitions") == jvm_cluster.conf["spark.sql.shuffle.partitions"]
        with spark_session(remote.model_copy(update={"shuffle_partitions": 3})) as spark:
            assert spark.conf.get("spark.sql.shuffle.partitions") == "3"
        with spark_session(reference.settings) as spark:  # embedded Sail keeps its small default
            assert spark.conf.get("spark.sql.shuffle.partitions") == str(EMBEDDED_SHUFFLE_PARTITIONS)


@pytest.mark.slow
class TestSailLocalCluster:
    WORKERS, TASK_SLOTS, SHUFFLE_PARTITIONS = 2, 4, 4

    @pytest.fixture(scope="class")
    def server(self, tmp_path_factory):
        env = sail_cluster_env(self.WORKERS, self.TASK_SLOTS)
        logs = tmp_path_factory.mktemp("sail_cluster_logs")
        with sail_server(logs, env, name="sail-local-cluster") as url:
            yield url, logs / "sail-local-cluster.log"

    def test_nightly_on_sail_local_cluster_equals_embedded_sail(self, reference, server, tmp_path_factory):
        url, log = server
        # workers x task slots must cover the largest task region: the shuffle partitions, and more where a stage
        # reads several inputs at once (4 slots in all failed here with "requires 5"; docs/operations.md, "Running on a cluster")
        settings = run_jobs_remote(
            reference,
            url,
            tmp_path_factory.mktemp("sail_cluster"),
            ("nightly",),
            "--shuffle-partitions",
            str(self.SHUFFLE_PARTITIONS),
        )
        assert_same_tables_as_embedded(reference, settings)
        started = set(re.findall(r"worker (\d+) is available", log.read_text()))
        assert started == {str(i) for i in range(1, self.WORKERS + 1)}


def test_shuffle_partitions_come_from_the_flag_or_the_environment(monkeypatch):
    from jobs.cli import build_parser, settings_from_args

    def settings_for(*flags: str) -> Settings:
        return settings_from_args(
            build_parser().parse_args([*flags, "--lake", "/tmp/x", "ingest", "--date", "2026-01-01"])
        )

    monkeypatch.delenv("DG_SHUFFLE_PARTITIONS", raising=False)
    assert settings_for().shuffle_partitions is None
    assert settings_for("--shuffle-partitions", "").shuffle_partitions is None  # what Airflow passes when unset
    monkeypatch.setenv("DG_SHUFFLE_PARTITIONS", "64")
    assert settings_for().shuffle_partitions == 64
    assert settings_for("--shuffle-partitions", "16").shuffle_partitions == 16
    with pytest.raises(SystemExit):
        settings_for("--shuffle-partitions", "0")
