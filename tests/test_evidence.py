"""Link evidence as sentences with counts (models/link_evidence.py) and `distillguard risk cluster|account|campaign`
printing it from real Delta tables in every format."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pyarrow as pa
import pytest

from lake import catalog
from models.link_evidence import account_evidence, cluster_evidence

DAY = dt.date(2026, 2, 10)
MEMBERS = ["acct-a", "acct-b", "acct-c", "acct-d"]
LINKS = [  # a-b and a-c share a card; c-d share two rare templates and one IP prefix
    {"src": "acct-a", "dst": "acct-b", "shared_payment_methods": 1},
    {"src": "acct-a", "dst": "acct-c", "shared_payment_methods": 1},
    {"src": "acct-c", "dst": "acct-d", "shared_templates": 2, "shared_ip_prefixes": 1},
]
STANDING = {"acct-b": "extraction", "acct-c": "extraction", "acct-d": "benign"}


def test_cluster_evidence_counts_members_pairs_and_decisions_per_kind():
    rows = {r["kind"]: r for r in cluster_evidence(MEMBERS, LINKS, STANDING)}
    assert rows["payment"]["text"] == (
        "3 of 4 members share a payment method (2 linked pairs; 2 decided as extraction, 0 as benign)"
    )
    assert (rows["template"]["accounts"], rows["template"]["shared"], rows["template"]["benign"]) == (2, 2, 1)
    assert rows["cluster"]["text"] == "4 members: 2 already decided as extraction, 1 as benign, 1 undecided"
    assert "timing" not in rows


def test_account_evidence_names_its_neighbours_decided_either_way():
    rows = account_evidence("acct-c", LINKS, STANDING)
    assert [r["text"] for r in rows] == [  # most neighbours first, then by kind
        "sent traffic from the same uncrowded IP prefix as 1 linked account (0 decided as extraction, 1 as benign)",
        "shares a payment method with 1 linked account (none decided yet)",
        "sent the same rare prompt templates as 1 linked account, 2 shared in all (0 decided as extraction, 1 as benign)",
        "linked to 2 accounts in the cluster graph (0 decided as extraction, 1 as benign)",
    ]
    assert account_evidence("acct-nobody", LINKS, STANDING) == []


@pytest.fixture()
def evidence_lake(settings):
    risk = catalog.table("account_risk").schema
    catalog.write_arrow(
        settings,
        "account_risk",
        pa.Table.from_pylist(
            [
                {"score_date": DAY, "account_id": a, "score": 0.9, "tier": "critical", "cluster_id": "c-1"}
                for a in MEMBERS
            ],
            schema=risk,
        ),
    )
    links = [{"feature_date": DAY, "strength": 10.0, **link} for link in LINKS]
    catalog.write_arrow(
        settings, "account_links", pa.Table.from_pylist(links, schema=catalog.table("account_links").schema)
    )
    decided = dt.datetime(2026, 2, 9, 12, tzinfo=dt.UTC)
    catalog.write_arrow(
        settings,
        "enforcement_labels",
        pa.Table.from_pylist(
            [
                {"account_id": a, "label": label, "decided_at": decided, "source": "analyst"}
                for a, label in STANDING.items()
            ],
            schema=catalog.table("enforcement_labels").schema,
        ),
    )
    return settings


def test_risk_cluster_and_account_print_the_evidence_in_every_format(evidence_lake, capsys, monkeypatch):
    from jobs.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    lake = ["--lake", evidence_lake.lake_root]
    assert main([*lake, "risk", "cluster", "c-1"]) == 0
    out = capsys.readouterr().out
    assert "evidence: 3 of 4 members share a payment method (2 linked pairs; 2 decided as extraction" in out
    assert "evidence: 4 members: 2 already decided as extraction, 1 as benign, 1 undecided" in out

    assert main([*lake, "risk", "cluster", "c-1", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [e["kind"] for e in document["evidence"]] == ["payment", "ip_prefix", "template", "cluster"]
    member_a = next(m for m in document["members"] if m["account_id"] == "acct-a")
    assert (
        member_a["link_evidence"][0]
        == "shares a payment method with 2 linked accounts (2 decided as extraction, 0 as benign)"
    )

    assert main([*lake, "risk", "cluster", "c-1", "--format", "csv"]) == 0
    rows = {r["account_id"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert json.loads(rows["acct-d"]["link_evidence"])[-1].startswith("linked to 1 account in the cluster graph")

    assert main([*lake, "risk", "account", "acct-a"]) == 0
    assert "linked: shares a payment method with 2 linked accounts (2 decided as extraction" in capsys.readouterr().out
    assert main([*lake, "risk", "account", "acct-a", "--format", "csv"]) == 0
    [row] = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert json.loads(row["link_evidence"])[0]["accounts"] == 2
