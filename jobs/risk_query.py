"""Analyst queries over `account_risk`, read with delta-rs and pyarrow: no Spark engine needed.

`top_accounts` and `account_history` return Arrow tables so notebooks, tests and other tools can
reuse them (`.to_pandas()`, `polars.from_arrow`); `print_top` and `print_account` render them for
the `distillguard risk` commands. User input only ever reaches pyarrow filter expressions, after
validation; no query text is built from it.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from lake.contract import ACCOUNT_ID_RULE, is_valid_account_id
from lake.errors import InputError, MissingInputError
from lake.config import Settings
from models.config import TIERS as MODEL_TIERS

RISK_TABLE = "account_risk"
TIERS = tuple(reversed(MODEL_TIERS))  # low → critical, for messages
MAX_LIMIT = 10_000
REASONS_SHOWN_IN_TOP = 3

RISK_COLUMNS = ("score_date", "account_id", "score", "tier", "cluster_id", "cluster_score", "reasons",
                "model_name", "model_version", "feature_set_version")


# --- validation ------------------------------------------------------------------------------------

def _check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    return limit


def _check_tier(tier: object) -> str | None:
    if tier is not None and tier not in TIERS:
        raise InputError(f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
    return tier


def _check_account_id(account_id: object) -> str:
    if not is_valid_account_id(account_id):
        raise InputError(f"account_id must be {ACCOUNT_ID_RULE}, got {account_id!r}")
    return account_id


def _check_date(score_date: object) -> dt.date | None:
    if score_date is None:
        return None
    if isinstance(score_date, dt.datetime) or not isinstance(score_date, dt.date):
        raise InputError(f"score_date must be a date (YYYY-MM-DD), got {score_date!r}")
    return score_date


# --- reads -------------------------------------------------------------------------------------------

def _risk_table(settings: Settings):
    from deltalake import DeltaTable

    uri = settings.table_uri(RISK_TABLE)
    if not DeltaTable.is_deltatable(uri):
        raise FileNotFoundError(
            f"no {RISK_TABLE} table at {uri}; run `distillguard score --date YYYY-MM-DD` first")
    return DeltaTable(uri)


def _on_date(day: dt.date) -> pc.Expression:
    return pc.field("score_date") == pa.scalar(day, pa.date32())


def latest_score_date(settings: Settings) -> dt.date:
    """The newest score_date holding rows, from the Delta log's file list (no data files read)."""
    actions = pa.table(_risk_table(settings).get_add_actions(flatten=True))
    if actions.num_rows == 0:
        raise MissingInputError(f"{RISK_TABLE} has no rows yet; run `distillguard score` first")
    non_empty = pc.or_kleene(pc.is_null(actions["num_records"]), pc.greater(actions["num_records"], 0))
    dates = pc.cast(actions.filter(non_empty)["partition.score_date"], pa.date32())
    latest = pc.max(dates).as_py()
    if latest is None:
        raise MissingInputError(f"{RISK_TABLE} has no rows yet; run `distillguard score` first")
    return latest


def _dataset_for_date(settings: Settings, score_date: dt.date | None) -> tuple[pads.Dataset, dt.date]:
    dataset = _risk_table(settings).to_pyarrow_dataset()
    day = score_date or latest_score_date(settings)
    if dataset.count_rows(filter=_on_date(day)) == 0:
        raise MissingInputError(f"{RISK_TABLE} has no rows for score_date {day.isoformat()}")
    return dataset, day


def top_accounts(settings: Settings, score_date: dt.date | None = None, limit: int = 20,
                 tier: str | None = None) -> pa.Table:
    """The `limit` highest-scoring accounts of a score date (default: the latest), optionally of
    one tier, ordered by score descending then account_id; a leading `rank` column counts from 1.

    Raises FileNotFoundError when account_risk does not exist and ValueError for invalid input or a
    date without rows. A valid date with no account in the requested tier gives an empty table.
    """
    limit, tier, score_date = _check_limit(limit), _check_tier(tier), _check_date(score_date)
    dataset, day = _dataset_for_date(settings, score_date)
    selected = _on_date(day)
    if tier is not None:
        selected = selected & (pc.field("tier") == tier)
    order = [("score", "descending"), ("account_id", "ascending")]
    # rank on two narrow columns first, then read the full rows (with their reasons) of the winners only
    candidates = dataset.to_table(columns=["account_id", "score"], filter=selected)
    if candidates.num_rows == 0:
        rows = dataset.schema.empty_table().select(list(RISK_COLUMNS))
    else:
        winners = candidates.take(pc.select_k_unstable(candidates, k=min(limit, candidates.num_rows),
                                                       sort_keys=order))
        rows = dataset.to_table(columns=list(RISK_COLUMNS),
                                filter=selected & pc.field("account_id").isin(winners["account_id"]))
        rows = rows.sort_by(order).slice(0, limit)
    return rows.add_column(0, "rank", pa.array(range(1, rows.num_rows + 1), pa.int64()))


