"""Score one day's account_features with the champion model into account_risk and cluster_risk.

The day's rows never come to the driver: the booster travels as raw bytes inside a `mapInArrow` function, which
the engine runs next to the data (in embedded Sail, in the server's Python; on a Spark cluster, on executors),
rebuilding the booster once per partition and predicting on CPU. Each output row carries the score (the share of
the version's clean benign reference the account outranks, models/fusion.py), its tier and the top positive
XGBoost contributions as plain-language reasons (models/explain.py).

Refusals (clear errors, nothing written): no champion; the day has no features; the champion's feature list or
feature_set_version differs from the account_features table's.

cluster_score = mean of the `cluster_top_members` highest member scores. A hydra cluster is often mixed with
ordinary customers' accounts, so a mean over all members dilutes it; the max alone lets one outlier decide; the
top-few mean sits between. cluster_risk.score is that same value. Capabilities per cluster are 7-day shares
weighted by each member's 7-day requests.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from features.registry import FEATURES
from lake import catalog
from lake.config import Settings
from lake.errors import InputError, MissingTableError
from models import fusion, novelty, registry, tier_audit
from models.config import LOWEST_TIER, TIERS, ScoringConfig, load_model_config
from models.explain import reason_templates, top_reasons

if TYPE_CHECKING:
    from pyspark.sql import Column

log = logging.getLogger(__name__)

KEY_COLUMNS = ("account_id", "feature_date")
NON_FEATURE_COLUMNS = ("account_id", "feature_date", "feature_set_version")
SCORED_DDL = (
    "account_id string, cluster_id string, score double, tier string, "
    f"reasons {catalog.spark_type(catalog.table('account_risk').schema.field('reasons').type)}"
)


class FeatureContractError(InputError):
    """The champion model and the account_features table disagree on the feature list or its version."""


# --- pure pieces ----------------------------------------------------------------------------------


def assign_tiers(scores: np.ndarray, bounds: tuple[tuple[str, float], ...]) -> np.ndarray:
    """Tier per score; `bounds` is highest tier first, as stored on the model version."""
    tiers = np.full(scores.shape, LOWEST_TIER, dtype=object)
    for name, bound in reversed(bounds):  # lowest bound first, so higher tiers overwrite
        tiers[scores >= bound] = name
    return tiers


def check_feature_contract(
    champion: registry.ModelVersionInfo, table_columns: list[str], table_feature_set_versions: list[str]
) -> None:
    """Refuse unless the table has exactly the champion's feature columns and one matching feature_set_version."""
    table_features = [c for c in table_columns if c not in NON_FEATURE_COLUMNS]
    if not champion.feature_columns:
        raise FeatureContractError(
            f"champion {champion.name} v{champion.version} has no feature list tag; "
            "it was not registered by distillguard training and cannot be checked"
        )
    missing = [c for c in champion.feature_columns if c not in table_features]
    extra = [c for c in table_features if c not in champion.feature_columns]
    if missing or extra:
        raise FeatureContractError(
            f"champion {champion.name} v{champion.version} expects a different feature list than account_features: "
            f"missing from the table {missing[:10]}{' ...' if len(missing) > 10 else ''}, "
            f"not known to the model {extra[:10]}{' ...' if len(extra) > 10 else ''}; retrain or rebuild features"
        )
    versions = sorted(set(table_feature_set_versions))
    if versions != [champion.feature_set_version]:
        raise FeatureContractError(
            f"champion {champion.name} v{champion.version} was trained on feature set "
            f"{champion.feature_set_version}, but the day's features are {versions}; retrain or rebuild features"
        )


REASON_TYPE = catalog.table("account_risk").schema.field("reasons").type
# How a lake family's reason opens when it leads an account's reasons (its sentence comes from family_scores).
LAKE_FAMILY_LEADS = {
    "propagation": "linked to accounts already decided",
    "peer_novelty": "unusual among accounts like it",
    "switch": "changed from its own past",
    "resemblance": "resembles accounts already decided",
}
# A novelty family leads an account's reasons when it gave the most evidence and the account is above this share of
# the benign reference on it (the elevated tier's rate). Not fitted.
NOVELTY_REASON_SHARE = 0.01


