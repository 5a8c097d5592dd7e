"""`distillguard backfill --from D1 --to D2 [--steps ...] [--force]`: run the nightly steps over a date range
outside Airflow.

Dates run oldest first, each through `jobs.nightly.run`. A date whose every requested step is recorded
complete in the lake is skipped unless `--force` is given, so a backfill that stopped can simply be started
again. The first failure stops the range; the message names the date and the command that resumes from it. So
does SIGINT or SIGTERM (jobs/interrupts.py), within seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from jobs import interrupts
from jobs.steps import STEPS_BY_NAME
from lake.config import Settings
from lake.dates import parse_date
from lake.errors import InputError, JobInterruptedError

# the table whose date partition each step writes: rows there mean the step finished that date
MAX_DAYS = 3_660


def step_done(settings: Settings, step: str, day: dt.date) -> bool:
    """The step's output partition for `day` holds rows. A cluster day without any linked account is empty and
    so counts as not done; rerunning it is idempotent."""
    from jobs.preconditions import partition_rows

    return bool(partition_rows(settings, STEPS_BY_NAME[step].output, day))


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    if last < first:
        raise InputError(f"--to {last} is before --from {first}")
    count = (last - first).days + 1
    if count > MAX_DAYS:
        raise InputError(f"{count} days is more than one backfill runs ({MAX_DAYS}); split the range")
    return [first + dt.timedelta(days=i) for i in range(count)]


def resume_command(day: dt.date, last: dt.date, steps: tuple[str, ...] | None, force: bool) -> str:
    command = f"distillguard backfill --from {day.isoformat()} --to {last.isoformat()}"
    if steps:
        command += " --steps " + " ".join(steps)
    return command + (" --force" if force else "")


def run(
    settings: Settings, first: dt.date, last: dt.date, steps: tuple[str, ...] | None = None, force: bool = False
) -> dict[str, list[dt.date]]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from jobs import nightly

    wanted = tuple(steps) if steps else nightly.STEP_NAMES
    unknown = [s for s in wanted if s not in nightly.STEP_NAMES]
    if unknown:
        raise InputError(f"unknown step(s) {unknown}; steps are {', '.join(nightly.STEP_NAMES)}")
    days = days_between(first, last)
    done: dict[str, list[dt.date]] = {"ran": [], "skipped": []}
    console = Console(stderr=True)
    current: list[dt.date] = []

    def say_where_stopped(signum: int | None) -> None:
        day = current[-1]
        cause = "interrupted; " if signum else "fix the cause, then "
        print(
            f"backfill stopped at {day.isoformat()} ({len(done['ran'])} dates ran, "
            f"{len(done['skipped'])} skipped as complete); {cause}resume with:\n  "
            f"{resume_command(day, last, steps, force)}",
            file=sys.stderr,
            flush=True,
        )

    with (
        interrupts.on_stop(say_where_stopped),
        Progress(
            TextColumn("backfill {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress,
    ):
        task = progress.add_task("", total=len(days))
        for day in days:
            current.append(day)
            progress.update(task, description=day.isoformat())
            try:
                if not force and all(step_done(settings, step, day) for step in wanted):
                    done["skipped"].append(day)
                    progress.advance(task)
                    continue
                nightly.run(settings, day, steps=wanted)
            except JobInterruptedError as exc:
                progress.stop()
                interrupts.run_callbacks(exc.exit_code - 128)  # says where it stopped, once
                raise
            except BaseException:
                progress.stop()
                say_where_stopped(None)
                raise
            done["ran"].append(day)
            progress.advance(task)
    print(
        f"backfill {first.isoformat()}..{last.isoformat()}: {len(done['ran'])} dates ran, "
        f"{len(done['skipped'])} skipped as already complete",
        flush=True,
    )
    return done


def add_subcommands(sub, settings_of) -> None:
    """`distillguard backfill`; `settings_of(args)` builds Settings from the global flags (jobs/cli.py owns them)."""

    def _cmd_backfill(args: argparse.Namespace) -> None:
        run(settings_of(args), args.first, args.last, tuple(args.steps) if args.steps else None, args.force)

    from jobs.nightly import STEP_NAMES

    p = sub.add_parser(
        "backfill",
        help="run the nightly steps over a date range, oldest first",
        description="Run the nightly steps for every date from --from to --to, oldest first, "
        "with a progress bar. Dates already recorded complete are skipped unless --force; "
        "the first failure stops the range and prints the command that resumes it.",
    )
    p.add_argument("--from", dest="first", type=parse_date, required=True, help="first date (YYYY-MM-DD)")
    p.add_argument("--to", dest="last", type=parse_date, required=True, help="last date, inclusive (YYYY-MM-DD)")
    p.add_argument(
        "--steps",
        nargs="+",
        choices=STEP_NAMES,
        default=None,
        help="steps to run for each date, in nightly order (default: all)",
    )
    p.add_argument("--force", action="store_true", help="rerun dates already recorded complete")
    p.set_defaults(func=_cmd_backfill)
