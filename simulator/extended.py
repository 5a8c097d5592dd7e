"""The "extended" scenario: campaigns that never get a label, and benign look-alikes.

On top of the classic population (three labelled campaigns A/B/C and a reseller), it adds

campaigns that are never labelled (no enforcement_labels row, never banned):
- D, a *low-and-slow hydra*: many young accounts, a few requests a day each, a payment method of their own,
  rotating through residential proxy prefixes that ordinary users of the same ISPs also use, loosely
  synchronised, with softened and paraphrased reasoning-elicitation prompts (English and Latin-script
  languages). Accounts are abandoned after a few days and replaced, so they stay young;
- E, *resellers* mixing extraction traffic into established accounts that also carry their ordinary
  customers' traffic (a few to a few tens of percent extraction, from a day in the window on);
- F, a hydra of *paraphrased and multilingual elicitation*: proxy/hosting infrastructure and shared
  payment pools like the labelled campaigns, but prompts the English phrase lists do not match;
- G, a *late hydra*: D's or F's tactics (a coin flip per seed, with its own sizes, rates, phrasings and
  infrastructure), starting 78-88% of the way through the window (LATE_START; its accounts sign up at most a day
  earlier), after the day the detection benchmark trains on. Every other campaign is active before that day, so
  G is the one whose detection latency (days from its first request to its first account at >= high) can be
  measured below the train day;

benign look-alikes (hard negatives):
- judge_harness: evaluation harnesses that use a model as a judge (rubric-like prompts at volume);
- education_cohort: students of an institution who share its payment method and its campus NAT address,
  often signed up together in the window (young accounts);
- mobile_nat: ordinary users behind a mobile carrier's NAT (a few prefixes shared by very many accounts);
- early_adopter: developers who move most of their traffic to a new model on release day;
- batch pipelines (the classic segment, with a per-seed share and volume).

Everything that could be memorised is drawn per seed from `draw_plan`: sizes, rates, start days, language
mixes, template spaces, infrastructure (countries, prefix counts, NAT pools), timing jitter. Per-account draws
then come from the population builder's generator, after the classic population, so a classic lake of the
same seed is unchanged by this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from simulator import world
from simulator.population import (
    _NEVER,
    COUNTRIES,
    DAY_US,
    HOUR_US,
    N_SLOTS,
    N_SYSTEM_PROMPT_POOL,
    SEGMENTS,
    Behaviour,
    PopulationBuilder,
    Segment,
    _behaviour_profile,
    _choice,
    _hex_list,
    _ua_pick,
)
from simulator.prompts import LANGUAGES, LATIN_SCRIPT_LANGUAGES
from simulator.world import ALL_COUNTRY_INDEX, CATEGORY_INDEX

LOW_SLOW_HYDRA = "low_slow_hydra"
RESELLER_MIXED = "reseller_mixed"
PARAPHRASE_MULTILINGUAL = "paraphrase_multilingual"
LATE_HYDRA = "late_hydra"
# campaign id -> archetype, for the campaigns this scenario adds
UNLABELLED_CAMPAIGNS = {"D": LOW_SLOW_HYDRA, "E": RESELLER_MIXED, "F": PARAPHRASE_MULTILINGUAL, "G": LATE_HYDRA}
# G starts between these fractions of the window (module docstring); its accounts sign up at most a day earlier
LATE_START = (0.78, 0.88)
LOOKALIKE_SEGMENTS = ("judge_harness", "education_cohort", "mobile_nat", "early_adopter")

_PROXY_HOME_COUNTRIES = ("US", "GB", "DE", "CA", "FR", "AU", "BR", "JP", "IN", "NL", "ES", "MX")


@dataclass
class ExtendedPlan:
    """Per-seed knobs of the extended scenario; `add_to` builds its accounts into a population builder."""

    rng: np.random.Generator  # per-seed knobs only; per-account draws use the builder's generator
    days: int
    classic_segments: tuple[Segment, ...]
    benign_languages: dict[str, tuple[str, float]]
    lookalikes: list[tuple[Segment, int]]
    low_slow: dict
    reseller: dict
    paraphrase: dict
    late: dict
    counts: dict[str, int] = field(default_factory=dict)  # campaign id -> accounts, replacements included

    @property
    def accounts(self) -> int:
        """Accounts taken out of the classic benign population (campaign D's replacements come on top)."""
        return (
            sum(n for _, n in self.lookalikes)
            + self.low_slow["initial"]
            + self.reseller["n"]
            + self.paraphrase["initial"]
            + self.late["initial"]
        )

    def add_to(self, builder: PopulationBuilder) -> None:
        for segment, n in self.lookalikes:
            add_lookalike(builder, segment, n, self)
        self.counts["D"] = add_unlabelled_hydras(builder, "D", LOW_SLOW_HYDRA, self.low_slow)
        self.counts["F"] = add_unlabelled_hydras(builder, "F", PARAPHRASE_MULTILINGUAL, self.paraphrase)
        self.counts["E"] = add_mixing_resellers(builder, self.reseller)
        # last, so every account drawn before it is the same as without it
        self.counts["G"] = add_unlabelled_hydras(builder, "G", LATE_HYDRA, self.late)
        builder.campaign_counts.update(self.counts)


def uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """One float drawn uniformly from [low, high) (a plain float, not a numpy scalar)."""
    return float(rng.uniform(low, high))


def _mix(rng: np.random.Generator, weights: dict[str, float], concentration: float = 20.0) -> dict[str, float]:
    """A per-seed perturbation of a weight dict (Dirichlet around it)."""
    keys = list(weights)
    mean = np.array([weights[k] for k in keys], dtype=float)
    draw = rng.dirichlet(mean / mean.sum() * concentration)
    return {k: float(max(v, 1e-3)) for k, v in zip(keys, draw, strict=True)}


def draw_plan(seed: int, accounts: int, days: int) -> ExtendedPlan:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xE7E]))
    classic = tuple(
        replace(
            s,
            share=s.share * uniform(rng, 1.0, 2.5),
            behaviour=replace(s.behaviour, rate=s.behaviour.rate * uniform(rng, 0.6, 2.0)),
        )
        if s.behaviour.name == "batch_pipeline"
        else s
        for s in SEGMENTS
    )
    latin = list(LATIN_SCRIPT_LANGUAGES)
    benign_languages = {
        "ES": ("es", uniform(rng, 0.3, 0.8)),
        "MX": ("es", uniform(rng, 0.3, 0.8)),
        "BR": ("pt", uniform(rng, 0.3, 0.8)),
        "DE": ("de", uniform(rng, 0.1, 0.5)),
        "FR": ("fr", uniform(rng, 0.1, 0.5)),
    }

    judge = Segment(
        Behaviour(
            "judge_harness",
            rate=uniform(rng, 120, 400),
            rate_sigma=0.7,
            active_prob=0.9,
            weekend_factor=0.8,
            timing="runs",
            runs=(1, 4),
            intra=("stepped", uniform(rng, 0.2, 1.0), uniform(rng, 2, 6)),
            families=_mix(rng, {"rubric_grade": 0.5, "eval_grading": 0.3, "cot_elicit": 0.1, "reasoning": 0.1}),
            family_alpha=6,
            templated_prob=uniform(rng, 0.85, 0.99),
            template_space=int(rng.integers(20, 150)),
            ua={"sdk_py": 0.85, "raw": 0.15},
            ua_secondary_prob=0.1,
            stream_prob=0.02,
            batch_prob=uniform(rng, 0, 0.5),
            models={"claude-sonnet-4": 0.4, "claude-opus-4": 0.4, "claude-haiku-4-5": 0.2},
            adopt_prob=0.7,
            adopt_delay_h=(1, 24),
            adopt_share=(0.3, 0.7),
            max_tokens=(512, 1024, 2048),
            saturate_prob=0.03,
            in_scale=1.5,
            out_scale=0.6,
            system_none_prob=0.1,
            network=_mix(rng, {"hosting": 0.7, "business": 0.3}),
        ),
        share=0,
        hard_negative=True,
        programs={"enterprise": 0.4, "research": 0.3, "standard": 0.3},
        verification={"card": 0.5, "kyc": 0.5},
        grouping="org",
    )
    cohort = Segment(
        Behaviour(
            "education_cohort",
            rate=uniform(rng, 4, 12),
            rate_sigma=0.8,
            active_prob=0.6,
            weekend_factor=0.8,
            timing="sessions",
            pmf="evening",
            per_session=5,
            intra=("uniform", 120, 2400),
            families=_mix(
                rng,
                {
                    "student": 0.45,
                    "reasoning": 0.15,
                    "cot_soft": 0.05,
                    "cot_elicit": 0.05,
                    "coding": 0.15,
                    "writing": 0.15,
                },
            ),
            family_alpha=3,
            templated_prob=uniform(rng, 0.2, 0.5),
            template_space=int(rng.integers(20, 80)),
            ua={"browser": 0.6, "sdk_py": 0.2, "sdk_ts": 0.2},
            stream_prob=0.8,
            models={"claude-sonnet-4": 0.5, "claude-haiku-4-5": 0.5},
            adopt_prob=0.3,
            rate_limit_prob=0.01,
            system_none_prob=0.4,
            network={"education": 1.0},
        ),
        share=0,
        hard_negative=True,
        programs={"education": 1.0},
        verification={"email": 0.6, "none": 0.3, "card": 0.1},
        grouping="cohort",
    )
    mobile = Segment(
        Behaviour(
            "mobile_nat",
            rate=uniform(rng, 2, 5),
            rate_sigma=0.8,
            active_prob=0.5,
            weekend_factor=1.1,
            timing="sessions",
            per_session=3,
            intra=("uniform", 60, 1800),
            families={"chat": 0.5, "writing": 0.2, "student": 0.1, "reasoning": 0.05, "vision": 0.1, "tool_use": 0.05},
            family_alpha=3,
            ua={"browser": 0.75, "sdk_ts": 0.15, "raw": 0.1},
            stream_prob=0.9,
            models={"claude-sonnet-4": 0.6, "claude-haiku-4-5": 0.4},
            adopt_prob=0.3,
            adopt_delay_h=(6, 96),
            system_none_prob=0.7,
            network={"mobile": 1.0},
        ),
        share=0,
        hard_negative=True,
        programs={"standard": 1.0},
        verification={"email": 0.5, "card": 0.5},
        grouping="carrier_nat",
    )
    early = Segment(
        Behaviour(
            "early_adopter",
            rate=uniform(rng, 15, 50),
            rate_sigma=0.8,
            active_prob=0.8,
            weekend_factor=0.7,
            timing="sessions",
            pmf="work",
            per_session=10,
            intra=("stepped", 5, 60),
            families=_mix(
                rng,
                {
                    "coding": 0.25,
                    "coding_agent": 0.2,
                    "reasoning": 0.2,
                    "agentic": 0.15,
                    "cot_elicit": 0.05,
                    "chat": 0.15,
                },
            ),
            family_alpha=3,
            templated_prob=0.1,
            template_space=20,
            ua={"sdk_py": 0.5, "sdk_ts": 0.4, "raw": 0.1},
            stream_prob=0.6,
            models={"claude-opus-4": 0.5, "claude-sonnet-4": 0.5},
            adopt_prob=1.0,
            adopt_delay_h=(0.1, uniform(rng, 4, 12)),
            adopt_share=(0.6, 0.95),
            max_tokens=(8192, 16000, 32000),
            saturate_prob=0.05,
            network={"residential": 0.4, "business": 0.4, "hosting": 0.2},
        ),
        share=0,
        hard_negative=True,
        programs={"standard": 0.7, "startup": 0.3},
        verification={"card": 0.8, "kyc": 0.2},
    )
    lookalikes = [
        (judge, uniform(rng, 0.006, 0.012)),
        (cohort, uniform(rng, 0.02, 0.04)),
        (mobile, uniform(rng, 0.04, 0.08)),
        (early, uniform(rng, 0.01, 0.02)),
    ]
    lookalikes = [(s, max(8, round(share * accounts))) for s, share in lookalikes]

    def languages(k: int) -> dict[str, float]:
        chosen = rng.choice(latin + ["zh", "ja"], size=k, replace=False)
        return {str(c): float(w) for c, w in zip(chosen, rng.dirichlet(np.ones(k)), strict=True)}

    low_slow_behaviour = Behaviour(
        "campaign_d_low_slow",
        rate=uniform(rng, 3, 9),
        rate_sigma=0.5,
        active_prob=uniform(rng, 0.5, 0.85),
        weekend_factor=1.0,
        timing="waves",
        families=_mix(
            rng,
            {"cot_soft": 0.45, "reasoning": 0.2, "student": 0.1, "coding": 0.15, "cot_elicit": 0.05, "writing": 0.05},
        ),
        family_alpha=20,
        templated_prob=uniform(rng, 0.25, 0.6),
        template_space=int(rng.integers(30, 150)),
        ua={},
        ua_secondary_prob=0.2,
        stream_prob=uniform(rng, 0.3, 0.8),
        models={"claude-opus-4": 0.5, "claude-sonnet-4": 0.5},
        adopt_prob=uniform(rng, 0.3, 0.9),
        adopt_delay_h=(6, 72),
        adopt_share=(0.3, 0.6),
        max_tokens=(4096, 8192, 16000),
        saturate_prob=uniform(rng, 0.05, 0.2),
        in_scale=0.6,
        out_scale=1.3,
        rate_limit_prob=0.01,
        system_none_prob=0.5,
        network={"residential": 1.0},
    )
    initial = max(20, round(uniform(rng, 0.015, 0.03) * accounts))
    low_slow = dict(
        behaviour=low_slow_behaviour,
        initial=initial,
        hydras=int(rng.integers(1, 4)),
        start_day=uniform(rng, 0.1, 0.5) * days,
        lifetime_days=(uniform(rng, 3, 5), uniform(rng, 8, 14)),
        languages=languages(int(rng.integers(2, 4))),
        non_english_prob=uniform(rng, 0.1, 0.35),
        home_countries=int(rng.integers(2, 6)),
        prefixes_per_country=(5, int(rng.integers(10, 30))),
        payment="unique",
        lag_s=uniform(rng, 600, 3600),
        interval_s=(20, 120),
        signup_lead_days=(0.2, 3),
        verification={"email": 0.5, "card": 0.4, "none": 0.1},
        programs={"standard": 0.7, "startup": 0.15, "education": 0.15},
    )
    paraphrase_behaviour = Behaviour(
        "campaign_f_paraphrase",
        rate=uniform(rng, 12, 30),
        rate_sigma=0.5,
        active_prob=0.9,
        weekend_factor=1.0,
        timing="waves",
        families=_mix(rng, {"cot_soft": 0.45, "reasoning": 0.2, "coding": 0.15, "agentic": 0.1, "rubric_grade": 0.1}),
        family_alpha=30,
        templated_prob=uniform(rng, 0.5, 0.85),
        template_space=int(rng.integers(15, 60)),
        ua={},
        ua_secondary_prob=0.4,
        stream_prob=0.1,
        models={"claude-opus-4": 0.6, "claude-sonnet-4": 0.4},
        adopt_prob=uniform(rng, 0.4, 1.0),
        adopt_delay_h=(2, 48),
        adopt_share=(0.3, 0.6),
        max_tokens=(8192, 16000),
        saturate_prob=uniform(rng, 0.1, 0.3),
        in_scale=0.4,
        out_scale=1.4,
        rate_limit_prob=0.05,
        system_none_prob=0.15,
        network=_mix(rng, {"proxy": 0.5, "hosting": 0.3, "residential": 0.2}, 5.0),
    )
    paraphrase = dict(
        behaviour=paraphrase_behaviour,
        initial=max(12, round(uniform(rng, 0.008, 0.02) * accounts)),
        hydras=int(rng.integers(1, 3)),
        start_day=uniform(rng, 0.0, 0.5) * days,
        lifetime_days=(days, 2 * days),
        languages=languages(int(rng.integers(2, 5))),
        non_english_prob=uniform(rng, 0.3, 0.7),
        home_countries=int(rng.integers(2, 5)),
        prefixes_per_country=(3, int(rng.integers(4, 9))),
        payment="pool",
        lag_s=uniform(rng, 20, 300),
        interval_s=(4, 12),
        signup_lead_days=(0.2, 3),
        verification={"none": 0.3, "email": 0.5, "card": 0.2},
        programs={"standard": 0.4, "education": 0.25, "research": 0.15, "startup": 0.2},
    )
    reseller_customers = Behaviour(
        "reseller_e_customers",
        rate=uniform(rng, 150, 600),
        rate_sigma=0.4,
        active_prob=1.0,
        weekend_factor=0.9,
        timing="sessions",
        per_session=1,
        intra=("uniform", 0, 1),
        families=_mix(
            rng, {"chat": 0.3, "coding": 0.3, "writing": 0.15, "tool_use": 0.1, "agentic": 0.1, "vision": 0.05}
        ),
        family_alpha=50,
        templated_prob=0.05,
        template_space=200,
        ua={"raw": 0.5, "sdk_py": 0.5},
        ua_secondary_prob=0.5,
        stream_prob=0.5,
        models={"claude-sonnet-4": 0.5, "claude-opus-4": 0.2, "claude-haiku-4-5": 0.3},
        adopt_prob=1.0,
        adopt_delay_h=(4, 48),
        adopt_share=(0.2, 0.4),
        system_none_prob=0.2,
        network={"hosting": 1.0},
    )
    reseller_extraction = Behaviour(
        "reseller_e_extraction",
        rate=1.0,
        rate_sigma=0.0,
        active_prob=1.0,
        weekend_factor=1.0,
        timing="sessions",
        pmf="business_247",
        per_session=1,
        intra=("uniform", 0, 1),
        families=_mix(
            rng,
            {
                "cot_soft": 0.3,
                "cot_elicit": 0.2,
                "rubric_grade": 0.15,
                "coding_agent": 0.15,
                "agentic": 0.1,
                "reasoning": 0.1,
            },
        ),
        family_alpha=30,
        templated_prob=uniform(rng, 0.4, 0.8),
        template_space=int(rng.integers(20, 80)),
        ua={"raw": 0.5, "sdk_py": 0.5},
        ua_secondary_prob=0.5,
        stream_prob=0.2,
        models={"claude-opus-4": 0.7, "claude-sonnet-4": 0.3},
        adopt_prob=1.0,
        adopt_delay_h=(2, 24),
        adopt_share=(0.3, 0.6),
        max_tokens=(8192, 16000, 32000),
        saturate_prob=0.25,
        in_scale=0.5,
        out_scale=1.4,
        system_none_prob=0.2,
        network={"hosting": 1.0},
    )
    reseller = dict(
        customers=reseller_customers,
        extraction=reseller_extraction,
        n=max(2, round(uniform(rng, 0.0008, 0.002) * accounts)),
        extraction_share=(0.05, uniform(rng, 0.2, 0.4)),
        languages=languages(2),
        non_english_prob=uniform(rng, 0.05, 0.3),
        mixing_from_day=(0.0, 0.5 * days),
    )
    low_and_slow = rng.random() < 0.5
    late = _late_hydra(
        rng, low_slow_behaviour if low_and_slow else paraphrase_behaviour, low_and_slow, accounts, days, languages
    )
    return ExtendedPlan(
        rng=rng,
        days=days,
        classic_segments=classic,
        benign_languages=benign_languages,
        lookalikes=lookalikes,
        low_slow=low_slow,
        reseller=reseller,
        paraphrase=paraphrase,
        late=late,
    )


