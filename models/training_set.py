"""Point-in-time training sets: features as of day D, labelled only by what was decided after D.

Rules (docs/design.md §7), with D a feature_date and H the label horizon in days (TrainingConfig.label_horizon_days):

- Snapshots are account_features rows with feature_date <= as_of.
- A label's day is the UTC date of `decided_at`. Features for day D are built after day D closes, so a decision
  taken on day D is already known to the snapshot at D.
- Labels decided after as_of do not exist for this training run (no future leakage), whatever the horizon says.
- Snapshot (account, D) is labelled by the *latest* decision decided on days D+1 .. min(D+H, as_of); decisions can
  be reversed (an extraction flag cleared on appeal), and the latest one is the account's standing. At equal
  `decided_at`, extraction wins.
- An account whose standing on day D is already "extraction" is left out of the snapshot at D: it is known, and
  keeping it would teach the model to re-find what analysts already found.
- PU setting: positives are extraction decisions; everything else is a negative. That includes accounts labelled
  benign and accounts with no decision in the horizon, which are *unlabelled*, not proven benign. Precision and
  recall measured on such data are therefore lower bounds: an unlabelled campaign account that the model flags
  counts as a false positive.
- Snapshots whose observed horizon, min(H, as_of - D) days, is shorter than `min_label_days` (default 3) are
  not used at all. Labels have had (almost) no time to arrive for them (at D = as_of none can have), so they
  would all be negatives, including every campaign account that analysts simply have not reached yet. They are
  cut by date, never by label, so the cut adds no selection bias.
- No model input may encode "already decided": `cluster_labelled_extraction_share` (the share of the account's
  cluster decided as extraction) is left out of the model's inputs (NOT_MODEL_INPUTS). Unlabelled snapshots near
  decided accounts stay in as positive-unlabelled rows, weighted by models/pu.py; none is dropped for its label.
- Each snapshot carries the account's standing at as_of (`standing`: its latest decision, or null) and whether it
  ever shared a cluster with a decided account up to as_of (`linked_to_decided`, from account_clusters): together
  they select the clean benign reference (`clean_reference`).
- Remaining unresolved snapshots (D + H > as_of, no decision yet in D+1 .. as_of) have a truncated horizon.
  Decision: by default they stay in as negatives (`unresolved_snapshots="negative"`). Under the PU assumption
  an unlabelled account is a negative anyway; the truncated window only lowers the chance that a label has
  arrived. Dropping them ("drop") removes snapshots *because* they have no label: on a history shorter than H it
  would leave only labelled accounts, so the model would never see ordinary traffic as a negative and the
  benign-FPR and precision@k numbers would describe a population nothing like the review queue. The cost is that
  recent snapshots carry more not-yet-labelled positives; their count is logged with each run
  (`unresolved_snapshots`), and "drop" is one config switch away for histories much longer than H.

Scale: the selected snapshots (one row per account and date, ~100 float columns) are brought to the driver for
XGBoost. That is fine up to a few million rows; beyond that, sample negatives in Spark before collecting (keep all
positives and a hash-based share of negatives with a matching weight) or train distributed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.registry import feature_columns, feature_set_version
from lake import catalog
from lake.config import Settings
from lake.errors import MissingInputError, MissingTableError
from lake.formats import UNVERSIONED, stamped
from models.config import TrainingConfig

KEY_COLUMNS = ("account_id", "feature_date")
EXTRACTION = "extraction"
BENIGN = "benign"
NEEDS_MORE_INFO = "needs_more_info"
# An analyst's "needs more info" is a decision on record (enforcement_labels, the console's queue) but not a label:
# training reads only these two, so it neither makes a negative nor overrides an earlier extraction.
TRAINING_LABELS = (EXTRACTION, BENIGN)
# Feature columns the model never reads: the share of the account's cluster already decided as extraction says
# "a decided neighbour" and nothing about behaviour; with positive-unlabelled rows it would be learned as the label.
NOT_MODEL_INPUTS = ("cluster_labelled_extraction_share",)
AGE_COLUMN = "account_age_days"
# The format of a training set's reference, stored with its rows (lake/formats.py): bump it when the reference's
# keys change meaning; jobs/train.py reads the versions in REFERENCE_FORMATS_READ.
REFERENCE_FORMAT = 1
REFERENCE_FORMATS_READ = (UNVERSIONED, REFERENCE_FORMAT)


# --- pure DataFrame -> DataFrame transforms -------------------------------------------------------


def point_in_time_labels(snapshot_keys, labels, as_of: dt.date, horizon_days: int):
    """For each (account_id, feature_date) snapshot, what was known at D and what was decided after it.

    snapshot_keys: account_id, feature_date.  labels: account_id, label, decided_at (the enforcement_labels table).
    Returns account_id, feature_date,
      known_extraction  bool, the account's standing on day D (latest decision on or before D) is extraction
      window_label      string or null, latest decision on days D+1 .. min(D+H, as_of)
      horizon_complete  bool, D + H <= as_of (the whole horizon has been observed)
      observed_label_days  int, min(H, as_of - D): how many days of the horizon have been observed
    """
    from pyspark.sql import functions as F

    decided = labels.select(
        "account_id",
        F.col("label").alias("decision"),
        F.col("decided_at"),
        F.to_date("decided_at").alias("decided_day"),
    ).filter(F.col("decided_day") <= F.lit(as_of))
    day = F.col("feature_date")
    horizon_end = F.date_add(day, horizon_days)
    before = F.col("decided_day") <= day
    in_window = (F.col("decided_day") > day) & (F.col("decided_day") <= horizon_end)
    # max over struct(decided_at, decision) = the latest decision; a same-instant tie goes to "extraction" (> "benign")
    latest = lambda condition: F.max(F.when(condition, F.struct("decided_at", "decision")))  # noqa: E731 - a one-line column builder
    joined = snapshot_keys.select(*KEY_COLUMNS).join(decided, "account_id", "left")
    return (
        joined.groupBy(*KEY_COLUMNS)
        .agg(latest(before).alias("standing"), latest(in_window).alias("window"))
        .select(
            *KEY_COLUMNS,
            F.coalesce(F.col("standing.decision") == F.lit(EXTRACTION), F.lit(False)).alias("known_extraction"),
            F.col("window.decision").alias("window_label"),
            (F.date_add(day, horizon_days) <= F.lit(as_of)).alias("horizon_complete"),
            F.least(F.lit(horizon_days), F.datediff(F.lit(as_of), day)).alias("observed_label_days"),
        )
    )


def select_training_snapshots(labelled, unresolved_snapshots: str = "negative", min_label_days: int = 0):
    """Apply the training rules to `point_in_time_labels` output: account_id, feature_date, label (1/0),
    resolved (horizon complete or a decision arrived)."""
    from pyspark.sql import functions as F

    if unresolved_snapshots not in ("negative", "drop"):
        raise ValueError(f"unresolved_snapshots must be 'negative' or 'drop', got {unresolved_snapshots!r}")
    resolved = F.col("horizon_complete") | F.col("window_label").isNotNull()
    selected = labelled.filter(
        ~F.col("known_extraction") & (F.col("observed_label_days") >= min_label_days)
    ).withColumn("resolved", resolved)
    if unresolved_snapshots == "drop":
        selected = selected.filter(F.col("resolved"))
    return selected.select(
        *KEY_COLUMNS,
        F.when(F.col("window_label") == F.lit(EXTRACTION), 1).otherwise(0).cast("int").alias("label"),
        "resolved",
    )


def account_outcomes(labels, as_of: dt.date):
    """Each labelled account's standing at as_of: its latest decision (`standing`), campaign_id when that is
    extraction, benign_segment (the label note) when it is benign. For evaluation and the choice of the benign
    reference only, never a model input."""
    from pyspark.sql import functions as F

    latest = (
        labels.filter(F.to_date("decided_at") <= F.lit(as_of))
        .groupBy("account_id")
        .agg(F.max(F.struct("decided_at", "label", "campaign_id", "note")).alias("latest"))
    )
    return latest.select(
        "account_id",
        F.col("latest.label").alias("standing"),
        F.when(F.col("latest.label") == F.lit(EXTRACTION), F.col("latest.campaign_id")).alias("campaign_id"),
        F.when(F.col("latest.label") == F.lit(BENIGN), F.col("latest.note")).alias("benign_segment"),
    )


def linked_to_decided(clusters, labels, as_of: dt.date):
    """account_id of every account that shared a cluster (account_clusters, any date up to as_of) with an account
    decided (extraction or benign) by as_of, the decided accounts included."""
    from pyspark.sql import functions as F

    decided = labels.filter(F.to_date("decided_at") <= F.lit(as_of)).select("account_id").distinct()
    members = clusters.filter(F.col("feature_date") <= F.lit(as_of)).select("feature_date", "cluster_id", "account_id")
    decided_clusters = members.join(decided, "account_id").select("feature_date", "cluster_id").distinct()
    return members.join(decided_clusters, ["feature_date", "cluster_id"]).select("account_id").distinct()


def clean_reference(frame: pd.DataFrame, min_age_days: int) -> pd.DataFrame:
    """One row per account of the clean benign reference (models/fusion.py): accounts decided benign by as_of, and
    accounts with no decision, `min_age_days`+ old and never in a cluster with a decided account
    (TrainingConfig.reference_min_age_days). Each account's latest unlabelled snapshot."""
    standing = frame["standing"]
    benign = standing == BENIGN
    established = standing.isna() & ~frame["linked_to_decided"].astype(bool) & (frame[AGE_COLUMN] >= min_age_days)
    eligible = frame[(frame["label"] == 0) & (benign | established)]
    return eligible.sort_values(list(KEY_COLUMNS), kind="stable").groupby("account_id", sort=False).tail(1)


