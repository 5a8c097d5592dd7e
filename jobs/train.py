"""Training jobs: point-in-time training set -> fit -> evaluate -> promote, as separate steps or in one go.

  distillguard training-set --as-of D   build the point-in-time training set and store it in the Delta table
                                        `training_sets` (partition as_of = D, replaced on a rerun)
  distillguard fit --as-of D            fit XGBoost on the stored set; register a version with alias `candidate`
  distillguard evaluate --as-of D       candidate and champion on the same holdout; metrics logged to MLflow
  distillguard promote --as-of D        the promotion gate: candidate -> @champion or @challenger (--force: a first
                                        model the gate refuses becomes champion anyway)
  distillguard train --as-of D          all four in one process

Every step leaves its result somewhere durable (a Delta partition, a registered version, logged metrics and version
tags), so each can run as its own process (one Airflow task each) and be rerun alone. fit/evaluate/promote read the
stored training set with delta-rs and need no Spark, so they can run on a GPU node that has none.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pandas as pd
import pyarrow as pa

from lake import catalog
from lake.config import Settings
from lake.errors import MissingInputError, MissingTableError
from lake.formats import check_format
from models import registry
from models.config import TIER_BENIGN_FPR, TrainingConfig, load_model_config
from models.train import (
    TrainResult,
    candidate_version,
    evaluate_candidate,
    fit_candidate,
    promote_candidate,
    train_and_register,
)
from models.training_set import (
    FAMILY_COLUMNS,
    FAMILY_LATEST_COLUMNS,
    KEY_COLUMNS,
    REFERENCE_FORMATS_READ,
    TrainingSet,
    build_training_set,
)

TABLE = "training_sets"
# The stored set must have been labelled with the rules the fitting config asks for.
LABELLING_KEYS = ("label_horizon_days", "min_label_days", "unresolved_snapshots")
EXAMPLE_COLUMNS = (
    "label",
    "resolved",
    "campaign_id",
    "benign_segment",
    "standing",
    "linked_to_decided",
    *FAMILY_COLUMNS,
    *FAMILY_LATEST_COLUMNS,
)


# --- TrainingSet <-> the training_sets table (pure) -----------------------------------------------


def training_set_to_arrow(training_set: TrainingSet) -> pa.Table:
    """One row per snapshot. The reference (where the rows came from) is repeated on every row as JSON: the table
    stays self-describing without a side table, and Parquet's dictionary encoding stores it once per file."""
    frame = training_set.frame
    columns = {
        "as_of": pa.array([training_set.as_of] * len(frame), pa.date32()),
        "account_id": pa.array(frame["account_id"].astype(object), pa.string()),
        "feature_date": pa.array(list(frame["feature_date"]), pa.date32()),
        **{c: pa.array(frame[c].to_numpy(dtype="float64"), pa.float64()) for c in training_set.feature_columns},
        "label": pa.array(frame["label"].to_numpy(dtype="int32"), pa.int32()),
        "resolved": pa.array(frame["resolved"].astype(bool).to_numpy(), pa.bool_()),
        "campaign_id": pa.array(_nullable_strings(frame["campaign_id"]), pa.string()),
        "benign_segment": pa.array(_nullable_strings(frame["benign_segment"]), pa.string()),
        "standing": pa.array(_nullable_strings(frame["standing"]), pa.string()),
        "linked_to_decided": pa.array(frame["linked_to_decided"].astype(bool).to_numpy(), pa.bool_()),
        **{
            c: pa.array(frame[c].to_numpy(dtype="float64"), pa.float64(), from_pandas=True)
            for c in (*FAMILY_COLUMNS, *FAMILY_LATEST_COLUMNS)
        },
        "feature_set_version": pa.array([training_set.feature_set_version] * len(frame), pa.string()),
        "reference": pa.array([json.dumps(training_set.reference, sort_keys=True)] * len(frame), pa.string()),
    }
    return pa.table(columns)


def _nullable_strings(values: pd.Series) -> list[str | None]:
    return [None if pd.isna(v) else str(v) for v in values]


