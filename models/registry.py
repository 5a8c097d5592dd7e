"""All MLflow plumbing: tracking set-up, run logging helpers, model versions, tags and aliases.

The registered model's versions carry what scoring must check before it trusts a model:
  tag `feature_columns`      JSON list, the model's input columns in order
  tag `feature_set_version`  the feature registry's content hash the model was trained against
  tag `score_reference`      the clean benign reference the score is calibrated on, with its format (models/fusion.py)
  tag `tier_bounds`          JSON [[tier, lowest score], ...], highest tier first
Aliases: `champion` (what scoring loads), `challenger` (the latest version that did not pass the gate).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from lake.config import Settings
from lake.errors import MissingInputError
from lake.formats import FORMAT_VERSION_KEY, UNVERSIONED, check_format
from models import portable_store

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
TAG_FEATURE_COLUMNS = "feature_columns"
TAG_FEATURE_SET_VERSION = "feature_set_version"
TAG_TIER_BOUNDS = "tier_bounds"
# The format of a version's tags above (lake/formats.py), itself a tag: bump it when a tag changes meaning or shape;
# version_info reads the versions in VERSION_TAGS_FORMATS_READ. Format 2 (2026-12-07) replaced the novelty
# reference with the score reference; earlier versions are still read, so scoring can say in one line that they
# carry no score reference and must be retrained. The score reference also carries its own format.
VERSION_TAGS_FORMAT = 2
VERSION_TAGS_FORMATS_READ = (UNVERSIONED, 1, VERSION_TAGS_FORMAT)
# JSON of models/fusion.FusionModel (with its format number): the clean benign reference the score is calibrated on
SCORE_REFERENCE_TAG = "score_reference"
MODEL_ARTIFACT_NAME = "model"
# MLflow 3's UI opens an experiment on a GenAI "Overview" page unless the experiment is tagged as classic model
# development (the UI reads this tag; values from its ExperimentKind enum), in which case it opens on the runs.
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
SQLITE_PREFIX = "sqlite:///"
MLFLOW_MAX_RETRIES = 2  # per request, on top of the first try; MLFLOW_HTTP_REQUEST_MAX_RETRIES overrides


class NoChampionError(MissingInputError):
    """There is no model version with the `champion` alias (train one first)."""


@dataclass(frozen=True)
class ModelVersionInfo:
    name: str
    version: str
    run_id: str | None
    feature_columns: list[str]
    feature_set_version: str | None
    tier_bounds: tuple[tuple[str, float], ...] = ()
    score_reference: str | None = None  # JSON of models/fusion.FusionModel; None: a version fitted before it

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def _sqlite_path(tracking_uri: str) -> Path | None:
    if not tracking_uri.startswith(SQLITE_PREFIX):
        return None
    return Path(tracking_uri[len(SQLITE_PREFIX) :])


def configure(settings: Settings):
    """Point MLflow (tracking and registry) at settings.mlflow_tracking_uri and return a client.

    For the default SQLite store the parent folder is created, and runs keep their artifacts next to the database
    (see `experiment_id`) rather than in ./mlruns of whatever directory the job was started from.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    db_path = _sqlite_path(settings.mlflow_tracking_uri)
    if db_path is not None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        portable_store.rebase(db_path)  # a copied or moved lake: its artifacts are here, not where they were
    # MLflow's own defaults retry an unreachable server for minutes (120 s timeout, 7 retries, backoff 2): a
    # job or the console would hang. The operator's own MLFLOW_HTTP_* values still win.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(settings.mlflow_timeout_s))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(MLFLOW_MAX_RETRIES))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    uri = _uri_without_credentials(settings.mlflow_tracking_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _uri_without_credentials(tracking_uri: str) -> str:
    """An http(s) URI's `user:password@` moves to MLflow's basic-auth variables, so MLflow never prints it."""
    import os

    from lake.redact import split_credentials

    if not tracking_uri.startswith(("http://", "https://")):
        return tracking_uri
    uri, user, password = split_credentials(tracking_uri)
    if user is not None:
        os.environ["MLFLOW_TRACKING_USERNAME"] = user
    if password is not None:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    return uri


