"""Writing one date partition of a Delta table from a frame engine: the frame library writes the Parquet file,
the file is checked against the table's schema, and delta-rs commits it in one transaction.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import uuid

import pyarrow as pa

from lake import catalog
from lake.config import Settings
from lake.delta_files import PARQUET_COMPRESSION, filesystem, local_path, remove_file
from lake.frame_engines import FrameEngine

log = logging.getLogger(__name__)


class InvalidOutputError(ValueError):
    """A Parquet file a frame engine wrote does not match the table it is meant for; nothing was committed."""


def write_partition(engine: FrameEngine, settings: Settings, name: str, data, partition_value: dt.date) -> int:
    """Replace one date partition in one Delta commit (the Spark engines' replaceWhere equivalent); returns
    the rows written.

    The frame library writes the Parquet file itself (cuDF encodes on the GPU) and delta-rs only commits it:
    `create_write_transaction` with a partition overwrite adds the file and removes the partition's old ones
    atomically. That call checks nothing about the file, so `_add_action` does: column types against the
    table (timestamps UTC-adjusted microseconds), row count, and null counts against the table's NOT NULL
    columns. The table's existing schema is passed back unchanged: one that differs even in nullability
    would add a metadata action to the commit.

    A table this creates is declared from the catalog; Sail 0.7 cannot later replaceWhere list columns of
    such a table, so pick one engine family per table rather than alternating nightly (docs/operations.md, "Engines")."""
    from deltalake import DeltaTable

    from lake.table_creation import retry_on_conflict

    decl = catalog.table(name)
    if len(decl.partition_by) != 1:
        raise ValueError(f"table {name} is not partitioned by a single date column")
    column = decl.partition_by[0]
    if not isinstance(partition_value, dt.date):
        raise TypeError(f"partition value must be a date, got {partition_value!r}")
    catalog.ensure_table(settings, name)
    uri = settings.table_uri(name).rstrip("/")
    relative = f"{column}={partition_value.isoformat()}/part-{uuid.uuid4().hex}-c000.{PARQUET_COMPRESSION}.parquet"
    path = f"{uri}/{relative}"
    file_columns = [f for f in decl.schema if f.name != column]
    try:
        rows = engine.write_parquet(data, path, pa.schema(file_columns))
        existing = DeltaTable(uri).schema()
        action = _add_action(path, relative, file_columns, existing, {column: partition_value.isoformat()}, rows)

        def commit() -> None:
            DeltaTable(uri).create_write_transaction(
                [action],
                mode="overwrite",
                schema=existing,
                partition_by=[column],
                partition_filters=[(column, "=", partition_value.isoformat())],
            )

        retry_on_conflict(commit, f"writing {name} partition {partition_value}")
    except BaseException:
        # a file no commit references is invisible to readers: remove it rather than leave litter (unless the
        # commit went through after all and only its answer was lost)
        if relative not in _committed_paths(uri):
            remove_file(path)
        raise
    return rows


def _committed_paths(uri: str) -> set[str]:
    from deltalake import DeltaTable

    with contextlib.suppress(Exception):
        return {action["path"] for action in pa.table(DeltaTable(uri).get_add_actions(flatten=True)).to_pylist()}
    return set()


def _add_action(path: str, relative: str, expected: list[pa.Field], table_schema, partition_values: dict, rows: int):
    """The AddAction for a written file, after checking it against the table; raises InvalidOutputError."""
    import json

    import pyarrow.parquet as pq
    from deltalake.transaction import AddAction

    local = local_path(path)
    meta = pq.read_metadata(local) if local else pq.read_metadata(path, filesystem=filesystem(path))
    problems = []
    if meta.num_rows != rows:
        problems.append(f"{meta.num_rows} rows in the file, {rows} written")
    written = meta.schema.to_arrow_schema()
    leaves = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    null_counts: dict[str, int] = {}
    for column in expected:
        if column.name not in written.names:
            problems.append(f"column {column.name} missing")
            continue
        found = written.field(column.name).type
        if not _same_type(found, column.type):
            problems.append(f"column {column.name} is {found}, the table needs {column.type}")
        if pa.types.is_timestamp(column.type):
            logical = json.loads(meta.schema.column(leaves[column.name]).logical_type.to_json())
            if not (logical.get("isAdjustedToUTC") and logical.get("timeUnit") == "microseconds"):
                problems.append(f"column {column.name} is not a UTC-adjusted microsecond timestamp ({logical})")
        if column.name in leaves:  # a top-level primitive column: its null count is in the footer
            nulls = 0
            for group in range(meta.num_row_groups if meta.num_rows else 0):  # no rows: no statistics
                statistics = meta.row_group(group).column(leaves[column.name]).statistics
                if statistics is None or not statistics.has_null_count:
                    problems.append(f"column {column.name} has no null count in the footer")
                    break
                nulls += statistics.null_count
            null_counts[column.name] = nulls
    for column in table_schema.fields:
        if not column.nullable and null_counts.get(column.name, 0) > 0:
            problems.append(f"column {column.name} is NOT NULL in the table but holds {null_counts[column.name]} nulls")
    if problems:
        raise InvalidOutputError(f"{path}: " + "; ".join(problems))
    size = os.stat(local).st_size if local else filesystem(path).get_file_info(path.split("://", 1)[1]).size
    return AddAction(
        path=relative,
        size=size,
        partition_values=partition_values,
        modification_time=int(dt.datetime.now(dt.UTC).timestamp() * 1000),
        data_change=True,
        stats=json.dumps({"numRecords": rows, "nullCount": null_counts}),
    )


def _same_type(found: pa.DataType, wanted: pa.DataType) -> bool:
    """Arrow type equality up to what Parquet does not keep: list element names, string vs large_string."""
    if pa.types.is_list(wanted) or pa.types.is_large_list(wanted):
        return (pa.types.is_list(found) or pa.types.is_large_list(found)) and _same_type(
            found.value_type, wanted.value_type
        )
    if pa.types.is_struct(wanted):
        return (
            pa.types.is_struct(found)
            and found.num_fields == wanted.num_fields
            and all(f.name == w.name and _same_type(f.type, w.type) for f, w in zip(found, wanted))
        )
    if pa.types.is_timestamp(wanted):
        return pa.types.is_timestamp(found) and found.unit == wanted.unit
    if pa.types.is_string(wanted):
        return pa.types.is_string(found) or pa.types.is_large_string(found)
    return found == wanted
