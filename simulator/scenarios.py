"""Which population a simulation draws: the scenario picks the pieces of simulator/population.py (benign segments,
labelled campaigns, resellers) and, for "extended", simulator/extended.py's plan on top of them. It lives apart from
both so that neither imports the other's caller."""

from __future__ import annotations

import datetime as dt

import numpy as np

from lake.errors import InputError
from simulator import extended, randomised
from simulator.population import (
    CAMPAIGN_ACCOUNT_SHARE,
    CAMPAIGNS,
    MIN_CAMPAIGN_ACCOUNTS,
    SEGMENTS,
    Population,
    PopulationBuilder,
)

# "classic" is the population of simulator/population.py (three labelled campaigns and a reseller); "extended" adds
# campaigns that are never labelled and benign look-alikes, randomised per seed (simulator/extended.py);
# "randomised" draws every campaign tactic per seed, overlapping benign behaviour (simulator/randomised.py).
SCENARIOS = ("classic", "extended", "randomised")
DEFAULT_SCENARIO = "classic"


def build_population(
    seed: int,
    accounts: int,
    start: dt.date,
    days: int,
    scenario: str = DEFAULT_SCENARIO,
    hold_out: str | None = None,
) -> Population:
    """The whole simulated population for (seed, accounts, start, days, scenario); deterministic. hold_out: a
    campaign archetype of the randomised scenario that no labelled campaign has (leave-one-tactic-out)."""
    if scenario not in SCENARIOS:
        raise InputError(f"unknown simulator scenario {scenario!r} (choose from {', '.join(SCENARIOS)})")
    if hold_out is not None and (scenario != "randomised" or hold_out not in randomised.ARCHETYPES):
        raise InputError(
            f"--hold-out {hold_out!r}: only the randomised scenario holds out an archetype "
            f"(one of {', '.join(randomised.ARCHETYPES)})"
        )
    minimum = {"classic": 50, "extended": 300, "randomised": 1000}[scenario]
    if accounts < minimum:
        raise InputError(
            f"the {scenario} scenario needs at least {minimum} accounts to hold every segment and "
            f"campaign, got {accounts}"
        )
    if days < 1:
        raise InputError(f"days must be >= 1, got {days}")
    builder = PopulationBuilder(seed, start, days)
    if scenario == "randomised":
        randomised.build(builder, randomised.draw_plan(seed, accounts, days, hold_out), accounts)
        return builder.finish()
    plan = None
    if scenario == "extended":
        plan = extended.draw_plan(seed, accounts, days)
    n_campaign = max(MIN_CAMPAIGN_ACCOUNTS * len(CAMPAIGNS), round(CAMPAIGN_ACCOUNT_SHARE * accounts))
    n_reseller = max(1, accounts // 10_000)
    n_benign = accounts - n_campaign - n_reseller - (plan.accounts if plan else 0)
    segments = plan.classic_segments if plan else SEGMENTS
    shares = np.array([s.share for s in segments])
    seg_counts = np.maximum(np.floor(shares / shares.sum() * n_benign).astype(int), 2)
    seg_counts[0] += n_benign - seg_counts.sum()  # chat users absorb rounding
    for segment, n in zip(segments, seg_counts, strict=True):
        builder.add_benign_segment(segment, int(n), languages=plan.benign_languages if plan else None)
    for campaign in CAMPAIGNS:
        builder.add_campaign(campaign, max(MIN_CAMPAIGN_ACCOUNTS, round(campaign.share * n_campaign)))
    builder.add_resellers(n_reseller)
    if plan:
        plan.add_to(builder)
    return builder.finish()
