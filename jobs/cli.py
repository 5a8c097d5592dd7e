"""`distillguard` command line. Each subcommand parses its flags, builds Settings, and calls one job.

Job modules are imported inside the handlers so `distillguard --help` stays fast and nothing is
configured at import time. An empty value for a global flag (`--remote ""`) means "not given": schedulers
(airflow_dags/) always pass every flag from a template and leave the unset ones empty.

Exit status: one meaning per code, by error type (lake/errors.py EXIT_CODES; printed at the end of `--help`).
Only the project's own errors get one line; anything else keeps its traceback and exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import traceback
from importlib.metadata import entry_points

from jobs import backfill, cli_help, engine_server, interrupts, retention
from jobs.steps import NIGHTLY_STEPS, runs_on_frame_engine
from lake.config import ENGINE_KEYS, Settings, load_settings, optional_positive_int
from lake.dates import parse_date
from lake.engine import spark_session
from lake.errors import EXIT_CODES, InputError, QualityGateError
from lake.redact import install_log_redaction, redact

EXIT_ERROR = InputError.exit_code
EXIT_QUALITY_GATE_FAILED = QualityGateError.exit_code
EXIT_UNEXPECTED = 1  # a defect, not an operator's input: the (redacted) traceback is printed


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the global flags; handed to every subcommand group that is added from elsewhere."""
    return load_settings(
        lake_root=args.lake or None,
        spark_remote=args.remote or None,
        engine=args.engine or None,
        mlflow_tracking_uri=args.mlflow_uri or None,
        model_config_file=args.model_config or None,
        allow_demo_key=args.demo or args.command == "demo",
        shuffle_partitions=args.shuffle_partitions or None,
    )


def _engine_key(value: str) -> str:
    if value and value not in ENGINE_KEYS:
        raise argparse.ArgumentTypeError(f"invalid choice {value!r} (choose from {', '.join(ENGINE_KEYS)})")
    return value


@contextlib.contextmanager
def _spark(args: argparse.Namespace):
    settings = settings_from_args(args)
    with spark_session(settings) as spark:
        yield spark, settings


def _scenario_argument(p: argparse.ArgumentParser) -> None:
    from simulator.scenarios import DEFAULT_SCENARIO, SCENARIOS

    p.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default=DEFAULT_SCENARIO,
        help="classic: 3 labelled campaigns + a reseller; extended: + never-labelled campaigns and benign "
        "look-alikes (simulator/extended.py); randomised: every campaign tactic drawn per seed, overlapping "
        "benign behaviour (simulator/randomised.py)",
    )


def _cmd_simulate(args):
    from simulator import simulate

    simulate.run(
        settings_from_args(args),
        start=args.start,
        days=args.days,
        accounts=args.accounts,
        seed=args.seed,
        scenario=args.scenario,
        hold_out=args.hold_out,
    )


def _dated_job(command: str):
    """Handler for a job `jobs.<module>.run(engine_or_spark, settings, date)`; module = command with dashes as
    underscores. Steps jobs/steps.py marks as frame-engine steps get an engine (compute/), the rest a
    SparkSession."""
    module_name = command.replace("-", "_")

    def handler(args):
        from compute import open_engine

        job = importlib.import_module(f"jobs.{module_name}")
        settings = settings_from_args(args)
        if runs_on_frame_engine(module_name):
            with open_engine(settings) as engine:
                job.run(engine, settings, args.date)
        else:
            with spark_session(settings) as spark:
                job.run(spark, settings, args.date)

    return handler


def _cmd_nightly(args):
    from jobs import nightly

    nightly.run(settings_from_args(args), args.date)


def _cmd_train(args):
    from jobs import train

    with _spark(args) as (spark, settings):
        train.run(spark, settings, args.as_of, force=args.force)


def _cmd_training_set(args):
    from jobs import train

    with _spark(args) as (spark, settings):
        train.build(spark, settings, args.as_of)


def _training_step(step: str):
    """Handler for `jobs.train.<step>(settings, as_of)`: steps that read the stored training set, no Spark."""

    def handler(args):
        from jobs import train

        getattr(train, step)(
            settings_from_args(args), args.as_of, **({"force": args.force} if step == "promote" else {})
        )

    return handler