def training_set_from_arrow(data: pa.Table, feature_columns: list[str], as_of: dt.date) -> TrainingSet:
    """Inverse of `training_set_to_arrow` for one as_of partition."""
    if data.num_rows == 0:
        raise MissingInputError(
            f"{TABLE} has no rows for as_of {as_of.isoformat()}; "
            f"run `distillguard training-set --as-of {as_of.isoformat()}` first"
        )
    versions = set(data.column("feature_set_version").to_pylist())
    if len(versions) != 1:
        raise MissingInputError(f"{TABLE} partition as_of {as_of} mixes feature-set versions {sorted(versions)}")
    missing = [c for c in (*feature_columns, *EXAMPLE_COLUMNS) if c not in data.column_names]
    if missing:
        raise MissingInputError(
            f"the stored training set as of {as_of} lacks column(s) {missing[:5]}; "
            f"rebuild it with `distillguard training-set --as-of {as_of.isoformat()}`"
        )
    frame = data.select([*KEY_COLUMNS, *feature_columns, *EXAMPLE_COLUMNS]).to_pandas()
    frame["feature_date"] = pd.to_datetime(frame["feature_date"]).dt.date
    frame = frame.sort_values(list(KEY_COLUMNS), kind="stable").reset_index(drop=True)
    reference = json.loads(data.column("reference")[0].as_py())
    check_format(
        reference,
        f"the stored training set as of {as_of}",
        REFERENCE_FORMATS_READ,
        f"rebuild it with `distillguard training-set --as-of {as_of.isoformat()}`",
    )
    return TrainingSet(
        frame=frame,
        feature_columns=list(feature_columns),
        feature_set_version=versions.pop(),
        as_of=as_of,
        reference=reference,
    )


def check_labelling_rules(reference: dict[str, object], config: TrainingConfig) -> None:
    stored = {
        "label_horizon_days": reference.get("label_horizon_days"),
        "min_label_days": reference.get("min_label_days"),
        "unresolved_snapshots": reference.get("unresolved_snapshots_policy"),
    }
    wanted = {key: getattr(config, key) for key in LABELLING_KEYS}
    if stored != wanted:
        raise MissingInputError(
            f"the stored training set as of {reference.get('as_of')} was labelled with {stored}, "
            f"the training config asks for {wanted}; rebuild it with `distillguard training-set`"
        )


# --- storage --------------------------------------------------------------------------------------


def store_training_set(settings: Settings, training_set: TrainingSet) -> TrainingSet:
    """Replace the as_of partition of `training_sets` (one delta-rs commit); return the set with the table version
    it was written at added to its reference."""
    from deltalake import DeltaTable

    data = training_set_to_arrow(training_set)
    declared = catalog.table(TABLE).schema.names
    if catalog.exists(settings, TABLE) and DeltaTable(settings.table_uri(TABLE)).schema().to_arrow().names != declared:
        # The feature registry changed since the table was created, so no partition of another feature set can
        # be replaced in place. Earlier partitions stay readable through Delta time travel (each MLflow run
        # records the table version it trained on), and are cheap to rebuild from the pinned inputs.
        print(
            f"{TABLE}: the declared columns changed (feature set {training_set.feature_set_version}); "
            "rewriting the table, earlier as_of partitions remain in its Delta history",
            flush=True,
        )
        catalog.write_arrow(settings, TABLE, data)
    else:
        catalog.write_arrow(settings, TABLE, data, partition_value=training_set.as_of)
    version = DeltaTable(settings.table_uri(TABLE)).version()
    return _with_table_version(settings, training_set, version)


def _with_table_version(settings: Settings, training_set: TrainingSet, version: int) -> TrainingSet:
    reference = {
        **training_set.reference,
        TABLE: {"uri": settings.table_uri(TABLE), "version": version, "as_of": training_set.as_of.isoformat()},
    }
    return dataclasses.replace(training_set, reference=reference)


