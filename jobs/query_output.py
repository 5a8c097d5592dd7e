"""How the query commands (`risk ...`, campaign and evidence queries) take their arguments and print: output
formats, account ids, JSON/CSV records, and table columns that never cut an id."""

from __future__ import annotations

import datetime as dt

from lake.contract import ACCOUNT_ID_RULE, is_valid_account_id
from lake.errors import InputError

OUTPUT_FORMATS = ("table", "json", "csv")


def check_account_id(account_id: object) -> str:
    if not is_valid_account_id(account_id):
        raise InputError(f"account_id must be {ACCOUNT_ID_RULE}, got {account_id!r}")
    return account_id


def check_format(output_format: object) -> str:
    if output_format not in OUTPUT_FORMATS:
        raise InputError(f"format must be one of {', '.join(OUTPUT_FORMATS)}, got {output_format!r}")
    return output_format


def _plain(value):
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def write_records(records: list[dict], output_format: str, out=None, document=None) -> None:
    """Rows as JSON (a list, or `document` with the rows inside when given) or CSV on stdout."""
    import csv
    import json
    import sys

    out = out or sys.stdout
    if output_format == "json":
        out.write(json.dumps(_plain(document if document is not None else records), indent=1) + "\n")
        return
    if output_format != "csv":
        raise InputError(f"format must be one of {', '.join(OUTPUT_FORMATS)}, got {output_format!r}")
    columns = list(records[0]) if records else []
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(
            {k: json.dumps(_plain(v)) if isinstance(v, (list, dict)) else _plain(v) for k, v in record.items()}
        )


def id_column(table, header: str, values) -> int:
    """A column that never wraps or crops; returns its width."""
    width = max([len(header), *(len(v or "-") for v in values)])
    table.add_column(header, no_wrap=True, min_width=width, overflow="ignore")
    return width


def wide_enough(console, id_widths: int, other_columns: int, other_min_width: int):
    """Widen the console past the terminal when the ids and the narrowest other columns do not fit: the terminal
    then soft-wraps long lines, and an id is never cut (it still copies as one string)."""
    borders = 3 * (other_columns + 2) + 1
    console.width = max(console.width, id_widths + other_min_width + borders)
    return console
