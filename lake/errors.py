"""The project's own error types: bad input and missing or inconsistent state that an operator can fix.

The CLI turns these, and only these, into one clear line and a non-zero exit (jobs/cli.py). Anything else
(a ValueError deep in a library, a bug) keeps its traceback, so real defects never pass for bad input and
Airflow does not mistake them for a retryable refusal.
"""

from __future__ import annotations


class DistillguardError(Exception):
    """Base class. `exit_code` is what the CLI exits with. The subclasses are also ValueError/RuntimeError so
    callers that predate this module keep working."""

    exit_code = 2


class InputError(DistillguardError, ValueError):
    """A flag, a config value or a raw row the operator must correct."""

    exit_code = 2


class MissingInputError(DistillguardError, ValueError):
    """An upstream table, partition or model a job needs is absent or incomplete: run the upstream step first."""

    exit_code = 4


class ConflictError(DistillguardError, RuntimeError):
    """Another writer changed the table first; nothing was written. Rerunning is safe."""

    exit_code = 5


class UnsupportedFormatError(InputError):
    """Something stored earlier (lake/formats.py) is in a format version this build does not read: rebuild it with
    this build (the message says how), or read it with a build that knows its version. A retry never helps."""
