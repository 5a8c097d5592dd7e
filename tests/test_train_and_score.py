"""End to end on real Delta tables and a real (SQLite) MLflow store: synthetic features with a planted signal
and enforcement labels -> train and register -> promotion gate -> score into account_risk and cluster_risk."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from features.registry import feature_columns, feature_set_version
from lake import catalog
from lake.config import load_settings
from lake.errors import MissingTableError
from models import fusion, registry
from models.config import TIER_BENIGN_FPR
from models.explain import reason_templates, reason_text, top_reasons
from models.scoring import LAKE_FAMILY_LEADS, FeatureContractError, assign_tiers, check_feature_contract
from models.train import PromotionRefused, decide_promotion
from tests.helpers.feature_lake import (
    AS_OF,
    CAMPAIGNS,
    N_BENIGN,
    SCORE_DATE,
    SIGNAL,
    STRONG,
    WEAK,
    synthetic_lake,
    write_clusters,
)
from tests.helpers.feature_lake import day as _day


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory):
    """Lake + two training runs: strong (v1, first -> champion), then weak (v2, loses on the same holdout)."""
    from jobs import train

    root = tmp_path_factory.mktemp("train_and_score")
    settings = load_settings(
        lake_root=str(root / "lake"),
        ground_truth_root=str(root / "truth"),
        mlflow_tracking_uri=f"sqlite:///{root}/mlflow/mlflow.db",
        spark_remote=None,
        model_name="dg-test-model",
    )
    groups = synthetic_lake(settings)
    results = [train.run(spark, settings, AS_OF, config) for config in (STRONG, WEAK)]
    return settings, groups, results


def _client(settings):
    return registry.configure(settings)


@pytest.mark.slow
def test_promotion_gate(trained):
    settings, _, (strong, weak) = trained
    assert (strong.version, strong.alias) == ("1", "champion")
    assert strong.reason == "first registered model"
    assert (weak.version, weak.alias) == ("2", "challenger")
    # judged on the holdout's labelled positives against the clean benign reference
    assert weak.metrics["reference_pr_auc"] < strong.metrics["reference_pr_auc"]
    # the champion was re-scored on the second run's holdout (same dates, same rows)
    assert weak.champion_pr_auc == pytest.approx(strong.metrics["reference_pr_auc"])
    client = _client(settings)
    assert str(client.get_model_version_by_alias(settings.model_name, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(settings.model_name, "challenger").version) == "2"
    tags = client.get_model_version(settings.model_name, "2").tags
    assert tags["promotion_decision"] == "challenger" and "does not beat champion v1" in tags["promotion_reason"]
    assert client.get_run(weak.run_id).data.metrics["champion_pr_auc_on_this_holdout"] == pytest.approx(
        strong.metrics["reference_pr_auc"]
    )


@pytest.mark.slow
def test_run_logs_metrics_params_artifacts_and_model_contract(trained):
    settings, _, (strong, _) = trained
    client = _client(settings)
    run = client.get_run(strong.run_id)
    metrics, params = run.data.metrics, run.data.params
    assert metrics["pr_auc"] > 0.7  # the planted signal is strong; a broken pipeline would sit near the base rate
    for key in (
        "recall_at_benign_fpr_0.001",
        "recall_at_benign_fpr_0.01",
        "precision_at_k",
        "campaign_recall",
        "campaign_account_share_flagged_mean",
        "benign_fpr/eval_harness",
        "benign_fpr/education",
        "holdout_positives",
        "unresolved_snapshots",
        "detection_latency_days_mean",
    ):
        assert key in metrics, key
    assert metrics["campaign_recall"] == 1.0  # all three campaigns have a flagged account in the holdout
    assert metrics["campaigns"] == 3.0
    assert params["device"] == strong.device and strong.device in ("cpu", "cuda")
    assert params["feature_set_version"] == feature_set_version()
    assert params["as_of"] == AS_OF.isoformat()
    # as_of is day 11; the last 3 days lack observed labels, so the holdout is days 6..8
    assert params["holdout_dates"] == f"{_day(6)}..{_day(8)}"
    assert params["fit_dates"] == f"{_day(0)}..{_day(3)}"
    assert run.data.tags["promotion.decision"] == "champion"

    artifacts = {f.path for f in client.list_artifacts(strong.run_id)}
    artifacts |= {f.path for f in client.list_artifacts(strong.run_id, "plots")}
    assert {
        "plots/pr_curve.png",
        "plots/feature_importance.png",
        "feature_importance.csv",
        "training_set_reference.json",
        "feature_columns.json",
    } <= artifacts
    local = client.download_artifacts(strong.run_id, "training_set_reference.json")
    reference = json.loads(Path(local).read_text())
    assert reference["account_features"]["version"] == 0
    assert reference["feature_date_max"] == _day(8).isoformat()  # nothing after as_of - min_label_days
    importance = Path(client.download_artifacts(strong.run_id, "feature_importance.csv")).read_text().splitlines()
    top_feature = importance[1].split(",")[0]
    assert top_feature.rsplit("_", 1)[0] in SIGNAL

    version = client.get_model_version(settings.model_name, strong.version)
    assert json.loads(version.tags["feature_columns"]) == feature_columns()
    assert version.tags["feature_set_version"] == feature_set_version()
    from mlflow.models import get_model_info

    info = get_model_info(f"models:/{settings.model_name}/{strong.version}")
    assert info.signature.inputs.input_names() == feature_columns()
    assert info.saved_input_example_info is not None


@pytest.mark.slow
def test_score_writes_explained_account_and_cluster_risk(spark, spark_engine, trained):
    from jobs import score

    settings, groups, _ = trained
    write_clusters(settings, groups)
    result = score.run(spark_engine, settings, SCORE_DATE)
    assert result.model_version == "1"  # the champion, not the newer challenger
    expected_accounts = N_BENIGN + sum(CAMPAIGNS.values())
    assert result.accounts_scored == expected_accounts
    written = {
        name: catalog.read_arrow(settings, name).sort_by(
            [("account_id" if name == "account_risk" else "cluster_id", "ascending")]
        )
        for name in ("account_risk", "cluster_risk")
    }
    score.run(spark_engine, settings, SCORE_DATE)  # a rerun replaces the partition instead of appending
    for name, before in written.items():  # ... with the same rows, bit for bit (scores, reasons, cluster scores)
        after = catalog.read_arrow(settings, name).sort_by(
            [("account_id" if name == "account_risk" else "cluster_id", "ascending")]
        )
        assert after.equals(before), f"{name} rerun differs"

    risk = catalog.read_arrow(settings, "account_risk").to_pandas()  # read back without Spark
    assert len(risk) == expected_accounts
    assert sum(result.tier_counts.values()) == expected_accounts
    assert set(risk["model_version"]) == {"1"} and set(risk["model_name"]) == {settings.model_name}
    assert set(risk["feature_set_version"]) == {feature_set_version()}
    champion_bounds = registry.alias_version(registry.configure(settings), settings.model_name, "champion").tier_bounds
    assert [name for name, _ in champion_bounds] == ["critical", "high", "elevated"]
    assert (risk["tier"].to_numpy() == assign_tiers(risk["score"].to_numpy(), champion_bounds)).all()
    for tier, count in result.tier_counts.items():
        assert (risk["tier"] == tier).sum() == count

    by_account = risk.set_index("account_id")
    loud_attackers = groups["camp-A"][5:]  # not the stealthy first fifth
    assert by_account.loc[loud_attackers, "score"].median() > 0.9
    assert (by_account.loc[groups["benign"], "tier"] == "low").mean() > 0.9
    reasons = list(by_account.loc[loud_attackers[0], "reasons"])
    assert 1 <= len(reasons) <= 3
    if reasons[0]["feature"] == "novelty":  # lifted by the label-free score: that reason leads, in plain words
        assert (
            reasons[0]["text"].startswith(
                ("unusual for the whole account population", "buys far longer answers per prompt")
            )
            and reasons[0]["value"] > 0.9
        )
        reasons = reasons[1:]
    elif reasons[0]["feature"] in LAKE_FAMILY_LEADS:  # lifted by a family of the lake: it leads, with its sentence
        assert reasons[0]["text"].startswith(LAKE_FAMILY_LEADS[reasons[0]["feature"]] + ": ")
        reasons = reasons[1:]
    contributions = [r["contribution"] for r in reasons]
    assert contributions == sorted(contributions, reverse=True) and min(contributions) > 0
    top = reasons[0]
    assert top["feature"].rsplit("_", 1)[0] in SIGNAL
    assert top["text"] == reason_text(top["feature"], top["value"])

    # cluster_score = mean of the top three member scores; unclustered accounts have none
    cluster_a = by_account.loc[by_account["cluster_id"] == "cluster-A"]
    assert len(cluster_a) == 12
    expected = np.sort(cluster_a["score"].to_numpy())[::-1][:3].mean()
    assert cluster_a["cluster_score"].to_numpy() == pytest.approx(np.full(12, expected))
    assert by_account.loc[groups["camp-B"], "cluster_id"].isna().all()
    assert by_account.loc[groups["camp-B"], "cluster_score"].isna().all()

    clusters = catalog.read_arrow(settings, "cluster_risk").to_pandas().set_index("cluster_id")
    assert set(clusters.index) == {"cluster-A", "cluster-mixed"}
    a = clusters.loc["cluster-A"]
    assert a["n_accounts"] == 12
    features = catalog.read_arrow(settings, "account_features").to_pandas()
    day = features[features["feature_date"] == SCORE_DATE].set_index("account_id")
    assert a["requests"] == round(day.loc[cluster_a.index, "requests_1d"].sum())
    assert a["score"] == pytest.approx(expected)
    members = day.loc[cluster_a.index]
    weighted = {
        cap: (members[f"{cap}_share_7d"] * members["requests_7d"]).sum() / members["requests_7d"].sum()
        for cap in ("coding", "agentic", "tool_use", "reasoning", "vision")
    }
    assert list(a["top_capabilities"]) == sorted(weighted, key=weighted.get, reverse=True)[:3]
    assert list(a["link_evidence"]) == ["ip_prefix", "payment", "timing"]
    assert list(clusters.loc["cluster-mixed", "link_evidence"]) == ["ip_prefix"]


@pytest.mark.slow
def test_score_without_clusters_writes_an_empty_cluster_partition(spark, spark_engine, trained):
    from jobs import score

    settings, _, _ = trained
    other_day = SCORE_DATE + dt.timedelta(days=1)  # no account_clusters partition for this date
    result = score.run(spark_engine, settings, other_day)
    assert result.clusters_scored == 0
    risk = catalog.read_arrow(settings, "account_risk", filters=[("score_date", "=", other_day)]).to_pandas()
    assert len(risk) == result.accounts_scored > 0
    assert risk["cluster_id"].isna().all() and risk["cluster_score"].isna().all()


@pytest.mark.slow
def test_link_evidence_lifts_quiet_campaign_accounts_and_leads_their_reasons(spark, spark_engine, trained):
    """The first fifth of each campaign behaves like ordinary customers, so the supervised model cannot find them;
    the propagation family (family_scores) links them to their decided siblings, and says so first."""
    from jobs import score

    settings, groups, _ = trained
    champion = registry.alias_version(registry.configure(settings), settings.model_name, "champion")
    assert "propagation" in fusion.parse(champion.score_reference, champion.version).families
    score.run(spark_engine, settings, SCORE_DATE)
    risk = catalog.read_arrow(settings, "account_risk", filters=[("score_date", "=", SCORE_DATE)]).to_pandas()
    by_account = risk.set_index("account_id")
    quiet = [a for c, size in CAMPAIGNS.items() for a in groups[c][: size // 5]]
    assert by_account.loc[quiet, "score"].min() > by_account.loc[groups["benign"], "score"].quantile(0.99)
    leads = [reasons[0] for reasons in by_account.loc[quiet, "reasons"]]
    assert all(lead["feature"] == "propagation" for lead in leads), leads[:2]
    assert leads[0]["text"].startswith("linked to accounts already decided: shares one payment method with")


@pytest.mark.slow
def test_score_refuses_a_day_the_families_job_has_not_scored(spark, spark_engine, trained, tmp_path):
    from jobs import score

    settings, _, _ = trained
    last = max(catalog.read_arrow(settings, "account_features").column("feature_date").to_pylist())
    catalog.write_arrow(settings, "family_scores", catalog.table("family_scores").schema.empty_table(), last)
    with pytest.raises(MissingTableError, match=f"family_scores has no rows for {last}.*distillguard families"):
        score.run(spark_engine, settings, last)
    # a families job from before a fused family existed: the day has rows, but none of that family
    only_propagation = pa.Table.from_pylist(
        [{"score_date": last, "account_id": "a", "family": "propagation", "score": 0.0, "reason": ""}],
        schema=catalog.table("family_scores").schema,
    )
    catalog.write_arrow(settings, "family_scores", only_propagation, last)
    with pytest.raises(MissingTableError, match=r"no rows of \['resemblance'\]; rerun `distillguard families"):
        score.run(spark_engine, settings, last)


@pytest.mark.slow
def test_score_refuses_a_features_table_with_a_different_feature_list(spark, spark_engine, trained, tmp_path):
    from jobs import score

    settings, _, _ = trained
    # same registry (the champion), a different lake whose features lack one column
    other = load_settings(
        lake_root=str(tmp_path / "lake"),
        ground_truth_root=str(tmp_path / "truth"),
        mlflow_tracking_uri=settings.mlflow_tracking_uri,
        spark_remote=None,
        model_name=settings.model_name,
    )
    day = catalog.read_arrow(settings, "account_features", filters=[("feature_date", "=", SCORE_DATE)])
    from deltalake import write_deltalake

    write_deltalake(
        other.table_uri("account_features"), day.drop(["hosting_proxy_share_28d"]), partition_by=["feature_date"]
    )
    with pytest.raises(FeatureContractError, match="hosting_proxy_share_28d"):
        score.run(spark_engine, other, SCORE_DATE)
    assert not catalog.exists(other, "account_risk")

    relabelled = day.set_column(
        day.schema.get_field_index("feature_set_version"),
        "feature_set_version",
        pa.array(["fs-somethingelse"] * day.num_rows),
    )
    write_deltalake(
        other.table_uri("account_features"),
        relabelled,
        mode="overwrite",
        schema_mode="overwrite",
        partition_by=["feature_date"],
    )
    with pytest.raises(FeatureContractError, match="fs-somethingelse"):
        score.run(spark_engine, other, SCORE_DATE)


@pytest.mark.slow
def test_score_refuses_without_a_champion(spark, spark_engine, trained, tmp_path):
    from jobs import score

    settings, _, _ = trained
    empty_registry = load_settings(
        lake_root=settings.lake_root,
        ground_truth_root=str(tmp_path / "truth"),
        mlflow_tracking_uri=f"sqlite:///{tmp_path}/empty/mlflow.db",
        spark_remote=None,
        model_name=settings.model_name,
    )
    with pytest.raises(registry.NoChampionError, match="no 'champion'"):
        score.run(spark_engine, empty_registry, SCORE_DATE)


# --- pure pieces -----------------------------------------------------------------------------------


def test_decide_promotion_branches():
    champion = registry.ModelVersionInfo("m", "4", None, ["a"], "fs-1")
    assert decide_promotion(0.5, 0.1, None, None).alias == "champion"
    assert decide_promotion(0.61, 0.1, champion, 0.6).alias == "champion"
    assert decide_promotion(0.6, 0.1, champion, 0.6).alias == "challenger"  # a tie does not beat it
    assert decide_promotion(0.5, 0.1, champion, 0.6).alias == "challenger"
    incompatible = decide_promotion(0.5, 0.1, champion, None)  # different feature contract or score format
    assert incompatible.alias == "champion" and "different feature contract" in incompatible.reason
    assert decide_promotion(0.05, 0.1, champion, None).alias == "challenger"  # worse than random
    # a first model whose elevated tier reaches no holdout positive is refused in one line, unless forced
    with pytest.raises(PromotionRefused, match=r"elevated tier reaches none .*--force"):
        decide_promotion(0.5, 0.1, None, None, elevated_recall=0.0)
    forced = decide_promotion(0.5, 0.1, None, None, elevated_recall=0.0, force=True)
    assert forced.alias == "champion" and "--force" in forced.reason
    assert decide_promotion(0.5, 0.1, champion, 0.4, elevated_recall=0.0).alias == "champion"  # not a first model


def test_tiers_and_contract_check():
    assert TIER_BENIGN_FPR == (("critical", 0.0001), ("high", 0.001), ("elevated", 0.01))  # docs/design.md §7
    bounds = (("critical", 0.9), ("high", 0.7), ("elevated", 0.4))
    tiers = assign_tiers(np.array([0.95, 0.9, 0.89, 0.7, 0.5, 0.4, 0.39, 0.0]), bounds)
    assert tiers.tolist() == ["critical", "critical", "high", "high", "elevated", "elevated", "low", "low"]
    champion = registry.ModelVersionInfo("m", "1", None, ["x_1d", "y"], "fs-1")
    check_feature_contract(champion, ["account_id", "feature_date", "y", "x_1d", "feature_set_version"], ["fs-1"])
    with pytest.raises(FeatureContractError, match="missing from the table \\['y'\\]"):
        check_feature_contract(champion, ["account_id", "x_1d"], ["fs-1"])
    with pytest.raises(FeatureContractError, match="not known to the model \\['z'\\]"):
        check_feature_contract(champion, ["x_1d", "y", "z"], ["fs-1"])
    with pytest.raises(FeatureContractError, match="fs-2"):
        check_feature_contract(champion, ["x_1d", "y"], ["fs-1", "fs-2"])


def test_reasons_are_the_top_positive_contributions_in_plain_language():
    columns = ["cot_elicitation_rate_7d", "requests_1d", "account_age_days", "credit_program"]
    contributions = np.array([[1.5, -0.2, 0.4, 0.0, -3.0], [-1.0, -0.1, -0.2, -0.3, 0.5]])
    values = np.array([[0.83, 120.0, 3.0, 1.0], [0.0, 5.0, 400.0, 0.0]])
    reasons = top_reasons(contributions, values, columns, reason_templates(columns), k=3)
    assert [r["feature"] for r in reasons[0]] == ["cot_elicitation_rate_7d", "account_age_days"]  # only > 0
    assert reasons[0][0]["text"] == (
        "share of prompts asking for step-by-step reasoning or the reasoning behind an answer: 83% over 7 days"
    )
    assert reasons[0][1]["text"] == "days since the account was created: 3 days"
    assert reasons[1] == []
    assert reason_text("requests_1d", 1234.0) == "API requests made: 1,234 over the last day"
    assert reason_text("credit_program", 1.0).endswith(": yes")


@pytest.mark.slow
def test_a_copied_lake_scores_on_its_own_after_the_original_is_deleted(spark_engine, trained, tmp_path):
    """Lake + local MLflow store copied, the copy used, then copied again and the first copy deleted: the second
    copy still loads its model from its own folder and writes the same scores."""
    import shutil
    from pathlib import Path

    from jobs import score

    settings, groups, _ = trained
    # the day's clusters, as the nightly chain has them before scoring (written here too, so the test stands alone)
    write_clusters(settings, groups)
    source_root = Path(settings.lake_root).parent

    def copy_of(root: Path, name: str):
        target = tmp_path / name
        shutil.copytree(root, target)
        return target, load_settings(
            lake_root=str(target / "lake"),
            ground_truth_root=str(target / "truth"),
            mlflow_tracking_uri=f"sqlite:///{target}/mlflow/mlflow.db",
            spark_remote=None,
            model_name=settings.model_name,
        )

    first_root, first = copy_of(source_root, "first")
    score.run(spark_engine, first, SCORE_DATE)
    expected = catalog.read_arrow(first, "account_risk", filters=[("score_date", "=", SCORE_DATE)])
    second_root, second = copy_of(first_root, "second")
    shutil.rmtree(first_root)
    result = score.run(spark_engine, second, SCORE_DATE)
    got = catalog.read_arrow(second, "account_risk", filters=[("score_date", "=", SCORE_DATE)])
    assert result.accounts_scored == got.num_rows > 0
    key = [("account_id", "ascending")]
    assert got.sort_by(key).equals(expected.sort_by(key)), "the copy's scores differ from the original's"
    import sqlite3

    with sqlite3.connect(second_root / "mlflow" / "mlflow.db") as db:
        text = " ".join(
            str(v)
            for table in ("experiments", "runs", "model_versions")
            for row in db.execute(f"SELECT * FROM {table}")
            for v in row
        )
    assert str(first_root) not in text and str(source_root) not in text
