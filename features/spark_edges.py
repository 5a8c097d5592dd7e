"""Stored edges: what joined two linked accounts, one row per candidate pair and shared artefact per day (the
`account_edges` table), as DataFrame -> DataFrame transforms.

`account_links` says how many artefacts of each kind a pair shares; an analyst who bans 40 accounts, and an
appeal, need to know which ones and how rare they are ("shares one card with 11 accounts"). So for every candidate
pair of the cluster graph (strength >= MIN_LINK_STRENGTH, features/spark_clusters.py), whether or not the mutual
nearest-neighbour rule kept it for the clusters, each shared artefact gets a row:
  link_type          payment | ip_prefix | template | timing
  artefact           its pseudonym: a keyed hash of the payment fingerprint; the ingest's keyed hash of the IP
                     prefix; the normalised prompt-template fingerprint; the MinHash band of active minutes.
                     Never a raw IP or prompt text.
  artefact_accounts  how many accounts active in the window share it (rarity; a large payment group is linked as a
                     ring, but this counts every member)
  strength           the pair's strength (all it shares), in_cluster_graph whether the clusters kept the pair
  first_seen         the first day both accounts had used the artefact, carried over from earlier partitions (up
                     to FIRST_SEEN_MEMORY_DAYS back), so it reaches past the window
  last_seen          the last day in the window either account used it

The propagation family (models/propagation.py) reads this table's history as its long-memory account-artefact
graph. Nothing here collects rows to the driver.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from features import spark_clusters
from lake.validation import keyed_hash

# how far back an edge's first_seen is carried: an edge absent for longer starts again
FIRST_SEEN_MEMORY_DAYS = 90
EDGE_KEY = ("src", "dst", "link_type", "artefact")
EDGE_VALUES = ("artefact_accounts", "strength", "in_cluster_graph", "first_seen", "last_seen")


def artefact_pseudonym(link_type: F.Column, item: F.Column, pseudonym_key: str) -> F.Column:
    """The stored name of an artefact. IP prefixes arrive as the ingest's keyed hashes and templates and timing
    bands as hashes; the billing system's payment fingerprint is keyed-hashed here, so the table cannot be joined
    back to a card without the lake's key."""
    return F.when(link_type == F.lit(spark_clusters.PAYMENT_LINK), keyed_hash(item, pseudonym_key)).otherwise(item)


def edge_rows(
    pairs: DataFrame,
    members: DataFrame,
    evidence: DataFrame,
    cluster_links: DataFrame,
    feature_date: dt.date,
    pseudonym_key: str,
    *,
    history: DataFrame | None = None,
    min_strength: float = spark_clusters.MIN_LINK_STRENGTH,
) -> DataFrame:
    """Rows of `account_edges` for feature_date.

    pairs          (src, dst, link_type, item) from `spark_clusters.artefact_pairs`
    members        (account_id, item, link_type, first_used, last_used) from `spark_clusters.artefact_members`
    evidence       `spark_clusters.link_evidence` rows (src, dst, ..., strength)
    cluster_links  the pairs the cluster graph kept (`spark_clusters.cluster_links`)
    history        earlier `account_edges` rows (any dates; only those before feature_date are read), or None
    """
    candidates = evidence.where(F.col("strength") >= F.lit(float(min_strength))).select("src", "dst", "strength")
    kept = cluster_links.select("src", "dst", F.lit(True).alias("in_cluster_graph"))

    def end(frame: DataFrame, side: str, *extra: F.Column) -> DataFrame:
        """One end of a pair: its account as `side` and when it first and last used the artefact."""
        dates = (F.col("first_used").alias(f"{side}_first"), F.col("last_used").alias(f"{side}_last"))
        return frame.select("link_type", "item", F.col("account_id").alias(side), *dates, *extra)

    ends = end(spark_clusters.with_group_size(members), "src", F.col("accounts").alias("artefact_accounts"))
    other_ends = end(members, "dst")
    rows = (
        pairs.join(candidates, ["src", "dst"])
        .join(kept, ["src", "dst"], "left")
        .join(ends, ["link_type", "item", "src"])
        .join(other_ends, ["link_type", "item", "dst"])
        .select(
            "src",
            "dst",
            "link_type",
            artefact_pseudonym(F.col("link_type"), F.col("item"), pseudonym_key).alias("artefact"),
            F.col("artefact_accounts").cast("long").alias("artefact_accounts"),
            "strength",
            F.coalesce(F.col("in_cluster_graph"), F.lit(False)).alias("in_cluster_graph"),
            F.greatest("src_first", "dst_first").alias("first_seen"),
            F.greatest("src_last", "dst_last").alias("last_seen"),
        )
    )
    if history is not None:
        earliest = feature_date - dt.timedelta(days=FIRST_SEEN_MEMORY_DAYS)
        prior = (
            history.where((F.col("feature_date") < F.lit(feature_date)) & (F.col("feature_date") >= F.lit(earliest)))
            .groupBy(*EDGE_KEY)
            .agg(F.min("first_seen").alias("prior_first_seen"))
        )
        rows = rows.join(prior, list(EDGE_KEY), "left").withColumn(
            "first_seen", F.least("first_seen", F.coalesce("prior_first_seen", "first_seen"))
        )
    return rows.select(F.lit(feature_date).alias("feature_date"), *EDGE_KEY, *EDGE_VALUES)


def artefact_incidence(edges: DataFrame, scoring_date: dt.date, memory_days: int) -> DataFrame:
    """The long-memory account x artefact graph the propagation family walks (models/propagation.py): one row per
    (account_id, link_type, artefact) at either end of an `account_edges` row of the memory_days up to
    scoring_date, with artefact_accounts the most accounts that shared the artefact on any of those days."""
    if memory_days < 1:
        raise ValueError(f"memory_days must be >= 1, got {memory_days}")
    first_day = scoring_date - dt.timedelta(days=memory_days - 1)
    recent = edges.where((F.col("feature_date") >= F.lit(first_day)) & (F.col("feature_date") <= F.lit(scoring_date)))
    ends = recent.select(F.col("src").alias("account_id"), "link_type", "artefact", "artefact_accounts").unionByName(
        recent.select(F.col("dst").alias("account_id"), "link_type", "artefact", "artefact_accounts")
    )
    per_account = ends.groupBy("account_id", "link_type", "artefact").agg(F.max("artefact_accounts").alias("shared"))
    busiest = F.max("shared").over(Window.partitionBy("link_type", "artefact"))
    return per_account.select("account_id", "link_type", "artefact", busiest.alias("artefact_accounts"))
