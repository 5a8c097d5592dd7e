"""What the console's campaign page shows, and which campaign a cluster belongs to: read from `campaigns` and
`campaign_days` (jobs/evidence_query.py) with delta-rs, no Spark. Members are account ids only; no artefact value,
raw IP or prompt text is read."""

from __future__ import annotations

import datetime as dt

import pyarrow.compute as pc

from console.tables import dataset
from jobs import evidence_query
from lake import catalog
from lake.config import Settings


def campaign_page(settings: Settings, campaign_id: str, as_of: dt.date | None = None) -> dict:
    """The campaign's summary, a timeline point per day (members, joined, left, requests, requests by capability)
    and its latest members with their standing label now."""
    found = evidence_query.campaign(settings, campaign_id, as_of)
    timeline = [
        {
            "day": day["day"],
            "event": day["event"],
            "related": day["related"] or [],
            "cluster_id": day["cluster_id"],
            "members": day["n_members"],
            "joined": day["joined"],
            "left": day["left"],
            "requests": day["requests"],
            "capabilities": {c["capability"]: c["requests"] or 0 for c in day["capability_requests"] or []},
            "extraction_decided": day["extraction_decided"],
            "benign_decided": day["benign_decided"],
        }
        for day in found["days"]
    ]
    members = found["members"]
    return {
        "campaign": found["campaign"],
        "timeline": timeline,
        "members": members,
        "last_day": timeline[-1]["day"] if timeline else None,
        "evidence": found["days"][-1]["evidence"] if found["days"] else [],
        "decided": sum(1 for m in members if m["decision"] in ("extraction", "benign")),
    }


def campaign_of_cluster(settings: Settings, cluster_id: str, day: dt.date) -> str | None:
    """The campaign id a cluster carried on `day`, when the campaigns job ran that day."""
    if not catalog.exists(settings, "campaign_days"):
        return None
    found = dataset(settings, "campaign_days").to_table(
        columns=["campaign_id"], filter=(pc.field("day") == day) & (pc.field("cluster_id") == cluster_id)
    )
    return found["campaign_id"][0].as_py() if found.num_rows else None