def _late_hydra(
    rng: np.random.Generator,
    tactics: Behaviour,
    low_and_slow: bool,
    accounts: int,
    days: int,
    draw_languages: Callable[[int], dict[str, float]],
) -> dict:
    """G: a hydra with D's (`low_and_slow`) or F's tactics, redrawn where a seed would otherwise repeat them, whose
    first generation starts in the window's last quarter (LATE_START)."""
    behaviour = replace(
        tactics,
        name="campaign_g_late",
        rate=tactics.rate * uniform(rng, 0.7, 1.5),
        families=_mix(rng, tactics.families),
        template_space=int(rng.integers(20, 150)),
        templated_prob=uniform(rng, 0.25, 0.8),
    )
    languages = draw_languages(2)
    return dict(
        behaviour=behaviour,
        initial=max(20, round(uniform(rng, 0.008, 0.02) * accounts)),
        hydras=int(rng.integers(1, 3)),
        start_day=uniform(rng, *LATE_START) * days,
        lifetime_days=(uniform(rng, 3, 5), uniform(rng, 8, 14)) if low_and_slow else (days, 2 * days),
        languages=languages,
        non_english_prob=uniform(rng, 0.1, 0.5),
        home_countries=int(rng.integers(2, 5)),
        prefixes_per_country=(3, int(rng.integers(5, 20))),
        payment="unique" if low_and_slow else "pool",
        lag_s=uniform(rng, 20, 3600),
        interval_s=(20, 120) if low_and_slow else (4, 12),
        # signed up at most a day before the start, so no request comes before the window's last quarter
        signup_lead_days=(0.2, 1.0),
        verification={"email": 0.5, "card": 0.3, "none": 0.2},
        programs={"standard": 0.7, "startup": 0.2, "education": 0.1},
    )


