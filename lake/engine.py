"""Spark sessions for the Spark engines; compute/ builds the engine interface on top of them.

Engines plug in by string key (Settings.engine, `--engine`, DG_ENGINE):
  Spark engines, one PySpark DataFrame code path (compute/spark.py, features/spark_engine.py):
    "embedded"   a Sail server (pysail) started in this process on a free loopback port; no JVM.
    "remote"     any Spark Connect server (Spark 4 + delta-spark, Sail on Kubernetes, Databricks).
    "jvm-local"  classic JVM PySpark in local[*] mode, without Delta: the Parquet baseline of benchmarks/engines.py
                 only (full `pyspark` package). JVM Spark with delta-spark runs as "remote": a Connect server
                 from infra/spark-connect/cpu.conf (tests/helpers/spark_servers.py starts one on loopback).
  Frame engines, one cuDF/pandas code path (compute/frames.py), for the steps jobs/steps.py marks:
    "cudf"       RAPIDS cuDF on a CUDA GPU (lake/frame_engines.py).
    "pandas"     the same frame code on CPU with pandas: how CI tests the cuDF path without a GPU.
  Steps that only exist on Spark (ingest, cluster, train) run on the Spark engine `spark_engine_key` picks:
  remote when a Spark Connect URL is set, otherwise embedded Sail.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from lake.config import FRAME_ENGINE_KEYS, SPARK_ENGINE_KEYS, Settings
from lake.errors import EngineUnavailableError, InputError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# Spark Connect sessions we configure identically on every engine so results do not depend on it.
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
}
# Shuffle partitions on the single-process engines when DG_SHUFFLE_PARTITIONS is unset. Remote servers are
# left alone: a session value would override what the cluster's operator configured.
EMBEDDED_SHUFFLE_PARTITIONS = 8


def _connect(url: str, settings: Settings, shuffle_partitions: int | None) -> SparkSession:
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.remote(url)
    for key, value in SESSION_CONF.items():
        builder = builder.config(key, value)
    if shuffle_partitions is not None:
        builder = builder.config("spark.sql.shuffle.partitions", str(shuffle_partitions))
    # create(), not getOrCreate(): getOrCreate hands back any existing default session whatever its
    # URL, so a second engine in the same process would silently talk to (and later stop) the first.
    return builder.create()


@contextlib.contextmanager
def _embedded(settings: Settings) -> Iterator[SparkSession]:
    from pysail.spark import SparkConnectServer

    server = SparkConnectServer(ip="127.0.0.1", port=0)
    server.start(background=True)
    host, port = server.listening_address
    log.info("embedded Sail Spark Connect server on %s:%s", host, port)
    spark = _connect(f"sc://{host}:{port}", settings, settings.shuffle_partitions or EMBEDDED_SHUFFLE_PARTITIONS)
    try:
        yield spark
    finally:
        with contextlib.suppress(Exception):
            spark.stop()
        server.stop()


@contextlib.contextmanager
def _remote(settings: Settings) -> Iterator[SparkSession]:
    if not settings.spark_remote:
        raise InputError("engine 'remote' needs --remote sc://host:port or DG_SPARK_REMOTE")
    from lake.remote import require_reachable

    require_reachable(settings.spark_remote, settings.connect_timeout_s)
    spark = _connect(settings.spark_remote, settings, settings.shuffle_partitions)
    try:
        yield spark
    finally:
        with contextlib.suppress(Exception):
            spark.stop()


@contextlib.contextmanager
def _jvm_local(settings: Settings) -> Iterator[SparkSession]:
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None or not (Path(spec.origin).parent / "jars").is_dir():
        raise EngineUnavailableError(
            "engine 'jvm-local' needs the full `pyspark` package with its jars (and Java 17); "
            "this environment has the Spark Connect client only. See benchmarks/README.md"
        )
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master("local[*]").appName("distillguard")
    for key, value in SESSION_CONF.items():
        builder = builder.config(key, value)
    partitions = settings.shuffle_partitions or EMBEDDED_SHUFFLE_PARTITIONS
    spark = builder.config("spark.sql.shuffle.partitions", str(partitions)).getOrCreate()
    try:
        yield spark
    finally:
        spark.stop()


SPARK_ENGINES: dict[str, Callable[[Settings], contextlib.AbstractContextManager[SparkSession]]] = {
    "embedded": _embedded,
    "remote": _remote,
    "jvm-local": _jvm_local,
}
if tuple(SPARK_ENGINES) != SPARK_ENGINE_KEYS:
    raise RuntimeError("lake.engine.SPARK_ENGINES out of step with lake.config.SPARK_ENGINE_KEYS")


def spark_engine_key(settings: Settings) -> str:
    """The Spark engine for this run: the configured one, or for frame engines the one Spark-only jobs use."""
    if settings.engine == "remote" or settings.spark_remote:
        return "remote"
    return "embedded" if settings.engine in FRAME_ENGINE_KEYS else settings.engine


@contextlib.contextmanager
def spark_session(settings: Settings) -> Iterator[SparkSession]:
    """Yield a SparkSession for the configured Spark engine and shut it down cleanly afterwards."""
    with SPARK_ENGINES[spark_engine_key(settings)](settings) as spark:
        yield spark