def experiment_id(client, settings: Settings) -> str:
    """The training experiment (named after the registered model), created on first use."""
    name = f"{settings.model_name}-training"
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.tags.get(TAG_EXPERIMENT_KIND) != EXPERIMENT_KIND:
            client.set_experiment_tag(experiment.experiment_id, TAG_EXPERIMENT_KIND, EXPERIMENT_KIND)
        return experiment.experiment_id
    artifact_location = None
    db_path = _sqlite_path(settings.mlflow_tracking_uri)
    if db_path is not None:
        artifact_location = portable_store.artifacts_root(db_path)
    return client.create_experiment(
        name, artifact_location=artifact_location, tags={TAG_EXPERIMENT_KIND: EXPERIMENT_KIND}
    )


def version_info(client, name: str, version) -> ModelVersionInfo:
    mv = client.get_model_version(name, str(version))
    stored_format = mv.tags.get(FORMAT_VERSION_KEY)  # tags are strings
    check_format(
        {}
        if stored_format is None
        else {FORMAT_VERSION_KEY: int(stored_format) if stored_format.isdigit() else stored_format},
        f"the tags of model {name} version {mv.version}",
        VERSION_TAGS_FORMATS_READ,
        "retrain the model with this build (distillguard train), or score with the build that trained it",
    )
    raw_columns = mv.tags.get(TAG_FEATURE_COLUMNS)
    return ModelVersionInfo(
        name=name,
        version=str(mv.version),
        run_id=mv.run_id,
        feature_columns=json.loads(raw_columns) if raw_columns else [],
        feature_set_version=mv.tags.get(TAG_FEATURE_SET_VERSION),
        tier_bounds=tuple((name, float(bound)) for name, bound in json.loads(mv.tags.get(TAG_TIER_BOUNDS, "[]"))),
        score_reference=mv.tags.get(SCORE_REFERENCE_TAG),
    )


def alias_version(client, name: str, alias: str) -> ModelVersionInfo | None:
    """The version behind an alias, or None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise
    return version_info(client, name, mv.version)


def champion(client, name: str) -> ModelVersionInfo:
    info = alias_version(client, name, CHAMPION)
    if info is None:
        raise NoChampionError(
            f"registered model {name!r} has no '{CHAMPION}' version; run `distillguard train --as-of <date>` first"
        )
    return info


def load_booster(info: ModelVersionInfo):
    import mlflow.xgboost

    return mlflow.xgboost.load_model(info.uri)


def log_model_version(
    booster, *, settings: Settings, feature_columns: list[str], feature_set_version: str, input_example
) -> str:
    """Log the booster to the active run with a signature and input example, register it under
    settings.model_name, tag the new version with its feature contract and return the version number."""
    import mlflow
    import mlflow.xgboost
    import numpy as np
    import xgboost as xgb
    from mlflow.models import infer_signature

    example = input_example[feature_columns]
    scores = booster.predict(xgb.DMatrix(example.to_numpy(dtype=np.float64), feature_names=feature_columns))
    signature = infer_signature(example, scores)
    info = mlflow.xgboost.log_model(
        booster,
        name=MODEL_ARTIFACT_NAME,
        signature=signature,
        input_example=example,
        registered_model_name=settings.model_name,
        # pinning the requirement skips MLflow's slow dependency inference (it re-imports the model in a subprocess)
        pip_requirements=[f"xgboost=={xgb.__version__}"],
    )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    client.set_model_version_tag(settings.model_name, version, TAG_FEATURE_COLUMNS, json.dumps(feature_columns))
    client.set_model_version_tag(settings.model_name, version, TAG_FEATURE_SET_VERSION, feature_set_version)
    client.set_model_version_tag(settings.model_name, version, FORMAT_VERSION_KEY, str(VERSION_TAGS_FORMAT))
    return version


def set_version_tags(client, name: str, version: str, tags: dict[str, object]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))


def set_alias(client, name: str, alias: str, version: str) -> None:
    client.set_registered_model_alias(name, alias, version)
    log.info("model %s version %s is now @%s", name, version, alias)