# --- benign look-alikes ---------------------------------------------------------------------------------------


def add_lookalike(builder: PopulationBuilder, segment: Segment, n: int, plan: ExtendedPlan) -> None:
    rng, network = builder.rng, builder.network
    registry: dict[str, np.ndarray] = {}
    slots: dict[str, np.ndarray] = {}
    if segment.grouping == "cohort":
        # institutions of 15-120 students: one card, one org, one country, one campus NAT address (a fixed
        # host in an education prefix); most cohorts sign up together, some during the window
        country = np.empty(n, dtype=object)
        created = np.empty(n, dtype=np.int64)
        payment = np.empty(n, dtype=object)
        org = np.empty(n, dtype=object)
        salt = np.empty(n, dtype=np.int64)
        prefix = np.empty((n, N_SLOTS), dtype=np.int32)
        host = np.empty((n, N_SLOTS), dtype=np.int16)
        weights = {c[0]: c[1] for c in COUNTRIES}
        k = 0
        while k < n:
            size = min(n - k, int(rng.integers(15, 121)))
            rows = slice(k, k + size)
            country[rows] = _choice(rng, weights, 1)[0]
            intake = (
                builder.start_us + rng.uniform(-0.2, 0.7) * (builder.end_us - builder.start_us)
                if rng.random() < 0.6
                else builder.start_us - rng.uniform(10, 200) * DAY_US
            )
            created[rows] = (intake + rng.uniform(0, 3, size) * DAY_US).astype(np.int64)
            payment[rows] = _hex_list(rng, 1, 10, "pf_")[0]
            org[rows] = _hex_list(rng, 1, 6, "org_")[0]
            salt[rows] = int(rng.integers(1, 2**40))
            campus = network.pick(rng, "education", country[k])
            home = network.pick(rng, "residential", country[k])
            prefix[rows] = [campus, campus, home]  # on campus most of the time, sometimes from home
            host[rows] = [int(rng.integers(2, 255))] * 2 + [int(rng.integers(2, 255))]
            k += size
        created = np.minimum(created, builder.end_us - 6 * HOUR_US)
        registry = dict(country=country, created_us=created, payment=payment, org=org, template_salt=salt)
        slots = dict(slot_prefix=prefix, slot_host=host)
    elif segment.grouping == "carrier_nat":
        # a handful of carrier-grade NAT prefixes per country carry every mobile user of that carrier
        weights = {c[0]: c[1] for c in COUNTRIES}
        country = _choice(rng, weights, n)
        pools = {
            c: _category_prefixes(rng, network, "mobile", c, int(plan.rng.integers(2, 5)))
            for c in np.unique(country.astype(str))
        }
        prefix = np.stack([pools[c][rng.integers(0, len(pools[c]), N_SLOTS)] for c in country]).astype(np.int32)
        registry = dict(country=country)
        slots = dict(slot_prefix=prefix, slot_host=np.full((n, N_SLOTS), -1, np.int16))
    # "org" segments (judges) share an org and a card per team, as the classic org segments do; cohorts and
    # carrier NAT users got their registry and network above
    builder.add_benign_segment(
        replace(segment, grouping="org" if segment.grouping == "org" else "own"),
        n,
        languages=plan.benign_languages,
        registry=registry,
        network=slots,
    )


