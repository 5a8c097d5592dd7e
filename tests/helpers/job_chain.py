"""The jobs that write the lake, for the race and kill tests: two chains on tiny lakes, the tables each job writes
in write order, each job run as the CLI would run it, the downstream readers raced against them, and a table's rows
as the tests compare them.

The nightly chain (ingest .. features) runs on a hand-written two-day lake. The scoring chain (training_set, score,
publish, decisions) runs on the synthetic feature lake of tests/helpers/feature_lake.py, with a champion trained
once (`write_scoring_base`); each lake keeps its MLflow store beside it (`lake_settings`), so a copy (`copy_lake`)
scores with its own registry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import json
import shutil
from pathlib import Path

import pyarrow as pa

from compute.spark import SparkEngine
from lake import catalog
from lake.config import load_settings
from models.config import TrainingConfig
from tests.helpers.feature_lake import AS_OF, FAST, STRONG, synthetic_lake, write_clusters
from tests.helpers.raw_requests import TWO_DAYS

D1 = TWO_DAYS[0]
# the nightly chain, in order: job -> the tables it writes, in write order (each one commit per partition)
CHAIN = {
    "ingest": ("quarantine", "requests", "ingest_runs"),
    "aggregate": ("account_daily",),
    "cluster": ("account_links", "account_edges", "account_clusters"),
    "features": ("account_features",),
}
SCORE_DAY = AS_OF  # the scoring chain's one day: the training set's as_of and the score date
# the scoring chain, in order, on the same terms as CHAIN (score commits its marker twice: cleared, then set)
SCORING_CHAIN = {
    "training_set": ("training_sets",),
    "score": ("score_runs", "account_risk", "cluster_risk"),
    "publish": ("risk_publications",),
    "decisions": ("enforcement_labels", "analyst_decisions"),
}
# the champion scores, nothing here judges it: unlabelled snapshots as negatives skip the positive-unlabelled
# weighting's cross-fitted boosters, most of a training run's time
CHAMPION = TrainingConfig(**{**FAST, "unlabelled_snapshots": "negative"})
DECIDED_CLUSTER = "cluster-mixed"  # four unlabelled benign accounts: deciding them changes the training set
DECIDED_AT = dt.datetime.combine(SCORE_DAY - dt.timedelta(days=1), dt.time(12), dt.UTC)  # before the as_of
# columns a rerun or a racing run legitimately writes differently: wall-clock stamps, random ids, the lake's own
# path, and (for a decision) the standing it saw, which depends on which of two decisions committed first
VOLATILE = {
    "score_runs": ("finished_at",),
    "risk_publications": ("published_at",),
    "training_sets": ("reference",),
    "analyst_decisions": ("decision_id", "previous_label", "previous_decided_at"),
}


def lake_settings(lake: Path):
    return load_settings(lake_root=str(lake), mlflow_tracking_uri=f"sqlite:///{lake}-mlflow/mlflow.db")


def copy_lake(source: Path, target: Path) -> Path:
    """A copied lake is a lake (Delta paths are relative), and so is its MLflow store (models/portable_store.py)."""
    shutil.copytree(source, target)
    store = source.parent / f"{source.name}-mlflow"
    if store.exists():
        shutil.copytree(store, target.parent / f"{target.name}-mlflow")
    return target


# --- the jobs, as the CLI runs them -------------------------------------------------------------------------------


def _module_job(job: str):
    """A job whose module jobs/<job>.py has run(engine, settings, day)."""

    def run(spark, settings, day: dt.date) -> None:
        from jobs.steps import runs_on_frame_engine

        engine = SparkEngine(spark) if runs_on_frame_engine(job) else spark  # frame-engine steps get an engine
        importlib.import_module(f"jobs.{job}").run(engine, settings, day)

    return run


def _training_set(spark, settings, day: dt.date) -> None:
    from jobs import train

    train.build(spark, settings, day, STRONG)  # `distillguard training-set --as-of`


def _decide(spark, settings, day: dt.date) -> None:
    from console.decisions import record_decision

    record_decision(  # `distillguard review decide --cluster`, at a fixed time so that runs compare row for row
        settings,
        analyst="analyst-1",
        label="extraction",
        note="the cluster shares a payment method with a campaign",
        cluster_id=DECIDED_CLUSTER,
        score_date=day,
        now=DECIDED_AT,
    )


JOBS = {
    **{job: _module_job(job) for job in (*CHAIN, "score", "publish")},
    "training_set": _training_set,
    "decisions": _decide,
}


def run_job(job: str, spark, lake: Path, day: dt.date = D1) -> None:
    JOBS[job](spark, lake_settings(lake), day)


# --- downstream readers: what each reader saw, comparable across lakes ----------------------------------------


def _refusal(exc: Exception, settings) -> str:
    return "refused: " + str(exc).replace(settings.lake_root, "<lake>")


def _features_output(spark, settings, day: dt.date):
    """features, a reader of account_daily: why it refused, or the feature rows it wrote for the day."""
    from lake.errors import MissingInputError

    try:
        JOBS["features"](spark, settings, day)
    except MissingInputError as exc:
        return _refusal(exc, settings)
    rows = table_rows(Path(settings.lake_root), "account_features", day)
    return f"{len(rows)} rows " + hashlib.sha256("\n".join(rows).encode()).hexdigest()


def _published(spark, settings, day: dt.date):
    """publish, the reader of score's tables: why it refused, or what it recorded as published."""
    from jobs import publish
    from lake.errors import ConflictError, MissingInputError

    for _ in range(100):  # a rescore that moved under publish is a conflict: publish again, as its message says
        try:
            p = publish.run(spark, settings, day)
            break
        except MissingInputError as exc:
            return _refusal(exc, settings)
        except ConflictError:
            continue
    else:
        raise TimeoutError("publish kept conflicting with a rescore")
    return {
        "accounts": p.accounts,
        "clusters": p.clusters,
        "tiers": p.tier_counts,
        "model_version": p.model_version,
        "account_risk_version": p.account_risk_version,
        "cluster_risk_version": p.cluster_risk_version,
    }


