"""Link evidence and campaigns for `distillguard risk cluster|account|campaign` and the console, read with delta-rs
and pyarrow (no Spark): the cluster graph's pairs of the day (`account_links`), the accounts' standing labels, and
the campaign tables. The sentences themselves are built in models/link_evidence.py.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from jobs.query_output import check_account_id, check_format, id_column, wide_enough, write_records
from lake import catalog
from lake.config import Settings
from lake.errors import MissingInputError
from models import link_evidence
from models.campaigns import standing_labels

LINK_COLUMNS = ["src", "dst", *(column for column, _, _ in link_evidence.KINDS.values())]


def _on(column: str, day: dt.date) -> pc.Expression:
    return pc.field(column) == pa.scalar(day, pa.date32())


def delta_dataset(settings: Settings, name: str):
    """A pyarrow dataset over a Delta table's current version. The console passes its cached one instead
    (console/tables.py) as `open_dataset`."""
    from deltalake import DeltaTable

    return DeltaTable(settings.table_uri(name)).to_pyarrow_dataset()


def reusing_datasets():
    """An `open_dataset` that opens each table once, for a command that reads evidence for many days."""
    opened: dict[str, object] = {}

    def open_dataset(settings: Settings, name: str):
        if name not in opened:
            opened[name] = delta_dataset(settings, name)
        return opened[name]

    return open_dataset


def standing(settings: Settings, account_ids: list[str], open_dataset=delta_dataset) -> dict[str, str]:
    """Each account's standing label now (its latest decision, any source)."""
    if not account_ids or not catalog.exists(settings, "enforcement_labels"):
        return {}
    rows = open_dataset(settings, "enforcement_labels").to_table(
        columns=["account_id", "label", "decided_at"], filter=pc.field("account_id").isin(account_ids)
    )
    return standing_labels(rows.to_pylist())


def links_touching(settings: Settings, day: dt.date, account_ids: list[str], open_dataset=delta_dataset) -> list[dict]:
    """account_links rows of `day` with one of the accounts at either end (empty when the table is missing)."""
    if not account_ids or not catalog.exists(settings, "account_links"):
        return []
    dataset = open_dataset(settings, "account_links")
    ids = pa.array(account_ids)
    columns = [c for c in LINK_COLUMNS if c in dataset.schema.names]
    selected = _on("feature_date", day) & (pc.field("src").isin(ids) | pc.field("dst").isin(ids))
    return dataset.to_table(columns=columns, filter=selected).to_pylist()


def cluster_evidence(
    settings: Settings, members: list[str], day: dt.date, open_dataset=delta_dataset
) -> tuple[list[dict], dict[str, list[dict]]]:
    """The cluster's evidence rows (models/link_evidence.py) and each member's own, from one read of its links."""
    links = links_touching(settings, day, members, open_dataset)
    neighbours = sorted({a for link in links for a in (link["src"], link["dst"])} | set(members))
    now = standing(settings, neighbours, open_dataset)
    per_member = {m: link_evidence.account_evidence(m, links, now) for m in members}
    return link_evidence.cluster_evidence(members, links, now), per_member


def account_evidence(settings: Settings, account_id: str, day: dt.date, open_dataset=delta_dataset) -> list[dict]:
    links = links_touching(settings, day, [account_id], open_dataset)
    neighbours = sorted({a for link in links for a in (link["src"], link["dst"])})
    return link_evidence.account_evidence(account_id, links, standing(settings, neighbours, open_dataset))


# --- campaigns ---------------------------------------------------------------------------------------------


def latest_campaign_date(settings: Settings) -> dt.date:
    if not catalog.exists(settings, "campaigns"):
        raise MissingInputError("no campaigns table yet; run `distillguard campaigns --date YYYY-MM-DD` first")
    from deltalake import DeltaTable

    actions = pa.table(DeltaTable(settings.table_uri("campaigns")).get_add_actions(flatten=True))
    dates = [d for d in actions["partition.as_of"].to_pylist() if d is not None] if actions.num_rows else []
    if not dates:
        raise MissingInputError("the campaigns table has no rows yet")
    return max(dates)


