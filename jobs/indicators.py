"""`distillguard indicators export --campaign ID --format stix --out FILE [--raw --operator NAME]`: a campaign's
indicators as a STIX 2.1 bundle for other providers (models/stix_indicators.py), validated by the stix2 library's
strict parser before it is written.

What leaves: the campaign's ASNs and client families (the User-Agent product names), its shared prompt-template
fingerprints (hashes, never prompt text), and its IP prefixes and payment fingerprints as keyed hashes under
DG_SHARING_KEY, the key agreed with the receiving providers. Raw prefixes and payment fingerprints leave only with
--raw, which needs an operator's name. Every export, raw or not, appends a row to the `indicator_exports` audit table.

The artefacts are read for the campaign's members over the days it was seen (and the cluster window before its first
day): bronze `requests` for ASNs, clients and templates; raw `api_requests` client IPs, turned into their /24 or /48
prefix (lake/contract.py canonical_ip) and hashed in this process; `accounts` for payment fingerprints.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from jobs import evidence_query
from lake import catalog
from lake.config import Settings
from lake.contract import canonical_ip, keyed_hash_reference
from lake.errors import InputError, MissingInputError

FORMATS = ("stix",)
OPERATOR_PATTERN = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")
CLUSTER_WINDOW_DAYS = 7  # the cluster job's trailing window (features/spark_clusters.py DEFAULT_WINDOW_DAYS)
MIN_REQUEST_SHARE = 0.05  # an ASN or client family carrying less of the campaign's requests is not its indicator
MAX_INDICATORS_PER_KIND = 25
CLIENT_FAMILY = re.compile(r"^\s*([A-Za-z][A-Za-z0-9._-]*)")


def client_family(user_agent: str | None) -> str | None:
    found = CLIENT_FAMILY.match(user_agent or "")
    return found.group(1).lower() if found else None


def _frequent(counts: Counter, total: int) -> list:
    return [v for v, n in counts.most_common(MAX_INDICATORS_PER_KIND) if total and n / total >= MIN_REQUEST_SHARE]


def _shared(accounts_per_value: dict, minimum: int = 2) -> list:
    """Values used by at least `minimum` member accounts, most accounts first."""
    ranked = sorted(((len(a), str(v)) for v, a in accounts_per_value.items() if len(a) >= minimum), reverse=True)
    return [v for _, v in ranked[:MAX_INDICATORS_PER_KIND]]


def artefacts(settings: Settings, members: list[str], first: dt.date, last: dt.date, key: str, raw: bool) -> dict:
    """The campaign's artefacts (models/stix_indicators.py `patterns`), keyed hashes unless `raw`."""
    start = first - dt.timedelta(days=CLUSTER_WINDOW_DAYS - 1)
    in_window = [("event_date", ">=", start), ("event_date", "<=", last)]
    bronze = catalog.read_arrow(settings, "requests", filters=in_window)
    bronze = bronze.filter(pc.is_in(bronze["account_id"], value_set=pa.array(members)))
    rows = bronze.select(["account_id", "asn", "user_agent", "prompt_fingerprint"]).to_pylist()
    asns = Counter(r["asn"] for r in rows if r["asn"] is not None)
    clients = Counter(f for f in (client_family(r["user_agent"]) for r in rows) if f)
    templates: dict = {}
    for r in rows:
        if r["prompt_fingerprint"] is not None:
            templates.setdefault(r["prompt_fingerprint"], set()).add(r["account_id"])

    def protect(value: str) -> str:
        return value if raw else str(keyed_hash_reference(value, key))

    prefixes: dict = {}
    if catalog.exists(settings, "api_requests"):
        requests = catalog.read_arrow(settings, "api_requests", filters=in_window)
        requests = requests.filter(pc.is_in(requests["account_id"], value_set=pa.array(members)))
        for account, ip in zip(requests["account_id"].to_pylist(), requests["client_ip"].to_pylist()):
            canonical = canonical_ip(ip) if isinstance(ip, str) else None
            if canonical is not None:
                prefixes.setdefault(protect(canonical[1]), set()).add(account)
    registry = catalog.read_arrow(settings, "accounts").select(["account_id", "payment_fingerprint"])
    registry = registry.filter(pc.is_in(registry["account_id"], value_set=pa.array(members)))
    payments = sorted({protect(p) for p in registry["payment_fingerprint"].to_pylist() if p})
    return {
        "asns": _frequent(asns, len(rows)),
        "client_families": _frequent(clients, len(rows)),
        "template_fingerprints": _shared(templates),
        "ip_prefixes": _shared(prefixes, minimum=1),
        "payment_fingerprints": payments[:MAX_INDICATORS_PER_KIND],
    }