def account_history(settings: Settings, account_id: str, score_date: dt.date | None = None) -> pa.Table:
    """One account's risk rows, newest score_date first (only score_date when given).
    An account without rows gives an empty table."""
    account_id, score_date = _check_account_id(account_id), _check_date(score_date)
    dataset = _risk_table(settings).to_pyarrow_dataset()
    selected = pc.field("account_id") == account_id
    if score_date is not None:
        selected = selected & _on_date(score_date)
    return dataset.to_table(columns=list(RISK_COLUMNS), filter=selected).sort_by([("score_date", "descending")])


def reasons_by_contribution(reasons: list[dict] | None) -> list[dict]:
    return sorted(reasons or [], key=lambda reason: -(reason.get("contribution") or 0.0))


# --- rendering ---------------------------------------------------------------------------------------
# Reason texts and ids are data, not rich markup: every dynamic string goes through escape() so a
# "[...]" inside one is printed as written.

def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_top(settings: Settings, score_date: dt.date | None = None, limit: int = 20,
              tier: str | None = None) -> None:
    from jobs.console import console as make_console
    from rich.markup import escape
    from rich.table import Table

    limit, tier = _check_limit(limit), _check_tier(tier)
    day = _check_date(score_date) or latest_score_date(settings)
    rows = top_accounts(settings, score_date=day, limit=limit, tier=tier)
    console = make_console()
    if rows.num_rows == 0:
        console.print(f"no accounts in tier {tier!r} on {day.isoformat()}")
        return
    title = f"top {rows.num_rows} accounts by risk, {day.isoformat()}" + (f", tier {tier}" if tier else "")
    table = Table(title=title)
    for header, justify in (("rank", "right"), ("account_id", "left"), ("score", "right"), ("tier", "left"),
                            ("cluster_id", "left"), ("top reasons", "left")):
        table.add_column(header, justify=justify)
    for row in rows.to_pylist():
        texts = [r["text"] for r in reasons_by_contribution(row["reasons"])[:REASONS_SHOWN_IN_TOP] if r["text"]]
        table.add_row(str(row["rank"]), escape(row["account_id"]), _fmt(row["score"]), escape(row["tier"] or "-"),
                      escape(row["cluster_id"] or "-"), escape("; ".join(texts) or "-"))
    console.print(table)


def print_account(settings: Settings, account_id: str, score_date: dt.date | None = None) -> None:
    from jobs.console import console as make_console
    from rich.markup import escape
    from rich.table import Table

    rows = account_history(settings, account_id, score_date=score_date)
    console = make_console()
    if rows.num_rows == 0:
        on_date = f" on {score_date.isoformat()}" if score_date else ""
        console.print(escape(f"no risk rows for account {account_id!r}{on_date}"))
        return
    for row in rows.to_pylist():
        title = (f"{row['account_id']}  {row['score_date'].isoformat()}  score {_fmt(row['score'])}  "
                 f"tier {row['tier']}  cluster {row['cluster_id'] or '-'} "
                 f"(cluster score {_fmt(row['cluster_score'])})  model {row['model_name']} v{row['model_version']}")
        table = Table(title=escape(title), title_justify="left")
        for header, justify in (("feature", "left"), ("value", "right"), ("contribution", "right"),
                                ("explanation", "left")):
            table.add_column(header, justify=justify)
        for reason in reasons_by_contribution(row["reasons"]):
            table.add_row(escape(reason["feature"] or "-"), _fmt(reason["value"]), _fmt(reason["contribution"], 4),
                          escape(reason["text"] or "-"))
        console.print(table)
