"""Order-independent checksums of one day's account_daily and account_features partitions, so a benchmark can
show that every engine computed the same thing.

Per column: for counts, strings, lists, dates and timestamps, the 64-bit sum of a hash of (account_id, value) per
row, so equal tables give equal sums whatever order the engine wrote the rows in and a value moved to another
account shows; for floats, which engines add in different orders, the null count, the sum and a sum weighted by
the account, compared to FLOAT_RTOL.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

FLOAT_RTOL = 1e-9
FLOAT_ATOL = 1e-6
TABLES = {"account_daily": "event_date", "account_features": "feature_date"}


def _as_text(column):
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return pc.binary_join(column, "\x1f")
    return pc.cast(column, pa.string())


def table_checksum(table) -> dict:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    accounts = table.column("account_id").to_pandas()
    account_hash = pd.util.hash_pandas_object(accounts, index=False).to_numpy()
    weights = (account_hash % 1000).astype("float64") / 1000.0
    columns = {}
    for field in table.schema:
        values = table.column(field.name)
        if pa.types.is_floating(field.type):
            numbers = values.to_numpy(zero_copy_only=False)
            present = ~np.isnan(numbers)
            columns[field.name] = {
                "nulls": int((~present).sum()),
                "sum": float(numbers[present].sum()),
                "weighted": float((numbers[present] * weights[present]).sum()),
            }
            continue
        text = _as_text(values).to_pandas()
        row_hash = pd.util.hash_pandas_object(pd.DataFrame({"a": accounts, "v": text}), index=False).to_numpy()
        columns[field.name] = {"hash": format(int(row_hash.sum(dtype=np.uint64)), "016x")}
    return {"rows": table.num_rows, "columns": columns}


def output_checksums(lake: Path, day: dt.date) -> dict:
    from deltalake import DeltaTable

    return {
        name: table_checksum(DeltaTable(str(Path(lake) / name)).to_pyarrow_table(filters=[(column, "=", day)]))
        for name, column in TABLES.items()
    }


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=FLOAT_RTOL, abs_tol=FLOAT_ATOL)


def compare(expected: dict, actual: dict) -> list[str]:
    """What differs between two engines' checksums (empty when they agree)."""
    differences = []
    for name in TABLES:
        want, got = expected[name], actual[name]
        if want["rows"] != got["rows"]:
            differences.append(f"{name}: {got['rows']} rows, expected {want['rows']}")
        for column, w in want["columns"].items():
            g = got["columns"].get(column)
            if g is None:
                differences.append(f"{name}.{column} missing")
            elif "hash" in w:
                if g.get("hash") != w["hash"]:
                    differences.append(f"{name}.{column} differs")
            elif g["nulls"] != w["nulls"] or not _close(g["sum"], w["sum"]) or not _close(g["weighted"], w["weighted"]):
                differences.append(
                    f"{name}.{column}: sum {g['sum']!r} vs {w['sum']!r}, nulls {g['nulls']} vs {w['nulls']}"
                )
    return differences
