"""`distillguard publish --date D`: record that the day's risk tables are released to analysts.

Runs after the quality gate has passed. It writes one row per score date to the ops table `risk_publications`
(replaceWhere on score_date, so a rerun replaces that day's record): what was published (account and cluster
counts, tier counts, the model version and feature set behind the scores) and the Delta versions of account_risk
and cluster_risk at publication, so an analyst or an audit can read exactly the published snapshot back with time
travel even after a later rerun of the day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from lake import catalog
from lake.config import Settings
from lake.errors import ConflictError, MissingInputError
from models.config import TIERS


@dataclass(frozen=True)
class Publication:
    score_date: dt.date
    published_at: dt.datetime
    model_name: str
    model_version: str
    feature_set_version: str
    accounts: int
    clusters: int
    tier_counts: dict[str, int]
    account_risk_version: int
    cluster_risk_version: int | None


def risk_day_summary(risk_day):
    """One score date of account_risk -> one row: accounts, one count per tier, and the distinct model names,
    versions and feature-set versions (a published day must have exactly one of each)."""
    from pyspark.sql import functions as F

    return risk_day.agg(
        F.count(F.lit(1)).alias("accounts"),
        *(
            F.sum(F.when(F.col("tier") == F.lit(tier), 1).otherwise(0)).cast("bigint").alias(f"{tier}_accounts")
            for tier in TIERS
        ),
        F.array_sort(F.collect_set("model_name")).alias("model_names"),
        F.array_sort(F.collect_set("model_version")).alias("model_versions"),
        F.array_sort(F.collect_set("feature_set_version")).alias("feature_set_versions"),
    )


def _single(values: list[str], what: str, score_date: dt.date) -> str:
    if len(values) != 1:
        raise MissingInputError(
            f"account_risk for {score_date} has {len(values)} {what}s {values}; rescore the day before publishing"
        )
    return values[0]


def run(spark, settings: Settings, score_date: dt.date) -> Publication:
    from deltalake import DeltaTable

    from jobs.score import MARKER_TABLE, finished_at

    run_finished = finished_at(settings, score_date)
    if run_finished is None:
        raise MissingInputError(
            f"the score run for {score_date} did not finish (no {MARKER_TABLE} marker), so account_risk and "
            f"cluster_risk may not belong together; run `distillguard score --date {score_date.isoformat()}` first"
        )

    # Versions first, then the counts, then the marker again: a rescore of the day that starts in between clears the
    # marker before it writes, so an unchanged marker means the versions and counts belong to the run it marks.
    risk_version = DeltaTable(settings.table_uri("account_risk")).version()
    cluster_version = (
        DeltaTable(settings.table_uri("cluster_risk")).version() if catalog.exists(settings, "cluster_risk") else None
    )
    summary = risk_day_summary(catalog.read_partition(spark, settings, "account_risk", score_date)).collect()[0]
    if summary["accounts"] == 0:
        raise MissingInputError(
            f"account_risk has no rows for {score_date}: nothing to publish "
            f"(run `distillguard score --date {score_date.isoformat()}` first)"
        )
    clusters = (
        catalog.read_partition(spark, settings, "cluster_risk", score_date).count()
        if cluster_version is not None
        else 0
    )
    if finished_at(settings, score_date) != run_finished:
        raise ConflictError(
            f"{score_date} was rescored while it was being published, so nothing was recorded; run `distillguard "
            f"publish --date {score_date.isoformat()}` again once the score run has finished"
        )
    publication = Publication(
        score_date=score_date,
        published_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
        model_name=_single(summary["model_names"], "model name", score_date),
        model_version=_single(summary["model_versions"], "model version", score_date),
        feature_set_version=_single(summary["feature_set_versions"], "feature-set version", score_date),
        accounts=int(summary["accounts"]),
        clusters=int(clusters),
        tier_counts={tier: int(summary[f"{tier}_accounts"]) for tier in TIERS},
        account_risk_version=risk_version,
        cluster_risk_version=cluster_version,
    )
    record = spark.createDataFrame(
        [
            (
                publication.score_date,
                publication.published_at,
                publication.model_name,
                publication.model_version,
                publication.feature_set_version,
                publication.accounts,
                publication.clusters,
                *(publication.tier_counts[tier] for tier in TIERS),
                publication.account_risk_version,
                publication.cluster_risk_version,
            )
        ],
        catalog.spark_ddl("risk_publications"),
    )
    catalog.write_partition(record, settings, "risk_publications", score_date)
    tiers = ", ".join(f"{tier} {n:,}" for tier, n in publication.tier_counts.items())
    print(
        f"published {score_date.isoformat()}: {publication.accounts:,} accounts ({tiers}), {publication.clusters:,} "
        f"clusters, {publication.model_name} v{publication.model_version}, account_risk v{risk_version}",
        flush=True,
    )
    return publication
