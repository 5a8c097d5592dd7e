"""Typed settings, resolved from the environment when a job starts (never at import time).

Environment variables:
  DG_LAKE                 lake root (local path or any URI the engine and delta-rs support); default ./lake_data
  DG_GROUND_TRUTH         where the simulator writes campaign membership; outside the lake on purpose
  DG_SPARK_REMOTE         sc://host:port of a Spark Connect server; unset = embedded Sail
  DG_ENGINE               compute engine (ENGINE_KEYS below; compute/ implements them): embedded | remote | jvm-local | cudf | pandas
  DG_GPU_MEMORY_BUDGET_GB GPU memory the cuDF engine may hold at once (RMM pool size); default: 80% of free memory
  DG_KVIKIO_THREADS       threads KvikIO reads Parquet with on the cuDF engine (KVIKIO_NTHREADS, set before the
                          first read); default: the CPU count. A positive integer
  MLFLOW_TRACKING_URI     MLflow tracking/registry store; default sqlite:///<lake>/_mlflow/mlflow.db
  DG_MODEL_NAME           registered model name; default distillguard-extraction
  DG_PSEUDONYM_KEY        secret key for IP pseudonymization (the default is for demos only: refused on a
                          non-local lake unless the run says --demo)
  DG_CONNECT_TIMEOUT_S    how long to wait for a remote Spark Connect server to accept a connection and greet;
                          default 60
  DG_MLFLOW_TIMEOUT_S     deadline of one MLflow HTTP request (2 retries); default 10
  DG_SHUFFLE_PARTITIONS   spark.sql.shuffle.partitions for every session; unset = the server's own value on a
                          remote server, EMBEDDED_SHUFFLE_PARTITIONS on embedded Sail
  DG_SHARING_KEY          secret key agreed with the providers indicators are shared with: exported IP prefixes
                          and payment fingerprints are keyed hashes under it (jobs/indicators.py); unset = no export
  DG_AIRFLOW_API_URL      Airflow 3 api-server base URL (http://host:8080); decisions then post an asset event
                          for enforcement_labels (console/airflow_events.py); unset = no Airflow configured
  DG_AIRFLOW_USER, DG_AIRFLOW_PASSWORD   the account that posts those events (never printed)

The default lake root is ./lake_data rather than ./lake because the code package `lake/`
already owns that name in the repository root.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from lake.errors import InputError

DEMO_PSEUDONYM_KEY = "distillguard-demo-key-not-for-production"


# Engine keys: Spark engines (lake/engine.py opens their sessions) and frame engines (lake/frame_engines.py).
SPARK_ENGINE_KEYS = ("embedded", "remote", "jvm-local")
FRAME_ENGINE_KEYS = ("cudf", "pandas")
ENGINE_KEYS = (*SPARK_ENGINE_KEYS, *FRAME_ENGINE_KEYS)


def allowed(field) -> str:
    """What a pydantic field accepts, from its annotation and bounds: `integer from 1 to 365`."""
    import annotated_types

    kind = getattr(field.annotation, "__name__", None) or str(field.annotation).replace("typing.", "")
    kind = {"int": "integer", "float": "number", "str": "text", "bool": "true or false"}.get(kind, kind)
    bounds = []
    for item in field.metadata:
        for name, words in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if isinstance(item, getattr(annotated_types, name.capitalize())):
                bounds.append(f"{words} {getattr(item, name)}")
    return " ".join([kind, *bounds]) if bounds else kind


def optional_positive_int(value: str) -> int | None:
    """An argparse type: a positive integer, or None for an empty value (schedulers pass every flag; empty means
    "not given")."""
    import argparse

    if value == "":
        return None
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return int(value)


def validation_line(exc: ValidationError, fields: dict | None = None) -> str:
    """One line for a pydantic error list: `key = value: what is wrong (allowed: ...)`, joined by '; '."""
    problems = []
    for error in exc.errors():
        key = ".".join(map(str, error["loc"]))
        message = error["msg"].removeprefix("Value error, ")
        if not key or key == "__root__" or error["type"] == "value_error":
            problems.append(message)  # a rule across keys names its keys itself
            continue
        field = (fields or {}).get(error["loc"][0])
        limit = f" (allowed: {allowed(field)})" if field is not None and field.metadata else ""
        problems.append(f"{key} = {error.get('input')!r}: {message}{limit}")
    return "; ".join(problems)


class Settings(BaseModel):
    # strict: a setting's type is never guessed (a boolean is not a number); environment strings are converted
    # in load_settings, where the variable's name is known
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    lake_root: str = Field(description="Root URI/path of the Delta lake")
    ground_truth_root: str = Field(description="Simulator ground truth; never read by jobs")
    spark_remote: str | None = Field(default=None, description="sc://host:port, None = embedded Sail")
    mlflow_tracking_uri: str = Field(description="MLflow tracking and registry URI")
    model_name: str = "distillguard-extraction"
    model_config_file: str | None = None  # TOML with [training] / [scoring] (models/config.py load_model_config)
    pseudonym_key: SecretStr = SecretStr(DEMO_PSEUDONYM_KEY)  # keys the IP and payment pseudonyms
    # None: a remote server keeps its operator's value (spark-defaults.conf); embedded Sail uses a small default
    shuffle_partitions: int | None = Field(default=None, ge=1, le=100_000)
    engine: str = Field(default="embedded", description="compute engine key, see lake/engine.py")
    gpu_memory_budget_gb: float | None = Field(default=None, gt=0, description="cuDF engine memory budget")
    # None: one thread per CPU (os.cpu_count()), resolved when the engine opens; KvikIO's own default is 1
    kvikio_threads: int | None = Field(
        default=None, ge=1, le=1024, description="KvikIO read threads on the cuDF engine"
    )
    connect_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="remote Spark Connect: connect and greeting deadline"
    )
    mlflow_timeout_s: int = Field(default=10, ge=1, le=3600, description="deadline of one MLflow HTTP request")
    # secrets are SecretStr: a printed or logged Settings shows '**********'
    sharing_key: SecretStr | None = Field(default=None, description="key for indicators shared with other providers")
    airflow_api_url: str | None = Field(default=None, description="Airflow 3 api-server URL for label asset events")
    airflow_user: str | None = None
    airflow_password: SecretStr | None = None

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if value not in ENGINE_KEYS:
            raise ValueError(f"unknown engine {value!r}; choose one of {', '.join(ENGINE_KEYS)}")
        return value

    @field_validator("spark_remote")
    @classmethod
    def _remote_is_spark_connect(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("sc://"):
            raise ValueError(f"spark_remote must look like sc://host:port, got {value!r}")
        return value

    @property
    def kvikio_thread_count(self) -> int:
        return self.kvikio_threads or os.cpu_count() or 1

    @property
    def is_local_lake(self) -> bool:
        return "://" not in self.lake_root

    def table_uri(self, table_name: str) -> str:
        return f"{self.lake_root.rstrip('/')}/{table_name}"


def _absolute(path_or_uri: str) -> str:
    if "://" in path_or_uri:
        return path_or_uri
    return str(Path(path_or_uri).expanduser().resolve())


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment; explicit keyword overrides win (CLI flags pass them here)."""
    env = os.environ
    allow_demo_key = bool(overrides.pop("allow_demo_key", False))
    values: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    lake_root = _absolute(str(values.pop("lake_root", env.get("DG_LAKE", "lake_data"))))
    ground_truth = values.pop("ground_truth_root", env.get("DG_GROUND_TRUTH"))
    if ground_truth is None:
        ground_truth = f"{lake_root.rstrip('/')}_ground_truth"
    mlflow_uri = values.pop("mlflow_tracking_uri", env.get("MLFLOW_TRACKING_URI"))
    if mlflow_uri is None:
        if "://" in lake_root:
            raise InputError("a remote DG_LAKE needs MLFLOW_TRACKING_URI set explicitly")
        mlflow_uri = f"sqlite:///{lake_root}/_mlflow/mlflow.db"
    values.setdefault("spark_remote", env.get("DG_SPARK_REMOTE") or None)
    if env.get("DG_ENGINE"):
        values.setdefault("engine", env["DG_ENGINE"])
    if env.get("DG_MODEL_CONFIG"):
        values.setdefault("model_config_file", env["DG_MODEL_CONFIG"])
    if "DG_MODEL_NAME" in env:
        values.setdefault("model_name", env["DG_MODEL_NAME"])
    if "DG_PSEUDONYM_KEY" in env:
        values.setdefault("pseudonym_key", env["DG_PSEUDONYM_KEY"])
    for name, variable in (
        ("sharing_key", "DG_SHARING_KEY"),
        ("airflow_api_url", "DG_AIRFLOW_API_URL"),
        ("airflow_user", "DG_AIRFLOW_USER"),
        ("airflow_password", "DG_AIRFLOW_PASSWORD"),
    ):
        if env.get(variable):
            values.setdefault(name, env[variable])
    for variable, key, kind in NUMERIC_ENV:
        if env.get(variable):
            values.setdefault(key, _env_number(f"{variable} ({key})", env[variable], kind))
    if (
        "://" in lake_root
        and values.get("pseudonym_key", DEMO_PSEUDONYM_KEY) == DEMO_PSEUDONYM_KEY
        and not allow_demo_key
    ):
        raise InputError(
            "DG_PSEUDONYM_KEY is the built-in demo key, which anyone can read in the source, and the lake "
            f"{lake_root} is not local: set DG_PSEUDONYM_KEY to a secret (or pass --demo for a demo lake)"
        )
    try:
        return Settings(
            lake_root=lake_root,
            ground_truth_root=_absolute(str(ground_truth)),
            mlflow_tracking_uri=str(mlflow_uri),
            **values,
        )
    except ValidationError as exc:
        raise InputError(f"invalid settings: {validation_line(exc, Settings.model_fields)}") from None


# (environment variable, Settings field, type): numbers from the environment, converted with the variable named
NUMERIC_ENV = (
    ("DG_GPU_MEMORY_BUDGET_GB", "gpu_memory_budget_gb", float),
    ("DG_KVIKIO_THREADS", "kvikio_threads", int),
    ("DG_SHUFFLE_PARTITIONS", "shuffle_partitions", int),
    ("DG_CONNECT_TIMEOUT_S", "connect_timeout_s", float),
    ("DG_MLFLOW_TIMEOUT_S", "mlflow_timeout_s", int),
)


def _env_number(variable: str, text: str, kind: type) -> int | float:
    try:
        value = kind(text.strip())
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise InputError(f"{variable} = {text!r}: expected {noun}") from None
    if (kind is float and value != value) or value in (float("inf"), float("-inf")):
        raise InputError(f"{variable} = {text!r}: expected a finite number")
    return value