def calibration_mask(reference: pd.DataFrame, resemblance_above: float | None) -> np.ndarray:
    """Which rows of `clean_reference` calibrate the tiers: every account decided benign, and the unlabelled ones
    whose latest resemblance (models/resemblance.py; missing counts as none) is at most `resemblance_above`.

    The unlabelled part of the reference hides campaign accounts that were never linked to a decision. They rank
    at its top, so a tier set at the reference's 1% quantile flags far less than 1% of benign accounts. Leaving out
    the accounts that resemble decided extraction more than decided benign removes most of them, and also the benign
    look-alikes among them, which pulls the other way (TrainingConfig.calibration_resemblance_above). None: all."""
    keep = np.ones(len(reference), dtype=bool)
    if resemblance_above is None:
        return keep
    resemblance = reference[catalog.family_latest_column("resemblance")].to_numpy(dtype=np.float64)
    decided_benign = (reference["standing"] == BENIGN).to_numpy()
    return decided_benign | ~(resemblance > resemblance_above)


# --- the training set as the trainer sees it ------------------------------------------------------


@dataclass(frozen=True)
class TrainingSet:
    # KEY_COLUMNS, feature columns, label, resolved, campaign_id, benign_segment, standing, linked_to_decided
    frame: pd.DataFrame
    feature_columns: list[str]
    feature_set_version: str
    as_of: dt.date
    reference: dict[str, Any] = field(default_factory=dict)  # where the rows came from, logged to MLflow


