"""A campaign's indicators as a STIX 2.1 bundle (the maintained `stix2` library), for other providers.

One `campaign` object, and one `indicator` per artefact, each related to the campaign by `indicates`:
  ASN                   [autonomous-system:number = 64512]                                    (public routing data)
  client family         [software:name = 'python-requests']                                   (the User-Agent product)
  prompt template       [x-distillguard-prompt-template:fingerprint = '-4011...']             (xxhash64 of the
                        normalised prompt, features/signals.py: a partner computes it from its own logs, no text)
  IP prefix             [x-distillguard-ip-prefix:keyed_hash = '9f2c...']                     (sha256 of sharing key|
                        prefix, the /24 or /48 as lake/contract.py canonical_ip writes it)
  payment fingerprint   [x-distillguard-payment-fingerprint:keyed_hash = '51ab...']
A raw export (`raw=True`) states the prefix as [ipv4-addr:value = '198.51.100.0/24'] (or ipv6-addr) and the payment
fingerprint as [x-distillguard-payment-fingerprint:value = '...']. The custom observable types follow STIX's `x-`
naming, so a strict parse (`validate`, allow_custom=False) accepts the bundle.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import stix2

IDENTITY_NAME = "distillguard"
LABELS = ("malicious-activity",)


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _prefix_pattern(prefix: str) -> str:
    kind = "ipv6-addr" if ":" in prefix else "ipv4-addr"
    return f"[{kind}:value = {_quoted(prefix)}]"


def patterns(artefacts: Mapping[str, list], raw: bool) -> list[tuple[str, str, str]]:
    """(kind, name, STIX pattern) per artefact. artefacts: asns (ints), client_families, template_fingerprints,
    ip_prefixes and payment_fingerprints (keyed hashes, or raw values when `raw`)."""
    out = [("asn", f"AS{n}", f"[autonomous-system:number = {int(n)}]") for n in artefacts.get("asns", [])]
    out += [
        ("client_family", f"client {f}", f"[software:name = {_quoted(f)}]")
        for f in artefacts.get("client_families", [])
    ]
    out += [
        ("prompt_template", f"prompt template {f}", f"[x-distillguard-prompt-template:fingerprint = {_quoted(str(f))}]")
        for f in artefacts.get("template_fingerprints", [])
    ]
    for p in artefacts.get("ip_prefixes", []):
        pattern = _prefix_pattern(p) if raw else f"[x-distillguard-ip-prefix:keyed_hash = {_quoted(p)}]"
        out.append(("ip_prefix", "IP prefix" if not raw else f"IP prefix {p}", pattern))
    for p in artefacts.get("payment_fingerprints", []):
        field = "value" if raw else "keyed_hash"
        out.append(("payment", "payment fingerprint", f"[x-distillguard-payment-fingerprint:{field} = {_quoted(p)}]"))
    return out


def _timestamp(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def campaign_bundle(campaign: Mapping, artefacts: Mapping[str, list], raw: bool = False) -> stix2.Bundle:
    """The bundle for one campaign row (models/campaigns.py summarise) and its artefacts."""
    identity = stix2.Identity(name=IDENTITY_NAME, identity_class="organization")
    mix = ", ".join(f"{m['capability']} {m['requests']:,}" for m in campaign["capability_mix"] if m["requests"])
    stix_campaign = stix2.Campaign(
        created_by_ref=identity,
        name=f"distillation campaign {campaign['campaign_id']}",
        description=(
            f"LLM distillation campaign tracked by distillguard as {campaign['campaign_id']}: "
            f"{campaign['members_ever']} accounts, {campaign['requests']:,} requests ({mix or 'no requests'})"
            + (
                f"; pivoted to {campaign['pivot_model']} on {campaign['model_pivot_day']}"
                if campaign["model_pivot_day"]
                else ""
            )
        ),
        first_seen=_timestamp(campaign["first_seen"]),
        last_seen=_timestamp(campaign["last_seen"] + dt.timedelta(days=1)),
        objective="harvest model outputs to train another model (distillation)",
    )
    objects: list = [identity, stix_campaign]
    for kind, name, pattern in patterns(artefacts, raw):
        indicator = stix2.Indicator(
            created_by_ref=identity,
            name=name,
            description=f"{kind.replace('_', ' ')} seen in campaign {campaign['campaign_id']}",
            indicator_types=list(LABELS),
            pattern=pattern,
            pattern_type="stix",
            valid_from=_timestamp(campaign["first_seen"]),
        )
        objects += [indicator, stix2.Relationship(indicator, "indicates", stix_campaign, created_by_ref=identity)]
    return stix2.Bundle(*objects)


def validate(text: str) -> stix2.Bundle:
    """Parse a serialised bundle strictly with the library's own parser: unknown properties or object types, bad
    patterns or references raise."""
    return stix2.parse(text, allow_custom=False)
