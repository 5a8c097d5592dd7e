"""`distillguard indicators export`: a campaign's STIX 2.1 bundle from real Delta tables, validated by the stix2
library's strict parser, keyed hashes unless --raw (which needs an operator and is audited), and a privacy scan of
the export and of every table this work adds (no raw IP, no prompt text)."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest

from lake import catalog
from lake.contract import keyed_hash_reference

DAY = dt.date(2026, 10, 1)
MEMBERS = ["acct-a", "acct-b", "acct-c"]
PROMPT = "SECRET-PROMPT-TEXT grade this answer step by step"
IPS = {"acct-a": "198.51.100.7", "acct-b": "198.51.100.9", "acct-c": "2001:db8:1234::5"}
SHARING_KEY = "shared-with-partners-key"


def _rows(name: str, rows: list[dict]) -> pa.Table:
    schema = catalog.table(name).schema
    return pa.table({f.name: pa.array([r.get(f.name) for r in rows], f.type) for f in schema}, schema=schema)


@pytest.fixture()
def campaign_lake(settings):
    from features import registry  # noqa: F401  (declares account_daily)
    from jobs import campaigns

    ts = dt.datetime.combine(DAY, dt.time(12), dt.UTC)
    requests = [
        {
            "request_id": f"r{i}-{a}",
            "event_ts": ts,
            "event_date": DAY,
            "account_id": a,
            "asn": 64512 if i % 4 else 64999,
            "user_agent": "python-requests/2.31" if a != "acct-c" else "curl/8.1",
            "client_ip": IPS[a],
            "prompt_prefix": PROMPT,
            "prompt_fingerprint": 4242 if i % 2 else 1000 + i,
            "ip_prefix_hash": keyed_hash_reference(IPS[a], "lake-key"),
        }
        for a in MEMBERS
        for i in range(8)
    ]
    catalog.write_arrow(settings, "api_requests", _rows("api_requests", requests), partition_value=DAY)
    catalog.write_arrow(settings, "requests", _rows("requests", requests), partition_value=DAY)
    catalog.write_arrow(
        settings,
        "accounts",
        _rows(
            "accounts",
            [{"account_id": a, "payment_fingerprint": "card-0001" if a != "acct-c" else "card-0002"} for a in MEMBERS],
        ),
    )
    catalog.write_arrow(
        settings,
        "account_clusters",
        _rows(
            "account_clusters",
            [{"feature_date": DAY, "account_id": a, "cluster_id": "cl-a", "link_types": ["payment"]} for a in MEMBERS],
        ),
        partition_value=DAY,
    )
    catalog.write_arrow(
        settings,
        "account_daily",
        _rows(
            "account_daily",
            [{"account_id": a, "event_date": DAY, "requests": 8, "reasoning_requests": 8} for a in MEMBERS],
        ),
        partition_value=DAY,
    )
    [row] = campaigns.run(None, settings, DAY)
    return settings.model_validate({**settings.model_dump(), "sharing_key": SHARING_KEY}), row["campaign_id"]


def test_the_stix_bundle_validates_and_carries_only_keyed_hashes(campaign_lake, tmp_path, capsys):
    from jobs.cli import main
    from models.stix_indicators import validate

    settings, campaign_id = campaign_lake
    out = tmp_path / "bundle.json"
    from jobs import indicators

    audit = indicators.export(settings, campaign_id, out)
    text = out.read_text()
    bundle = validate(text)
    kinds = {o.type for o in bundle.objects}
    assert kinds == {"identity", "campaign", "indicator", "relationship"}
    patterns = sorted(o.pattern for o in bundle.objects if o.type == "indicator")
    assert "[autonomous-system:number = 64512]" in patterns and "[autonomous-system:number = 64999]" in patterns
    assert "[software:name = 'python-requests']" in patterns and "[software:name = 'curl']" in patterns
    assert "[x-distillguard-prompt-template:fingerprint = '4242']" in patterns  # sent by all three members
    prefix = keyed_hash_reference("198.51.100.0/24", SHARING_KEY)  # a partner hashes its own prefixes the same way
    assert f"[x-distillguard-ip-prefix:keyed_hash = '{prefix}']" in patterns
    assert (
        f"[x-distillguard-payment-fingerprint:keyed_hash = '{keyed_hash_reference('card-0001', SHARING_KEY)}']"
        in patterns
    )
    assert audit["indicators"] == len(patterns) and audit["raw"] is False
    for secret in ("198.51.100", "2001:db8", "card-0001", "SECRET-PROMPT", "step by step", SHARING_KEY):
        assert secret not in text, secret

    # a strict parse refuses what is not STIX 2.1
    broken = json.loads(text)
    broken["objects"][1]["x_unexpected"] = 1
    with pytest.raises(Exception, match="Unexpected properties"):
        validate(json.dumps(broken))

    lake = ["--lake", settings.lake_root]
    assert main([*lake, "indicators", "export", "--campaign", campaign_id, "--out", str(out), "--raw"]) == 2
    assert "name the operator with --operator" in capsys.readouterr().err


def test_a_raw_export_names_its_operator_in_the_audit_log(campaign_lake, tmp_path, monkeypatch, capsys):
    from jobs.cli import main
    from models.stix_indicators import validate

    settings, campaign_id = campaign_lake
    out = tmp_path / "raw.json"
    argv = ["--lake", settings.lake_root, "indicators", "export", "--campaign", campaign_id, "--out", str(out)]
    assert main(argv) == 2  # no DG_SHARING_KEY in this environment
    assert "DG_SHARING_KEY is not set" in capsys.readouterr().err
    assert main([*argv, "--raw", "--operator", "carol@trust"]) == 0
    patterns = [o.pattern for o in validate(out.read_text()).objects if o.type == "indicator"]
    assert "[ipv4-addr:value = '198.51.100.0/24']" in patterns
    assert "[ipv6-addr:value = '2001:0db8:1234::/48']" in patterns
    assert "[x-distillguard-payment-fingerprint:value = 'card-0002']" in patterns
    [audit] = catalog.read_arrow(settings, "indicator_exports").to_pylist()
    assert (audit["operator"], audit["raw"], audit["campaign_id"]) == ("carol@trust", True, campaign_id)


def test_privacy_scan_of_every_new_table(campaign_lake, tmp_path):
    """No raw IP, no prompt text in campaign_days, campaigns or indicator_exports."""
    from jobs import indicators

    settings, campaign_id = campaign_lake
    indicators.export(settings, campaign_id, tmp_path / "bundle.json")
    for name in ("campaign_days", "campaigns", "indicator_exports"):
        text = json.dumps(catalog.read_arrow(settings, name).to_pylist(), default=str)
        for raw in (*IPS.values(), "198.51.100", PROMPT, "SECRET-PROMPT", SHARING_KEY):
            assert raw not in text, (name, raw)
