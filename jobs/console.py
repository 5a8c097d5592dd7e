"""One rich Console factory for every printed table, so piped output (CI logs, `| less`) stays readable."""

from __future__ import annotations

import shutil


def console():
    from rich.console import Console

    # Rich falls back to 80 columns when stdout is not a terminal, which folds the reasons column into
    # a ribbon; a wide fallback keeps one account per few lines in logs.
    return Console(width=shutil.get_terminal_size(fallback=(150, 40)).columns)
