"""Score one day's account_features on a frame engine (cuDF / pandas): the sibling of models/scoring.py.

Same refusals, same scores, tiers and reasons (models/scoring.score_rows), same cluster rules. On a GPU the
feature matrix goes to XGBoost as a device array and the booster predicts with device="cuda"; a booster
trained on either device predicts on either. The day's rows are one account each, so they fit in memory
where the request logs would not.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lake import catalog, delta_files, delta_writes
from lake.config import Settings
from lake.frame_engines import FrameEngine
from models import fusion, tier_audit
from models.config import TIERS, ScoringConfig, load_model_config
from models.explain import reason_templates
from models.scoring import (
    REASON_TYPE,
    ScoreResult,
    capability_columns,
    check_families_scored,
    checked_champion_booster,
    no_family_scores,
    no_features,
    score_rows,
)


def _partition(settings: Settings, name: str, day: dt.date) -> pa.Table | None:
    if not catalog.exists(settings, name):
        return None
    return delta_files.read_table(settings, name, filters=[(catalog.table(name).partition_by[0], "=", day)])


def lake_family_rows(settings: Settings, score_date: dt.date, account_ids: list[str], champion):
    """Per lake family the champion fuses, its raw scores and sentences aligned to `account_ids` (None where the
    families job did not score the account); refuses a day the job has not run (models/scoring.py)."""
    families = fusion.lake_families(fusion.parse(champion.score_reference, champion.version).families)
    if not families:
        return {}, {}
    day = _partition(settings, "family_scores", score_date)
    if day is None:
        raise no_family_scores(families, score_date)
    rows = day.select(["account_id", "family", "score", "reason"]).to_pandas()
    check_families_scored(rows["family"].unique(), families, score_date)
    scores, reasons = {}, {}
    for name in families:
        mine = rows[rows["family"] == name].drop_duplicates("account_id").set_index("account_id").reindex(account_ids)
        scores[name] = mine["score"].to_numpy(dtype=np.float64)
        reasons[name] = [None if pd.isna(r) else r for r in mine["reason"]]
    return scores, reasons


def feature_matrix(engine: FrameEngine, features: pa.Table, columns: list[str]):
    """(rows, columns) float64 matrix, nulls as NaN: numpy on CPU, cupy on the GPU."""
    host = np.column_stack([features.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in columns])
    if engine.on_gpu:
        import cupy

        return cupy.asarray(host)
    return host


def cluster_scores(engine: FrameEngine, scored, top_members: int):
    """cluster_score per account: mean of the top `top_members` scores of its cluster (ties by account_id);
    null for unclustered accounts (models/scoring.with_cluster_scores)."""
    clustered = scored[scored["cluster_id"].notna()].sort_values(
        ["cluster_id", "score", "account_id"], ascending=[True, False, True]
    )
    clustered["rank"] = clustered.groupby("cluster_id", sort=False).cumcount()
    top = clustered[clustered["rank"] < top_members]
    means = (
        top.groupby("cluster_id", sort=False)
        .agg({"score": "mean"})
        .reset_index()
        .rename(columns={"score": "cluster_score"})
    )
    return scored.merge(means, on="cluster_id", how="left")


def _top_names(shares: dict[str, np.ndarray], limit: int) -> list[list[str]]:
    """Up to `limit` names per row, highest share first, declared order breaking ties, zero/null skipped."""
    names = list(shares)
    if not names:
        return []
    matrix = np.column_stack([np.nan_to_num(shares[n], nan=0.0) for n in names])
    order = np.argsort(-matrix, axis=1, kind="stable")[:, :limit]
    return [[names[j] for j in row_order if matrix[i, j] > 0] for i, row_order in enumerate(order)]


def cluster_risk_table(
    engine: FrameEngine, risk, features: pa.Table, clusters: pa.Table, score_date: dt.date, top_capabilities: int
) -> pa.Table:
    """cluster_risk rows (Arrow) from the scored members, their features and the cluster link evidence."""
    caps = capability_columns(features.schema.names)
    member_features = engine.from_arrow(features.select(["account_id", "requests_1d", "requests_7d", *caps.values()]))
    members = risk[risk["cluster_id"].notna()][["account_id", "cluster_id", "cluster_score"]].merge(
        member_features, on="account_id", how="left"
    )
    weight = members["requests_7d"].fillna(0.0)
    members["requests_1d"] = members["requests_1d"].fillna(0.0)
    members["weight"] = weight
    for name, column in caps.items():
        members[f"_cap_{name}"] = members[column].fillna(0.0) * weight
    per_cluster = (
        members.groupby("cluster_id", sort=True)
        .agg(
            {
                "account_id": "count",
                "requests_1d": "sum",
                "cluster_score": "max",
                "weight": "sum",
                **{f"_cap_{name}": "sum" for name in caps},
            }
        )
        .reset_index()
    )
    host = engine.to_arrow(per_cluster)
    weight_sum = host.column("weight").to_numpy(zero_copy_only=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = {name: host.column(f"_cap_{name}").to_numpy(zero_copy_only=False) / weight_sum for name in caps}
    member_cluster = dict(zip(*engine.to_arrow(members[["account_id", "cluster_id"]]).to_pydict().values()))
    links: dict[str, set[str]] = {}
    for row in clusters.select(["account_id", "link_types"]).to_pylist():
        cluster = member_cluster.get(row["account_id"])
        if cluster is not None:
            links.setdefault(cluster, set()).update(row["link_types"] or ())
    cluster_ids = host.column("cluster_id").to_pylist()
    n = host.num_rows
    table = pa.table(
        {
            "score_date": pa.array([score_date] * n, pa.date32()),
            "cluster_id": cluster_ids,
            "n_accounts": host.column("account_id"),
            "requests": pc.round(host.column("requests_1d")),
            "score": host.column("cluster_score"),
            "top_capabilities": pa.array(_top_names(shares, top_capabilities) or [[]] * n, pa.list_(pa.string())),
            "link_evidence": pa.array([sorted(links.get(c, ())) for c in cluster_ids], pa.list_(pa.string())),
        }
    )
    decl = catalog.table("cluster_risk").schema
    return table.select(decl.names).cast(decl)


def score_day(
    engine: FrameEngine, settings: Settings, score_date: dt.date, config: ScoringConfig | None = None
) -> ScoreResult:
    config = config or load_model_config(settings.model_config_file)[1]
    features = _partition(settings, "account_features", score_date)
    if features is None or features.num_rows == 0:
        raise no_features(score_date)
    versions = sorted(set(features.column("feature_set_version").to_pylist()))
    champion, booster = checked_champion_booster(settings, features.schema.names, versions)
    columns = champion.feature_columns
    booster.set_param({"device": "cuda" if engine.on_gpu else "cpu"})
    lake, lake_reasons = lake_family_rows(settings, score_date, features.column("account_id").to_pylist(), champion)
    bounds = tier_audit.day_bounds(settings, champion.version, champion.tier_bounds, score_date)
    scores, tiers, reasons = score_rows(
        booster,
        feature_matrix(engine, features, columns),
        columns,
        reason_templates(columns),
        config.reasons_per_account,
        bounds,
        champion.score_reference,
        champion.version,
        lake,
        lake_reasons,
    )

    clusters = _partition(settings, "account_clusters", score_date)
    ids = pa.table({"account_id": features.column("account_id")})
    if clusters is not None and clusters.num_rows:
        # connected components put each account in one cluster; min() guards against a duplicated row
        one_cluster = (
            clusters.group_by("account_id")
            .aggregate([("cluster_id", "min")])
            .rename_columns(["account_id", "cluster_id"])
        )
        ids = ids.join(one_cluster, "account_id", join_type="left outer")
        ids = ids.take(pc.sort_indices(ids, [("account_id", "ascending")]))
        order = pc.sort_indices(features, [("account_id", "ascending")])
        features, scores, tiers = features.take(order), scores[order.to_numpy()], tiers[order.to_numpy()]
        reasons = [reasons[i] for i in order.to_numpy()]
    else:
        clusters = None
        ids = ids.append_column("cluster_id", pa.nulls(ids.num_rows, pa.string()))
    scored = engine.from_arrow(
        pa.table(
            {
                "account_id": ids.column("account_id"),
                "cluster_id": ids.column("cluster_id"),
                "score": pa.array(scores),
                "row": pa.array(np.arange(len(scores))),
            }
        )
    )
    with_clusters = engine.to_arrow(cluster_scores(engine, scored, config.cluster_top_members).sort_values("row"))
    n = len(scores)
    account_risk = pa.table(
        {
            "score_date": pa.array([score_date] * n, pa.date32()),
            "account_id": with_clusters.column("account_id"),
            "score": with_clusters.column("score"),
            "tier": pa.array(tiers, pa.string()),
            "cluster_id": with_clusters.column("cluster_id"),
            "cluster_score": with_clusters.column("cluster_score"),
            "reasons": pa.array(reasons, REASON_TYPE),
            "model_name": pa.array([settings.model_name] * n, pa.string()),
            "model_version": pa.array([champion.version] * n, pa.string()),
            "feature_set_version": pa.array([versions[0]] * n, pa.string()),
        }
    )
    delta_writes.write_partition(engine, settings, "account_risk", account_risk, score_date)

    if clusters is not None:
        risk_frame = engine.from_arrow(account_risk.select(["account_id", "cluster_id", "cluster_score"]))
        cluster_risk = cluster_risk_table(engine, risk_frame, features, clusters, score_date, config.top_capabilities)
    else:
        cluster_risk = catalog.table("cluster_risk").schema.empty_table()
    delta_writes.write_partition(engine, settings, "cluster_risk", cluster_risk, score_date)
    engine.note_device_usage()

    counts = {tier: int((tiers == tier).sum()) for tier in TIERS}
    return ScoreResult(
        score_date=score_date,
        model_name=settings.model_name,
        model_version=champion.version,
        feature_set_version=versions[0],
        accounts_scored=n,
        tier_counts=counts,
        clusters_scored=cluster_risk.num_rows,
        tier_bounds=bounds,
        model_tier_bounds=champion.tier_bounds,
    )
