"""The "randomised" scenario: no tactic is a constant of the simulator.

Every seed draws a set of campaigns, and each campaign draws each of its tactics from a distribution that overlaps
what benign accounts do:
- answer sizes: output and input scale (a campaign may buy short answers: labels, classifications, grades);
- account age and history: a share of aged accounts (bought or farmed long before use), the rest young;
- infrastructure: a mix over proxy, hosting, residential, mobile and business networks;
- payment: a card per account, a pool of shared cards, or one card for all;
- timing: synchronised waves, human-like sessions or cron-like runs;
- prompt wording: the request mix, templated share, template space and languages.

Campaigns come in archetypes (ARCHETYPES: the centre each draw is made around). Some campaigns of a seed are
labelled, and within a labelled campaign analysts catch the loudest accounts first (most requests a day); the
rest of that campaign, and every unlabelled campaign, is what a detector must find. `hold_out` names an archetype
that no labelled campaign has (leave-one-tactic-out): it exists only unlabelled.

Benign accounts cover the same ranges: new signups all through the window, a share on proxy (VPN) networks,
companies whose accounts share one card, automation (evaluation harnesses, graders, batch pipelines; from the
extended scenario's look-alikes), and `synthetic_data_vendor`s: customers allowed to do what extraction does
(long reasoning answers at volume, templated, from hosting), a few of whose accounts are labelled benign.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from simulator import extended
from simulator.extended import uniform
from simulator.population import (
    DAY_US,
    HOUR_US,
    N_SLOTS,
    N_SYSTEM_PROMPT_POOL,
    Behaviour,
    PopulationBuilder,
    Segment,
    _behaviour_profile,
    _choice,
    _hex_list,
    _ua_pick,
)
from simulator.prompts import LANGUAGES

# archetype -> the centre its campaigns' tactics are drawn around. out/in: answer and prompt scale; aged: mean
# share of accounts created long before use; network: Dirichlet centre; payment: weights of unique / pool / one;
# timing: weights of waves / sessions / runs; rate: median requests a day; size: relative share of accounts.
ARCHETYPES: dict[str, dict] = {
    "bulk_hydra": dict(
        out=1.3, inp=0.4, aged=0.1, rate=22, size=1.5, lifetime=(10, 30),
        network={"proxy": 0.5, "hosting": 0.3, "residential": 0.1, "mobile": 0.05, "business": 0.05},
        payment={"unique": 0.2, "pool": 0.7, "one": 0.1}, timing={"waves": 0.7, "sessions": 0.2, "runs": 0.1},
        families={"cot_elicit": 0.3, "rubric_grade": 0.2, "coding_agent": 0.2, "agentic": 0.15, "reasoning": 0.15},
    ),
    "low_slow": dict(
        out=1.1, inp=0.7, aged=0.15, rate=5, size=1.5, lifetime=(3, 12),
        network={"residential": 0.5, "mobile": 0.25, "proxy": 0.15, "hosting": 0.05, "business": 0.05},
        payment={"unique": 0.7, "pool": 0.25, "one": 0.05}, timing={"waves": 0.3, "sessions": 0.6, "runs": 0.1},
        families={"cot_soft": 0.35, "reasoning": 0.25, "student": 0.15, "coding": 0.15, "writing": 0.1},
    ),
    "aged_accounts": dict(
        out=1.0, inp=0.8, aged=0.85, rate=12, size=1.0, lifetime=(20, 60),
        network={"residential": 0.35, "business": 0.25, "hosting": 0.2, "proxy": 0.1, "mobile": 0.1},
        payment={"unique": 0.8, "pool": 0.2, "one": 0.0}, timing={"waves": 0.2, "sessions": 0.6, "runs": 0.2},
        families={"reasoning": 0.25, "coding": 0.25, "cot_soft": 0.2, "agentic": 0.15, "writing": 0.15},
    ),
    "label_harvest": dict(
        out=0.35, inp=1.0, aged=0.3, rate=40, size=1.0, lifetime=(10, 30),
        network={"hosting": 0.45, "proxy": 0.25, "business": 0.2, "residential": 0.1, "mobile": 0.0},
        payment={"unique": 0.4, "pool": 0.5, "one": 0.1}, timing={"waves": 0.3, "sessions": 0.2, "runs": 0.5},
        families={"batch_classify": 0.3, "eval_grading": 0.25, "eval_mcq": 0.2, "batch_extract": 0.15, "rubric_grade": 0.1},
    ),
    "paraphrase_multilingual": dict(
        out=1.2, inp=0.5, aged=0.2, rate=18, size=1.0, lifetime=(8, 30),
        network={"proxy": 0.35, "hosting": 0.25, "residential": 0.25, "mobile": 0.1, "business": 0.05},
        payment={"unique": 0.3, "pool": 0.6, "one": 0.1}, timing={"waves": 0.5, "sessions": 0.4, "runs": 0.1},
        families={"cot_soft": 0.45, "reasoning": 0.2, "coding": 0.15, "agentic": 0.1, "rubric_grade": 0.1},
        foreign=(0.3, 0.8),
    ),
}  # fmt: skip
RESELLER_MIXED = extended.RESELLER_MIXED  # established accounts mixing extraction into customers' traffic
ALL_ARCHETYPES = (*ARCHETYPES, RESELLER_MIXED)
# share of all accounts that campaigns start with (replacements come on top); about the classic scenario's
CAMPAIGN_ACCOUNT_SHARE = (0.03, 0.05)
# When a late campaign goes live, in fractions of the window: after the benchmark's train day (it trains as of day
# 10 of 12, which ends at 0.83), so its detection latency is measured on days nothing was trained on.
LATE_START = (0.85, 0.95)
VENDOR_SEGMENT = "synthetic_data_vendor"
CATEGORIES = ("proxy", "hosting", "residential", "mobile", "business")
HISTORY_SEGMENTS = ("chat_user", "small_developer", "startup_app")  # what an aged account did before
_HOME_COUNTRIES = ("US", "GB", "DE", "CA", "FR", "AU", "BR", "JP", "IN", "NL", "ES", "MX", "SG", "KR", "HK")


@dataclass
class CampaignSpec:
    campaign_id: str
    archetype: str
    labelled: bool
    behaviour: Behaviour
    initial: int  # accounts of the first generation
    hydras: int
    start_day: float
    lifetime_days: tuple[float, float]
    aged_share: float
    history_share: float  # of its aged accounts: share with an ordinary past in the lake before the takeover
    payment: str  # unique | pool | one
    catch_share: float  # of a labelled campaign: share of accounts loud enough to be caught
    languages: dict[str, float]
    non_english_prob: float
    home_countries: int
    lag_s: float
    interval_s: tuple[float, float]
    ua_mix: dict[str, float]


@dataclass
class RandomisedPlan:
    rng: np.random.Generator
    days: int
    hold_out: str | None
    benign: list[tuple[Segment, float, dict]]  # segment, share of benign accounts, its registry knobs
    campaigns: list[CampaignSpec]
    reseller: dict
    benign_languages: dict[str, tuple[str, float]]  # country -> (language, share); read by extended.add_lookalike
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def campaign_accounts(self) -> int:
        return sum(c.initial for c in self.campaigns) + self.reseller["n"]


def _dirichlet_around(rng: np.random.Generator, centre: dict[str, float], concentration: float) -> dict[str, float]:
    """A draw around `centre` that gives every key some mass: no category is impossible for anyone."""
    keys = list(centre)
    mean = np.array([centre[k] for k in keys], float) + 0.05
    draw = rng.dirichlet(mean / mean.sum() * concentration)
    return {k: float(v) for k, v in zip(keys, draw, strict=True) if v > 1e-3}


def draw_plan(seed: int, accounts: int, days: int, hold_out: str | None = None) -> RandomisedPlan:
    """Per-seed knobs; deterministic in (seed, accounts, days, hold_out)."""
    if hold_out is not None and hold_out not in ARCHETYPES:
        raise ValueError(f"unknown archetype {hold_out!r} to hold out (choose from {', '.join(ARCHETYPES)})")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5A4D]))
    base = extended.draw_plan(seed, accounts, days)  # classic segments (per-seed batch) and look-alikes
    # shares of the benign population: the look-alikes and vendors as drawn, the classic segments share the rest
    lookalikes = [(segment, n / accounts, {"lookalike": True}) for segment, n in base.lookalikes]
    vendor = _vendor_segment(rng)
    vendors = (vendor, uniform(rng, 0.004, 0.01), _registry_knobs(rng, vendor))
    ordinary = 1 - sum(share for _, share, _ in lookalikes) - vendors[1]
    classic_total = sum(s.share for s in base.classic_segments)
    benign = [
        (_benign_variant(rng, s), ordinary * s.share / classic_total, _registry_knobs(rng, s))
        for s in base.classic_segments
    ]
    benign += [*lookalikes, vendors]

    archetypes = list(ARCHETYPES) + [str(a) for a in rng.choice(list(ARCHETYPES), int(rng.integers(1, 4)))]
    rng.shuffle(archetypes)
    labelled = _labelled_flags(rng, archetypes, hold_out)
    weights = np.array([ARCHETYPES[a]["size"] for a in archetypes]) * rng.lognormal(0, 0.3, len(archetypes))
    total = uniform(rng, *CAMPAIGN_ACCOUNT_SHARE) * accounts
    campaigns = [
        _draw_campaign(rng, chr(ord("A") + i), archetype, max(15, round(total * w / weights.sum())), days, flag)
        for i, (archetype, flag, w) in enumerate(zip(archetypes, labelled, weights, strict=True))
    ]
    reseller = dict(base.reseller)
    reseller["extraction"] = replace(
        reseller["extraction"],
        out_scale=float(np.clip(rng.lognormal(0, 0.5), 0.3, 2.0)),
        in_scale=uniform(rng, 0.3, 1.5),
    )
    return RandomisedPlan(rng, days, hold_out, benign, campaigns, reseller, base.benign_languages)


def _labelled_flags(rng: np.random.Generator, archetypes: list[str], hold_out: str | None) -> list[bool]:
    """About half the campaigns carry labels, at least two; never one of the held-out archetype."""
    eligible = [i for i, a in enumerate(archetypes) if a != hold_out]
    k = max(2, round(len(eligible) * uniform(rng, 0.35, 0.65)))
    chosen = set(rng.choice(eligible, size=min(k, len(eligible) - 1), replace=False).tolist())
    return [i in chosen for i in range(len(archetypes))]


def _benign_variant(rng: np.random.Generator, segment: Segment) -> Segment:
    """A per-seed variant of a classic benign segment: some of its traffic from proxy (VPN) networks."""
    b = segment.behaviour
    vpn = uniform(rng, 0.01, 0.08)
    network = {k: v * (1 - vpn) for k, v in b.network.items()}
    network["proxy"] = network.get("proxy", 0.0) + vpn
    return replace(segment, behaviour=replace(b, network=network))


def _registry_knobs(rng: np.random.Generator, segment: Segment) -> dict:
    """How a benign segment's accounts are registered: signups through the window, young accounts, shared cards."""
    return dict(
        new_share=uniform(rng, 0.03, 0.2),  # created during the window
        young_share=uniform(rng, 0.03, 0.15),  # created 1-30 days before it
        company_card_share=0.0 if segment.grouping != "own" else uniform(rng, 0.0, 0.25),
    )


