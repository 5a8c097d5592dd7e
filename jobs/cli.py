"""`distillguard` command line. Each subcommand parses its flags, builds Settings, and calls one job.

Job modules are imported inside the handlers so `distillguard --help` stays fast and nothing is
configured at import time. An empty value for a global flag (`--remote ""`) means "not given": schedulers
(airflow_dags/) always pass every flag from a template and leave the unset ones empty.

Exit status: 0 done, 2 bad input, 3 the quality gate failed, 4 an upstream input is missing (run that step
first), 5 a concurrent writer won (rerun). Only the project's own errors (lake/errors.py) get one line; anything
else keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys

from jobs.dates import parse_date
from lake.config import load_settings
from lake.engine import ENGINE_KEYS, compute_engine, spark_session

# jobs that take `run(engine, settings, date)` with a SparkSession or a frame engine (lake/engine.py)
COMPUTE_ENGINE_JOBS = ("aggregate", "features", "score")
EXIT_ERROR = 2
EXIT_QUALITY_GATE_FAILED = 3


def _settings(args: argparse.Namespace):
    return load_settings(lake_root=args.lake or None, spark_remote=args.remote or None, engine=args.engine or None,
                         mlflow_tracking_uri=args.mlflow_uri or None)


def _engine_key(value: str) -> str:
    if value and value not in ENGINE_KEYS:
        raise argparse.ArgumentTypeError(f"invalid choice {value!r} (choose from {', '.join(ENGINE_KEYS)})")
    return value


@contextlib.contextmanager
def _spark(args: argparse.Namespace):
    settings = _settings(args)
    with spark_session(settings) as spark:
        yield spark, settings


def _cmd_simulate(args):
    from simulator import simulate

    simulate.run(_settings(args), start=args.start, days=args.days, accounts=args.accounts, seed=args.seed,
                 scenario=args.scenario)


def _dated_job(command: str):
    """Handler for a job with the contract `jobs.<module>.run(spark, settings, date)`; module = command with
    dashes as underscores."""
    module_name = command.replace("-", "_")

    def handler(args):
        job = importlib.import_module(f"jobs.{module_name}")
        settings = _settings(args)
        open_engine = compute_engine if module_name in COMPUTE_ENGINE_JOBS else spark_session
        with open_engine(settings) as engine:
            job.run(engine, settings, args.date)

    return handler


def _cmd_train(args):
    from jobs import train

    with _spark(args) as (spark, settings):
        train.run(spark, settings, args.as_of)


def _cmd_training_set(args):
    from jobs import train

    with _spark(args) as (spark, settings):
        train.build(spark, settings, args.as_of)


def _training_step(step: str):
    """Handler for `jobs.train.<step>(settings, as_of)`: steps that read the stored training set, no Spark."""
    def handler(args):
        from jobs import train

        getattr(train, step)(_settings(args), args.as_of)

    return handler


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
    parser.add_argument("--mlflow-uri", dest="mlflow_uri",
                        help="MLflow tracking/registry URI (default: $MLFLOW_TRACKING_URI or SQLite under the lake)")
    parser.add_argument("--engine", type=_engine_key, metavar="{" + ",".join(ENGINE_KEYS) + "}",
                        help="compute engine (default: $DG_ENGINE or embedded); cudf/pandas run aggregate, "
                             "features and score on the frame engine and everything else on Spark")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="write a simulated raw lake (benign population + distillation campaigns)")
    p.add_argument("--start", type=parse_date, required=True)
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--accounts", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--scenario", choices=("classic", "extended"), default="classic",
                   help="classic: 3 labelled campaigns + a reseller; extended: + never-labelled campaigns and "
                        "benign look-alikes (simulator/extended.py)")
    p.set_defaults(func=_cmd_simulate)

    for name, help_text in (
        ("ingest", "validate one day of raw requests into bronze (+ quarantine)"),
        ("aggregate", "per account-day aggregate for one day"),
        ("features", "1/7/28-day features for one day from account_daily (run aggregate first)"),
        ("cluster", "link accounts and find connected components for one day"),
        ("score", "score one day's features with the champion model"),
        ("quality-gate", "check one day's risk table and ingest counts; exit 3 when the day must not be published"),
        ("publish", "record one day's risk tables as published (risk_publications)"),
        ("nightly", "ingest -> aggregate -> features -> cluster -> score for one day"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--date", type=parse_date, required=True)
        p.set_defaults(func=_dated_job(name))

    for name, help_text, handler in (
        ("train", "training-set -> fit -> evaluate -> promote as of a date, in one process", _cmd_train),
        ("training-set", "build the point-in-time training set as of a date into training_sets", _cmd_training_set),
        ("fit", "fit XGBoost on the stored training set; register it as @candidate", _training_step("fit")),
        ("evaluate", "evaluate @candidate and the champion on the same holdout; log to MLflow",
         _training_step("evaluate")),
        ("promote", "promotion gate: @candidate becomes @champion or @challenger", _training_step("promote")),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--as-of", dest="as_of", type=parse_date, required=True)
        p.set_defaults(func=handler)

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
    from jobs.quality_gate import QualityGateError
    from lake.errors import DistillguardError

    try:
        args.func(args)
    except QualityGateError as exc:
        print(f"distillguard {args.command}: {exc}", file=sys.stderr)
        return EXIT_QUALITY_GATE_FAILED
    except DistillguardError as exc:
        print(f"distillguard {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (FileNotFoundError, PermissionError) as exc:
        print(f"distillguard {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
