"""`distillguard retention`: delete restricted rows older than each table's own retention period.

Restricted tables (docs/security.md) and the flag that sets each one's period:
  api_requests  --raw-days         raw requests: prompt text and raw client IPs
  quarantine    --quarantine-days  rejected raw rows, kept whole (raw IPs and prompt text included)
  requests      --bronze-days      bronze: prompt prefixes (aggregates already computed from them stay;
                                   re-aggregating those days is then impossible)
`--older-than N` is the shorthand for `--quarantine-days N` (and `--bronze-days N` with `--include-bronze`).
A table without a period is left alone. Labels, analyst decisions and the model registry are never touched:
they are the audit trail. Derived tables hold pseudonyms and counts only and keep their history.

`--dry-run` lists, per table, the partitions and rows that would go, and writes nothing. Each table changes in
one Delta commit, so a reader sees all of a table's old rows or none; the files stay on disk for time travel
until the table is vacuumed, which is the operator's storage policy.
"""

from __future__ import annotations

import argparse
import datetime as dt

from lake import catalog
from lake.config import Settings
from lake.errors import InputError

# table -> (CLI flag, what it holds); the only tables retention deletes from
RESTRICTED = {
    "api_requests": ("--raw-days", "raw requests: prompt text and raw client IPs"),
    "quarantine": ("--quarantine-days", "rejected raw rows, kept whole"),
    "requests": ("--bronze-days", "bronze requests: prompt prefixes"),
}
NEVER_TOUCHED = ("enforcement_labels", "analyst_decisions")  # and the MLflow model registry, which is not a table
MAX_DAYS = 36_500


def periods(
    older_than: int | None = None,
    include_bronze: bool = False,
    raw_days: int | None = None,
    quarantine_days: int | None = None,
    bronze_days: int | None = None,
) -> dict[str, int]:
    """table -> retention days, from the flags; each period is checked to be 1 .. MAX_DAYS days."""
    chosen = {
        "api_requests": raw_days,
        "quarantine": quarantine_days if quarantine_days is not None else older_than,
        "requests": bronze_days if bronze_days is not None else (older_than if include_bronze else None),
    }
    periods: dict[str, int] = {name: days for name, days in chosen.items() if days is not None}
    if not periods:
        raise InputError(
            "give at least one retention period: --raw-days, --quarantine-days, --bronze-days or --older-than"
        )
    for name, days in periods.items():
        flag = RESTRICTED[name][0] if older_than is None or days != older_than else "--older-than"
        if not 1 <= days <= MAX_DAYS:
            raise InputError(f"{flag} {days}: must be between 1 and {MAX_DAYS:,} days")
    return periods


def _old_partitions(settings: Settings, name: str, cutoff: dt.date) -> dict[dt.date, int]:
    """partition date -> rows, for the table's partitions dated before `cutoff` (from the Delta log)."""
    import pyarrow as pa
    from deltalake import DeltaTable

    column = f"partition.{catalog.table(name).partition_by[0]}"
    actions = pa.table(DeltaTable(settings.table_uri(name)).get_add_actions(flatten=True))
    found: dict[dt.date, int] = {}
    if actions.num_rows == 0:
        return found
    for value, records, path in zip(
        actions.column(column).to_pylist(),
        actions.column("num_records").to_pylist(),
        actions.column("path").to_pylist(),
        strict=True,
    ):
        if value is not None and value < cutoff:
            if records is None:  # a writer that kept no statistics: count the file
                import pyarrow.parquet as pq

                records = pq.ParquetFile(f"{settings.table_uri(name)}/{path}").metadata.num_rows
            found[value] = found.get(value, 0) + records
    return found


def run(
    settings: Settings,
    older_than_days: int | None = None,
    include_bronze: bool = False,
    today: dt.date | None = None,
    *,
    raw_days: int | None = None,
    quarantine_days: int | None = None,
    bronze_days: int | None = None,
    dry_run: bool = False,
) -> dict[str, int]:
    """Delete (or with `dry_run` only list) each restricted table's partitions older than its period; returns
    rows removed (or that would be) per table."""
    from deltalake import DeltaTable

    wanted = periods(older_than_days, include_bronze, raw_days, quarantine_days, bronze_days)
    today = today or dt.datetime.now(dt.UTC).date()
    removed: dict[str, int] = {}
    for name, days in wanted.items():
        cutoff = today - dt.timedelta(days=days)
        if not catalog.exists(settings, name):
            removed[name] = 0
            continue
        old = _old_partitions(settings, name, cutoff)
        if dry_run:
            removed[name] = sum(old.values())
            listed = ", ".join(f"{day.isoformat()} ({rows:,})" for day, rows in sorted(old.items())) or "nothing"
            print(f"retention --dry-run: {name} (kept {days} days, before {cutoff.isoformat()}): {listed}", flush=True)
            continue
        column = catalog.table(name).partition_by[0]
        metrics = DeltaTable(settings.table_uri(name)).delete(f"{column} < '{cutoff.isoformat()}'") if old else {}
        removed[name] = int(metrics.get("num_deleted_rows", 0) or 0)
        print(f"retention: {name}: removed {removed[name]:,} rows dated before {cutoff.isoformat()}", flush=True)
    return removed


def add_subcommands(sub, settings_of) -> None:
    """`distillguard retention`; `settings_of(args)` builds Settings from the global flags (jobs/cli.py owns them)."""

    def _cmd_retention(args: argparse.Namespace) -> None:
        run(
            settings_of(args),
            args.older_than,
            include_bronze=args.include_bronze,
            raw_days=args.raw_days,
            quarantine_days=args.quarantine_days,
            bronze_days=args.bronze_days,
            dry_run=args.dry_run,
        )

    p = sub.add_parser(
        "retention",
        help="delete restricted raw rows (api_requests, quarantine, bronze) older than each one's period; "
        "labels and decisions are never touched",
    )
    for name, (flag, holds) in RESTRICTED.items():
        p.add_argument(
            flag,
            dest=flag[2:].replace("-", "_"),
            type=int,
            metavar="N",
            help=f"keep the last N days of {name} ({holds})",
        )
    p.add_argument(
        "--older-than",
        dest="older_than",
        type=int,
        metavar="N",
        help="shorthand: --quarantine-days N, and --bronze-days N with --include-bronze",
    )
    p.add_argument("--include-bronze", action="store_true", help="with --older-than: bronze requests too")
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted; write nothing")
    p.set_defaults(func=_cmd_retention)
