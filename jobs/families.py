"""Families job: the detection families that stand on the link graph, on peers and on past decisions, scored for
one day into `family_scores` (one row per account and family: propagation, peer_novelty, switch, resemblance;
higher = more extraction-like, with a plain-language reason). Runs after features (it reads account_edges and
account_features) on Spark engines.

Spark reads and reduces; the pure functions of models/propagation.py, models/peer_novelty.py and
models/resemblance.py score on the driver. What reaches the driver is bounded: the account x artefact incidence of
account_edges over the propagation memory (refused above propagation.MAX_INCIDENCE_ROWS), account_daily's rows of
the last peer_novelty.HISTORY_DAYS (accounts x days), the day's account_features (resemblance.FEATURES only), the
decided accounts' account_features rows up to the day (decided accounts x days), the decisions and the accounts'
programs.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
from pyspark.sql import functions as F

from features import spark_edges
from lake import catalog
from lake.config import Settings
from lake.errors import MissingInputError
from models import peer_novelty, propagation, resemblance

FAMILIES = catalog.LAKE_FAMILIES


def read_inputs(spark, settings: Settings, score_date: dt.date) -> dict[str, pd.DataFrame | int]:
    """What the families read for score_date, as pandas frames: incidence, decisions, daily, accounts, features
    (the day's account_features), decided_features (decided accounts' account_features rows up to the day), and
    population (accounts active over the propagation memory)."""
    if not catalog.exists(settings, "account_edges"):
        raise MissingInputError("account_edges does not exist; run cluster for the day first")
    if catalog.read_partition(spark, settings, "account_daily", score_date).limit(1).count() == 0:
        raise MissingInputError(f"account_daily has no rows for {score_date}; aggregate that day first")
    features = catalog.read_partition(spark, settings, "account_features", score_date)
    if features.limit(1).count() == 0:
        raise MissingInputError(f"account_features has no rows for {score_date}; run features for that day first")
    incidence = spark_edges.artefact_incidence(
        catalog.read(spark, settings, "account_edges"), score_date, propagation.PROPAGATION_MEMORY_DAYS
    )
    rows = incidence.count()
    if rows > propagation.MAX_INCIDENCE_ROWS:
        raise ValueError(
            f"the account x artefact graph has {rows:,} rows, above {propagation.MAX_INCIDENCE_ROWS:,}; "
            "shorten propagation.PROPAGATION_MEMORY_DAYS or score the family in Spark"
        )
    daily = catalog.read(spark, settings, "account_daily")
    memory_start = score_date - dt.timedelta(days=propagation.PROPAGATION_MEMORY_DAYS - 1)
    population = (
        daily.where((F.col("event_date") >= F.lit(memory_start)) & (F.col("event_date") <= F.lit(score_date)))
        .select("account_id")
        .distinct()
        .count()
    )
    history_start = score_date - dt.timedelta(days=peer_novelty.HISTORY_DAYS - 1)
    recent = daily.where(
        (F.col("event_date") >= F.lit(history_start)) & (F.col("event_date") <= F.lit(score_date))
    ).select(*peer_novelty.DAILY_COLUMNS)
    labels = (
        catalog.read(spark, settings, "enforcement_labels")
        if catalog.exists(settings, "enforcement_labels")
        else spark.createDataFrame([], "account_id string, label string, decided_at timestamp")
    )
    profile_columns = ["account_id", "feature_date", resemblance.ACTIVE_COLUMN, *resemblance.FEATURES]
    decided_features = (
        catalog.read(spark, settings, "account_features")
        .where(F.col("feature_date") <= F.lit(score_date))
        .join(labels.select("account_id").distinct(), "account_id", "left_semi")
        .select(*profile_columns)
    )
    return {
        "incidence": incidence.toArrow().to_pandas(),
        "features": features.select("account_id", *resemblance.FEATURES).toArrow().to_pandas(),
        "decided_features": decided_features.toArrow().to_pandas(),
        "decisions": labels.select("account_id", "label", "decided_at").toArrow().to_pandas(),
        "daily": recent.toArrow().to_pandas(),
        "accounts": catalog.read(spark, settings, "accounts").select("account_id", "program").toArrow().to_pandas(),
        "population": population,
    }


def family_rows(inputs: dict, score_date: dt.date) -> pd.DataFrame:
    """`family_scores` rows for score_date from read_inputs' frames: propagation for every account active in the
    last peer_novelty.HISTORY_DAYS, peer novelty and switch for those active in the last PROFILE_DAYS and
    SWITCH_RECENT_DAYS (an account idle that week has no recent behaviour to compare), resemblance for every
    account with features that day."""
    active = inputs["daily"].loc[inputs["daily"]["requests"] > 0, "account_id"].unique()
    scores = {
        "propagation": propagation.propagation_scores(
            inputs["incidence"], inputs["decisions"], score_date, accounts=active, population=inputs["population"]
        ),
        "peer_novelty": peer_novelty.peer_scores(
            peer_novelty.account_profiles(inputs["daily"], inputs["accounts"], score_date)
        ),
        "switch": peer_novelty.switch_scores(inputs["daily"], score_date),
        "resemblance": resemblance.resemblance_scores(
            inputs["features"], inputs["decided_features"], inputs["decisions"], score_date
        ),
    }
    frames = [s[["account_id", "score", "reason"]].assign(family=family) for family, s in scores.items()]
    rows = pd.concat(frames, ignore_index=True).assign(score_date=score_date)
    return rows[list(catalog.table("family_scores").columns)]


def run(spark, settings: Settings, score_date: dt.date) -> None:
    rows = family_rows(read_inputs(spark, settings, score_date), score_date)
    table = pa.Table.from_pandas(rows, schema=catalog.table("family_scores").schema, preserve_index=False)
    catalog.write_arrow(settings, "family_scores", table, partition_value=score_date)
    counts = rows.groupby("family").size().to_dict()
    print(
        f"families {score_date.isoformat()}: "
        + ", ".join(f"{counts.get(f, 0):,} {f}" for f in FAMILIES)
        + " account scores written to family_scores",
        flush=True,
    )
