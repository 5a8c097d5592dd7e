"""Analyst queries over `account_risk`, read with delta-rs and pyarrow: no Spark engine needed.

`top_accounts` and `account_history` return Arrow tables so notebooks, tests and other tools can
reuse them (`.to_pandas()`, `polars.from_arrow`); `print_top` and `print_account` render them for
the `distillguard risk` commands. User input only ever reaches pyarrow filter expressions, after
validation; no query text is built from it.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from jobs.query_output import (
    check_account_id,
    check_format,
    id_column,
    wide_enough,
    write_records,
)
from lake.config import Settings
from lake.errors import InputError, MissingInputError, MissingTableError
from models.config import TIERS as MODEL_TIERS

if TYPE_CHECKING:
    from rich.console import JustifyMethod


RISK_TABLE = "account_risk"
TIERS = tuple(reversed(MODEL_TIERS))  # low → critical, for messages
MAX_LIMIT = 10_000
REASONS_SHOWN_IN_TOP = 3

RISK_COLUMNS = (
    "score_date",
    "account_id",
    "score",
    "tier",
    "cluster_id",
    "cluster_score",
    "reasons",
    "model_name",
    "model_version",
    "feature_set_version",
)


# --- validation ------------------------------------------------------------------------------------


def check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    return limit


def check_tier(tier: object) -> str | None:
    if tier is not None and tier not in TIERS:
        raise InputError(f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
    return tier


def check_date(score_date: object) -> dt.date | None:
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
        raise MissingTableError(f"no {RISK_TABLE} table at {uri}; run `distillguard score --date YYYY-MM-DD` first")
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


def top_accounts(
    settings: Settings, score_date: dt.date | None = None, limit: int = 20, tier: str | None = None
) -> pa.Table:
    """The `limit` highest-scoring accounts of a score date (default: the latest), optionally of
    one tier, ordered by score descending then account_id; a leading `rank` column counts from 1.

    Raises MissingTableError (a FileNotFoundError) when account_risk does not exist and ValueError for invalid input or a
    date without rows. A valid date with no account in the requested tier gives an empty table.
    """
    limit, tier, score_date = check_limit(limit), check_tier(tier), check_date(score_date)
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
        winners = candidates.take(pc.select_k_unstable(candidates, k=min(limit, candidates.num_rows), sort_keys=order))
        rows = dataset.to_table(
            columns=list(RISK_COLUMNS), filter=selected & pc.field("account_id").isin(winners["account_id"])
        )
        rows = rows.sort_by(order).slice(0, limit)
    return rows.add_column(0, "rank", pa.array(range(1, rows.num_rows + 1), pa.int64()))


def exploration_accounts(
    settings: Settings, score_date: dt.date | None = None, limit: int = 20, decided_by: dt.date | None = None
) -> pa.Table:
    """The exploration queue of a score date (default: the latest): at most `limit` undecided accounts from the
    top of its queue whose behaviour is unlike every account decided extraction and unlike each other
    (models/review_queue.py), in score order, with `distance` to the nearest account decided extraction and that
    account (`nearest_extraction`). Every decision recorded so far counts, including those made after the day,
    unless `decided_by` keeps only those decided on or before it (a replay of the queue as it stood)."""
    import pandas as pd
    from deltalake import DeltaTable

    from lake import catalog
    from models import resemblance
    from models.review_queue import exploration_picks

    limit, score_date = check_limit(limit), check_date(score_date)
    dataset, day = _dataset_for_date(settings, score_date)
    risk = dataset.to_table(columns=["account_id", "score", "tier", "cluster_id"], filter=_on_date(day)).to_pandas()
    if not catalog.exists(settings, "account_features"):
        raise MissingTableError("account_features does not exist; run `distillguard features` first")
    features = DeltaTable(settings.table_uri("account_features")).to_pyarrow_dataset()
    columns = ["account_id", "feature_date", resemblance.ACTIVE_COLUMN, *resemblance.FEATURES]
    population = features.to_table(columns=columns, filter=pc.field("feature_date") == pa.scalar(day, pa.date32()))
    if population.num_rows == 0:
        raise MissingInputError(f"account_features has no rows for {day.isoformat()}")
    decisions = (
        DeltaTable(settings.table_uri("enforcement_labels")).to_pandas(columns=["account_id", "label", "decided_at"])
        if catalog.exists(settings, "enforcement_labels")
        else pd.DataFrame(columns=["account_id", "label", "decided_at"])
    )
    decided_on = pd.to_datetime(decisions["decided_at"], utc=True).dt.date
    if decided_by is not None:
        decisions, decided_on = (x[decided_on <= check_date(decided_by)] for x in (decisions, decided_on))
    decided_ids = pa.array(decisions["account_id"].unique(), pa.string())
    decided_rows = features.to_table(
        columns=columns,
        filter=(pc.field("feature_date") <= pa.scalar(day, pa.date32())) & pc.field("account_id").isin(decided_ids),
    ).to_pandas()
    profiles = resemblance.decided_profiles(decided_rows, decisions, max([day, *decided_on]))
    picks, _ = exploration_picks(
        risk[~risk["account_id"].isin(decisions["account_id"])],
        population.to_pandas(),
        profiles[profiles["decision"] == resemblance.EXTRACTION],
        limit,
    )
    rows = picks.merge(risk[["account_id", "tier", "cluster_id"]], on="account_id", how="left")
    rows.insert(0, "rank", range(1, len(rows) + 1))
    rows.insert(1, "score_date", day)
    return pa.Table.from_pandas(rows, preserve_index=False)


def account_history(settings: Settings, account_id: str, score_date: dt.date | None = None) -> pa.Table:
    """One account's risk rows, newest score_date first (only score_date when given).
    An account without rows gives an empty table."""
    account_id, score_date = check_account_id(account_id), check_date(score_date)
    dataset = _risk_table(settings).to_pyarrow_dataset()
    selected = pc.field("account_id") == account_id
    if score_date is not None:
        selected = selected & _on_date(score_date)
    return dataset.to_table(columns=list(RISK_COLUMNS), filter=selected).sort_by([("score_date", "descending")])


def cluster_members(settings: Settings, cluster_id: str, score_date: dt.date | None = None) -> tuple[dict, pa.Table]:
    """One cluster on a score date (default: the latest): its cluster_risk row (or only its id and date when
    cluster_risk has no row for it) and its members' account_risk rows, highest score first, with the link types
    that joined each member (from account_clusters, null where that table has no row)."""
    from deltalake import DeltaTable

    from lake import catalog

    cluster_id, score_date = check_account_id(cluster_id), check_date(score_date)
    day = score_date or latest_score_date(settings)
    on_day = _on_date(day)
    members = (
        _risk_table(settings)
        .to_pyarrow_dataset()
        .to_table(columns=list(RISK_COLUMNS), filter=on_day & (pc.field("cluster_id") == cluster_id))
    )
    if members.num_rows == 0:
        raise MissingInputError(f"cluster {cluster_id!r} has no members in {RISK_TABLE} on {day.isoformat()}")
    members = members.sort_by([("score", "descending"), ("account_id", "ascending")])
    links: dict[str, list[str]] = {}
    if catalog.exists(settings, "account_clusters"):
        linked = (
            DeltaTable(settings.table_uri("account_clusters"))
            .to_pyarrow_dataset()
            .to_table(
                columns=["account_id", "link_types"],
                filter=(pc.field("feature_date") == pa.scalar(day, pa.date32()))
                & (pc.field("cluster_id") == cluster_id),
            )
        )
        links = dict(zip(linked["account_id"].to_pylist(), linked["link_types"].to_pylist()))
    members = members.append_column(
        "link_types", pa.array([links.get(a) for a in members["account_id"].to_pylist()], pa.list_(pa.string()))
    )
    # every cluster_risk column, so a reader (the console's cluster page) finds each key even without a row
    summary: dict = {column: None for column in catalog.table("cluster_risk").columns}
    summary.update(score_date=day, cluster_id=cluster_id)
    if catalog.exists(settings, "cluster_risk"):
        found = (
            DeltaTable(settings.table_uri("cluster_risk"))
            .to_pyarrow_dataset()
            .to_table(filter=on_day & (pc.field("cluster_id") == cluster_id))
            .to_pylist()
        )
        if found:
            summary = found[0]
    return summary, members


def publication_note(settings: Settings, day: dt.date) -> str:
    """'published <when>' or 'NOT published' for a score date, from risk_publications (what analysts may treat
    as final)."""
    from lake import catalog

    if catalog.exists(settings, "risk_publications"):
        from deltalake import DeltaTable

        found = (
            DeltaTable(settings.table_uri("risk_publications"))
            .to_pyarrow_dataset()
            .to_table(columns=["published_at"], filter=_on_date(day))
            .to_pylist()
        )
        if found:
            return f"published {found[0]['published_at']:%Y-%m-%d %H:%M} UTC"
    return "NOT published: scores may still change"


def reasons_by_contribution(reasons: list[dict] | None) -> list[dict]:
    return sorted(reasons or [], key=lambda reason: -(reason.get("contribution") or 0.0))


# --- rendering ---------------------------------------------------------------------------------------
# Reason texts and ids are data, not rich markup: every dynamic string goes through escape() so a
# "[...]" inside one is printed as written. Id columns never wrap or shrink (their minimum width is the longest
# id), so an id printed by `risk top` can always be pasted into `risk account` or `risk cluster`; on a narrow
# terminal the reasons column folds instead. json and csv print every column, dates as ISO strings; in csv the
# list columns (reasons, link types) are JSON strings.


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_top(
    settings: Settings,
    score_date: dt.date | None = None,
    limit: int = 20,
    tier: str | None = None,
    output_format: str = "table",
) -> None:
    from rich.markup import escape
    from rich.table import Table

    from jobs.console import console as make_console

    limit, tier, output_format = check_limit(limit), check_tier(tier), check_format(output_format)
    day = check_date(score_date) or latest_score_date(settings)
    rows = top_accounts(settings, score_date=day, limit=limit, tier=tier)
    if output_format != "table":
        write_records(rows.to_pylist(), output_format)
        return
    console = make_console()
    if rows.num_rows == 0:
        console.print(f"no accounts in tier {tier!r} on {day.isoformat()}")
        return
    title = (
        f"top {rows.num_rows} accounts by risk, {day.isoformat()}"
        + (f", tier {tier}" if tier else "")
        + f" ({publication_note(settings, day)})"
    )
    table = Table(title=title)
    records = rows.to_pylist()
    table.add_column("rank", justify="right", no_wrap=True)
    ids = id_column(table, "account_id", [r["account_id"] for r in records])
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("tier", no_wrap=True)
    ids += id_column(table, "cluster_id", [r["cluster_id"] for r in records])
    table.add_column("top reasons", overflow="fold", min_width=20)
    wide_enough(console, ids, other_columns=4, other_min_width=4 + 5 + 8 + 20)
    for row in records:
        texts = [r["text"] for r in reasons_by_contribution(row["reasons"])[:REASONS_SHOWN_IN_TOP] if r["text"]]
        table.add_row(
            str(row["rank"]),
            escape(row["account_id"]),
            _fmt(row["score"]),
            escape(row["tier"] or "-"),
            escape(row["cluster_id"] or "-"),
            escape("; ".join(texts) or "-"),
        )
    console.print(table)


def print_explore(
    settings: Settings, score_date: dt.date | None = None, limit: int = 20, output_format: str = "table"
) -> None:
    from rich.markup import escape
    from rich.table import Table

    from jobs.console import console as make_console

    limit, output_format = check_limit(limit), check_format(output_format)
    day = check_date(score_date) or latest_score_date(settings)
    records = exploration_accounts(settings, score_date=day, limit=limit).to_pylist()
    if output_format != "table":
        write_records(records, output_format)
        return
    console = make_console()
    if not records:
        console.print(f"no undecided account on {day.isoformat()} is unlike every account decided extraction")
        return
    table = Table(
        title=f"{len(records)} accounts unlike any decided extraction, highest score first, {day.isoformat()} "
        f"({publication_note(settings, day)})"
    )
    table.add_column("rank", justify="right", no_wrap=True)
    ids = id_column(table, "account_id", [r["account_id"] for r in records])
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("tier", no_wrap=True)
    table.add_column("distance", justify="right", no_wrap=True)
    ids += id_column(table, "nearest_extraction", [r["nearest_extraction"] for r in records])
    wide_enough(console, ids, other_columns=4, other_min_width=4 + 5 + 8 + 8)
    for row in records:
        table.add_row(
            str(row["rank"]),
            escape(row["account_id"]),
            _fmt(row["score"]),
            escape(row["tier"] or "-"),
            _fmt(row["distance"], 2),
            escape(row["nearest_extraction"] or "-"),
        )
    console.print(table)


def print_account(
    settings: Settings, account_id: str, score_date: dt.date | None = None, output_format: str = "table"
) -> None:
    from rich.markup import escape
    from rich.table import Table

    from jobs.console import console as make_console
    from jobs.evidence_query import account_evidence, reusing_datasets

    output_format = check_format(output_format)
    rows = account_history(settings, account_id, score_date=score_date)
    datasets = reusing_datasets()
    records = [
        {**row, "link_evidence": account_evidence(settings, row["account_id"], row["score_date"], datasets)}
        for row in rows.to_pylist()
    ]
    if output_format != "table":
        write_records(records, output_format)
        return
    console = make_console()
    if rows.num_rows == 0:
        on_date = f" on {score_date.isoformat()}" if score_date else ""
        console.print(escape(f"no risk rows for account {account_id!r}{on_date}"))
        return
    for row in records:
        title = (
            f"{row['account_id']}  {row['score_date'].isoformat()}  score {_fmt(row['score'])}  "
            f"tier {row['tier']}  cluster {row['cluster_id'] or '-'} "
            f"(cluster score {_fmt(row['cluster_score'])})  model {row['model_name']} v{row['model_version']}"
        )
        table = Table(title=escape(title), title_justify="left")
        columns: tuple[tuple[str, JustifyMethod], ...] = (
            ("feature", "left"),
            ("value", "right"),
            ("contribution (log-odds)", "right"),
            ("explanation", "left"),
        )
        for header, justify in columns:
            table.add_column(header, justify=justify)
        for reason in reasons_by_contribution(row["reasons"]):
            table.add_row(
                escape(reason["feature"] or "-"),
                _fmt(reason["value"]),
                _fmt(reason["contribution"], 4),
                escape(reason["text"] or "-"),
            )
        console.print(table)
        for evidence in row["link_evidence"]:
            console.print(escape(f"  linked: {evidence['text']}"))


def print_cluster(
    settings: Settings, cluster_id: str, score_date: dt.date | None = None, output_format: str = "table"
) -> None:
    from rich.markup import escape
    from rich.table import Table

    from jobs.console import console as make_console
    from jobs.evidence_query import cluster_evidence

    output_format = check_format(output_format)
    summary, members = cluster_members(settings, cluster_id, score_date)
    records = members.select(
        ["score_date", "cluster_id", "account_id", "score", "tier", "link_types", "model_version"]
    ).to_pylist()
    evidence, per_member = cluster_evidence(settings, [r["account_id"] for r in records], summary["score_date"])
    for record in records:
        record["link_evidence"] = [e["text"] for e in per_member[record["account_id"]]]
    if output_format == "json":
        write_records(records, output_format, document={"cluster": summary, "evidence": evidence, "members": records})
        return
    if output_format == "csv":
        write_records(records, output_format)
        return
    title = (
        f"cluster {summary['cluster_id']}  {summary['score_date'].isoformat()}  score {_fmt(summary.get('score'))}"
        f"  {members.num_rows} members  requests {summary.get('requests', '-')}  links "
        f"{', '.join(summary.get('link_evidence') or []) or '-'}  top capabilities "
        f"{', '.join(summary.get('top_capabilities') or []) or '-'}"
    )
    table = Table(title=escape(title), title_justify="left")
    ids = id_column(table, "account_id", [r["account_id"] for r in records])
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("tier", no_wrap=True)
    table.add_column("linked by", overflow="fold", min_width=12)
    for row in records:
        table.add_row(
            escape(row["account_id"]),
            _fmt(row["score"]),
            escape(row["tier"] or "-"),
            escape(", ".join(row["link_types"] or []) or "-"),
        )
    console = wide_enough(make_console(), ids, other_columns=3, other_min_width=5 + 8 + 12)
    for row in evidence:
        console.print(escape(f"evidence: {row['text']}"))
    console.print(table)