def _vendor_segment(rng: np.random.Generator) -> Segment:
    """Benign customers allowed to do what extraction does: long reasoning answers at volume, templated."""
    return Segment(
        Behaviour(
            VENDOR_SEGMENT,
            rate=uniform(rng, 40, 250),
            rate_sigma=0.8,
            active_prob=0.9,
            weekend_factor=0.9,
            timing="runs" if rng.random() < 0.5 else "sessions",
            pmf="business_247",
            per_session=10,
            runs=(1, 4),
            intra=("stepped", uniform(rng, 0.5, 3), uniform(rng, 4, 20)),
            families=_dirichlet_around(
                rng, {"cot_elicit": 0.3, "rubric_grade": 0.2, "reasoning": 0.2, "coding_agent": 0.15, "cot_soft": 0.15}, 10
            ),
            family_alpha=10,
            templated_prob=uniform(rng, 0.5, 0.95),
            template_space=int(rng.integers(15, 200)),
            ua={"sdk_py": 0.7, "raw": 0.3},
            stream_prob=0.1,
            batch_prob=uniform(rng, 0, 0.5),
            models={"claude-opus-4": 0.5, "claude-sonnet-4": 0.5},
            adopt_prob=0.8,
            adopt_delay_h=(1, 48),
            adopt_share=(0.3, 0.8),
            max_tokens=(8192, 16000, 32000),
            saturate_prob=uniform(rng, 0.05, 0.25),
            in_scale=uniform(rng, 0.3, 1.0),
            out_scale=uniform(rng, 1.0, 1.8),
            system_none_prob=0.1,
            network=_dirichlet_around(rng, {"hosting": 0.7, "business": 0.2, "proxy": 0.1}, 8),
        ),
        share=0,
        hard_negative=True,
        programs={"enterprise": 0.5, "research": 0.3, "startup": 0.2},
        verification={"kyc": 0.5, "card": 0.5},
        grouping="org",
    )  # fmt: skip