def score_rows(
    booster,
    values: np.ndarray,
    columns: list[str],
    templates: list[tuple[str, str, str]],
    reasons_per_account: int,
    tier_bounds: tuple[tuple[str, float], ...],
    score_reference: str,
    version: str = "?",
    lake: dict[str, np.ndarray] | None = None,
    lake_reasons: dict[str, list] | None = None,
):
    """(scores, tiers, reasons) for a matrix of feature values: what every engine's scorer computes.
    `values` is a numpy array, or a cupy array when the booster runs on a GPU; `lake` holds the raw scores of the
    version's lake families (family_scores) per row, and `lake_reasons` their sentences. The score is the fused
    score of models/fusion.py: the share of the version's clean benign reference the account outranks. An account
    whose largest evidence comes from a family other than the supervised model leads its reasons with it: the
    behaviour that made it unusual, or the artefact it shares with decided accounts."""
    import xgboost as xgb

    model = fusion.parse(score_reference, version)
    matrix = xgb.DMatrix(values, feature_names=columns, missing=np.nan)
    supervised = _to_numpy(booster.predict(matrix)).astype(np.float64)
    contributions = _to_numpy(booster.predict(matrix, pred_contribs=True))
    host_values = _to_numpy(values)
    reasons = top_reasons(contributions, host_values, columns, templates, reasons_per_account)
    raw, signals = fusion.family_scores(supervised, host_values, columns, model, lake=lake)
    fused = fusion.score(raw, model)
    reference = fusion.novelty_reference(model)
    column_index = {c: i for i, c in enumerate(columns)}
    leading = fused.leading
    unusual = fused.p_values[np.arange(len(leading)), leading] <= NOVELTY_REASON_SHARE
    for row in np.nonzero(unusual)[0]:
        family = fused.families[leading[row]]
        outranks = 1.0 - float(fused.p_values[row, leading[row]])
        if family in signals:
            signal = int(signals[family][row])
            value = float(host_values[row, column_index[reference.columns[signal]]])
            feature, text = "novelty", novelty.explanation(reference, signal, value, outranks, family)
        elif lake_reasons and lake_reasons.get(family) is not None and lake_reasons[family][row]:
            feature = family
            text = (
                f"{LAKE_FAMILY_LEADS.get(family, family)}: {lake_reasons[family][row]}; more unusual than "
                f"{novelty.floor_percent(outranks)} of the benign reference accounts"
            )
        else:
            continue
        lifted = {
            "feature": feature,
            "value": outranks,
            "contribution": float(fused.contributions[row, leading[row]]),
            "text": text,
        }
        reasons[row] = [lifted, *reasons[row][: max(0, reasons_per_account - 1)]]
    return fused.score, assign_tiers(fused.score, tier_bounds), reasons


def _to_numpy(array) -> np.ndarray:
    return array.get() if hasattr(array, "get") else np.asarray(array)


def make_scorer(
    booster_raw: bytes,
    columns: list[str],
    templates: list[tuple[str, str, str]],
    reasons_per_account: int,
    tier_bounds: tuple[tuple[str, float], ...],
    score_reference: str,
    version: str = "?",
    lake_families: tuple[str, ...] = (),
) -> Callable[[Iterator], Iterator]:
    """A mapInArrow function: batches of (account_id, cluster_id, *columns, and per lake family its score and
    reason columns) -> SCORED_DDL batches.

    Everything it closes over is plain data (bytes, lists, tuples) so it pickles to any engine's workers.
    """

    def score_batches(batches):
        import pyarrow as pa
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray(booster_raw))
        booster.set_param({"device": "cpu"})
        for batch in batches:
            if batch.num_rows == 0:
                continue
            values = np.column_stack(
                [batch.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in columns]
            )
            lake = {
                n: batch.column(catalog.family_column(n)).to_numpy(zero_copy_only=False).astype(np.float64)
                for n in lake_families
            }
            lake_reasons = {n: batch.column(catalog.family_reason_column(n)).to_pylist() for n in lake_families}
            scores, tiers, reasons = score_rows(
                booster,
                values,
                columns,
                templates,
                reasons_per_account,
                tier_bounds,
                score_reference,
                version,
                lake,
                lake_reasons,
            )
            yield pa.RecordBatch.from_arrays(
                [
                    batch.column("account_id"),
                    batch.column("cluster_id"),
                    pa.array(scores),
                    pa.array(tiers, type=pa.string()),
                    pa.array(reasons, type=REASON_TYPE),
                ],
                names=["account_id", "cluster_id", "score", "tier", "reasons"],
            )

    return score_batches