def _frame_digest(frame) -> str:
    import pandas as pd

    return f"{len(frame)} rows " + hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).values).hexdigest()


def _fit_input(spark, settings, day: dt.date):
    """What `distillguard fit` reads: the stored training set of the as_of, or "missing"."""
    from jobs import train
    from lake.errors import MissingInputError

    try:
        return _frame_digest(train.load_training_set(settings, day).frame)
    except MissingInputError:
        return "missing"


def _training_input(spark, settings, day: dt.date):
    """What `distillguard training-set` builds from enforcement_labels (and features) as of the day."""
    from models.training_set import build_training_set

    return _frame_digest(build_training_set(spark, settings, day, STRONG).frame)


READERS = {"features": _features_output, "publish": _published, "fit": _fit_input, "training_set": _training_input}


def read_state(reader: str, spark, lake: Path, day: dt.date):
    return READERS[reader](spark, lake_settings(lake), day)


# --- lakes ---------------------------------------------------------------------------------------------------


def table_rows(lake: Path, name: str, day: dt.date) -> list[str] | None:
    """The day's partition (the whole table when it has no date partition) as sorted JSON rows without the
    VOLATILE columns, or None when the table does not exist. Raises if the table is unreadable."""
    from deltalake import DeltaTable

    uri = str(lake / name)
    if not DeltaTable.is_deltatable(uri):
        return None
    partition = catalog.table(name).partition_by
    rows = DeltaTable(uri).to_pyarrow_table(filters=[(partition[0], "=", day)] if partition else None).to_pylist()
    skip = VOLATILE.get(name, ())
    return sorted(json.dumps({k: v for k, v in r.items() if k not in skip}, default=str, sort_keys=True) for r in rows)


def write_reference_tables(lake: Path) -> None:
    """accounts (two pairs sharing a payment fingerprint), one model release, no ASN categories."""
    settings = lake_settings(lake)
    catalog.write_arrow(
        settings,
        "accounts",
        pa.Table.from_pylist(
            [
                dict(
                    account_id=f"acct-{i}",
                    org_id=None,
                    created_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
                    signup_country="US",
                    payment_fingerprint=f"pf-{i % 2}",
                    verification="card",
                    program="standard",
                )
                for i in range(4)
            ],
            catalog.table("accounts").schema,
        ),
    )
    catalog.write_arrow(
        settings,
        "model_releases",
        pa.Table.from_pylist(
            [dict(model="m-1", released_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))],
            catalog.table("model_releases").schema,
        ),
    )
    catalog.write_arrow(settings, "asn_info", pa.Table.from_pylist([], catalog.table("asn_info").schema))


def write_scoring_base(spark, lake: Path) -> None:
    """The scoring chain's starting lake: account_features and enforcement_labels with a planted signal, the score
    day's clusters, and a champion trained (real XGBoost, real MLflow) as of the day before, so that the chain's
    training set for SCORE_DAY is a new partition."""
    from jobs import train

    settings = lake_settings(lake)
    write_clusters(settings, synthetic_lake(settings))
    train.run(spark, settings, SCORE_DAY - dt.timedelta(days=1), CHAMPION, force=True)


def run_chain(spark, start: Path, chain: dict[str, tuple[str, ...]], root: Path, day: dt.date):
    """Run each job of the chain in turn, each on a copy of the lake before it. Returns two dicts: job -> the
    lake it starts from, and job -> the lake it leaves (the next job's start)."""
    before, after, state = {}, {}, start
    for job in chain:
        before[job] = state
        state = after[job] = copy_lake(state, root / f"clean-{job}")
        run_job(job, spark, state, day)
    return before, after