def _cmd_demo(args):
    from jobs import demo

    demo.run(
        settings_from_args(args),
        accounts=args.accounts,
        days=args.days,
        seed=args.seed,
        fresh=not args.keep,
        scenario=args.scenario,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="distillguard",
        description=__doc__.splitlines()[0],
        epilog="exit status:\n" + "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES),
    )
    parser.add_argument("--lake", help="lake root (default: $DG_LAKE or ./lake_data)")
    parser.add_argument(
        "--remote", help="Spark Connect URL sc://host:port (default: $DG_SPARK_REMOTE or embedded Sail)"
    )
    parser.add_argument(
        "--mlflow-uri",
        dest="mlflow_uri",
        help="MLflow tracking/registry URI (default: $MLFLOW_TRACKING_URI or SQLite under the lake)",
    )
    parser.add_argument(
        "--engine",
        type=_engine_key,
        metavar="{" + ",".join(ENGINE_KEYS) + "}",
        help="compute engine (default: $DG_ENGINE or embedded); cudf/pandas run aggregate, "
        "features and score on the frame engine and everything else on Spark",
    )
    parser.add_argument(
        "--model-config",
        dest="model_config",
        help="TOML file with [training] and [scoring] settings (default: $DG_MODEL_CONFIG or the "
        "built-in defaults; see docs/model.md, 'Settings')",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="allow the built-in demo DG_PSEUDONYM_KEY on a non-local lake (demo lakes only)",
    )
    parser.add_argument(
        "--shuffle-partitions",
        dest="shuffle_partitions",
        type=optional_positive_int,
        help="spark.sql.shuffle.partitions (default: $DG_SHUFFLE_PARTITIONS, else the remote "
        "server's own value, or 8 on embedded Sail)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="write a simulated raw lake (benign population + distillation campaigns)")
    p.add_argument("--start", type=parse_date, required=True)
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--accounts", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=7)
    _scenario_argument(p)
    p.add_argument(
        "--hold-out",
        default=None,
        metavar="ARCHETYPE",
        help="randomised scenario: a campaign archetype no labelled campaign has (leave-one-tactic-out)",
    )
    p.set_defaults(func=_cmd_simulate)

    for name, help_text, handler in (
        *((step.name, step.description, _dated_job(step.name)) for step in NIGHTLY_STEPS),
        (
            "quality-gate",
            "check one day's risk table and ingest counts; exit 3 when the day must not be published",
            _dated_job("quality-gate"),
        ),
        ("publish", "record one day's risk tables as published (risk_publications)", _dated_job("publish")),
        ("nightly", " -> ".join(step.name for step in NIGHTLY_STEPS) + " for one day", _cmd_nightly),
    ):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--date", type=parse_date, required=True, help="the day to process (YYYY-MM-DD)")
        p.set_defaults(func=handler)

    for name, help_text, handler in (
        ("train", "training-set -> fit -> evaluate -> promote as of a date, in one process", _cmd_train),
        ("training-set", "build the point-in-time training set as of a date into training_sets", _cmd_training_set),
        ("fit", "fit XGBoost on the stored training set; register it as @candidate", _training_step("fit")),
        (
            "evaluate",
            "evaluate @candidate and the champion on the same holdout; log to MLflow",
            _training_step("evaluate"),
        ),
        ("promote", "promotion gate: @candidate becomes @champion or @challenger", _training_step("promote")),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--as-of", dest="as_of", type=parse_date, required=True)
        if name in ("train", "promote"):
            p.add_argument("--force", action="store_true", help="make a first model the gate refuses champion anyway")
        p.set_defaults(func=handler)

    importlib.import_module("jobs.risk_cli").add_subcommands(sub, settings_from_args)
    importlib.import_module("jobs.indicators").add_subcommands(sub, settings_from_args)
    # Subcommands from packages above jobs/ (the console's `console` and `review`) register themselves as entry
    # points (pyproject.toml, [project.entry-points."distillguard.commands"]), so jobs/ never imports them.
    for plugin in sorted(entry_points(group="distillguard.commands"), key=lambda p: p.name):
        plugin.load()(sub, settings_from_args)

    p = sub.add_parser("demo", help="end-to-end demo on a fresh simulated lake")
    _scenario_argument(p)
    p.add_argument("--accounts", type=int, default=20_000)
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep", action="store_true", help="reuse an existing demo lake instead of starting fresh")
    p.set_defaults(func=_cmd_demo)
    backfill.add_subcommands(sub, settings_from_args)
    retention.add_subcommands(sub, settings_from_args)
    engine_server.add_subcommands(sub)
    return cli_help.document(parser)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # engine (Sail) logs: errors only unless -v; must be set before the embedded server starts
    os.environ.setdefault("RUST_LOG", "info" if args.verbose else "error")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # a retry per request is noise; the one-line error says what failed
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    install_log_redaction()
    from lake.errors import DistillguardError

    def fail(message: object, code: int) -> int:
        print(redact(f"distillguard {args.command}: {message}"), file=sys.stderr)
        return code

    try:
        with interrupts.stop_on_signals():
            _check_model_config(args)
            args.func(args)
    except DistillguardError as exc:  # the type decides the exit code (lake/errors.py EXIT_CODES)
        return fail(f"error: {exc}", exc.exit_code)
    except PermissionError as exc:
        return fail(f"error: {exc}", InputError.exit_code)
    except Exception as exc:
        from jobs.cli_errors import classify

        known = classify(exc, _settings_or_none(args))
        if known is None or args.verbose:
            print(redact(traceback.format_exc()), file=sys.stderr)
        return fail(f"error: {known}", known.exit_code) if known else EXIT_UNEXPECTED
    return 0


def _check_model_config(args: argparse.Namespace) -> None:
    """The whole model config file, every key typed and in range, before any job reads or writes."""
    from models.config import load_model_config

    load_model_config(args.model_config or os.environ.get("DG_MODEL_CONFIG") or None)


def _settings_or_none(args: argparse.Namespace):
    try:
        return settings_from_args(args)
    except Exception:
        return None


if __name__ == "__main__":
    sys.exit(main())