def _draw_campaign(
    rng: np.random.Generator, campaign_id: str, archetype: str, initial: int, days: int, labelled: bool
) -> CampaignSpec:
    c = ARCHETYPES[archetype]
    timing = str(_choice(rng, c["timing"], 1)[0])
    lo_life, hi_life = c["lifetime"]
    # an unlabelled campaign may start after the benchmark's train day (its detection latency is measurable);
    # labelled ones start early enough for their labels to reach the training window
    late = not labelled and rng.random() < 0.25
    foreign = c.get("foreign", (0.0, 0.35))
    k_lang = int(rng.integers(1, 4))
    chosen = rng.choice([lang for lang in LANGUAGES if lang != "en"], size=k_lang, replace=False)
    behaviour = Behaviour(
        f"campaign_{campaign_id.lower()}_{archetype}",
        rate=c["rate"] * float(rng.lognormal(0, 0.4)),
        rate_sigma=uniform(rng, 0.3, 1.0),
        active_prob=uniform(rng, 0.5, 0.98),
        weekend_factor=uniform(rng, 0.6, 1.1),
        timing=timing,
        pmf=str(_choice(rng, {"human": 1, "work": 1, "evening": 1, "business_247": 1}, 1)[0]),
        per_session=uniform(rng, 2, 20),
        intra=("stepped", uniform(rng, 1, 10), uniform(rng, 10, 90)) if rng.random() < 0.5 else ("uniform", 60, 3600),
        runs=(1, int(rng.integers(2, 5))),
        families=_dirichlet_around(rng, c["families"], 8),
        family_alpha=uniform(rng, 5, 40),
        templated_prob=uniform(rng, 0.1, 0.9),
        template_space=int(rng.integers(10, 300)),
        ua={},
        ua_secondary_prob=uniform(rng, 0.05, 0.5),
        stream_prob=uniform(rng, 0.0, 0.8),
        batch_prob=uniform(rng, 0.0, 0.4) if timing == "runs" else 0.0,
        models=_dirichlet_around(rng, {"claude-opus-4": 0.5, "claude-sonnet-4": 0.4, "claude-haiku-4-5": 0.1}, 4),
        adopt_prob=uniform(rng, 0.2, 1.0),
        adopt_delay_h=(1, uniform(rng, 12, 120)),
        adopt_share=(0.2, uniform(rng, 0.3, 0.8)),
        max_tokens=(1024, 4096, 8192, 16000) if c["out"] >= 0.8 else (256, 512, 1024, 4096),
        saturate_prob=uniform(rng, 0.0, 0.3),
        in_scale=float(np.clip(c["inp"] * rng.lognormal(0, 0.5), 0.15, 3.0)),
        out_scale=float(np.clip(c["out"] * rng.lognormal(0, 0.5), 0.15, 3.0)),
        rate_limit_prob=uniform(rng, 0.0, 0.06),
        system_none_prob=uniform(rng, 0.05, 0.7),
        network=_dirichlet_around(rng, c["network"], 6),
    )
    return CampaignSpec(
        campaign_id=campaign_id,
        archetype=archetype,
        labelled=labelled,
        behaviour=behaviour,
        initial=initial,
        hydras=max(1, round(initial / uniform(rng, 15, 60))),
        start_day=uniform(rng, *LATE_START) * days if late else uniform(rng, 0.0, 0.3 if labelled else 0.5) * days,
        lifetime_days=(lo_life * uniform(rng, 0.6, 1.2), hi_life * uniform(rng, 0.8, 1.5)),
        aged_share=float(rng.beta(max(0.3, 4 * c["aged"]), max(0.3, 4 * (1 - c["aged"])))),
        history_share=uniform(rng, 0.0, 1.0),
        payment=str(_choice(rng, c["payment"], 1)[0]),
        catch_share=uniform(rng, 0.25, 0.65),
        languages={str(k): float(w) for k, w in zip(chosen, rng.dirichlet(np.ones(k_lang)), strict=True)},
        non_english_prob=uniform(rng, *foreign),
        home_countries=int(rng.integers(1, 6)),
        lag_s=uniform(rng, 10, 3600),
        interval_s=(uniform(rng, 2, 20), uniform(rng, 20, 150)),
        ua_mix=_dirichlet_around(rng, {"sdk_py": 0.4, "raw": 0.3, "browser": 0.15, "sdk_ts": 0.15}, 3),
    )


