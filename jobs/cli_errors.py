"""One clear line for failures an operator fixes outside the code: a corrupt data file, a missing table, a
missing GPU library. jobs/cli.py prints the line; `-v` adds the (redacted) traceback.

Engines report a corrupt Parquet file in their own words, often without its path ("Required field type_ is
missing"), so on such an error the lake's current data files are checked, footer only, to name the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from lake.config import Settings

GPU_LIBRARIES = ("cudf", "rmm", "cupy", "cuml", "pylibcudf")
_CORRUPT = re.compile(r"(?i)parquet (argument )?error|parquet magic|corrupt|not a parquet file|invalid parquet")
_MISSING_TABLE = re.compile(r"(?i)(not a delta table|tablenotfound|no such table|does not exist or you don't have)")
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


def one_line(exc: BaseException, settings: Settings | None) -> str | None:
    """A one-line explanation of `exc` when it is one of the operator-fixable failures, else None."""
    for link in _chain(exc):
        if isinstance(link, ImportError) and (link.name or "").split(".")[0] in GPU_LIBRARIES:
            return (
                f"the GPU library {(link.name or '').split('.')[0]!r} is not installed here; engine 'cudf' needs the "
                "`gpu` extra on a CUDA node (README, \"GPU nodes\"), or use --engine pandas/embedded"
            )
        if isinstance(link, RuntimeError) and str(link).startswith("engine '"):
            return str(link).splitlines()[0]
    text = str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    if _MISSING_TABLE.search(text):
        return f"a Delta table is missing: {first[:300]}"
    if _CORRUPT.search(text):
        corrupt = first_corrupt_file(settings) if settings is not None else None
        where = f"corrupt data file {corrupt}" if corrupt else "a corrupt data file"
        return f"cannot read {where} ({first[:200]}); restore it from backup or rerun the job that wrote it"
    return None
