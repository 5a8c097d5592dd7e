"""The project's own error types, one base, each with the exit status the CLI gives it.

The CLI maps these TYPES to exit codes (jobs/cli.py, table in `distillguard --help` and docs/security.md) and
prints one line; it never looks at message text. Anything else (a ValueError deep in a library, a bug) keeps its
traceback and exits 1, so real defects never pass for bad input and Airflow does not mistake them for a retryable
refusal.
"""

from __future__ import annotations


class DistillguardError(Exception):
    """Base class. `exit_code` is what the CLI exits with. The subclasses are also ValueError/RuntimeError so
    callers that predate this module keep working."""

    exit_code = 2


class InputError(DistillguardError, ValueError):
    """A flag, a config value, a raw row or a busy port the operator must correct."""

    exit_code = 2


class EngineUnavailableError(InputError, RuntimeError):
    """The chosen engine cannot run on this machine (no GPU, a library missing): choose another --engine."""


class QualityGateError(DistillguardError, ValueError):
    """A day's risk tables failed the publication checks: the day must not be published."""

    exit_code = 3


class MissingInputError(DistillguardError, ValueError):
    """An upstream table, partition or model a job needs is absent or incomplete: run the upstream step first."""

    exit_code = 4


class MissingTableError(MissingInputError, FileNotFoundError):
    """A Delta table or a day of it that a reader needs is absent. Also a FileNotFoundError for older callers."""


class ConflictError(DistillguardError, RuntimeError):
    """Another writer changed the table first; nothing was written. Rerunning is safe."""

    exit_code = 5


class UnsupportedFormatError(InputError):
    """Something stored earlier (lake/formats.py) is in a format version this build does not read: rebuild it with
    this build (the message says how), or read it with a build that knows its version. A retry never helps."""


class ServiceUnreachableError(DistillguardError, RuntimeError):
    """A remote service (Spark Connect, MLflow) did not answer within its deadline. The message names the host,
    never a credential, and the setting that changes the deadline."""

    exit_code = 6


class JobInterruptedError(DistillguardError):
    """SIGINT or SIGTERM stopped the job; exit 128 + the signal number, as shells report it."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


# (code, meaning) for every exit status, in the order the CLI's help lists them
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "done"),
    (1, "a defect: the (redacted) traceback is printed; please report it"),
    (InputError.exit_code, "bad input: a flag, config value, raw row or busy port to correct"),
    (QualityGateError.exit_code, "the quality gate failed: the day must not be published"),
    (MissingInputError.exit_code, "an upstream input is missing: run that step first"),
    (ConflictError.exit_code, "a concurrent writer won: nothing was written, rerun"),
    (ServiceUnreachableError.exit_code, "a remote service (Spark Connect, MLflow) did not answer in time"),
    (130, "stopped by SIGINT (Ctrl-C)"),
    (143, "stopped by SIGTERM"),
)