def checked_champion_booster(settings: Settings, table_columns: list[str], feature_set_versions: list[str]):
    """(champion, booster) after every refusal scoring makes: no champion, a feature list or feature set that
    differs from the day's features, an inconsistent registered version, or missing tier bounds."""
    client = registry.configure(settings)
    champion = registry.champion(client, settings.model_name)
    check_feature_contract(champion, table_columns, feature_set_versions)
    booster = registry.load_booster(champion)
    if list(booster.feature_names or []) != champion.feature_columns:
        raise FeatureContractError(
            f"champion v{champion.version}'s booster feature names do not match its "
            "feature_columns tag; the registered version is inconsistent"
        )
    fusion.parse(champion.score_reference, champion.version)  # a version without a readable score reference: refused
    if [name for name, _ in champion.tier_bounds] != list(TIERS[:-1]):
        raise FeatureContractError(
            f"champion {champion.name} v{champion.version} has no valid tier_bounds tag "
            f"({champion.tier_bounds!r}); retrain it with distillguard training"
        )
    return champion, booster


def no_family_scores(families: tuple[str, ...], score_date: dt.date) -> MissingTableError:
    return MissingTableError(
        f"the champion fuses the families {list(families)}, and family_scores has no rows for {score_date}; run "
        f"`distillguard families --date {score_date.isoformat()}` first"
    )


def check_families_scored(present, families: tuple[str, ...], score_date: dt.date) -> None:
    """Refuse a day on which the families job wrote no rows (`present`, the families it wrote, is empty), or none
    for a family the champion fuses: a job from before that family existed ran that day."""
    present = set(present)
    if not present:
        raise no_family_scores(families, score_date)
    missing = [name for name in families if name not in present]
    if missing:
        raise MissingTableError(
            f"the champion fuses the families {list(families)}, and family_scores for {score_date} has no rows of "
            f"{missing}; rerun `distillguard families --date {score_date.isoformat()}`"
        )


def lake_family_columns(spark, settings: Settings, score_date: dt.date, families: tuple[str, ...]):
    """One row per account scored by the families job that day: per family in `families`, its raw score
    (catalog.family_column) and its sentence (catalog.family_reason_column). Refuses a day the job has not run,
    or ran without one of `families`."""
    if not catalog.exists(settings, "family_scores"):
        raise no_family_scores(families, score_date)
    day = catalog.read_partition(spark, settings, "family_scores", score_date)
    check_families_scored([row["family"] for row in day.select("family").distinct().collect()], families, score_date)
    return catalog.family_score_columns(day, families, ("account_id",), reasons=True)


# --- DataFrame transforms -------------------------------------------------------------------------


