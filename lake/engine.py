"""The engine seam: every job gets a Spark Connect session from here and nowhere else.

Engines plug in by string key:
  "embedded"  a Sail server (pysail) started in this process on a free loopback port; no JVM.
  "remote"    any Spark Connect server (Spark 4 + delta-spark, Sail on Kubernetes, Databricks).
Jobs are written once against the PySpark DataFrame API; nothing below this module branches on engine.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator

from lake.config import Settings

log = logging.getLogger(__name__)

# Spark Connect sessions we configure identically on every engine so results do not depend on it.
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
}


def _connect(url: str, settings: Settings):
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.remote(url)
    for key, value in SESSION_CONF.items():
        builder = builder.config(key, value)
    builder = builder.config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
    # create(), not getOrCreate(): getOrCreate hands back any existing default session whatever its
    # URL, so a second engine in the same process would silently talk to (and later stop) the first.
    return builder.create()


@contextlib.contextmanager
def _embedded(settings: Settings) -> Iterator:
    from pysail.spark import SparkConnectServer

    server = SparkConnectServer(ip="127.0.0.1", port=0)
    server.start(background=True)
    host, port = server.listening_address
    log.info("embedded Sail Spark Connect server on %s:%s", host, port)
    spark = _connect(f"sc://{host}:{port}", settings)
    try:
        yield spark
    finally:
        with contextlib.suppress(Exception):
            spark.stop()
        server.stop()


@contextlib.contextmanager
def _remote(settings: Settings) -> Iterator:
    if not settings.spark_remote:
        raise ValueError("engine 'remote' needs --remote sc://host:port or DG_SPARK_REMOTE")
    spark = _connect(settings.spark_remote, settings)
    try:
        yield spark
    finally:
        with contextlib.suppress(Exception):
            spark.stop()


ENGINES: dict[str, Callable[[Settings], contextlib.AbstractContextManager]] = {
    "embedded": _embedded,
    "remote": _remote,
}


def engine_key(settings: Settings) -> str:
    return "remote" if settings.spark_remote else "embedded"


@contextlib.contextmanager
def spark_session(settings: Settings) -> Iterator:
    """Yield a SparkSession for the configured engine and shut it down cleanly afterwards."""
    key = engine_key(settings)
    with ENGINES[key](settings) as spark:
        yield spark