def _category_prefixes(
    rng: np.random.Generator, network: world.Network, category: str, country: str, k: int
) -> np.ndarray:
    pool = network.by_category_country.get((CATEGORY_INDEX[category], ALL_COUNTRY_INDEX.get(country, -1)))
    if pool is None or not len(pool):
        pool = network.by_category[CATEGORY_INDEX[category]]
    return rng.choice(pool, size=min(k, len(pool)), replace=False)


# --- campaigns that are never labelled ------------------------------------------------------------------------


def add_unlabelled_hydras(builder: PopulationBuilder, campaign_id: str, archetype: str, spec: dict) -> int:
    """Hydras that start on `start_day`, create accounts through the rest of the window and abandon each after
    its lifetime; nobody ever labels or bans them."""
    rng, b = builder.rng, spec["behaviour"]
    salt = int(rng.integers(1, 2**31))
    system_prompts = rng.integers(0, N_SYSTEM_PROMPT_POOL, 3)
    start = builder.start_us + int(spec["start_day"] * DAY_US)
    total = 0
    sizes = np.diff(np.linspace(0, spec["initial"], spec["hydras"] + 1).round().astype(int))
    for size in sizes:
        hydra_id = len(builder.hydra_campaign)
        builder.hydra_campaign.append(campaign_id)
        builder.hydra_interval.append(float(rng.uniform(*spec["interval_s"])))
        homes = rng.choice(_PROXY_HOME_COUNTRIES, size=spec["home_countries"], replace=False).astype(object)
        categories = list(b.network)
        rented = {
            c: np.concatenate(
                [
                    _category_prefixes(rng, builder.network, cat, c, int(rng.integers(*spec["prefixes_per_country"])))
                    for cat in categories
                ]
            )
            for c in homes
        }
        pay_pool = _hex_list(rng, max(2, size // 6), 10, "pf_")
        user_agents = np.concatenate([_ua_pick(rng, {"browser": 1}, 2), _ua_pick(rng, {"sdk_py": 1, "raw": 1}, 2)])
        # the first generation exists at the campaign's start; each abandoned account is replaced within hours
        pending = (start - rng.uniform(*spec["signup_lead_days"], size) * DAY_US).astype(np.int64)
        while len(pending):
            m = len(pending)
            lifetime = (rng.uniform(*spec["lifetime_days"], m) * DAY_US).astype(np.int64)
            first_use = pending + (rng.uniform(0.5, 12, m) * HOUR_US).astype(np.int64)
            until = first_use + lifetime
            signup = homes[rng.integers(0, len(homes), m)]
            if spec["payment"] == "unique":
                payment = np.array(_hex_list(rng, m, 10, "pf_"), dtype=object)
            else:
                payment = np.array([pay_pool[i] for i in rng.integers(0, len(pay_pool), m)], dtype=object)
            idx = builder.rows.add(
                m,
                created_us=pending,
                signup_country=signup,
                payment=payment,
                verification=_choice(rng, spec["verification"], m),
                program=_choice(rng, spec["programs"], m),
                org=np.array(_hex_list(rng, m, 6, "org_"), dtype=object),
                segment=b.name,
                campaign_id=campaign_id,
                hydra=hydra_id,
                banned_us=None,
                campaign_share=1.0,
                archetype=archetype,
            )
            profile = _behaviour_profile(rng, b, m, signup, builder.network, builder.release_us)
            profile["slot_prefix"] = np.stack(
                [rented[c][rng.integers(0, len(rented[c]), N_SLOTS)] for c in signup]
            ).astype(np.int32)
            add_hydra_profiles(
                builder, b, profile, idx, hydra_id, salt, user_agents, system_prompts, spec, first_use, until
            )
            total += m
            ends = until[until < builder.end_us - 6 * HOUR_US]
            pending = ends + (rng.uniform(1, 12, len(ends)) * HOUR_US).astype(np.int64)
    return total


def add_hydra_profiles(
    builder: PopulationBuilder,
    b: Behaviour,
    profile: dict[str, np.ndarray],
    accounts: np.ndarray,
    hydra_id: int,
    salt: int,
    user_agents: np.ndarray,
    system_prompts: np.ndarray,
    spec: dict,
    active_from: np.ndarray,
    active_until: np.ndarray,
) -> None:
    """The traffic profiles of a hydra's accounts, whose network slots (`profile["slot_prefix"]`) are already
    chosen: rotating exit nodes, the hydra's clients and system prompts, wave lags up to spec["lag_s"], prompt
    languages (spec["languages"], spec["non_english_prob"])."""
    rng, m = builder.rng, len(accounts)
    profile["slot_host"] = np.full((m, N_SLOTS), -1, np.int16)  # exit nodes rotate inside a prefix
    profile["ua"] = user_agents[rng.integers(0, len(user_agents), (m, 2))].astype(np.int32)
    profile["system_prompt"] = system_prompts[rng.integers(0, 3, (m, 3))]
    profile["lag_s"] = rng.uniform(0, spec["lag_s"], m)  # loose synchrony: wide lags inside a wave
    lang, non_english = _languages(rng, spec["languages"], spec["non_english_prob"], m)
    builder._add_profiles(
        account=accounts,
        group=np.full(m, builder.group_of(b)),
        language=lang,
        non_english_prob=non_english,
        template_salt=np.full(m, salt, np.int64),
        hydra=np.full(m, hydra_id),
        active_from_us=active_from,
        active_until_us=np.where(active_until < builder.end_us, active_until, _NEVER),
        **profile,
    )


def add_mixing_resellers(builder: PopulationBuilder, spec: dict) -> int:
    """Established accounts whose ordinary customers' traffic carries a share of extraction traffic."""
    rng = builder.rng
    n = spec["n"]
    customers, extraction = spec["customers"], spec["extraction"]
    country = _choice(rng, {"US": 0.5, "SG": 0.2, "DE": 0.1, "GB": 0.1, "JP": 0.1}, n)
    share = rng.uniform(*spec["extraction_share"], n)
    idx = builder.rows.add(
        n,
        created_us=(builder.start_us - rng.uniform(60, 900, n) * DAY_US).astype(np.int64),
        signup_country=country,
        payment=np.array(_hex_list(rng, n, 10, "pf_"), dtype=object),
        verification=_choice(rng, {"card": 0.7, "kyc": 0.3}, n),
        program=_choice(rng, {"startup": 0.5, "standard": 0.3, "enterprise": 0.2}, n),
        org=np.array(_hex_list(rng, n, 6, "org_"), dtype=object),
        segment="reseller_e",
        campaign_id="E",
        hydra=-1,
        banned_us=None,
        campaign_share=share,
        archetype=RESELLER_MIXED,
    )
    servers = _behaviour_profile(rng, customers, n, country, builder.network, builder.release_us)
    salt = int(rng.integers(1, 2**31))
    mixing_from = builder.start_us + (rng.uniform(*spec["mixing_from_day"], n) * DAY_US).astype(np.int64)
    for b, is_extraction in ((customers, False), (extraction, True)):
        profile = _behaviour_profile(rng, b, n, country, builder.network, builder.release_us)
        for key in ("slot_prefix", "slot_host", "slot_cdf", "tz_hours", "ua"):
            profile[key] = servers[key]  # one set of servers and clients: the gateway sees a single customer
        if is_extraction:
            profile["rate"] = servers["rate"] * share / (1 - share)
            lang, non_english = _languages(rng, spec["languages"], spec["non_english_prob"], n)
        else:
            profile["rate"] = servers["rate"]
            lang, non_english = np.zeros(n, np.int8), np.zeros(n, np.float32)
        builder._add_profiles(
            account=idx,
            group=np.full(n, builder.group_of(b)),
            language=lang,
            non_english_prob=non_english,
            template_salt=np.full(n, salt, np.int64) if is_extraction else idx.astype(np.int64) * 7919 + builder.seed,
            hydra=np.full(n, -1),
            active_from_us=mixing_from if is_extraction else np.full(n, builder.start_us - DAY_US),
            active_until_us=np.full(n, _NEVER),
            **profile,
        )
    return n


def _languages(
    rng: np.random.Generator, languages: dict[str, float], non_english_prob: float, n: int
) -> tuple[np.ndarray, np.ndarray]:
    keys = list(languages)
    p = np.array([languages[k] for k in keys])
    lang = np.array([LANGUAGES.index(keys[i]) for i in rng.choice(len(keys), n, p=p / p.sum())], dtype=np.int8)
    return lang, np.full(n, non_english_prob, np.float32)