def with_cluster_scores(scored, top_members: int):
    """Add cluster_score: mean of the top `top_members` scores in each cluster; null for unclustered accounts."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # unclustered accounts get a window of their own instead of all sharing one giant null partition
    group = F.coalesce(F.col("cluster_id"), F.concat(F.lit("~account:"), F.col("account_id")))
    ranked = scored.withColumn(
        "_rank", F.row_number().over(Window.partitionBy(group).orderBy(F.col("score").desc(), F.col("account_id")))
    )
    cluster_score = F.avg(F.when(F.col("_rank") <= top_members, F.col("score"))).over(Window.partitionBy(group))
    return ranked.withColumn("cluster_score", F.when(F.col("cluster_id").isNotNull(), cluster_score)).drop("_rank")


def capability_columns(available: list[str]) -> dict[str, str]:
    """capability name -> its 7-day share column, for every declared capability share the table carries."""
    out = {}
    for feature in FEATURES:
        column = f"{feature.name}_7d"
        if "capability" in feature.tags and feature.unit == "share" and column in available:
            out[feature.name.removesuffix("_share")] = column
    return out


def top_names_by_value(values: dict[str, Column], limit: int):
    """Array column of up to `limit` names, highest value first, skipping zero/null values. Built from pairwise
    comparisons because Sail 0.7 cannot sort arrays of structs."""
    from pyspark.sql import functions as F

    names = list(values)
    ranks = {}
    for i, name in enumerate(names):
        mine = F.coalesce(values[name], F.lit(0.0))
        above = [
            F.when(
                (F.coalesce(values[other], F.lit(0.0)) > mine)
                | ((F.coalesce(values[other], F.lit(0.0)) == mine) & F.lit(j < i)),
                1,
            ).otherwise(0)
            for j, other in enumerate(names)
            if other != name
        ]
        ranks[name] = sum(above[1:], above[0]) if above else F.lit(0)
    positions = [
        F.coalesce(
            *[F.when((ranks[n] == p) & (F.coalesce(values[n], F.lit(0.0)) > 0), F.lit(n)) for n in names],
            F.lit(None).cast("string"),
        )
        for p in range(min(limit, len(names)))
    ]
    return F.filter(F.array(*positions), lambda name: name.isNotNull())


def cluster_risk_frame(account_risk_day, features_day, clusters_day, score_date: dt.date, top_capabilities: int):
    """cluster_risk rows for one day from the scored members, their features and the cluster link evidence."""
    from pyspark.sql import functions as F

    caps = capability_columns(features_day.columns)
    members = (
        account_risk_day.filter(F.col("cluster_id").isNotNull())
        .select("account_id", "cluster_id", "cluster_score")
        .join(features_day.select("account_id", "requests_1d", "requests_7d", *caps.values()), "account_id", "left")
        .join(clusters_day.select("account_id", "link_types"), "account_id", "left")
    )
    weight = F.coalesce(F.col("requests_7d"), F.lit(0.0))
    total_weight = F.sum(weight)
    shares = {
        name: (F.sum(F.coalesce(F.col(column), F.lit(0.0)) * weight) / total_weight).alias(f"_cap_{name}")
        for name, column in caps.items()
    }
    per_cluster = members.groupBy("cluster_id").agg(
        F.count(F.lit(1)).alias("n_accounts"),
        F.sum(F.coalesce(F.col("requests_1d"), F.lit(0.0))).alias("requests"),
        F.max("cluster_score").alias("score"),
        F.array_sort(F.array_distinct(F.flatten(F.collect_list("link_types")))).alias("link_evidence"),
        *shares.values(),
    )
    top = (
        top_names_by_value({name: F.col(f"_cap_{name}") for name in caps}, top_capabilities)
        if caps
        else F.array().cast("array<string>")
    )
    return per_cluster.select(
        F.lit(score_date).alias("score_date"),
        "cluster_id",
        "n_accounts",
        F.round("requests").cast("bigint").alias("requests"),
        "score",
        top.alias("top_capabilities"),
        "link_evidence",
    )


# --- the scoring run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreResult:
    score_date: dt.date
    model_name: str
    model_version: str
    feature_set_version: str
    accounts_scored: int
    tier_counts: dict[str, int]
    clusters_scored: int
    # the bounds the day was tiered with, and the model version's own: they differ where audits moved them
    tier_bounds: tuple[tuple[str, float], ...] = ()
    model_tier_bounds: tuple[tuple[str, float], ...] = ()


def _clusters_for(spark, settings: Settings, score_date: dt.date):
    """The day's account -> cluster mapping, or None when clustering has not run (table or partition missing)."""
    from pyspark.sql import functions as F

    if not catalog.exists(settings, "account_clusters"):
        log.info("account_clusters does not exist; cluster columns stay null")
        return None
    day = catalog.read_partition(spark, settings, "account_clusters", score_date)
    if day.limit(1).count() == 0:
        log.info("account_clusters has no partition for %s; cluster columns stay null", score_date)
        return None
    # connected components put each account in one cluster; min() guards the join against a duplicated row
    return day.groupBy("account_id").agg(
        F.min("cluster_id").alias("cluster_id"),
        F.array_sort(F.array_distinct(F.flatten(F.collect_list("link_types")))).alias("link_types"),
    )


