"""`distillguard` command line. Each subcommand parses its flags, builds Settings, and calls one job.

Job modules are imported inside the handlers so `distillguard --help` stays fast and nothing is
configured at import time.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys

from jobs.dates import parse_date
from lake.config import load_settings
from lake.engine import spark_session


def _settings(args: argparse.Namespace):
    return load_settings(lake_root=args.lake, spark_remote=args.remote)


@contextlib.contextmanager
def _spark(args: argparse.Namespace):
    settings = _settings(args)
    with spark_session(settings) as spark:
        yield spark, settings


def _cmd_simulate(args):
    from jobs import simulate

    simulate.run(_settings(args), start=args.start, days=args.days, accounts=args.accounts, seed=args.seed)


def _dated_job(module_name: str):
    """Handler for a job with the contract `jobs.<module>.run(spark, settings, date)`."""
    def handler(args):
        job = importlib.import_module(f"jobs.{module_name}")
        with _spark(args) as (spark, settings):
            job.run(spark, settings, args.date)

    return handler


def _cmd_train(args):
    from jobs import train

    with _spark(args) as (spark, settings):
        train.run(spark, settings, args.as_of)


def _cmd_risk_top(args):
    from jobs import risk_query

    risk_query.print_top(_settings(args), score_date=args.date, limit=args.limit, tier=args.tier)


def _cmd_risk_account(args):
    from jobs import risk_query

    risk_query.print_account(_settings(args), account_id=args.account_id, score_date=args.date)


def _cmd_demo(args):
    from jobs import demo

    demo.run(_settings(args), accounts=args.accounts, days=args.days, seed=args.seed, fresh=not args.keep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distillguard", description=__doc__.splitlines()[0])
    parser.add_argument("--lake", help="lake root (default: $DG_LAKE or ./lake_data)")
    parser.add_argument("--remote", help="Spark Connect URL sc://host:port (default: $DG_SPARK_REMOTE or embedded Sail)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="write a simulated raw lake (benign population + distillation campaigns)")
    p.add_argument("--start", type=parse_date, required=True)
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--accounts", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=_cmd_simulate)

    for name, help_text in (
        ("ingest", "validate one day of raw requests into bronze (+ quarantine)"),
        ("aggregate", "per account-day aggregate for one day"),
        ("features", "daily aggregate + 1/7/28-day features for one day"),
        ("cluster", "link accounts and find connected components for one day"),
        ("score", "score one day's features with the champion model"),
        ("nightly", "ingest -> features -> cluster -> score for one day"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--date", type=parse_date, required=True)
        p.set_defaults(func=_dated_job(name))

    p = sub.add_parser("train", help="train, evaluate and register an XGBoost classifier as of a date")
    p.add_argument("--as-of", dest="as_of", type=parse_date, required=True)
    p.set_defaults(func=_cmd_train)

    risk = sub.add_parser("risk", help="query the risk tables").add_subparsers(dest="risk_command", required=True)
    p = risk.add_parser("top", help="highest-risk accounts of a day")
    p.add_argument("--date", type=parse_date, help="score date (default: latest)")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--tier", choices=("low", "elevated", "high", "critical"))
    p.set_defaults(func=_cmd_risk_top)
    p = risk.add_parser("account", help="one account's risk history with reasons")
    p.add_argument("account_id")
    p.add_argument("--date", type=parse_date, help="only this score date")
    p.set_defaults(func=_cmd_risk_account)

    p = sub.add_parser("demo", help="end-to-end demo on a fresh simulated lake")
    p.add_argument("--accounts", type=int, default=20_000)
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep", action="store_true", help="reuse an existing demo lake instead of starting fresh")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except (FileNotFoundError, ValueError, PermissionError) as exc:
        print(f"distillguard {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