def export(
    settings: Settings,
    campaign_id: str,
    out: Path,
    output_format: str = "stix",
    as_of: dt.date | None = None,
    raw: bool = False,
    operator: str | None = None,
    now: dt.datetime | None = None,
) -> dict:
    """Write the bundle to `out` and the audit row; returns the audit row."""
    from models.stix_indicators import campaign_bundle, validate

    if output_format not in FORMATS:
        raise InputError(f"format must be one of {', '.join(FORMATS)}, got {output_format!r}")
    if operator is not None and not OPERATOR_PATTERN.fullmatch(operator):
        raise InputError(f"operator must be 1-64 letters, digits or '_.@+-', got {operator!r}")
    if raw and operator is None:
        raise InputError("--raw sends raw IP prefixes and payment fingerprints: name the operator with --operator")
    if settings.sharing_key is None and not raw:
        raise InputError("DG_SHARING_KEY is not set: the key agreed with the receiving providers hashes the export")
    found = evidence_query.campaign(settings, campaign_id, as_of)
    campaign, days = found["campaign"], found["days"]
    if not days:
        raise MissingInputError(f"campaign {campaign_id!r} has no days recorded")
    members = sorted({m for day in days for m in day["members"]})
    key = settings.sharing_key.get_secret_value() if settings.sharing_key else ""
    found_artefacts = artefacts(settings, members, campaign["first_seen"], campaign["last_seen"], key, raw)
    text = campaign_bundle(campaign, found_artefacts, raw=raw).serialize(pretty=True)
    bundle = validate(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    audit = {
        "export_id": uuid.uuid4().hex,
        "exported_at": (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC),
        "operator": operator,
        "campaign_id": campaign["campaign_id"],
        "as_of": campaign["as_of"],
        "format": output_format,
        "raw": raw,
        "indicators": sum(1 for o in bundle.objects if o.type == "indicator"),
        "bundle_sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
    _append_audit(settings, audit)
    print(
        f"indicators: {audit['indicators']} indicators for campaign {campaign['campaign_id']} written to {out} "
        f"({f'RAW values, exported by {operator}' if raw else 'keyed hashes'}; audit id {audit['export_id']})",
        flush=True,
    )
    return audit


def _append_audit(settings: Settings, row: dict) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    schema = catalog.table("indicator_exports").schema
    catalog.ensure_table(settings, "indicator_exports")
    write_deltalake(settings.table_uri("indicator_exports"), pa.Table.from_pylist([row], schema=schema), mode="append")


def add_subcommands(sub, settings_of) -> None:
    from lake.dates import parse_date

    indicators = sub.add_parser("indicators", help="share a campaign's indicators with other providers")
    commands = indicators.add_subparsers(dest="indicators_command", required=True)
    p = commands.add_parser("export", help="write a campaign's indicators as a validated STIX 2.1 bundle")
    p.add_argument("--campaign", required=True, help="campaign id (console, `risk campaign`)")
    p.add_argument("--format", choices=FORMATS, default="stix", help="stix: a STIX 2.1 bundle (JSON)")
    p.add_argument("--out", type=Path, required=True, help="file to write the bundle to")
    p.add_argument("--date", type=parse_date, help="the campaign as of this date (default: latest)")
    p.add_argument("--raw", action="store_true", help="raw IP prefixes and payment fingerprints (needs --operator)")
    p.add_argument("--operator", help="who exports; recorded in the indicator_exports audit table")

    def handler(args):
        export(settings_of(args), args.campaign, args.out, args.format, args.date, args.raw, args.operator)

    p.set_defaults(func=handler)