def no_features(score_date: dt.date) -> MissingTableError:
    # checked before the champion so an empty day is reported as such on a fresh lake
    return MissingTableError(f"account_features has no rows for {score_date}; run `distillguard features` first")


def score_day(spark, settings: Settings, score_date: dt.date, config: ScoringConfig | None = None) -> ScoreResult:
    from pyspark.sql import functions as F

    config = config or load_model_config(settings.model_config_file)[1]
    features_day = catalog.read_partition(spark, settings, "account_features", score_date)
    versions = [row["feature_set_version"] for row in features_day.select("feature_set_version").distinct().collect()]
    if not versions:
        raise no_features(score_date)
    champion, booster = checked_champion_booster(settings, features_day.columns, versions)
    feature_set_version = versions[0]
    columns = champion.feature_columns
    families = fusion.lake_families(fusion.parse(champion.score_reference, champion.version).families)
    bounds = tier_audit.day_bounds(settings, champion.version, champion.tier_bounds, score_date)
    scorer = make_scorer(
        bytes(booster.save_raw("ubj")),
        columns,
        reason_templates(columns),
        config.reasons_per_account,
        bounds,
        champion.score_reference,
        champion.version,
        families,
    )
    lake_columns = [f(name) for name in families for f in (catalog.family_column, catalog.family_reason_column)]

    clusters_day = _clusters_for(spark, settings, score_date)
    inputs = features_day.select("account_id", *columns)
    if clusters_day is not None:
        inputs = inputs.join(clusters_day.select("account_id", "cluster_id"), "account_id", "left")
    else:
        inputs = inputs.withColumn("cluster_id", F.lit(None).cast("string"))
    if families:
        inputs = inputs.join(lake_family_columns(spark, settings, score_date, families), "account_id", "left")
    scored = inputs.select("account_id", "cluster_id", *columns, *lake_columns).mapInArrow(scorer, SCORED_DDL)

    account_risk = with_cluster_scores(scored, config.cluster_top_members).select(
        F.lit(score_date).alias("score_date"),
        "account_id",
        "score",
        "tier",
        "cluster_id",
        "cluster_score",
        "reasons",
        F.lit(settings.model_name).alias("model_name"),
        F.lit(champion.version).alias("model_version"),
        F.lit(feature_set_version).alias("feature_set_version"),
    )
    catalog.write_partition(account_risk, settings, "account_risk", score_date)

    # cluster_risk is derived from the account_risk rows just written, so the model runs once per account
    risk_day = catalog.read_partition(spark, settings, "account_risk", score_date)
    if clusters_day is not None:
        cluster_risk = cluster_risk_frame(risk_day, features_day, clusters_day, score_date, config.top_capabilities)
    else:
        cluster_risk = spark.createDataFrame([], catalog.spark_ddl("cluster_risk"))
    catalog.write_partition(cluster_risk, settings, "cluster_risk", score_date)

    per_tier = risk_day.groupBy("tier").agg(F.count(F.lit(1)).alias("n")).collect()
    counts = {row["tier"]: int(row["n"]) for row in per_tier}
    clusters = catalog.read_partition(spark, settings, "cluster_risk", score_date).count()
    return ScoreResult(
        score_date=score_date,
        model_name=settings.model_name,
        model_version=champion.version,
        feature_set_version=feature_set_version,
        accounts_scored=sum(counts.values()),
        tier_counts={tier: counts.get(tier, 0) for tier in TIERS},
        clusters_scored=clusters,
        tier_bounds=bounds,
        model_tier_bounds=champion.tier_bounds,
    )