def load_training_set(settings: Settings, as_of: dt.date) -> TrainingSet:
    from deltalake import DeltaTable

    from features.registry import feature_columns

    if not catalog.exists(settings, TABLE):
        raise MissingTableError(
            f"Delta table {TABLE!r} not found at {settings.table_uri(TABLE)}; "
            f"run `distillguard training-set --as-of {as_of.isoformat()}` first"
        )
    table = DeltaTable(settings.table_uri(TABLE))
    data = table.to_pyarrow_table(filters=[("as_of", "=", as_of)])
    return _with_table_version(settings, training_set_from_arrow(data, feature_columns(), as_of), table.version())


# --- the job steps --------------------------------------------------------------------------------


def build(spark, settings: Settings, as_of: dt.date, config: TrainingConfig | None = None) -> TrainingSet:
    training_set = store_training_set(
        settings, build_training_set(spark, settings, as_of, config or load_model_config(settings.model_config_file)[0])
    )
    reference = training_set.reference
    print(
        f"training set as of {as_of}: {reference['snapshots']:,} snapshots ({reference['positives']:,} positive, "
        f"{reference['unresolved_snapshots']:,} unresolved), feature dates {reference['feature_date_min']}.."
        f"{reference['feature_date_max']} -> {TABLE} v{reference[TABLE]['version']}",
        flush=True,
    )
    return training_set


def _stored(settings: Settings, as_of: dt.date, config: TrainingConfig) -> TrainingSet:
    training_set = load_training_set(settings, as_of)
    check_labelling_rules(training_set.reference, config)
    return training_set


def fit(settings: Settings, as_of: dt.date, config: TrainingConfig | None = None) -> registry.ModelVersionInfo:
    config = config or load_model_config(settings.model_config_file)[0]
    candidate = fit_candidate(_stored(settings, as_of, config), settings, config)
    print(f"fitted {candidate.name} v{candidate.version} as of {as_of} -> @candidate", flush=True)
    return candidate


def gate_summary(metrics: dict[str, float]) -> str:
    """The gate's numbers in one line: reference PR-AUC and every tier's operating point."""
    tiers = ", ".join(
        f"{name} recall {metrics[f'tier_recall/{name}']:.2f} (unlabelled flagged "
        f"{100 * metrics[f'tier_unlabelled_share/{name}']:.2f}%)"
        for name, _ in TIER_BENIGN_FPR
    )
    return (
        f"holdout positives against the clean benign reference: PR-AUC {metrics['reference_pr_auc']:.4f}; {tiers}; "
        f"PR-AUC on the unlabelled holdout {metrics['pr_auc']:.4f}"
    )


def evaluate(settings: Settings, as_of: dt.date, config: TrainingConfig | None = None):
    config = config or load_model_config(settings.model_config_file)[0]
    client = registry.configure(settings)
    result = evaluate_candidate(
        _stored(settings, as_of, config), settings, config, candidate_version(client, settings, as_of)
    )
    metrics = result.metrics
    versus = (
        f"champion v{result.champion_version} {result.champion_pr_auc:.4f}"
        if result.champion_pr_auc is not None
        else f"champion v{result.champion_version} not comparable"
        if result.champion_version
        else "no champion"
    )
    print(result.split.describe(), flush=True)
    print(
        f"evaluated v{result.version} on holdout {result.split.holdout_dates[0]}..{result.split.holdout_dates[-1]} "
        f"({versus}): {gate_summary(metrics)}",
        flush=True,
    )
    return result


def promote(settings: Settings, as_of: dt.date, force: bool = False):
    client = registry.configure(settings)
    candidate = candidate_version(client, settings, as_of)
    decision = promote_candidate(settings, candidate, force)
    print(f"{candidate.name} v{candidate.version} -> @{decision.alias} ({decision.reason})", flush=True)
    return decision


def run(
    spark, settings: Settings, as_of: dt.date, config: TrainingConfig | None = None, force: bool = False
) -> TrainResult:
    """training-set -> fit -> evaluate -> promote in one process (the training set is still stored)."""
    config = config or load_model_config(settings.model_config_file)[0]
    training_set = build(spark, settings, as_of, config)
    result = train_and_register(training_set, settings, config, force)
    metrics = result.metrics
    print(
        f"trained {result.model_name} v{result.version} on {result.device} as of {as_of}: {gate_summary(metrics)} "
        f"-> @{result.alias} ({result.reason})"
    )
    return result