def build(builder: PopulationBuilder, plan: RandomisedPlan, accounts: int) -> None:
    """Add the plan's benign population and campaigns to `builder`; `accounts` counts the first generation."""
    n_benign = accounts - plan.campaign_accounts
    counts = [max(8, int(share * n_benign)) for _, share, _ in plan.benign]
    counts[0] += n_benign - sum(counts)  # chat users absorb rounding
    for (segment, _, knobs), n in zip(plan.benign, counts, strict=True):
        if knobs.get("lookalike"):
            extended.add_lookalike(builder, segment, n, plan)  # type: ignore[arg-type]  # reads rng, benign_languages
        else:
            _add_benign(builder, segment, n, knobs, plan.benign_languages)
    vendor_accounts = np.flatnonzero(np.array(builder.rows.columns["segment"], dtype=object) == VENDOR_SEGMENT)
    _label_benign(builder, vendor_accounts, share=0.1)
    for spec in plan.campaigns:
        plan.counts[spec.campaign_id] = add_campaign(builder, spec)
    reseller_id = chr(ord("A") + len(plan.campaigns))
    plan.counts[reseller_id] = extended.add_mixing_resellers(builder, plan.reseller)
    # add_mixing_resellers names its campaign "E"; this scenario gives the reseller the next free letter
    for i in range(len(builder.rows) - plan.counts[reseller_id], len(builder.rows)):
        builder.rows.columns["campaign_id"][i] = reseller_id
    builder.campaign_counts.update(plan.counts)


