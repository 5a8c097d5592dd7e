"""`distillguard retention --older-than N`: delete restricted rows older than N days.

Restricted, like the raw `api_requests` table itself (README, "Restricted data"): `quarantine` keeps rejected
raw rows whole, raw client IPs and prompt text included; bronze `requests` keeps prompt text (`prompt_prefix`).
Retention deletes the quarantine partitions older than the cut-off, and with `--include-bronze` the bronze
partitions too (aggregates already computed from them stay; re-aggregating those days is then impossible). Each
table changes in one Delta commit, so a reader sees all of a table's old rows or none; the files stay on disk for
time travel until the table is vacuumed, which is the operator's storage policy.
"""

from __future__ import annotations

import argparse
import datetime as dt

from lake import catalog
from lake.config import Settings
from lake.errors import InputError

RESTRICTED_TABLES = ("quarantine",)
WITH_BRONZE = ("quarantine", "requests")


def run(
    settings: Settings, older_than_days: int, include_bronze: bool = False, today: dt.date | None = None
) -> dict[str, int]:
    """Delete rows of partitions before `today - older_than_days`; returns rows removed per table."""
    from deltalake import DeltaTable

    if older_than_days < 1:
        raise InputError(f"--older-than must be at least 1 day, got {older_than_days}")
    cutoff = (today or dt.datetime.now(dt.UTC).date()) - dt.timedelta(days=older_than_days)
    removed: dict[str, int] = {}
    for name in WITH_BRONZE if include_bronze else RESTRICTED_TABLES:
        if not catalog.exists(settings, name):
            removed[name] = 0
            continue
        column = catalog.table(name).partition_by[0]
        metrics = DeltaTable(settings.table_uri(name)).delete(f"{column} < '{cutoff.isoformat()}'")
        removed[name] = int(metrics.get("num_deleted_rows", 0) or 0)
    detail = ", ".join(f"{n}: {rows:,} rows" for n, rows in removed.items())
    print(f"retention: removed rows dated before {cutoff.isoformat()} ({detail})", flush=True)
    return removed


def add_subcommands(sub, settings_of) -> None:
    """`distillguard retention`; `settings_of(args)` builds Settings from the global flags (jobs/cli.py owns them)."""

    def _cmd_retention(args: argparse.Namespace) -> None:
        run(settings_of(args), args.older_than, include_bronze=args.include_bronze)

    p = sub.add_parser(
        "retention",
        help="delete quarantined raw rows (and optionally bronze prompt text) older "
        "than N days, one Delta commit per table",
    )
    p.add_argument(
        "--older-than",
        dest="older_than",
        type=int,
        required=True,
        metavar="N",
        help="keep the last N days (by source partition date, UTC)",
    )
    p.add_argument(
        "--include-bronze",
        action="store_true",
        help="also delete bronze requests partitions (prompt text) older than N days",
    )
    p.set_defaults(func=_cmd_retention)
