"""Race-free table creation and conflict handling for every writer of the lake.

Two writers that both find a table missing must not both create it: delta-rs `create(mode="ignore")` and
Sail's first `overwrite` each commit a second CREATE (a new table id at version 1), and Sail's retried
create overwrites the whole table, so the other writer's partition is lost or doubled. Here the creating
commit (version 0) is built aside, in a staging folder under `<lake>/_staging/`, and then published with an
atomic put-if-absent (a hard link, which fails when the name exists). Exactly one writer creates a table;
every other one sees it exists and replaces its partition under Delta's optimistic concurrency.

How the table is created depends on its schema, because of a Sail 0.7 limit: Sail cannot `replaceWhere`
into list columns of a table whose schema it did not write itself with data ("UnionExec requires all inputs
to have the same data type"). So
  * tables without list columns are created empty from their declared schema (delta-rs) before their
    first write, whoever writes them;
  * tables with list columns are created by their first Spark write: Sail writes the partition into a staging
    table, its data files move into the target folder and its version-0 commit is published atomically. A
    writer that loses the race writes its partition again, as an ordinary replaceWhere.
Put-if-absent needs a local file system. On object stores (s3://, ...) creation falls back to the engine's
own create; run `distillguard` once for one date before starting concurrent writers there.

A commit conflict (another writer committed first and Delta's conflict check refused ours) is retried a
few times, which is safe because every write replaces exactly one partition from inputs it does not write;
when the retries run out it becomes a ConflictError (exit 5), with nothing written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pyarrow as pa

from lake.config import Settings
from lake.errors import ConflictError

log = logging.getLogger(__name__)

FIRST_COMMIT = "00000000000000000000.json"
CONFLICT_RETRIES = 4
# message fragments of a lost optimistic-concurrency race, from Sail ("Failed to commit transaction") and
# delta-rs (CommitFailedError: "Transaction failed: ... concurrent ...", "version already exists")
_CONFLICT_MARKERS = (
    "failed to commit transaction",
    "commitfailed",
    "concurrent",
    "already exists",
    "transaction failed",
)

T = TypeVar("T")


def has_list_columns(schema: pa.Schema) -> bool:
    return any(pa.types.is_list(f.type) or pa.types.is_large_list(f.type) for f in schema)


def _local_path(uri: str) -> Path | None:
    if uri.startswith("file://"):
        return Path(uri[len("file://") :])
    return None if "://" in uri else Path(uri)


def _staging_dir(settings: Settings, name: str) -> str:
    return f"{settings.lake_root.rstrip('/')}/_staging/{name}/{uuid.uuid4().hex}"


def _publish_first_commit(staged_table: Path, target_table: Path) -> bool:
    """Link the staged table's version-0 commit into the target's log; False when the target already has one.

    os.link is atomic and refuses an existing name, so of two concurrent creators exactly one wins, and a
    reader never sees a half-written commit."""
    log_dir = target_table / "_delta_log"
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        os.link(staged_table / "_delta_log" / FIRST_COMMIT, log_dir / FIRST_COMMIT)
    except FileExistsError:
        return False
    return True


def create_empty_table(settings: Settings, name: str, schema: pa.Schema, partition_by: list[str]) -> None:
    """Create the table from its declared schema unless it exists; safe when several processes do it at once."""
    from deltalake import DeltaTable

    uri = settings.table_uri(name)
    if DeltaTable.is_deltatable(uri):
        return
    target = _local_path(uri)
    if target is None:  # object store: no put-if-absent here, delta-rs' own create
        DeltaTable.create(uri, schema=schema, partition_by=partition_by or None, mode="ignore")
        return
    staged = Path(_staging_dir(settings, name))
    try:
        DeltaTable.create(str(staged), schema=schema, partition_by=partition_by or None)
        if _publish_first_commit(staged, target):
            log.info("created table %s", name)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        _remove_empty_parents(staged)


def create_by_first_spark_write(writer_for: Callable[[str], object], settings: Settings, name: str) -> bool:
    """Create a table by writing its first partition with Spark, atomically. Returns False, having changed
    nothing in the table, when another writer created it first; the caller then writes its partition as usual.

    `writer_for(uri)` performs the Spark write (overwrite, partitioned) to the given location."""
    uri = settings.table_uri(name)
    target = _local_path(uri)
    if target is None:
        writer_for(uri)
        return True
    staged = Path(_staging_dir(settings, name))
    moved: list[Path] = []
    try:
        writer_for(str(staged))
        data_files = [
            json.loads(line)["add"]["path"]
            for line in (staged / "_delta_log" / FIRST_COMMIT).read_text().splitlines()
            if line.startswith('{"add"')
        ]
        for relative in data_files:
            # file names carry a fresh uuid, so they cannot collide with the other writer's files
            source = staged / _unquote(relative)
            destination = target / _unquote(relative)
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, destination)
            moved.append(destination)
        if _publish_first_commit(staged, target):
            log.info("created table %s by its first write", name)
            return True
        for path in moved:  # never referenced by a commit; remove so the folder holds no stray files
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return False
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        _remove_empty_parents(staged)


@contextlib.contextmanager
def staged_frame(spark, settings: Settings, frame, name: str) -> Iterator:
    """`frame` written once as Parquet under `<lake>/_staging/<name>/`, read back for the block and removed
    afterwards: Sail has no cache/persist, so a small intermediate that several writes read would otherwise
    be recomputed by each of them. Read back from files, it also carries exact row counts, which lets the
    engine broadcast it in a join instead of shuffling the other side. Sail writes no file for an empty
    frame, so callers add a row that cannot match what they join it with."""
    path = _staging_dir(settings, name)
    try:
        frame.write.mode("overwrite").parquet(path)
        yield spark.read.parquet(path)
    finally:
        _remove_staged(path)


def _remove_staged(uri: str) -> None:
    local = _local_path(uri)
    if local is not None:
        shutil.rmtree(local, ignore_errors=True)
        _remove_empty_parents(local)
        return
    from pyarrow import fs

    # object stores: best effort; a leftover only holds key columns and sits outside every table
    with contextlib.suppress(Exception):
        filesystem, path = fs.FileSystem.from_uri(uri)
        filesystem.delete_dir(path)


def _unquote(path: str) -> str:
    from urllib.parse import unquote

    return unquote(path)


def _remove_empty_parents(staged: Path) -> None:
    """Remove `_staging/<table>` and `_staging` once no other writer uses them."""
    for parent in (staged.parent, staged.parent.parent):
        with contextlib.suppress(OSError):
            parent.rmdir()


def is_conflict(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(marker in text for marker in _CONFLICT_MARKERS)


def retry_on_conflict(write: Callable[[], T], what: str) -> T:
    """Run a partition write; retry it when a concurrent commit won, then give up with a ConflictError."""
    for attempt in range(1, CONFLICT_RETRIES + 1):
        try:
            return write()
        except Exception as exc:
            if not is_conflict(exc):
                raise
            if attempt == CONFLICT_RETRIES:
                raise ConflictError(
                    f"{what}: another writer committed to the table {CONFLICT_RETRIES} times "
                    "in a row; nothing was written, rerun the job"
                ) from exc
            log.info("%s: concurrent commit, retrying (%d/%d)", what, attempt, CONFLICT_RETRIES)
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")
