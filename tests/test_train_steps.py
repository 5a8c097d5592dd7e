"""The training split: training-set -> fit -> evaluate -> promote as separate steps with durable state between
them (a Delta partition, a registered version with alias `candidate`, logged metrics and version tags)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from jobs import train
from jobs.cli import main
from lake.config import load_settings
from models import registry
from models.config import TIER_BENIGN_FPR, TrainingConfig
from models.training_set import TrainingSet
from tests.helpers.feature_lake import AS_OF, FAST, synthetic_lake

CONFIG = TrainingConfig(**FAST)


def test_training_set_round_trips_through_arrow():
    frame = pd.DataFrame(
        {
            "account_id": ["a", "b", "c"],
            "feature_date": [dt.date(2026, 2, 1), dt.date(2026, 2, 1), dt.date(2026, 2, 2)],
            "f1": [0.5, float("nan"), 2.0],
            "f2": [1.0, 2.0, 3.0],
            "label": pd.array([1, 0, 0], dtype="int32"),
            "resolved": [True, False, True],
            "campaign_id": ["camp-A", None, None],
            "benign_segment": [None, "education", None],
            "standing": ["extraction", "benign", None],
            "linked_to_decided": [True, False, False],
            "family_propagation": [0.2, None, -0.1],
            "family_peer_novelty": [None, None, None],
            "family_switch": [0.0, 1.5, None],
            "family_resemblance": [0.3, -0.2, None],
            "family_latest_propagation": [0.4, None, 0.0],
            "family_latest_peer_novelty": [None, None, None],
            "family_latest_switch": [None, None, None],
            "family_latest_resemblance": [0.5, -0.1, None],
        }
    )
    original = TrainingSet(
        frame=frame,
        feature_columns=["f1", "f2"],
        feature_set_version="fs-x",
        as_of=dt.date(2026, 2, 5),
        reference={"snapshots": 3, "as_of": "2026-02-05"},
    )
    back = train.training_set_from_arrow(train.training_set_to_arrow(original), ["f1", "f2"], original.as_of)
    assert back.reference == original.reference and back.feature_set_version == "fs-x"
    assert list(back.frame["feature_date"]) == list(frame["feature_date"])
    assert back.frame["f1"].isna().tolist() == [False, True, False]
    assert back.frame["label"].tolist() == [1, 0, 0] and back.frame["resolved"].tolist() == [True, False, True]
    assert [None if pd.isna(v) else v for v in back.frame["campaign_id"]] == ["camp-A", None, None]
    assert [None if pd.isna(v) else v for v in back.frame["standing"]] == ["extraction", "benign", None]
    assert back.frame["linked_to_decided"].tolist() == [True, False, False]
    assert back.frame["family_propagation"].isna().tolist() == [False, True, False]  # null: not scored that day
    assert back.frame["family_propagation"][0] == 0.2 and back.frame["family_switch"].tolist()[:2] == [0.0, 1.5]
    assert back.frame["family_latest_resemblance"].tolist()[:2] == [0.5, -0.1]
    assert back.frame["family_latest_propagation"].isna().tolist() == [False, True, False]
    with pytest.raises(ValueError, match="lacks column"):
        train.training_set_from_arrow(train.training_set_to_arrow(original), ["f1", "f3"], original.as_of)


def test_labelling_rules_of_the_stored_set_must_match_the_config():
    reference = {
        "as_of": "2026-02-12",
        "label_horizon_days": 14,
        "min_label_days": 3,
        "unresolved_snapshots_policy": "negative",
    }
    train.check_labelling_rules(reference, TrainingConfig(label_horizon_days=14))
    with pytest.raises(ValueError, match="labelled with"):
        train.check_labelling_rules(reference, TrainingConfig(label_horizon_days=7))


@pytest.fixture()
def lake(tmp_path):
    settings = load_settings(
        lake_root=str(tmp_path / "lake"),
        ground_truth_root=str(tmp_path / "truth"),
        mlflow_tracking_uri=f"sqlite:///{tmp_path}/mlflow/mlflow.db",
        spark_remote=None,
        model_name="dg-steps",
    )
    synthetic_lake(settings)
    return settings


@pytest.mark.slow
def test_steps_in_separate_calls_leave_durable_state_and_refuse_out_of_order(spark, lake):
    settings = lake
    with pytest.raises(FileNotFoundError, match="training-set --as-of"):
        train.fit(settings, AS_OF, CONFIG)
    stored = train.build(spark, settings, AS_OF, CONFIG)
    from deltalake import DeltaTable

    assert stored.reference["training_sets"]["version"] == DeltaTable(settings.table_uri("training_sets")).version()

    candidate = train.fit(settings, AS_OF, CONFIG)
    client = registry.configure(settings)
    assert str(client.get_model_version_by_alias(settings.model_name, "candidate").version) == candidate.version
    with pytest.raises(ValueError, match="has not been evaluated"):
        train.promote(settings, AS_OF)
    with pytest.raises(ValueError, match="fitted as of"):
        train.promote(settings, AS_OF + dt.timedelta(days=1))

    evaluation = train.evaluate(settings, AS_OF, CONFIG)
    assert evaluation.champion_version is None and evaluation.metrics["pr_auc"] > 0.7
    run = client.get_run(candidate.run_id)
    assert run.data.metrics["pr_auc"] == pytest.approx(evaluation.metrics["pr_auc"])
    assert run.data.params["account_features_version"] == "0"
    # tiers: score >= 1 - rate on the clean-reference score (models/fusion.py), stored on the version at fit;
    # every tier's operating point on the holdout is logged, critical included
    evaluated = registry.version_info(client, settings.model_name, candidate.version)
    assert evaluated.tier_bounds == tuple((name, pytest.approx(1 - rate)) for name, rate in TIER_BENIGN_FPR)
    for name, _ in TIER_BENIGN_FPR:
        assert 0.0 <= run.data.metrics[f"tier_recall/{name}"] <= 1.0
        assert f"tier_unlabelled_share/{name}" in run.data.metrics
    assert run.data.metrics["reference_pr_auc"] == pytest.approx(evaluation.metrics["reference_pr_auc"])

    decision = train.promote(settings, AS_OF)
    assert (decision.alias, decision.reason) == ("champion", "first registered model")
    assert str(client.get_model_version_by_alias(settings.model_name, "champion").version) == candidate.version
    # rerunning the gate keeps the recorded decision; re-evaluating a decided candidate is refused
    assert train.promote(settings, AS_OF).alias == "champion"
    with pytest.raises(ValueError, match="already promoted"):
        train.evaluate(settings, AS_OF, CONFIG)


@pytest.mark.slow
def test_cli_steps_run_one_after_another(lake, monkeypatch):
    settings = lake
    flags = ["--lake", settings.lake_root, "--mlflow-uri", settings.mlflow_tracking_uri]
    monkeypatch.setenv("DG_MODEL_NAME", settings.model_name)
    for command in ("training-set", "fit", "evaluate", "promote"):
        assert main([*flags, command, "--as-of", AS_OF.isoformat()]) == 0, command
    # the candidate was fitted as of AS_OF: promoting "as of" another day is a clear error (exit 2)
    assert main([*flags, "promote", "--as-of", (AS_OF + dt.timedelta(days=1)).isoformat()]) == 4
    client = registry.configure(settings)
    version = client.get_model_version_by_alias(settings.model_name, "champion")
    assert version.tags["as_of"] == AS_OF.isoformat() and version.tags["promotion_decision"] == "champion"
    assert "tier_bounds" in version.tags
