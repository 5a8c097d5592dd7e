"""What joined two accounts, for the console's cluster graph and the account page's edge table: the day's
`account_edges` rows (features/spark_edges.py, docs/evidence-links.md) read with delta-rs and pyarrow, grouped per
linked pair with the artefacts the two accounts share.

Artefacts are already pseudonyms (keyed hashes, template fingerprints, timing bands); the pages show a short prefix
of each, enough to tell two apart and to search the table for the full value. No raw IP or prompt text is read.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from console.tables import dataset
from jobs.query_output import check_account_id
from lake import catalog
from lake.config import Settings

# A browser lays out and draws a few hundred edges in well under a second; beyond that the graph becomes a hairball
# nobody can click. The strongest pairs are drawn, and the page says how many were left out.
MAX_DRAWN_EDGES = 300
ARTEFACT_SHOWN_CHARS = 12
EDGE_COLUMNS = [
    "src",
    "dst",
    "link_type",
    "artefact",
    "artefact_accounts",
    "strength",
    "in_cluster_graph",
    "first_seen",
    "last_seen",
]


def short_artefact(artefact: str | None) -> str:
    """The pseudonym's first characters, with an ellipsis when cut."""
    if not artefact:
        return "-"
    return artefact if len(artefact) <= ARTEFACT_SHOWN_CHARS else artefact[:ARTEFACT_SHOWN_CHARS] + "…"


def _edge_rows(settings: Settings, day: dt.date, selected: pc.Expression) -> list[dict]:
    if not catalog.exists(settings, "account_edges"):
        return []
    on_day = pc.field("feature_date") == pa.scalar(day, pa.date32())
    return dataset(settings, "account_edges").to_table(columns=EDGE_COLUMNS, filter=on_day & selected).to_pylist()


def group_pairs(rows: list[dict]) -> list[dict]:
    """One entry per linked pair, strongest first: its strength, whether the clusters kept it, the kinds of link and
    each shared artefact (kind, short pseudonym, how many accounts share it, first and last seen), rarest first."""
    pairs: dict[tuple[str, str], dict] = {}
    for row in rows:
        pair = pairs.setdefault(
            (row["src"], row["dst"]),
            {"src": row["src"], "dst": row["dst"], "strength": None, "in_cluster_graph": False, "artefacts": []},
        )
        if row["strength"] is not None:
            pair["strength"] = max(pair["strength"] or 0.0, row["strength"])
        pair["in_cluster_graph"] = pair["in_cluster_graph"] or bool(row["in_cluster_graph"])
        pair["artefacts"].append(
            {
                "kind": row["link_type"],
                "artefact": short_artefact(row["artefact"]),
                "accounts": row["artefact_accounts"],
                "first_seen": row["first_seen"],
                "last_seen": row["last_seen"],
            }
        )
    out = []
    for pair in pairs.values():
        pair["artefacts"].sort(key=lambda a: (a["accounts"] is None, a["accounts"] or 0, a["kind"], a["artefact"]))
        pair["kinds"] = sorted({a["kind"] for a in pair["artefacts"]})
        out.append(pair)
    out.sort(key=lambda p: (-(p["strength"] or 0.0), p["src"], p["dst"]))
    return out


def cluster_pairs(settings: Settings, members: list[str], day: dt.date) -> list[dict]:
    """The linked pairs of `day` with both ends among the cluster's members, strongest first."""
    if not members:
        return []
    ids = pa.array(members)
    return group_pairs(_edge_rows(settings, day, pc.field("src").isin(ids) & pc.field("dst").isin(ids)))


def account_pairs(settings: Settings, account_id: str, day: dt.date) -> list[dict]:
    """The account's linked pairs of `day`, strongest first, each with `other`: the account at the other end."""
    account_id = check_account_id(account_id)
    rows = _edge_rows(settings, day, (pc.field("src") == account_id) | (pc.field("dst") == account_id))
    return [{**pair, "other": pair["dst"] if pair["src"] == account_id else pair["src"]} for pair in group_pairs(rows)]


def _json_dates(artefacts: list[dict]) -> list[dict]:
    return [{**a, "first_seen": _iso(a["first_seen"]), "last_seen": _iso(a["last_seen"])} for a in artefacts]


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None


def cluster_graph(settings: Settings, members: list[dict], day: dt.date, max_edges: int | None = None) -> dict:
    """The cluster's graph as plain JSON values for the page script (console/static/cluster_graph.js): every member
    as a node (tier, standing decision, its account page), and its strongest `max_edges` pairs as edges with what
    joined them. `total_edges` counts every pair, so the page can say how many were left out."""
    max_edges = max_edges or MAX_DRAWN_EDGES
    pairs = cluster_pairs(settings, [m["account_id"] for m in members], day)
    nodes = [
        {
            "id": m["account_id"],
            "tier": m["tier"],
            "score": m["score"],
            "decision": (m.get("decision") or {}).get("label") or "none",
            "href": f"/account/{m['account_id']}?date={day.isoformat()}",
        }
        for m in members
    ]
    edges = [
        {
            "id": f"{p['src']}|{p['dst']}",
            "source": p["src"],
            "target": p["dst"],
            "strength": p["strength"],
            "in_cluster_graph": p["in_cluster_graph"],
            "kinds": p["kinds"],
            "artefacts": _json_dates(p["artefacts"]),
        }
        for p in pairs[:max_edges]
    ]
    return {"nodes": nodes, "edges": edges, "total_edges": len(pairs), "max_edges": max_edges}
