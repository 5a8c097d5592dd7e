"""A local MLflow store that moves with its lake.

MLflow writes absolute `file://` artifact locations into its SQLite database (experiments, runs, logged models,
model versions). Copy or move the lake and the store keeps pointing at the old folder: a copy silently loads the
original's model files, and once the original is gone scoring fails with "No such artifact". For the local
SQLite store, whose artifacts live in `<database folder>/artifacts` (models/registry.py), `rebase` rewrites
every stored location under an old artifacts root to the current one before MLflow is used. A remote
MLFLOW_TRACKING_URI is never touched.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)

ARTIFACTS_FOLDER = "artifacts"


def artifacts_root(db_path: Path) -> str:
    return (db_path.parent.resolve() / ARTIFACTS_FOLDER).as_uri()


def _stored_roots(db: sqlite3.Connection) -> set[str]:
    """Artifact roots recorded by experiments created for a local store (file://.../artifacts)."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "experiments" not in tables:
        return set()
    roots = set()
    for (location,) in db.execute("SELECT artifact_location FROM experiments WHERE artifact_location LIKE 'file:%'"):
        if location.rstrip("/").endswith(f"/{ARTIFACTS_FOLDER}"):
            roots.add(location.rstrip("/"))
    return roots


def rebase(db_path: Path) -> int:
    """Point every stored artifact location under an old root at `<db folder>/artifacts`; returns the number of
    values rewritten. Idempotent, one transaction, so concurrent jobs on the same store agree."""
    if not db_path.exists():
        return 0
    current = artifacts_root(db_path)
    changed = 0
    with sqlite3.connect(db_path, timeout=60) as db:
        old_roots = _stored_roots(db) - {current}
        if not old_roots:
            return 0
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = [
                row[1]
                for row in db.execute(f'PRAGMA table_info("{table}")')
                if (row[2] or "").upper().startswith(("VARCHAR", "TEXT", "CHAR"))
            ]
            for column in columns:
                for old in old_roots:
                    cursor = db.execute(
                        f'UPDATE "{table}" SET "{column}" = ? || substr("{column}", ?) '
                        f'WHERE substr("{column}", 1, ?) = ?',
                        (current, len(old) + 1, len(old), old),
                    )
                    changed += cursor.rowcount
    log.info("MLflow store %s moved: %d artifact locations now under %s", db_path, changed, current)
    return changed