def campaign(settings: Settings, campaign_id: str, as_of: dt.date | None = None) -> dict:
    """One campaign as of a day (default: the latest campaigns date): its summary row, its day-by-day history
    (oldest first) and its latest members, each with its standing label now."""
    campaign_id = check_account_id(campaign_id)
    as_of = as_of or latest_campaign_date(settings)
    found = catalog.read_arrow(settings, "campaigns", filters=[("as_of", "=", as_of)])
    found = found.filter(pc.equal(found["campaign_id"], campaign_id)).to_pylist()
    if not found:
        raise MissingInputError(f"no campaign {campaign_id!r} in the campaigns table as of {as_of.isoformat()}")
    days = catalog.read_arrow(settings, "campaign_days", filters=[("day", "<=", as_of)])
    days = days.filter(pc.equal(days["campaign_id"], campaign_id)).sort_by("day").to_pylist()
    members = days[-1]["members"] if days else []
    now = standing(settings, members)
    return {
        "campaign": found[0],
        "days": days,
        "members": [{"account_id": m, "decision": now.get(m)} for m in members],
    }


def print_campaign(
    settings: Settings, campaign_id: str, as_of: dt.date | None = None, output_format: str = "table"
) -> None:
    """`distillguard risk campaign ID`: the summary, one line per day and the latest members with their standing.
    json: one document; csv: one row per day."""
    from rich.markup import escape
    from rich.table import Table

    from jobs.console import console as make_console

    output_format = check_format(output_format)
    found = campaign(settings, campaign_id, as_of)
    days = [{k: v for k, v in day.items() if k != "members"} for day in found["days"]]
    if output_format == "json":
        write_records(days, output_format, document=found)
        return
    if output_format == "csv":
        write_records(days, output_format)
        return
    c = found["campaign"]
    mix = ", ".join(f"{m['capability']} {m['requests']:,}" for m in c["capability_mix"] if m["requests"]) or "-"
    console = make_console()
    console.print(
        escape(
            f"campaign {c['campaign_id']} as of {c['as_of']}: {c['status']}"
            + (f" (merged into {c['merged_into']})" if c["merged_into"] else "")
            + (f", split from {c['split_from']}" if c["split_from"] else "")
            + f"; seen {c['first_seen']} .. {c['last_seen']} ({c['days_seen']} days); {c['members_now']} members now, "
            f"{c['members_ever']} ever, peak {c['peak_members']}; {c['requests']:,} requests ({mix}); model pivot "
            + (f"{c['model_pivot_day']} to {c['pivot_model']}" if c["model_pivot_day"] else "none")
            + f"; decided {c['extraction_decided']} extraction, {c['benign_decided']} benign"
        )
    )
    table = Table(title="day by day", title_justify="left")
    table.add_column("day", no_wrap=True, min_width=10)
    table.add_column("event", overflow="fold", min_width=12)
    ids = id_column(table, "cluster_id", [day["cluster_id"] for day in found["days"]])
    for header in ("members", "joined", "left", "requests", "extraction", "benign"):
        table.add_column(header, no_wrap=True, justify="right", min_width=len(header))
    console = wide_enough(console, ids, other_columns=8, other_min_width=10 + 12 + 7 + 6 + 4 + 8 + 10 + 6)
    for day in found["days"]:
        event = day["event"] + (f" ({', '.join(day['related'])})" if day["related"] else "")
        table.add_row(
            day["day"].isoformat(),
            escape(event),
            escape(day["cluster_id"]),
            *(
                f"{day[k]:,}"
                for k in ("n_members", "joined", "left", "requests", "extraction_decided", "benign_decided")
            ),
        )
    console.print(table)
    for line in found["days"][-1]["evidence"] if found["days"] else ():
        console.print(escape(f"evidence on {found['days'][-1]['day']}: {line}"))
    standing_now = ", ".join(f"{m['account_id']} ({m['decision'] or 'undecided'})" for m in found["members"])
    console.print(escape(f"members on {found['days'][-1]['day'] if found['days'] else '-'}: {standing_now}"))
