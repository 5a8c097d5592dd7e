"""Cluster job: link accounts active in the trailing window by what they share (payment, IP prefixes, rare
templates, synchronised activity; features/spark_clusters.py), write the cluster graph's links with their evidence
to `account_links`, what joined each candidate pair (one row per shared pseudonymised artefact,
features/spark_edges.py) to `account_edges`, and the graph's connected components to `account_clusters`, all
partitions of feature_date. Runs after aggregate and before features, whose cluster features read the result.
It runs on Spark engines only (jobs/steps.py: the frame engines have no cluster step).

Only linked accounts get a row (components of two or more accounts); an account absent from the partition has no
link strong enough for the cluster graph that day. cluster_id is derived from the component's
smallest account_id, so a rerun writes identical rows.

Sail has no cache or checkpoint, so the edges and each propagation iteration's labels are
written to scratch Delta tables under <lake>/_scratch/cluster_labels/<date>/<run id>/ and read
back; the scratch directory is deleted when the job ends, whether it succeeded or not.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from pyspark.sql import functions as F

from features import spark_clusters, spark_edges
from jobs import preconditions
from lake import catalog
from lake.config import Settings
from lake.errors import MissingInputError

log = logging.getLogger(__name__)


def _scratch_uri(settings: Settings, feature_date: dt.date) -> str:
    return f"{settings.lake_root.rstrip('/')}/_scratch/cluster_labels/{feature_date.isoformat()}/{uuid.uuid4().hex}"


def _delete_scratch(scratch_uri: str) -> None:
    """Delete this run's scratch directory, and the date directory above it once it is empty."""
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(scratch_uri)
    if filesystem.get_file_info(path).type != fs.FileType.NotFound:
        filesystem.delete_dir(path)
    date_dir = path.rstrip("/").rsplit("/", 1)[0]
    if filesystem.get_file_info(date_dir).type == fs.FileType.Directory and not filesystem.get_file_info(
        fs.FileSelector(date_dir)
    ):
        filesystem.delete_dir(date_dir)


def delta_scratch_materializer(spark, scratch_uri: str):
    """Write a frame to <scratch_uri>/iter_NNN (an iteration's labels) or <scratch_uri>/<name> (a stage) and continue
    from the stored copy."""

    def materialize(frame, iteration: int | str):
        uri = f"{scratch_uri}/iter_{iteration:03d}" if isinstance(iteration, int) else f"{scratch_uri}/{iteration}"
        frame.write.format("delta").mode("overwrite").save(uri)
        return spark.read.format("delta").load(uri)

    return materialize


def run(
    spark,
    settings: Settings,
    feature_date: dt.date,
    *,
    window_days: int = spark_clusters.DEFAULT_WINDOW_DAYS,
    max_accounts_per_prefix: int = spark_clusters.DEFAULT_MAX_ACCOUNTS_PER_PREFIX,
    max_iterations: int = spark_clusters.DEFAULT_MAX_ITERATIONS,
) -> None:
    preconditions.check_cluster(settings, feature_date)
    accounts = catalog.read(spark, settings, "accounts")
    account_daily = catalog.read(spark, settings, "account_daily")
    if catalog.read_partition(spark, settings, "account_daily", feature_date).limit(1).count() == 0:
        raise MissingInputError(f"account_daily has no rows for {feature_date}; aggregate that day before clustering")

    scratch = _scratch_uri(settings, feature_date)
    log.info("clustering %s; iteration scratch under %s", feature_date, scratch)
    try:
        # bronze of the window, key columns only: the template and timing evidence (never prompt text)
        requests = catalog.read(spark, settings, "requests").select(
            "account_id", "event_date", "event_ts", "prompt_fingerprint"
        )
        stored = delta_scratch_materializer(spark, scratch)
        # each stage is stored before the next reads it several times (Sail has no cache)
        members = stored(
            spark_clusters.artefact_members(
                accounts,
                account_daily,
                feature_date,
                window_days=window_days,
                max_accounts_per_prefix=max_accounts_per_prefix,
                requests=requests,
            ),
            "members",
        )
        pairs = stored(spark_clusters.artefact_pairs(members), "pairs")
        evidence = stored(spark_clusters.link_evidence(pairs), "evidence")
        edges = stored(spark_clusters.cluster_links(evidence), "edges")
        components = spark_clusters.connected_components(edges, stored, max_iterations=max_iterations)
        catalog.write_partition(spark_clusters.link_rows(edges, feature_date), settings, "account_links", feature_date)
        history = catalog.read(spark, settings, "account_edges") if catalog.exists(settings, "account_edges") else None
        artefact_edges = spark_edges.edge_rows(
            pairs, members, evidence, edges, feature_date, settings.pseudonym_key.get_secret_value(), history=history
        )
        catalog.write_partition(artefact_edges, settings, "account_edges", feature_date)
        rows = spark_clusters.account_clusters(components, spark_clusters.account_link_evidence(edges), feature_date)
        catalog.write_partition(rows, settings, "account_clusters", feature_date)
    finally:
        _delete_scratch(scratch)
    summary = (
        catalog.read_partition(spark, settings, "account_clusters", feature_date)
        .agg(F.count(F.lit(1)).alias("accounts"), F.countDistinct("cluster_id").alias("clusters"))
        .first()
    )
    print(
        f"cluster {feature_date.isoformat()}: {summary['accounts']:,} linked accounts in "
        f"{summary['clusters']:,} clusters written to account_clusters",
        flush=True,
    )
