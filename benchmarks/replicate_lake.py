"""Grow an ingested lake k-fold for benchmarks: every row of bronze `requests` (and of `accounts`,
`enforcement_labels`) is written k times, replica r > 0 with its per-account ids suffixed `#r<r>`.

Simulating and ingesting 200M+ records is far too slow for a benchmark setup (about 300k records/s
simulate and 55k/s ingest on 2 cores), while replicating is bounded by Parquet encoding: each task reads
one source file, derives its replicas with Arrow string kernels and streams them into one output file,
so a worker holds at most one source file and one replica at a time. Tasks run on a thread pool (Arrow
releases the GIL while it decodes, concatenates and encodes). Each table is then created in ONE Delta
commit listing every written file (deltalake `create_table_with_add_actions`), keeping the source's
schema and its event_date partitioning.

What a replica is: replica r of account A is account `A#r<r>` with org `O#r<r>`, API key `K#r<r>`,
requests `R#r<r>` and payment fingerprint `P#r<r>`, the same timestamps, IP prefixes, prompts and
models. So per-account features of a replica equal those of its source account; replica 0 keeps the
original ids, so the source lake is a subset of the replicated one. IP hashes and system-prompt hashes
are NOT suffixed: replicas of one account share infrastructure, which matters to the cluster job (not
benchmarked on replicated lakes), not to daily aggregation or features.

Also replicated when the source has them: `account_daily` (every day: the window's history) and
`account_clusters` (cluster ids suffixed too, so a replica's clusters are its own). With --day, bronze and
clusters of that day only. Not replicated: raw `api_requests` and `quarantine` (a replicated lake cannot be
re-ingested); `ingest_runs` gets one record per replicated bronze day so the aggregate job accepts it.

Usage: python benchmarks/replicate_lake.py SOURCE_LAKE TARGET_LAKE --copies K [--workers N] [--day YYYY-MM-DD]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# Per-account identifiers that replicas get suffixed, by table; tables not listed are copied once.
SUFFIXED_COLUMNS: dict[str, tuple[str, ...]] = {
    "requests": ("request_id", "account_id", "org_id", "api_key_id"),
    "accounts": ("account_id", "org_id", "payment_fingerprint"),
    "enforcement_labels": ("account_id",),
    "account_daily": ("account_id",),
    "account_clusters": ("account_id", "cluster_id"),
}
# Tables a source lake may lack: the benchmark stages never read the labels, and only a lake prepared for the
# window benchmark (benchmarks/run_stage.py prepare) has account_daily history and clusters.
OPTIONAL = ("enforcement_labels", "account_daily", "account_clusters")
# With --day, these keep only that day's partition; account_daily keeps every day (the window's history).
DAY_TABLES = {"requests": "event_date", "account_clusters": "feature_date"}
COPIED_ONCE = ("model_releases", "asn_info")
# near-unique columns: dictionary encoding would be tried and abandoned on every page
NO_DICTIONARY = frozenset({"request_id", "event_ts", "ip_hash", "prompt_prefix"})
DEFAULT_ROWS_PER_FILE = 2_000_000


def replica_suffix(replica: int) -> str:
    return f"#r{replica}"


def replicate_batch(table: pa.Table, columns: tuple[str, ...], replica: int) -> pa.Table:
    """`table` with `columns` suffixed for `replica` (nulls stay null); replica 0 is `table` itself."""
    if replica == 0:
        return table
    suffix = pa.scalar(replica_suffix(replica))
    for name in columns:
        index = table.schema.get_field_index(name)
        column = table.column(index)
        table = table.set_column(index, table.schema.field(index), pc.binary_join_element_wise(column, suffix, ""))
    return table


@dataclass(frozen=True)
class _Task:
    source_file: str
    relative_dir: str  # "event_date=2026-01-05" or "" for unpartitioned tables
    partition_values: dict
    replicas: tuple[int, ...]


@dataclass
class TableResult:
    name: str
    source_rows: int
    rows: int
    files: int
    bytes: int
    seconds: float


def _active_files(table_uri: str, only: tuple[str, str] | None = None) -> list[tuple[str, dict, str]]:
    """(absolute path, partition values as strings, relative directory) of each active file; `only` = (column,
    value) keeps one partition."""
    from deltalake import DeltaTable

    table = DeltaTable(table_uri)
    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    files = []
    for action in actions:
        relative = action["path"]
        # Delta stores partition values as strings; dates as ISO dates
        partition = {
            key[len("partition.") :]: (
                None if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)
            )
            for key, value in action.items()
            if key.startswith("partition.")
        }
        if only is None or partition.get(only[0]) == only[1]:
            files.append((os.path.join(table_uri, relative), partition, os.path.dirname(relative)))
    return files


def _write_task(task: _Task, columns: tuple[str, ...], target_uri: str):
    from deltalake.transaction import AddAction

    source = pq.ParquetFile(task.source_file).read()  # not pq.read_table: its dataset layer costs ~1 s to set up
    relative = f"{task.relative_dir}/" if task.relative_dir else ""
    relative += f"part-{uuid.uuid4().hex}-r{task.replicas[0]}-{task.replicas[-1]}.zstd.parquet"
    path = os.path.join(target_uri, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    dictionary_columns = [name for name in source.column_names if name not in NO_DICTIONARY]
    rows = 0
    with pq.ParquetWriter(
        path,
        source.schema,
        compression="zstd",
        compression_level=1,
        use_dictionary=dictionary_columns,
        write_statistics=False,
    ) as writer:
        for replica in task.replicas:
            batch = replicate_batch(source, columns, replica)
            writer.write_table(batch, row_group_size=1 << 20)
            rows += batch.num_rows
    stat = os.stat(path)
    return AddAction(
        path=relative,
        size=stat.st_size,
        partition_values=task.partition_values,
        modification_time=int(stat.st_mtime * 1000),
        data_change=True,
        stats=json.dumps({"numRecords": rows}),
    ), rows


def replicate_table(
    source_root: str,
    target_root: str,
    name: str,
    copies: int,
    workers: int,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    only: tuple[str, str] | None = None,
) -> TableResult:
    from deltalake import DeltaTable
    from deltalake.transaction import create_table_with_add_actions

    began = time.perf_counter()
    source_uri, target_uri = f"{source_root.rstrip('/')}/{name}", f"{target_root.rstrip('/')}/{name}"
    if DeltaTable.is_deltatable(target_uri):
        raise FileExistsError(f"{target_uri} is already a Delta table; replicate into a fresh lake")
    source = DeltaTable(source_uri)
    columns = SUFFIXED_COLUMNS.get(name, ())
    table_copies = copies if columns else 1
    tasks = []
    source_rows = 0
    for path, partition, relative_dir in _active_files(source_uri, only):
        file_rows = pq.ParquetFile(path).metadata.num_rows
        source_rows += file_rows
        per_file = max(1, rows_per_file // max(file_rows, 1))
        for first in range(0, table_copies, per_file):
            tasks.append(_Task(path, relative_dir, partition, tuple(range(first, min(first + per_file, table_copies)))))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        written = list(pool.map(lambda task: _write_task(task, columns, target_uri), tasks))
    actions = [action for action, _ in written]
    create_table_with_add_actions(
        target_uri, source.schema(), actions, mode="error", partition_by=source.metadata().partition_columns or None
    )
    return TableResult(
        name=name,
        source_rows=source_rows,
        rows=sum(rows for _, rows in written),
        files=len(actions),
        bytes=sum(action.size for action in actions),
        seconds=time.perf_counter() - began,
    )


def replicate_lake(
    source_root: str,
    target_root: str,
    copies: int,
    workers: int | None = None,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    day: str | None = None,
) -> dict:
    """Write `target_root` as `copies` replicas of `source_root`'s bronze and reference tables.

    Returns per-table rows/files/bytes/seconds, the requests rows/s, and the process's peak RSS."""
    from deltalake import DeltaTable

    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    workers = workers or os.cpu_count() or 1
    began = time.perf_counter()
    tables = {}
    for name in (*SUFFIXED_COLUMNS, *COPIED_ONCE):
        if not DeltaTable.is_deltatable(f"{source_root.rstrip('/')}/{name}"):
            if name in OPTIONAL:
                continue
            raise FileNotFoundError(f"source lake {source_root} has no Delta table {name!r}; ingest it first")
        only = (DAY_TABLES[name], day) if day and name in DAY_TABLES else None
        result = replicate_table(source_root, target_root, name, copies, workers, rows_per_file, only)
        tables[name] = result.__dict__
        print(
            f"replicate {name}: {result.source_rows:,} -> {result.rows:,} rows in {result.files} files, "
            f"{result.bytes / 2**20:,.0f} MiB, {result.seconds:.1f} s",
            flush=True,
        )
    record_ingest_runs(target_root)
    seconds = time.perf_counter() - began
    requests = tables["requests"]
    return {
        "source": source_root,
        "target": target_root,
        "copies": copies,
        "workers": workers,
        "rows_per_file": rows_per_file,
        "seconds": seconds,
        "tables": tables,
        "requests_rows": requests["rows"],
        "requests_rows_per_s": requests["rows"] / requests["seconds"],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def record_ingest_runs(target_root: str) -> None:
    """One ingest record per replicated bronze day, as ingest would have written it (nothing quarantined): the
    aggregate job refuses a day whose bronze its record does not account for."""
    import datetime as dt

    from deltalake import DeltaTable, write_deltalake

    from lake import catalog

    requests = pa.table(DeltaTable(f"{target_root.rstrip('/')}/requests").get_add_actions(flatten=True))
    per_day: dict = {}
    for rows, day in zip(
        requests.column("num_records").to_pylist(), requests.column("partition.event_date").to_pylist()
    ):
        per_day[day] = per_day.get(day, 0) + rows
    records = [
        dict(
            ingest_run_id=f"replicated-{day.isoformat() if isinstance(day, dt.date) else day}",
            event_date=day if isinstance(day, dt.date) else dt.date.fromisoformat(day),
            raw_table_version=0,
            raw_rows=rows,
            bronze_rows=rows,
            quarantined_rows=0,
            quarantine_reasons=json.dumps({}),
        )
        for day, rows in sorted(per_day.items(), key=str)
    ]
    write_deltalake(
        f"{target_root.rstrip('/')}/ingest_runs",
        pa.Table.from_pylist(records, catalog.table("ingest_runs").schema),
        partition_by=["event_date"],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source_lake")
    parser.add_argument("target_lake")
    parser.add_argument("--copies", type=int, required=True)
    parser.add_argument("--workers", type=int, default=None, help="threads (default: all CPUs)")
    parser.add_argument("--rows-per-file", type=int, default=DEFAULT_ROWS_PER_FILE)
    parser.add_argument("--day", default=None, help="replicate bronze and clusters of this day only (ISO date)")
    args = parser.parse_args(argv)
    result = replicate_lake(args.source_lake, args.target_lake, args.copies, args.workers, args.rows_per_file, args.day)
    print(
        f"replicated {result['requests_rows']:,} request rows in {result['tables']['requests']['seconds']:.1f} s "
        f"({result['requests_rows_per_s']:,.0f} rows/s, {result['workers']} workers), "
        f"peak RSS {result['peak_rss_mib']:,.0f} MiB",
        flush=True,
    )
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
