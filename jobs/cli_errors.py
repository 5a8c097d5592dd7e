"""One clear line for failures an operator fixes outside the code, recognised by TYPE, never by message text:
a missing GPU library, an unreachable MLflow, a corrupt data file. jobs/cli.py prints the line; `-v` adds the
(redacted) traceback.

Engines report a corrupt Parquet file in their own words and exception types, often without its path, so when
an engine or Arrow error ends a job the lake's current data files are checked, footer only: a file that cannot
be read is named. No unreadable file, no claim.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

from lake.config import Settings
from lake.errors import DistillguardError, InputError, ServiceUnreachableError

GPU_LIBRARIES = ("cudf", "rmm", "cupy", "cuml", "pylibcudf")
MAX_FILES_CHECKED = 20_000


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def first_corrupt_file(settings: Settings) -> str | None:
    """The first data file of any catalog table whose Parquet footer cannot be read, or None."""
    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    from lake.catalog import TABLES

    checked = 0
    for name in TABLES:
        uri = settings.table_uri(name)
        if not DeltaTable.is_deltatable(uri):
            continue
        for path in DeltaTable(uri).file_uris():
            checked += 1
            if checked > MAX_FILES_CHECKED:
                return None
            try:
                pq.ParquetFile(path).metadata  # noqa: B018 - reading the footer is the check
            except Exception:
                return path
    return None


def _engine_error_types() -> tuple[type[BaseException], ...]:
    import pyarrow as pa

    types: list[type[BaseException]] = [pa.ArrowException, OSError]
    try:
        from pyspark.errors import PySparkException

        types.append(PySparkException)
    except ImportError:
        pass
    return tuple(types)


def _mlflow_host(settings: Settings | None) -> str:
    if settings is None:
        return "the MLflow server"
    parts = urlsplit(settings.mlflow_tracking_uri)
    return f"MLflow at {parts.hostname}:{parts.port}" if parts.port else f"MLflow at {parts.hostname}"


def classify(exc: BaseException, settings: Settings | None) -> DistillguardError | None:
    """The project error `exc` amounts to, with its one line, when it is an operator-fixable failure; else None
    (a defect: the CLI keeps its traceback)."""
    import requests

    for link in _chain(exc):
        if isinstance(link, ImportError) and (link.name or "").split(".")[0] in GPU_LIBRARIES:
            return InputError(
                f"the GPU library {(link.name or '').split('.')[0]!r} is not installed here; engine 'cudf' needs the "
                "`gpu` extra on a CUDA node (docs/operations.md, \"GPU nodes\"), or use --engine pandas/embedded"
            )
        if isinstance(link, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            kind = "no answer in time" if isinstance(link, requests.exceptions.Timeout) else "cannot connect"
            return ServiceUnreachableError(
                f"{_mlflow_host(settings)} did not answer ({kind}); check MLFLOW_TRACKING_URI / --mlflow-uri and "
                "that the server is up (DG_MLFLOW_TIMEOUT_S sets how long one request may take)"
            )
    if settings is not None and any(isinstance(link, _engine_error_types()) for link in _chain(exc)):
        corrupt = first_corrupt_file(settings)
        if corrupt:
            return InputError(
                f"cannot read corrupt data file {corrupt}; restore it from backup or rerun the job that wrote it"
            )
    return None
