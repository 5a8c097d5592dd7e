"""Cached pyarrow datasets over the Delta tables the console reads.

Building a dataset from the Delta log (one fragment per file, with its partition values) costs more than most page
queries, so it is kept while the table's version stands. Each use asks the log for new commits first
(`update_incremental`), so a decision or a rescore shows on the very next request. The console's pages run one at a
time on the event loop (console/app.py), so the cache needs no lock.
"""

from __future__ import annotations

import atexit

from lake.config import Settings

_DATASETS: dict[str, tuple[object, int, object]] = {}  # uri -> (DeltaTable, version, dataset)
# Drop them before the interpreter tears down: a delta-rs table freed during finalization aborts the process
# ("terminate called without an active exception").
atexit.register(_DATASETS.clear)


def dataset(settings: Settings, name: str):
    from deltalake import DeltaTable

    uri = settings.table_uri(name)
    cached = _DATASETS.get(uri)
    if cached is None:
        table = DeltaTable(uri)
    else:
        table = cached[0]
        table.update_incremental()
    version = table.version()
    if cached is not None and cached[1] == version:
        return cached[2]
    data = table.to_pyarrow_dataset()
    _DATASETS[uri] = (table, version, data)
    return data