def _add_benign(
    builder: PopulationBuilder, segment: Segment, n: int, knobs: dict, languages: dict[str, tuple[str, float]]
) -> None:
    rng = builder.rng
    window = builder.end_us - builder.start_us
    kind = rng.random(n)
    new, young = (
        kind < knobs["new_share"],
        (kind >= knobs["new_share"]) & (kind < knobs["new_share"] + knobs["young_share"]),
    )
    created = np.where(
        new,
        builder.start_us + rng.random(n) * window * 0.9,
        builder.start_us - np.where(young, rng.uniform(1, 30, n), 30 + rng.exponential(300, n)) * DAY_US,
    ).astype(np.int64)
    registry: dict[str, np.ndarray] = {"created_us": created}
    if knobs["company_card_share"] > 0:
        # companies whose accounts share one card and one org (a hard negative for payment links)
        payment = np.array(_hex_list(rng, n, 10, "pf_"), dtype=object)
        org = np.array(_hex_list(rng, n, 6, "org_"), dtype=object)
        members = np.flatnonzero(rng.random(n) < knobs["company_card_share"])
        k = 0
        while k < len(members):
            group = members[k : k + int(rng.integers(3, 31))]
            payment[group], org[group] = payment[group[0]], org[group[0]]
            k += len(group)
        registry.update(payment=payment, org=org)
    builder.add_benign_segment(segment, n, languages=languages, registry=registry)


