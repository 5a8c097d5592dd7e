"""Link evidence as plain sentences with counts: why accounts sit in one cluster, and how many of the accounts they
are linked to are already decided either way.

Input is what the cluster job stores (features/spark_clusters.py): the cluster graph's pairs with how many
artefacts of each kind they share (`account_links`), and the accounts' standing labels (the latest decision). No
artefact value is read or shown here, only counts, so a sentence never carries an IP prefix or prompt text.

  cluster  "9 of 12 members share a payment method with another member (14 linked pairs; 4 of those 9 decided as
            extraction, 1 as benign)"
  account  "shares a payment method with 11 linked accounts (4 decided as extraction, 1 as benign)"
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# account_links column per kind of link, and how a sentence says what the accounts share
KINDS = {
    "payment": ("shared_payment_methods", "share a payment method", "shares a payment method with"),
    "ip_prefix": (
        "shared_ip_prefixes",
        "sent traffic from the same uncrowded IP prefix as another member",
        "sent traffic from the same uncrowded IP prefix as",
    ),
    "template": (
        "shared_templates",
        "sent the same rare prompt template as another member",
        "sent the same rare prompt templates as",
    ),
    "timing": (
        "synchronised_bands",
        "were active in the same minutes as another member",
        "was active in the same minutes as",
    ),
}
EXTRACTION, BENIGN = "extraction", "benign"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _decided(accounts: Iterable[str], standing: Mapping[str, str]) -> tuple[int, int]:
    labels = [standing.get(a) for a in accounts]
    return labels.count(EXTRACTION), labels.count(BENIGN)


def _decided_phrase(extraction: int, benign: int) -> str:
    if not extraction and not benign:
        return "none decided yet"
    return f"{extraction:,} decided as extraction, {benign:,} as benign"


def cluster_evidence(members: list[str], links: Iterable[Mapping], standing: Mapping[str, str]) -> list[dict]:
    """One row per kind of link present in the cluster (most members first), then a row for the whole cluster:
    kind, accounts (members linked that way), pairs, shared (artefacts summed over pairs), extraction and benign
    (decided accounts among them), text. `links`: account_links rows among the members."""
    member_set = set(members)
    rows = []
    for kind, (column, cluster_phrase, _) in KINDS.items():
        pairs = [link for link in links if (link.get(column) or 0) > 0 and link["src"] in member_set]
        if not pairs:
            continue
        touched = {link["src"] for link in pairs} | {link["dst"] for link in pairs}
        extraction, benign = _decided(touched, standing)
        rows.append(
            {
                "kind": kind,
                "accounts": len(touched),
                "pairs": len(pairs),
                "shared": sum(link[column] for link in pairs),
                "extraction": extraction,
                "benign": benign,
                "text": f"{len(touched):,} of {len(members):,} members {cluster_phrase} "
                f"({_plural(len(pairs), 'linked pair')}; {_decided_phrase(extraction, benign)})",
            }
        )
    rows.sort(key=lambda row: (-row["accounts"], row["kind"]))
    extraction, benign = _decided(members, standing)
    undecided = len(members) - extraction - benign
    rows.append(
        {
            "kind": "cluster",
            "accounts": len(members),
            "pairs": sum(1 for link in links if link["src"] in member_set),
            "shared": None,
            "extraction": extraction,
            "benign": benign,
            "text": f"{_plural(len(members), 'member')}: {extraction:,} already decided as extraction, "
            f"{benign:,} as benign, {undecided:,} undecided",
        }
    )
    return rows


def account_evidence(account_id: str, links: Iterable[Mapping], standing: Mapping[str, str]) -> list[dict]:
    """One row per kind of link the account has (most neighbours first), then one for all its links: kind,
    accounts (neighbours linked that way), pairs, shared (artefacts summed over those links), extraction and benign
    (decided neighbours), text. `links`: account_links rows with the account at either end."""
    mine = [link for link in links if account_id in (link["src"], link["dst"])]

    def other(link: Mapping) -> str:
        return link["dst"] if link["src"] == account_id else link["src"]

    rows = []
    for kind, (column, _, account_phrase) in KINDS.items():
        with_kind = [link for link in mine if (link.get(column) or 0) > 0]
        if not with_kind:
            continue
        neighbours = {other(link) for link in with_kind}
        extraction, benign = _decided(neighbours, standing)
        shared = sum(link[column] for link in with_kind)
        counted = f", {shared:,} shared in all" if kind != "payment" and shared > len(with_kind) else ""
        rows.append(
            {
                "kind": kind,
                "accounts": len(neighbours),
                "pairs": len(with_kind),
                "shared": shared,
                "extraction": extraction,
                "benign": benign,
                "text": f"{account_phrase} {_plural(len(neighbours), 'linked account')}{counted} "
                f"({_decided_phrase(extraction, benign)})",
            }
        )
    rows.sort(key=lambda row: (-row["accounts"], row["kind"]))
    if mine:
        neighbours = {other(link) for link in mine}
        extraction, benign = _decided(neighbours, standing)
        rows.append(
            {
                "kind": "all",
                "accounts": len(neighbours),
                "pairs": len(mine),
                "shared": None,
                "extraction": extraction,
                "benign": benign,
                "text": f"linked to {_plural(len(neighbours), 'account')} in the cluster graph "
                f"({_decided_phrase(extraction, benign)})",
            }
        )
    return rows
