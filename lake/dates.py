"""Date parsing and ranges shared by the CLI, the jobs, the console and the simulator (the lowest layer, so every
package may use them)."""

from __future__ import annotations

import argparse
import datetime as dt
import re

# Python 3.11's date.fromisoformat also takes 20261112 and 2026-W46-4; operators and schedulers pass YYYY-MM-DD only
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_date(text: str) -> dt.date:
    try:
        if not _ISO_DATE.fullmatch(text):
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (want YYYY-MM-DD): {text!r}") from None


def date_range(start: dt.date, days: int) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(days)]