@dataclass(frozen=True)
class TimeSplit:
    fit_dates: list[dt.date]
    validation_dates: list[dt.date]
    holdout_dates: list[dt.date]
    # latest dates left out because no snapshot on or after them is labelled positive yet (labels arrive in
    # bursts): they cannot be evaluated, and fitting them would teach the model that their accounts are benign
    unlabelled_trailing_dates: list[dt.date] = field(default_factory=list)

    def masks(self, feature_dates: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        days = pd.to_datetime(feature_dates).dt.date
        return (
            days.isin(self.fit_dates).to_numpy(),
            days.isin(self.validation_dates).to_numpy(),
            days.isin(self.holdout_dates).to_numpy(),
        )

    def describe(self) -> str:
        trailing = (
            f"; {len(self.unlabelled_trailing_dates)} trailing date(s) without positives left out "
            f"({self.unlabelled_trailing_dates[0]}..{self.unlabelled_trailing_dates[-1]})"
            if self.unlabelled_trailing_dates
            else ""
        )
        return (
            f"time split: fit {self.fit_dates[0]}..{self.fit_dates[-1]}, validation "
            f"{self.validation_dates[0]}..{self.validation_dates[-1]}, holdout "
            f"{self.holdout_dates[0]}..{self.holdout_dates[-1]}{trailing}"
        )


def split_by_time(feature_dates, labels, holdout_days: int, validation_days: int) -> TimeSplit:
    """Whole dates go to one side, so no account-day leaks across the split; every side contains positives.

    The holdout is the latest `holdout_days` dates that end on the last date with a positive snapshot; later dates
    (whose labels have not arrived yet) are left out and reported. Validation is the `validation_days` dates before
    the holdout, reaching further back to the previous positive date when those hold none. The rest is fitted.
    Fails only when the whole history has too few dates with positives to fill all three sides."""
    frame = pd.DataFrame({"day": [pd.Timestamp(d).date() for d in feature_dates], "label": np.asarray(labels)})
    dates = sorted(set(frame["day"]))
    positive_dates = sorted(set(frame.loc[frame["label"] == 1, "day"]))
    if len(positive_dates) < 3:
        raise MissingInputError(
            f"the training set has positives on {len(positive_dates)} feature date(s) over {len(dates)} dates; "
            "fit, validation and holdout each need one: wait for more enforcement labels"
        )
    usable = [d for d in dates if d <= positive_dates[-1]]
    trailing = [d for d in dates if d > positive_dates[-1]]
    holdout = usable[-holdout_days:]
    before_holdout = [d for d in usable if d < holdout[0]]
    earlier_positives = [d for d in positive_dates if d < holdout[0]]
    if len(earlier_positives) < 2:
        raise MissingInputError(
            f"only {len(earlier_positives)} date(s) with positives precede the holdout {holdout[0]}..{holdout[-1]}; "
            "fit and validation each need one: use fewer holdout_days or wait for more labels"
        )
    validation_start = min(
        before_holdout[-validation_days] if len(before_holdout) >= validation_days else before_holdout[0],
        earlier_positives[-1],
    )
    validation = [d for d in before_holdout if d >= validation_start]
    fit = [d for d in before_holdout if d < validation_start]
    return TimeSplit(
        fit_dates=fit, validation_dates=validation, holdout_dates=holdout, unlabelled_trailing_dates=trailing
    )


def _delta_version(settings: Settings, name: str) -> int:
    from deltalake import DeltaTable

    return DeltaTable(settings.table_uri(name)).version()


FAMILY_COLUMNS = tuple(catalog.family_column(name) for name in catalog.LAKE_FAMILIES)
FAMILY_LATEST_COLUMNS = tuple(catalog.family_latest_column(name) for name in catalog.LAKE_FAMILIES)


def lake_family_scores(spark, settings: Settings, as_of: dt.date):
    """(one row per account and date up to as_of with each lake family's raw score as a column, one row per account
    with each family's raw score on the last date scored (FAMILY_LATEST_COLUMNS), family -> the dates it was scored
    on, sorted).

    A snapshot takes the families of its own date: propagation then counts only the decisions made by that day, as
    it does for the accounts scored on a day. The last date's scores are what the stack is fitted on: families
    that stand on decisions grow as decisions accumulate, and a snapshot from the window's first days understates
    what they will weigh on the days the model scores. Every decision counted there was made by as_of, and an
    account's own decision is never evidence about it (both families leave it out)."""
    from pyspark.sql import functions as F

    if not catalog.exists(settings, "family_scores"):
        keys = [f"{c} {t}" for c, t in zip(KEY_COLUMNS, ("string", "date"))]
        return (
            spark.createDataFrame([], ", ".join([*keys, *(f"{c} double" for c in FAMILY_COLUMNS)])),
            spark.createDataFrame(
                [], ", ".join(["account_id string", *(f"{c} double" for c in FAMILY_LATEST_COLUMNS)])
            ),
            {},
        )
    scores = catalog.read(spark, settings, "family_scores").filter(F.col("score_date") <= F.lit(as_of))
    by_family: dict[str, list[dt.date]] = {}
    for row in scores.select("family", "score_date").distinct().collect():
        by_family.setdefault(row["family"], []).append(row["score_date"])
    last = max((d for scored in by_family.values() for d in scored), default=as_of)
    by_snapshot = scores.withColumnRenamed("score_date", "feature_date")
    latest = catalog.family_score_columns(
        scores.filter(F.col("score_date") == F.lit(last)),
        catalog.LAKE_FAMILIES,
        ("account_id",),
    ).select("account_id", *(F.col(a).alias(b) for a, b in zip(FAMILY_COLUMNS, FAMILY_LATEST_COLUMNS, strict=True)))
    by_family = {name: sorted(scored) for name, scored in by_family.items()}
    return catalog.family_score_columns(by_snapshot, catalog.LAKE_FAMILIES, KEY_COLUMNS), latest, by_family


def build_training_set(spark, settings: Settings, as_of: dt.date, config: TrainingConfig) -> TrainingSet:
    """Read account_features and enforcement_labels (pinned to their current Delta versions), apply the
    point-in-time rules in Spark, and bring only the selected snapshots to the driver."""
    from pyspark.sql import functions as F

    columns = feature_columns()
    version = feature_set_version()
    for name in ("account_features", "enforcement_labels"):
        if not catalog.exists(settings, name):
            raise MissingTableError(
                f"Delta table {name!r} not found at {settings.table_uri(name)}; "
                "training needs account_features and enforcement_labels"
            )
    features_version = _delta_version(settings, "account_features")
    labels_version = _delta_version(settings, "enforcement_labels")
    # Pin both reads to the versions recorded in the run, so the logged reference reproduces these rows exactly.
    features = (
        spark.read.format("delta")
        .option("versionAsOf", features_version)
        .load(settings.table_uri("account_features"))
        .filter(F.col("feature_date") <= F.lit(as_of))
    )
    labels = (
        spark.read.format("delta")
        .option("versionAsOf", labels_version)
        .load(settings.table_uri("enforcement_labels"))
        .filter(F.col("label").isin(*TRAINING_LABELS))
    )

    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise MissingInputError(
            f"account_features lacks {len(missing)} registered feature column(s) "
            f"(first: {missing[:5]}); rebuild features with the current registry ({version})"
        )
    versions = {
        row["feature_set_version"]: row["n"]
        for row in features.groupBy("feature_set_version").agg(F.count(F.lit(1)).alias("n")).collect()
    }
    if version not in versions:
        raise MissingInputError(
            f"account_features has no snapshots up to {as_of} built with the current feature set "
            f"{version} (found {sorted(map(str, versions))}); rebuild features first"
        )
    # Snapshots from another feature-set version mean different definitions under the same column names.
    features = features.filter(F.col("feature_set_version") == F.lit(version))

    labelled = point_in_time_labels(features.select(*KEY_COLUMNS), labels, as_of, config.label_horizon_days)
    selected = select_training_snapshots(labelled, config.unresolved_snapshots, config.min_label_days)
    if catalog.exists(settings, "account_clusters"):
        linked = linked_to_decided(
            spark.read.format("delta").load(settings.table_uri("account_clusters")), labels, as_of
        ).withColumn("linked_to_decided", F.lit(True))
    else:  # no clustering has run: no account is known to be linked
        linked = spark.createDataFrame([], "account_id string, linked_to_decided boolean")
    family_scores, family_latest, family_dates_by_family = lake_family_scores(spark, settings, as_of)
    frame_df = (
        features.select(*KEY_COLUMNS, *columns)
        .join(selected, list(KEY_COLUMNS), "inner")
        .join(account_outcomes(labels, as_of), "account_id", "left")
        .join(linked, "account_id", "left")
        .join(family_scores, list(KEY_COLUMNS), "left")
        .join(family_latest, "account_id", "left")
        .select(
            *KEY_COLUMNS,
            *columns,
            "label",
            "resolved",
            "campaign_id",
            "benign_segment",
            "standing",
            F.coalesce(F.col("linked_to_decided"), F.lit(False)).alias("linked_to_decided"),
            *FAMILY_COLUMNS,
            *FAMILY_LATEST_COLUMNS,
        )
    )
    frame = frame_df.toArrow().to_pandas()
    if frame.empty:
        raise MissingInputError(
            f"no training snapshots with feature_date <= {as_of} and at least "
            f"{config.min_label_days} days of observed label horizon"
        )
    frame["feature_date"] = pd.to_datetime(frame["feature_date"]).dt.date
    frame = frame.sort_values(list(KEY_COLUMNS), kind="stable").reset_index(drop=True)
    frame[columns] = frame[columns].astype("float64")

    reference = stamped(
        {
            "as_of": as_of.isoformat(),
            "account_features": {"uri": settings.table_uri("account_features"), "version": features_version},
            "enforcement_labels": {"uri": settings.table_uri("enforcement_labels"), "version": labels_version},
            "feature_date_min": min(frame["feature_date"]).isoformat(),
            "feature_date_max": max(frame["feature_date"]).isoformat(),
            "label_horizon_days": config.label_horizon_days,
            "min_label_days": config.min_label_days,
            "unresolved_snapshots_policy": config.unresolved_snapshots,
            "snapshots": len(frame),
            "positives": int(frame["label"].sum()),
            "unresolved_snapshots": int((~frame["resolved"].astype(bool)).sum()),
            "not_model_inputs": list(NOT_MODEL_INPUTS),
            "reference_accounts": int(clean_reference(frame, config.reference_min_age_days)["account_id"].nunique()),
            "snapshots_other_feature_set_versions": int(sum(n for v, n in versions.items() if v != version)),
            # the feature dates the families job scored (models/train.py refuses a lake family missing on one)
            "family_scores_dates": sorted(
                {d.isoformat() for scored in family_dates_by_family.values() for d in scored}
            ),
            # per family: a families job from before a family existed scored the others only
            "family_scores_dates_by_family": {
                name: [d.isoformat() for d in scored] for name, scored in sorted(family_dates_by_family.items())
            },
        },
        REFERENCE_FORMAT,
    )
    return TrainingSet(
        frame=frame, feature_columns=columns, feature_set_version=version, as_of=as_of, reference=reference
    )