def _label_benign(builder: PopulationBuilder, rows: np.ndarray, share: float) -> None:
    """Analysts review a few accounts of a look-alike segment and clear them."""
    rng = builder.rng
    if not len(rows):
        return
    chosen = rng.choice(rows, size=max(2, round(share * len(rows))), replace=False)
    created = builder.rows.columns["created_us"]
    for account in chosen:
        earliest = max(builder.start_us, int(created[account]) + DAY_US)
        if earliest < builder.end_us:
            decided = int(earliest + rng.random() * (builder.end_us - earliest) * 0.5)
            builder.labels.append(
                (int(account), "benign", decided, None, "analyst", "reviewed: licensed data generation")
            )


def _add_history(builder: PopulationBuilder, accounts: np.ndarray, country: np.ndarray, until: np.ndarray) -> None:
    """An aged account's ordinary past: traffic of a benign segment (HISTORY_SEGMENTS) from before the window
    until the campaign takes it over, so the lake holds its history."""
    if not len(accounts):
        return
    rng = builder.rng
    names = [b.name for b in builder.groups]
    group = names.index(HISTORY_SEGMENTS[int(rng.integers(0, len(HISTORY_SEGMENTS)))])
    b = builder.groups[group]
    profile = _behaviour_profile(rng, b, len(accounts), country, builder.network, builder.release_us)
    builder._add_profiles(
        account=accounts,
        group=np.full(len(accounts), group),
        language=np.zeros(len(accounts), np.int8),
        non_english_prob=np.zeros(len(accounts), np.float32),
        template_salt=accounts.astype(np.int64) * 7919 + builder.seed,
        hydra=np.full(len(accounts), -1),
        active_from_us=np.full(len(accounts), builder.start_us - DAY_US),
        active_until_us=until,
        **profile,
    )


def add_campaign(builder: PopulationBuilder, spec: CampaignSpec) -> int:
    """A campaign's hydras: accounts created (young or aged) before first use, abandoned after their lifetime and
    replaced; in a labelled campaign, accounts louder than the campaign's catch threshold are labelled and banned
    (then replaced), the loudest soonest."""
    rng, b = builder.rng, spec.behaviour
    salt = int(rng.integers(1, 2**31))
    system_prompts = rng.integers(0, N_SYSTEM_PROMPT_POOL, 3)
    start = builder.start_us + int(spec.start_day * DAY_US)
    total = 0
    threshold: float | None = None
    sizes = np.diff(np.linspace(0, spec.initial, spec.hydras + 1).round().astype(int))
    for size in sizes:
        if size <= 0:
            continue
        hydra_id = len(builder.hydra_campaign)
        builder.hydra_campaign.append(spec.campaign_id)
        builder.hydra_interval.append(uniform(rng, *spec.interval_s))
        homes = rng.choice(_HOME_COUNTRIES, size=spec.home_countries, replace=False).astype(object)
        rented = {
            (c, cat): extended._category_prefixes(rng, builder.network, cat, c, int(rng.integers(2, 12)))
            for c in homes
            for cat in b.network
        }
        pay_pool = _hex_list(rng, 1 if spec.payment == "one" else max(2, int(size) // 6), 10, "pf_")
        user_agents = _ua_pick(rng, spec.ua_mix, 4)
        pending = (start - rng.uniform(0.2, 3, size) * DAY_US).astype(np.int64)  # made ready before the start
        while len(pending):
            m = len(pending)
            aged = rng.random(m) < spec.aged_share
            created = np.where(aged, pending - (rng.uniform(30, 900, m) * DAY_US).astype(np.int64), pending)
            # the first generation goes live once the campaign starts; a replacement (made after the start) within
            # hours of being made
            first_use = np.maximum(pending, start) + (rng.uniform(0.5, 12, m) * HOUR_US).astype(np.int64)
            until = first_use + (rng.uniform(*spec.lifetime_days, m) * DAY_US).astype(np.int64)
            signup = homes[rng.integers(0, len(homes), m)]
            if spec.payment == "unique":
                payment = np.array(_hex_list(rng, m, 10, "pf_"), dtype=object)
            else:
                payment = np.array([pay_pool[i] for i in rng.integers(0, len(pay_pool), m)], dtype=object)
            profile = _behaviour_profile(rng, b, m, signup, builder.network, builder.release_us)
            # loudness: requests a day, as analysts see it, with some noise in who gets reviewed
            loud = np.log(profile["rate"]) + rng.normal(0, 0.3, m)
            if spec.labelled and threshold is None:
                threshold = float(np.quantile(loud, 1 - spec.catch_share))
            caught = np.zeros(m, bool) if threshold is None else loud >= threshold
            margin = np.clip(loud - (threshold or 0.0), 0, 3)
            decided = first_use + ((1.0 + rng.gamma(2.0, 1.5, m) * np.exp(-margin)) * DAY_US).astype(np.int64)
            banned = caught & (decided < builder.end_us) & (decided < until)
            idx = builder.rows.add(
                m,
                created_us=created,
                signup_country=signup,
                payment=payment,
                verification=_choice(rng, {"none": 0.2, "email": 0.4, "card": 0.35, "kyc": 0.05}, m),
                program=_choice(rng, {"standard": 0.6, "startup": 0.15, "education": 0.1, "research": 0.15}, m),
                org=np.array(_hex_list(rng, m, 6, "org_"), dtype=object),
                segment=b.name,
                campaign_id=spec.campaign_id,
                hydra=hydra_id,
                banned_us=np.where(banned, decided, -1),
                campaign_share=1.0,
                archetype=spec.archetype,
            )
            for account, when in zip(idx[banned], decided[banned], strict=True):
                source = "analyst" if rng.random() < 0.6 else "rule"
                builder.labels.append((int(account), "extraction", int(when), spec.campaign_id, source, "review"))
            # each network slot of an account: a category from the campaign's mix, a prefix it rents there
            slot_cats = _choice(rng, b.network, m * N_SLOTS).reshape(m, N_SLOTS)
            slot_prefix = np.empty((m, N_SLOTS), np.int32)
            for j, home in enumerate(signup):
                for s_ in range(N_SLOTS):
                    pool = rented[(home, slot_cats[j, s_])]
                    slot_prefix[j, s_] = pool[rng.integers(0, len(pool))]
            profile["slot_prefix"] = slot_prefix
            end = np.where(banned, decided, until)
            hydra_spec = {"lag_s": spec.lag_s, "languages": spec.languages, "non_english_prob": spec.non_english_prob}
            extended.add_hydra_profiles(
                builder, b, profile, idx, hydra_id, salt, user_agents, system_prompts, hydra_spec, first_use, end
            )
            history = aged & (rng.random(m) < spec.history_share)
            _add_history(builder, idx[history], signup[history], first_use[history])
            total += m
            ends = end[end < builder.end_us - 6 * HOUR_US]
            pending = ends + (rng.uniform(1, 18, len(ends)) * HOUR_US).astype(np.int64)
    return total
