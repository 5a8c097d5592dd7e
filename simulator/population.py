"""Who sends traffic: benign segments (including hard negatives), distillation campaigns, a reseller.

The population is built once per run from the seed: accounts (the `accounts` table), ground truth,
enforcement labels, and *traffic profiles*, one per account (two for the reseller, which carries both
its own customers' traffic and a campaign's). A profile holds everything the per-day generator needs
as numpy arrays, so generating a day is vectorized over profiles and records.

Campaigns follow docs/design.md §1: hydra clusters of modest-volume accounts sharing payment fingerprints,
proxy/hosting prefixes, system prompts, templates and a synchronized wave schedule; accounts farmed
through credit programmes with weak verification; banned accounts replaced within hours.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa

from simulator import world
from simulator.prompts import FAMILIES, FAMILY_INDEX, LANGUAGES
from simulator.world import (
    ALL_COUNTRY_INDEX,
    CATEGORY_INDEX,
    COUNTRIES,
    OLD_MODELS,
    ROTATING_CATEGORIES,
    USER_AGENTS,
    Network,
    hex_tokens,
)

DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000

# local hour-of-day activity shapes
PMFS: dict[str, np.ndarray] = {
    "human": np.array(
        [0.5, 0.3, 0.2, 0.2, 0.2, 0.3, 0.8, 1.5, 2.5, 3.5, 4, 4, 3.5, 3.8, 4, 4, 3.8, 3.2, 2.8, 2.8, 3, 2.7, 1.8, 1]
    ),
    "work": np.array(
        [0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.5, 1.5, 3.5, 5, 5, 5, 4, 5, 5, 5, 4.5, 3, 1.5, 1, 0.8, 0.6, 0.4, 0.2]
    ),
    "evening": np.array(
        [0.6, 0.3, 0.1, 0.1, 0.1, 0.1, 0.3, 0.8, 1.2, 1.5, 1.5, 1.5, 2, 2.5, 3, 3.5, 4, 4, 4, 4.5, 4.5, 4, 3, 1.5]
    ),
    "business_247": np.array(
        [2, 2, 2, 2, 2, 2, 2.5, 3, 4, 4.5, 4.5, 4.5, 4.5, 4.5, 4.5, 4.5, 4, 3.5, 3, 2.5, 2.5, 2, 2, 2]
    ),
}


@dataclass(frozen=True)
class Behaviour:
    """How one kind of account sends requests (a benign segment, a campaign, or half of the reseller)."""

    name: str
    rate: float  # median requests per active day
    rate_sigma: float
    active_prob: float  # chance the account is active on a given day
    weekend_factor: float
    timing: str  # sessions (humans, agents) | runs (cron-like jobs) | waves (campaign schedule)
    families: dict[str, float]
    family_alpha: float  # Dirichlet concentration of per-account family mixes (large = uniform segment)
    pmf: str = "human"
    per_session: float = 5.0
    intra: tuple[str, float, float] = ("uniform", 300.0, 3600.0)  # uniform window | stepped gaps (seconds)
    runs: tuple[int, int] = (1, 3)
    templated_prob: float = 0.0
    template_space: int = 50
    ua: dict[str, float] = field(default_factory=lambda: {"sdk_py": 1.0})
    ua_secondary_prob: float = 0.05
    stream_prob: float = 0.5
    batch_prob: float = 0.0
    models: dict[str, float] = field(default_factory=lambda: {"claude-sonnet-4": 1.0})
    adopt_prob: float = 0.3  # chance the account starts using the newly released model
    adopt_delay_h: tuple[float, float] = (24.0, 240.0)
    adopt_share: tuple[float, float] = (0.2, 0.6)
    max_tokens: tuple[int, ...] = (1024, 2048, 4096)
    saturate_prob: float = 0.02  # responses cut at max_tokens
    in_scale: float = 1.0
    out_scale: float = 1.0
    rate_limit_prob: float = 0.01
    system_none_prob: float = 0.3
    network: dict[str, float] = field(default_factory=lambda: {"residential": 1.0})


@dataclass(frozen=True)
class Segment:
    """A benign segment: its behaviour plus how its accounts are registered."""

    behaviour: Behaviour
    share: float
    hard_negative: bool
    programs: dict[str, float]
    verification: dict[str, float]
    grouping: str = "own"  # own | org (teams share org + card) | institution (students share a card)


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    share: float  # of campaign accounts
    behaviour: Behaviour
    languages: dict[str, float]  # non-English prompt languages
    non_english_prob: float


HUMAN_UA = {"browser": 0.6, "sdk_py": 0.2, "sdk_ts": 0.15, "raw": 0.05}
ALL_OLD_EVEN = {m: 1.0 for m, _ in OLD_MODELS}

SEGMENTS: tuple[Segment, ...] = (
    Segment(
        Behaviour(
            "chat_user",
            rate=2.5,
            rate_sigma=0.8,
            active_prob=0.45,
            weekend_factor=1.0,
            timing="sessions",
            per_session=4,
            intra=("uniform", 120, 2400),
            families={
                "chat": 0.45,
                "writing": 0.22,
                "student": 0.05,
                "reasoning": 0.04,
                "coding": 0.08,
                "vision": 0.06,
                "tool_use": 0.05,
                "data_analysis": 0.05,
            },
            family_alpha=3,
            ua=HUMAN_UA,
            stream_prob=0.85,
            models={"claude-sonnet-4": 0.6, "claude-haiku-4-5": 0.2, "claude-opus-4": 0.1, "claude-3-7-sonnet": 0.1},
            adopt_prob=0.3,
            adopt_delay_h=(6, 96),
            adopt_share=(0.4, 0.9),
            max_tokens=(1024, 2048, 4096),
            rate_limit_prob=0.005,
            system_none_prob=0.7,
            network={"residential": 0.75, "mobile": 0.2, "business": 0.05},
        ),
        share=0.48,
        hard_negative=False,
        programs={"standard": 1.0},
        verification={"email": 0.4, "card": 0.55, "kyc": 0.05},
    ),
    Segment(
        Behaviour(
            "small_developer",
            rate=6,
            rate_sigma=1.0,
            active_prob=0.5,
            weekend_factor=0.6,
            timing="sessions",
            pmf="work",
            per_session=6,
            intra=("uniform", 300, 3600),
            families={
                "coding": 0.4,
                "chat": 0.15,
                "tool_use": 0.1,
                "data_analysis": 0.1,
                "writing": 0.1,
                "agentic": 0.05,
                "reasoning": 0.05,
                "vision": 0.05,
            },
            family_alpha=2,
            templated_prob=0.05,
            template_space=20,
            ua={"sdk_py": 0.5, "sdk_ts": 0.25, "raw": 0.15, "sdk_other": 0.1},
            ua_secondary_prob=0.15,
            stream_prob=0.4,
            batch_prob=0.02,
            models={"claude-sonnet-4": 0.4, "claude-haiku-4-5": 0.3, "claude-3-5-haiku": 0.15, "claude-opus-4": 0.15},
            adopt_prob=0.5,
            adopt_delay_h=(4, 200),
            adopt_share=(0.2, 0.8),
            max_tokens=(1024, 2048, 4096, 8192),
            saturate_prob=0.04,
            network={"residential": 0.55, "business": 0.3, "hosting": 0.1, "mobile": 0.05},
        ),
        share=0.22,
        hard_negative=False,
        programs={"standard": 0.88, "startup": 0.12},
        verification={"email": 0.3, "card": 0.65, "kyc": 0.05},
    ),
    Segment(
        Behaviour(
            "coding_assistant",
            rate=40,
            rate_sigma=0.7,
            active_prob=0.8,
            weekend_factor=0.5,
            timing="sessions",
            pmf="work",
            per_session=20,
            intra=("stepped", 5, 90),
            families={"coding": 0.45, "coding_agent": 0.4, "chat": 0.05, "data_analysis": 0.05, "agentic": 0.05},
            family_alpha=5,
            templated_prob=0.02,
            template_space=10,
            ua={"sdk_ts": 0.6, "sdk_py": 0.3, "raw": 0.1},
            stream_prob=0.9,
            models={"claude-sonnet-4": 0.55, "claude-opus-4": 0.35, "claude-haiku-4-5": 0.1},
            adopt_prob=0.6,
            adopt_delay_h=(2, 72),
            adopt_share=(0.3, 0.8),
            max_tokens=(8192, 16000, 32000),
            saturate_prob=0.03,
            network={"residential": 0.5, "business": 0.45, "hosting": 0.05},
        ),
        share=0.08,
        hard_negative=True,
        programs={"standard": 0.9, "startup": 0.1},
        verification={"card": 0.85, "kyc": 0.15},
    ),
    Segment(
        Behaviour(
            "eval_harness",
            rate=70,
            rate_sigma=0.8,
            active_prob=0.9,
            weekend_factor=1.0,
            timing="runs",
            runs=(1, 4),
            intra=("stepped", 0.5, 5),
            families={"eval_mcq": 0.55, "eval_grading": 0.2, "reasoning": 0.1, "coding": 0.1, "cot_elicit": 0.05},
            family_alpha=4,
            templated_prob=0.97,
            template_space=400,
            ua={"sdk_py": 0.8, "raw": 0.2},
            ua_secondary_prob=0.1,
            stream_prob=0.05,
            batch_prob=0.25,
            models=ALL_OLD_EVEN,
            adopt_prob=0.9,
            adopt_delay_h=(1, 30),
            adopt_share=(0.15, 0.35),
            max_tokens=(16, 512, 1024, 4096),
            saturate_prob=0.05,
            rate_limit_prob=0.02,
            system_none_prob=0.3,
            network={"hosting": 0.6, "business": 0.3, "education": 0.1},
        ),
        share=0.015,
        hard_negative=True,
        programs={"standard": 0.5, "enterprise": 0.3, "research": 0.2},
        verification={"card": 0.6, "kyc": 0.4},
        grouping="org",
    ),
    Segment(
        Behaviour(
            "batch_pipeline",
            rate=160,
            rate_sigma=1.1,
            active_prob=0.85,
            weekend_factor=0.7,
            timing="runs",
            runs=(1, 3),
            intra=("uniform", 1200, 5400),
            families={"batch_extract": 0.5, "batch_classify": 0.4, "writing": 0.1},
            family_alpha=10,
            templated_prob=0.95,
            template_space=30,
            ua={"sdk_py": 0.85, "raw": 0.15},
            stream_prob=0.0,
            batch_prob=0.9,
            models={"claude-haiku-4-5": 0.55, "claude-3-5-haiku": 0.35, "claude-sonnet-4": 0.1},
            adopt_prob=0.1,
            adopt_delay_h=(72, 300),
            adopt_share=(0.1, 0.3),
            max_tokens=(256, 512, 1024),
            saturate_prob=0.01,
            system_none_prob=0.05,
            network={"hosting": 0.85, "business": 0.15},
        ),
        share=0.01,
        hard_negative=True,
        programs={"standard": 0.6, "enterprise": 0.4},
        verification={"card": 0.5, "kyc": 0.5},
        grouping="org",
    ),
    Segment(
        Behaviour(
            "education",
            rate=4,
            rate_sigma=0.7,
            active_prob=0.5,
            weekend_factor=0.9,
            timing="sessions",
            pmf="evening",
            per_session=5,
            intra=("uniform", 300, 3600),
            families={"student": 0.5, "reasoning": 0.15, "chat": 0.1, "writing": 0.15, "coding": 0.1},
            family_alpha=3,
            templated_prob=0.15,
            template_space=50,
            ua={"browser": 0.5, "sdk_ts": 0.3, "sdk_py": 0.2},
            stream_prob=0.8,
            models={"claude-sonnet-4": 0.5, "claude-haiku-4-5": 0.5},
            adopt_prob=0.2,
            rate_limit_prob=0.01,
            system_none_prob=0.4,
            network={"education": 0.5, "residential": 0.35, "mobile": 0.15},
        ),
        share=0.12,
        hard_negative=True,
        programs={"education": 1.0},
        verification={"email": 0.7, "none": 0.1, "card": 0.2},
        grouping="institution",
    ),
    Segment(
        Behaviour(
            "enterprise_agent",
            rate=70,
            rate_sigma=1.0,
            active_prob=1.0,
            weekend_factor=0.9,
            timing="sessions",
            pmf="business_247",
            per_session=6,
            intra=("stepped", 2, 25),
            families={"support_agent": 0.4, "agentic": 0.35, "tool_use": 0.15, "data_analysis": 0.1},
            family_alpha=6,
            templated_prob=0.5,
            template_space=40,
            ua={"sdk_py": 0.6, "sdk_ts": 0.25, "sdk_other": 0.15},
            stream_prob=0.3,
            batch_prob=0.05,
            models={"claude-sonnet-4": 0.6, "claude-haiku-4-5": 0.3, "claude-opus-4": 0.1},
            adopt_prob=0.3,
            adopt_delay_h=(24, 300),
            adopt_share=(0.1, 0.5),
            system_none_prob=0.0,
            network={"hosting": 0.9, "business": 0.1},
        ),
        share=0.02,
        hard_negative=True,
        programs={"enterprise": 0.85, "standard": 0.15},
        verification={"kyc": 0.8, "card": 0.2},
        grouping="org",
    ),
    Segment(
        Behaviour(
            "research_lab",
            rate=25,
            rate_sigma=1.0,
            active_prob=0.7,
            weekend_factor=0.6,
            timing="sessions",
            pmf="work",
            per_session=15,
            intra=("stepped", 2, 30),
            families={
                "reasoning": 0.3,
                "cot_elicit": 0.15,
                "rubric_grade": 0.15,
                "eval_grading": 0.1,
                "student": 0.05,
                "coding": 0.15,
                "writing": 0.1,
            },
            family_alpha=3,
            templated_prob=0.4,
            template_space=60,
            ua={"sdk_py": 0.8, "raw": 0.2},
            stream_prob=0.1,
            batch_prob=0.2,
            models={"claude-opus-4": 0.5, "claude-sonnet-4": 0.4, "claude-haiku-4-5": 0.1},
            adopt_prob=0.7,
            adopt_delay_h=(2, 48),
            adopt_share=(0.3, 0.7),
            max_tokens=(4096, 8192, 16000),
            saturate_prob=0.1,
            network={"education": 0.6, "hosting": 0.3, "business": 0.1},
        ),
        share=0.015,
        hard_negative=True,
        programs={"research": 0.8, "standard": 0.2},
        verification={"email": 0.4, "card": 0.4, "kyc": 0.2},
    ),
    Segment(
        Behaviour(
            "startup_app",
            rate=35,
            rate_sigma=1.1,
            active_prob=0.9,
            weekend_factor=0.85,
            timing="sessions",
            pmf="human",
            per_session=1,
            intra=("uniform", 0, 1),
            families={
                "chat": 0.35,
                "writing": 0.2,
                "tool_use": 0.15,
                "coding": 0.1,
                "vision": 0.1,
                "data_analysis": 0.1,
            },
            family_alpha=2,
            templated_prob=0.35,
            template_space=25,
            ua={"sdk_ts": 0.5, "sdk_py": 0.4, "raw": 0.1},
            stream_prob=0.6,
            models={"claude-haiku-4-5": 0.5, "claude-sonnet-4": 0.5},
            adopt_prob=0.35,
            adopt_delay_h=(12, 200),
            system_none_prob=0.05,
            network={"hosting": 0.95, "business": 0.05},
        ),
        share=0.025,
        hard_negative=True,
        programs={"startup": 0.8, "standard": 0.2},
        verification={"card": 0.8, "email": 0.2},
    ),
)
SEGMENT_NAMES = tuple(s.behaviour.name for s in SEGMENTS)

RESELLER_BENIGN = Behaviour(
    "reseller",
    rate=500,
    rate_sigma=0.3,
    active_prob=1.0,
    weekend_factor=0.9,
    timing="sessions",
    per_session=1,
    intra=("uniform", 0, 1),
    families={"chat": 0.3, "coding": 0.3, "writing": 0.15, "tool_use": 0.1, "agentic": 0.1, "vision": 0.05},
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

_CAMPAIGN_COMMON = dict(
    rate_sigma=0.5,
    active_prob=0.95,
    weekend_factor=1.0,
    timing="waves",
    family_alpha=30,
    ua={},
    ua_secondary_prob=0.4,
    stream_prob=0.1,
    in_scale=0.35,
    out_scale=1.4,
    rate_limit_prob=0.05,
    system_none_prob=0.15,
    network={"proxy": 0.7, "hosting": 0.3},
)

CAMPAIGNS: tuple[Campaign, ...] = (
    Campaign(
        "A",
        0.15,
        Behaviour(
            "campaign_a",
            rate=18,
            families={"cot_elicit": 0.5, "rubric_grade": 0.3, "policy_rewrite": 0.15, "reasoning": 0.05},
            templated_prob=0.85,
            template_space=12,
            models={"claude-opus-4": 0.7, "claude-sonnet-4": 0.3},
            adopt_prob=0.5,
            adopt_delay_h=(48, 120),
            adopt_share=(0.2, 0.4),
            max_tokens=(8192, 16000, 32000),
            saturate_prob=0.3,
            **_CAMPAIGN_COMMON,
        ),
        languages={"zh": 1.0},
        non_english_prob=0.3,
    ),
    Campaign(
        "B",
        0.35,
        Behaviour(
            "campaign_b",
            rate=24,
            families={
                "agentic": 0.25,
                "tool_use": 0.15,
                "coding": 0.2,
                "data_analysis": 0.15,
                "vision": 0.15,
                "reasoning": 0.1,
            },
            templated_prob=0.8,
            template_space=16,
            models={"claude-sonnet-4": 0.5, "claude-opus-4": 0.5},
            adopt_prob=0.5,
            adopt_delay_h=(24, 96),
            adopt_share=(0.2, 0.4),
            max_tokens=(8192, 16000),
            saturate_prob=0.25,
            **_CAMPAIGN_COMMON,
        ),
        languages={"zh": 1.0},
        non_english_prob=0.2,
    ),
    Campaign(
        "C",
        0.50,
        Behaviour(
            "campaign_c",
            rate=28,
            families={"coding_agent": 0.55, "agentic": 0.25, "coding": 0.15, "tool_use": 0.05},
            templated_prob=0.85,
            template_space=14,
            models={"claude-opus-4": 0.6, "claude-sonnet-4": 0.4},
            adopt_prob=1.0,
            adopt_delay_h=(1, 12),
            adopt_share=(0.45, 0.6),
            max_tokens=(16000, 32000),
            saturate_prob=0.3,
            **_CAMPAIGN_COMMON,
        ),
        languages={"ru": 0.5, "zh": 0.5},
        non_english_prob=0.12,
    ),
)
CAMPAIGN_IDS = tuple(c.campaign_id for c in CAMPAIGNS)
RESELLER_CAMPAIGN = "B"  # the campaign whose traffic the reseller mixes into its own customers'
RESELLER_CAMPAIGN_BEHAVIOUR = replace(
    CAMPAIGNS[CAMPAIGN_IDS.index(RESELLER_CAMPAIGN)].behaviour,
    name="reseller_campaign_b",
    rate=260,
    rate_sigma=0.3,
    active_prob=1.0,
)

# traffic groups in generation order; a profile's group indexes this tuple
GROUPS: tuple[Behaviour, ...] = (
    *(s.behaviour for s in SEGMENTS),
    RESELLER_BENIGN,
    *(c.behaviour for c in CAMPAIGNS),
    RESELLER_CAMPAIGN_BEHAVIOUR,
)

# ground truth archetypes of campaign accounts
LABELLED_HYDRA = "labelled_hydra"
RESELLER_MIXED = "reseller_mixed"

CAMPAIGN_ACCOUNT_SHARE = 0.04
MIN_CAMPAIGN_ACCOUNTS = 6
HYDRA_TARGET_SIZE = 25
DETECTION_PROB = 0.45  # chance a campaign account is ever labelled (others stay for evaluation)
BENIGN_LABEL_SHARE = 0.015
N_SLOTS = 3  # network slots per profile
N_SYSTEM_PROMPT_POOL = 4096
_NEVER = np.iinfo(np.int64).max
_US = [c[0] for c in COUNTRIES].index("US")
COUNTRY_CODES_INDEX = {c[0]: i for i, c in enumerate(COUNTRIES)}


@dataclass
class Profiles:
    """Per-profile arrays (one row per traffic profile)."""

    account: np.ndarray
    group: np.ndarray
    rate: np.ndarray
    tz_hours: np.ndarray
    family_cdf: np.ndarray  # (P, n English families) float32
    language: np.ndarray  # index into LANGUAGES
    non_english_prob: np.ndarray
    template_salt: np.ndarray
    slot_prefix: np.ndarray  # (P, N_SLOTS) prefix id
    slot_cdf: np.ndarray  # (P, N_SLOTS)
    slot_host: np.ndarray  # (P, N_SLOTS) fixed host octet, or -1 for a rotating address
    ua: np.ndarray  # (P, 2) primary, secondary index into UA_STRINGS
    system_prompt: np.ndarray  # (P, 3) index into the system prompt pool
    model_cdf: np.ndarray  # (P, n old models)
    adopt_after_us: np.ndarray  # absolute time the new model enters use; int64 max = never
    adopt_share: np.ndarray
    run_start_s: np.ndarray  # (P, 4) seconds of day of cron runs
    runs: np.ndarray
    interval_s: np.ndarray
    hydra: np.ndarray  # -1 for non-campaign profiles
    lag_s: np.ndarray  # per-account offset inside a campaign wave
    active_from_us: np.ndarray
    active_until_us: np.ndarray

    def __len__(self) -> int:
        return len(self.account)


@dataclass
class Population:
    account_ids: pa.Array
    org_ids: pa.Array
    api_key_ids: pa.Array  # 3 per account: index account * 3 + k
    n_keys: np.ndarray
    system_prompts: pa.Array
    groups: tuple[Behaviour, ...]  # traffic groups; a profile's group indexes this tuple
    accounts: pa.Table
    ground_truth: pa.Table
    labels: pa.Table
    profiles: Profiles
    hydra_campaign: np.ndarray  # campaign id per hydra
    hydra_interval_s: np.ndarray
    network: Network
    segment_counts: dict[str, int]
    campaign_counts: dict[str, int]

    @property
    def n_accounts(self) -> int:
        return len(self.account_ids)


def _choice(rng: np.random.Generator, weights: dict[str, float], n: int) -> np.ndarray:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return np.array(keys, dtype=object)[rng.choice(len(keys), size=n, p=p / p.sum())]


def _cdf_rows(rng: np.random.Generator, mean: np.ndarray, alpha: float, n: int) -> np.ndarray:
    """n Dirichlet draws around `mean` (zeros stay zero), as row-wise cumulative sums."""
    support = mean > 0
    draws = np.zeros((n, len(mean)))
    draws[:, support] = rng.dirichlet(mean[support] / mean[support].sum() * alpha, size=n)
    cdf = np.cumsum(draws, axis=1)
    cdf[:, -1] = 1.0
    return cdf.astype(np.float32)


def _family_vector(families: dict[str, float]) -> np.ndarray:
    vec = np.zeros(len(FAMILIES))
    for name, weight in families.items():
        vec[FAMILY_INDEX[name]] = weight
    return vec


def _model_vector(models: dict[str, float]) -> np.ndarray:
    names = [m for m, _ in OLD_MODELS]
    vec = np.zeros(len(names))
    for name, weight in models.items():
        vec[names.index(name)] = weight
    return vec


def _ua_pick(rng: np.random.Generator, groups: dict[str, float], n: int) -> np.ndarray:
    group = _choice(rng, groups, n)
    out = np.empty(n, dtype=np.int32)
    for g in np.unique(group.astype(str)):  # sorted: set order of str changes with PYTHONHASHSEED
        sel = group == g
        base = world.UA_STRINGS.index(USER_AGENTS[g][0])
        out[sel] = base + rng.integers(0, len(USER_AGENTS[g]), sel.sum())
    return out


def _pick_prefixes(
    rng: np.random.Generator, network: Network, categories: np.ndarray, countries: np.ndarray
) -> np.ndarray:
    """One prefix per row from (category name, ISO-2) pairs, falling back to any country of the category."""
    out = np.empty(len(categories), dtype=np.int32)
    keys = np.char.add(categories.astype(str), np.char.add("|", countries.astype(str)))
    for key in np.unique(keys):
        rows = np.flatnonzero(keys == key)
        category, country = key.split("|")
        cat = CATEGORY_INDEX[category]
        pool = network.by_category_country.get((cat, ALL_COUNTRY_INDEX.get(country, -1)))
        if pool is None or not len(pool):
            pool = network.by_category[cat]
        out[rows] = pool[rng.integers(0, len(pool), len(rows))]
    return out


def _hosts_for(rng: np.random.Generator, network: Network, prefixes: np.ndarray) -> np.ndarray:
    rotating = np.isin(network.prefix_category[prefixes], [CATEGORY_INDEX[c] for c in ROTATING_CATEGORIES])
    return np.where(rotating, -1, rng.integers(2, 255, prefixes.shape)).astype(np.int16)


class _AccountRows:
    """Accumulates account rows (registry, ground truth) while segments and campaigns are built."""

    def __init__(self) -> None:
        self.columns: dict[str, list] = {
            k: []
            for k in (
                "created_us",
                "signup_country",
                "payment",
                "verification",
                "program",
                "org",
                "segment",
                "campaign_id",
                "hydra",
                "banned_us",
                "campaign_share",
                "archetype",
            )
        }

    def add(self, n: int, **values) -> np.ndarray:
        start = len(self.columns["created_us"])
        for key, column in self.columns.items():
            value = values.get(key)
            if isinstance(value, np.ndarray | list):
                if len(value) != n:
                    raise ValueError(f"{key}: {len(value)} values for {n} accounts")
                column.extend(list(value))
            else:
                column.extend([value] * n)
        return np.arange(start, start + n)

    def __len__(self) -> int:
        return len(self.columns["created_us"])


def _hex_list(rng: np.random.Generator, n: int, n_bytes: int, prefix: str) -> list[str]:
    return [prefix + t.decode() for t in hex_tokens(rng, n, n_bytes)]


class PopulationBuilder:
    """Accumulates accounts, profiles, hydras and labels segment by segment."""

    def __init__(self, seed: int, start: dt.date, days: int) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0xACC0]))
        self.network = world.build_network(np.random.default_rng(np.random.SeedSequence([seed, 0x0A5])))
        self.start_us = int(dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC).timestamp() * 1e6)
        self.end_us = self.start_us + days * DAY_US
        self.release_us = int(world.new_model_release(start, days).timestamp() * 1e6)
        self.rows = _AccountRows()
        self.profile_parts: dict[str, list[np.ndarray]] = {}
        self.groups: list[Behaviour] = list(GROUPS)
        self.used_groups: set[int] = set()
        self.benign_segments: dict[str, bool] = {}  # benign segment name -> hard negative
        self.hydra_campaign: list[str] = []
        self.hydra_interval: list[float] = []
        self.labels: list[tuple[int, str, int, str | None, str, str]] = []  # account, label, µs, campaign, source, note
        self.campaign_counts: dict[str, int] = {}
        self.campaign_templates: dict[str, tuple[int, int, np.ndarray]] = {}  # id -> salt, first hydra, prompts

    def _add_profiles(self, **arrays: np.ndarray) -> None:
        for key, value in arrays.items():
            self.profile_parts.setdefault(key, []).append(np.asarray(value))

    def group_of(self, behaviour: Behaviour) -> int:
        """The traffic group of a behaviour, by name. The classic groups keep their positions; a scenario may
        replace one (a per-seed variant of the same segment) before any profile uses it, or add new ones."""
        for index, known in enumerate(self.groups):
            if known.name == behaviour.name:
                if known != behaviour:
                    if index in self.used_groups:
                        raise ValueError(f"two different behaviours are both named {behaviour.name!r}")
                    self.groups[index] = behaviour
                self.used_groups.add(index)
                return index
        self.groups.append(behaviour)
        self.used_groups.add(len(self.groups) - 1)
        return len(self.groups) - 1

    # --- benign segments ---------------------------------------------------------------------------

    def add_benign_segment(
        self,
        segment: Segment,
        n: int,
        languages: dict[str, tuple[str, float]] | None = None,
        registry: dict[str, np.ndarray] | None = None,
        network: dict[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Add n accounts of a benign segment; returns their row indices.

        languages: country -> (language, share of that country's users who sometimes write in it), on top of
        COUNTRIES. registry / network: per-account values that replace the drawn ones (created_us, payment,
        org, country, template_salt / slot_prefix, slot_host), for segments whose accounts are registered or
        connected in a particular way (simulator/extended.py). Replacements are applied after every draw,
        so a segment without them consumes the generator exactly as before."""
        rng, b = self.rng, segment.behaviour
        registry = registry or {}
        self.benign_segments[b.name] = segment.hard_negative
        country_w = np.array([c[1] for c in COUNTRIES])
        ci = rng.choice(len(COUNTRIES), size=n, p=country_w / country_w.sum())
        if segment.grouping == "org" or b.network.get("hosting", 0) > 0.5:
            ci = np.where(rng.random(n) < 0.5, _US, ci)  # companies running infrastructure skew to the US
        country = np.array([COUNTRIES[i][0] for i in ci], dtype=object)
        age_days = rng.exponential(300, n) + 1
        new_signup = rng.random(n) < 0.02
        window = self.end_us - self.start_us
        created = np.where(
            new_signup, self.start_us + rng.random(n) * (window - HOUR_US) * 0.8, self.start_us - age_days * DAY_US
        ).astype(np.int64)
        payment = np.array(_hex_list(rng, n, 10, "pf_"), dtype=object)
        org = np.array(_hex_list(rng, n, 6, "org_"), dtype=object)
        if segment.grouping in ("org", "institution"):
            # teams share an org and a corporate card; about half of the students study at an institution
            # that pays for them (shared fingerprint: a hard negative for payment sharing)
            in_group = np.ones(n, bool) if segment.grouping == "org" else rng.random(n) < 0.45
            size_lo, size_hi = (2, 8) if segment.grouping == "org" else (8, 60)
            members = np.flatnonzero(in_group)
            k = 0
            while k < len(members):
                grp = members[k : k + int(rng.integers(size_lo, size_hi + 1))]
                payment[grp], org[grp], country[grp] = payment[grp[0]], org[grp[0]], country[grp[0]]
                k += len(grp)
        elif b.name == "chat_user":  # a few households share a card
            pairs = np.flatnonzero(rng.random(n) < 0.03)
            payment[pairs[1::2]] = payment[pairs[0::2][: len(pairs[1::2])]]
        created = registry.get("created_us", created)
        payment, org = registry.get("payment", payment), registry.get("org", org)
        if "country" in registry:
            country = registry["country"]
            ci = np.array([COUNTRY_CODES_INDEX.get(c, _US) for c in country])
        idx = self.rows.add(
            n,
            created_us=created,
            signup_country=country,
            payment=payment,
            verification=_choice(rng, segment.verification, n),
            program=_choice(rng, segment.programs, n),
            org=org,
            segment=b.name,
            campaign_id=None,
            hydra=-1,
            banned_us=None,
            campaign_share=0.0,
            archetype=None,
        )
        lang = np.zeros(n, dtype=np.int8)
        non_en = np.zeros(n, dtype=np.float32)
        for i, c in enumerate(COUNTRIES):
            sel = ci == i
            if c[3] != "en" and sel.any():
                lang[sel] = LANGUAGES.index(c[3])
                non_en[sel] = c[4] * rng.uniform(0.3, 1.0, sel.sum())
        for code, (language, share) in (languages or {}).items():
            sel = country == code
            if sel.any():
                lang[sel] = LANGUAGES.index(language)
                non_en[sel] = share * rng.uniform(0.3, 1.0, sel.sum())
        salt = idx.astype(np.int64) * 7919 + self.seed
        if segment.grouping == "institution":  # the platform wraps student prompts in its own templates
            salt = np.array([int.from_bytes(o.encode()[-6:], "little") for o in org], dtype=np.int64)
        salt = registry.get("template_salt", salt)
        active_from = created + (rng.random(n) * 2 * HOUR_US).astype(np.int64)
        profile = _behaviour_profile(rng, b, n, country, self.network, self.release_us)
        profile.update(network or {})
        self._add_profiles(
            account=idx,
            group=np.full(n, self.group_of(b)),
            language=lang,
            non_english_prob=non_en,
            template_salt=salt,
            hydra=np.full(n, -1),
            active_from_us=active_from,
            active_until_us=np.full(n, _NEVER),
            **profile,
        )
        return idx

    # --- distillation campaigns (hydra clusters) ----------------------------------------------------

    def add_campaign(self, campaign: Campaign, n_accounts: int) -> None:
        rng = self.rng
        salt = int(rng.integers(1, 2**31))
        system_prompts = rng.integers(0, N_SYSTEM_PROMPT_POOL, 3)
        n_hydras = max(1, round(n_accounts / HYDRA_TARGET_SIZE))
        first_hydra = len(self.hydra_campaign)
        total = 0
        for h in range(n_hydras):
            size = n_accounts // n_hydras + (1 if h < n_accounts % n_hydras else 0)
            total += self._add_hydra(campaign, size, salt, system_prompts)
        self.campaign_counts[campaign.campaign_id] = total
        self.campaign_templates[campaign.campaign_id] = (salt, first_hydra, system_prompts)

    def _add_hydra(self, campaign: Campaign, size: int, salt: int, system_prompts: np.ndarray) -> int:
        """One hydra: its accounts, and the replacements for those banned during the window."""
        rng, b = self.rng, campaign.behaviour
        hydra_id = len(self.hydra_campaign)
        self.hydra_campaign.append(campaign.campaign_id)
        self.hydra_interval.append(float(rng.uniform(4, 12)))
        pay_pool = _hex_list(rng, max(2, size // 6), 10, "pf_")
        # a hydra rents a handful of proxy/hosting prefixes that all its accounts rotate through
        n_prefixes = int(rng.integers(4, 9))
        prefixes = np.unique(
            _pick_prefixes(
                rng,
                self.network,
                _choice(rng, b.network, n_prefixes),
                _choice(rng, {"US": 2, "SG": 1, "JP": 1, "DE": 1, "KR": 1, "HK": 1, "NL": 1}, n_prefixes),
            )
        )
        user_agents = np.concatenate([_ua_pick(rng, {"sdk_py": 1}, 2), _ua_pick(rng, {"raw": 1}, 2)])
        # 80% of a hydra exists when the window opens (young accounts); 20% are created during it
        pre = rng.random(size) < 0.8
        window = self.end_us - self.start_us
        pending = np.where(
            pre, self.start_us - rng.uniform(0.2, 6, size) * DAY_US, self.start_us + rng.uniform(0, 0.85, size) * window
        ).astype(np.int64)
        total = 0
        while len(pending):
            m = len(pending)
            first_use = pending + (rng.uniform(0.5, 6, m) * HOUR_US).astype(np.int64)
            detected = rng.random(m) < DETECTION_PROB
            decided = first_use + ((1.5 + rng.gamma(2.0, 1.5, m)) * DAY_US).astype(np.int64)
            # an account banned before the window would show no traffic: its ban lands early in the window
            decided = np.where(
                decided < self.start_us + 4 * HOUR_US,
                self.start_us + (rng.uniform(4, 30, m) * HOUR_US).astype(np.int64),
                decided,
            )
            banned = detected & (decided < self.end_us)
            payment = np.array([pay_pool[i] for i in rng.integers(0, len(pay_pool), m)], dtype=object)
            fresh_card = rng.random(m) < 0.15  # a new card now and then, which joins the pool
            payment[fresh_card] = _hex_list(rng, int(fresh_card.sum()), 10, "pf_")
            pay_pool.extend(payment[fresh_card].tolist())
            signup = _choice(rng, {"US": 0.35, "SG": 0.15, "GB": 0.1, "HK": 0.1, "MY": 0.1, "CA": 0.1, "AU": 0.1}, m)
            idx = self.rows.add(
                m,
                created_us=pending,
                signup_country=signup,
                payment=payment,
                verification=_choice(rng, {"none": 0.3, "email": 0.5, "card": 0.2}, m),
                program=_choice(rng, {"standard": 0.4, "education": 0.25, "research": 0.15, "startup": 0.2}, m),
                org=np.array(_hex_list(rng, m, 6, "org_"), dtype=object),
                segment=b.name,
                campaign_id=campaign.campaign_id,
                hydra=hydra_id,
                banned_us=np.where(banned, decided, -1),
                campaign_share=1.0,
                archetype=LABELLED_HYDRA,
            )
            for account, when in zip(idx[banned], decided[banned], strict=True):
                self.labels.append(
                    (
                        int(account),
                        "extraction",
                        int(when),
                        campaign.campaign_id,
                        "analyst" if rng.random() < 0.6 else "rule",
                        "hydra cluster review",
                    )
                )
            lang_keys = list(campaign.languages)
            lang = np.array(
                [
                    LANGUAGES.index(lang_keys[i])
                    for i in rng.choice(len(lang_keys), m, p=list(campaign.languages.values()))
                ],
                dtype=np.int8,
            )
            profile = _behaviour_profile(rng, b, m, signup, self.network, self.release_us)
            profile["slot_prefix"] = prefixes[rng.integers(0, len(prefixes), (m, N_SLOTS))].astype(np.int32)
            profile["slot_host"] = np.full((m, N_SLOTS), -1, np.int16)
            profile["ua"] = user_agents[rng.integers(0, len(user_agents), (m, 2))].astype(np.int32)
            profile["system_prompt"] = system_prompts[rng.integers(0, 3, (m, 3))]
            self._add_profiles(
                account=idx,
                group=np.full(m, self.group_of(b)),
                language=lang,
                non_english_prob=np.full(m, campaign.non_english_prob, np.float32),
                template_salt=np.full(m, salt, np.int64),
                hydra=np.full(m, hydra_id),
                active_from_us=first_use,
                active_until_us=np.where(banned, decided, _NEVER),
                **profile,
            )
            total += m
            # the operator replaces a banned account within hours
            replace_at = decided[banned] + (rng.uniform(1, 18, banned.sum()) * HOUR_US).astype(np.int64)
            pending = replace_at[replace_at < self.end_us - 2 * HOUR_US]
        return total

    # --- the reseller: its own customers plus a campaign's traffic, through one account ------------

    def add_resellers(self, n: int) -> None:
        rng = self.rng
        salt, hydra, system_prompts = self.campaign_templates[RESELLER_CAMPAIGN]
        campaign = CAMPAIGNS[CAMPAIGN_IDS.index(RESELLER_CAMPAIGN)]
        country = _choice(rng, {"US": 0.6, "SG": 0.4}, n)
        mixed = RESELLER_CAMPAIGN_BEHAVIOUR
        idx = self.rows.add(
            n,
            created_us=(self.start_us - rng.uniform(60, 400, n) * DAY_US).astype(np.int64),
            signup_country=country,
            payment=np.array(_hex_list(rng, n, 10, "pf_"), dtype=object),
            verification="card",
            program="startup",
            org=np.array(_hex_list(rng, n, 6, "org_"), dtype=object),
            segment="reseller",
            campaign_id=RESELLER_CAMPAIGN,
            hydra=hydra,
            banned_us=None,
            campaign_share=mixed.rate / (mixed.rate + RESELLER_BENIGN.rate),
            archetype=RESELLER_MIXED,
        )
        servers = _behaviour_profile(rng, RESELLER_BENIGN, n, country, self.network, self.release_us)
        for b, is_campaign in ((RESELLER_BENIGN, False), (mixed, True)):
            profile = _behaviour_profile(rng, b, n, country, self.network, self.release_us)
            # one set of servers for both halves: the gateway sees a single customer
            for key in ("slot_prefix", "slot_host", "slot_cdf", "tz_hours"):
                profile[key] = servers[key]
            if is_campaign:
                profile["system_prompt"] = system_prompts[rng.integers(0, 3, (n, 3))]
            language = LANGUAGES.index(next(iter(campaign.languages))) if is_campaign else 0
            self._add_profiles(
                account=idx,
                group=np.full(n, self.group_of(b)),
                language=np.full(n, language, np.int8),
                non_english_prob=np.full(n, campaign.non_english_prob if is_campaign else 0.0, np.float32),
                template_salt=np.full(n, salt if is_campaign else 99_991, np.int64),
                hydra=np.full(n, hydra if is_campaign else -1),
                active_from_us=np.full(n, self.start_us - DAY_US),
                active_until_us=np.full(n, _NEVER),
                **profile,
            )

    # --- registry, ground truth, labels ---------------------------------------------------------------

    def finish(self) -> Population:
        rng, cols = self.rng, self.rows.columns
        n_total = len(self.rows)
        ids = _unique_hex(rng, n_total, 6, "acct_")
        created_ts = pa.array(np.array(cols["created_us"], dtype=np.int64), pa.timestamp("us", tz="UTC"))
        accounts_table = pa.table(
            {
                "account_id": ids,
                "org_id": pa.array(cols["org"], pa.string()),
                "created_at": created_ts,
                "signup_country": pa.array(cols["signup_country"], pa.string()),
                "payment_fingerprint": pa.array(cols["payment"], pa.string()),
                "verification": pa.array(cols["verification"], pa.string()),
                "program": pa.array(cols["program"], pa.string()),
            }
        )
        banned = [None if (v is None or v < 0) else int(v) for v in cols["banned_us"]]
        hydra_names = [None if h < 0 else f"{self.hydra_campaign[h]}-{h}" for h in cols["hydra"]]
        ground_truth = pa.table(
            {
                "account_id": ids,
                "segment": pa.array(cols["segment"], pa.string()),
                "campaign_id": pa.array(cols["campaign_id"], pa.string()),
                "is_campaign": pa.array([c is not None for c in cols["campaign_id"]], pa.bool_()),
                # what kind of campaign an account serves (None for benign), and the benign segment (None for campaigns)
                "archetype": pa.array(cols["archetype"], pa.string()),
                "benign_segment": pa.array(
                    [s if c is None else None for s, c in zip(cols["segment"], cols["campaign_id"], strict=True)],
                    pa.string(),
                ),
                "hydra_id": pa.array(hydra_names, pa.string()),
                "campaign_traffic_share": pa.array(cols["campaign_share"], pa.float64()),
                "created_at": created_ts,
                "banned_at": pa.array(banned, pa.timestamp("us", tz="UTC")),
            }
        )
        segments = np.array(cols["segment"], dtype=object)
        label_rows = sorted(
            self.labels
            + _benign_labels(
                rng, segments, np.array(cols["created_us"], np.int64), self.start_us, self.end_us, self.benign_segments
            ),
            key=lambda r: (r[2], r[0]),
        )
        labels_table = pa.table(
            {
                "account_id": ids.take(pa.array([r[0] for r in label_rows], pa.int64())),
                "label": pa.array([r[1] for r in label_rows], pa.string()),
                "decided_at": pa.array([r[2] for r in label_rows], pa.timestamp("us", tz="UTC")),
                "campaign_id": pa.array([r[3] for r in label_rows], pa.string()),
                "source": pa.array([r[4] for r in label_rows], pa.string()),
                "note": pa.array([r[5] for r in label_rows], pa.string()),
            }
        )
        return Population(
            account_ids=ids,
            org_ids=accounts_table["org_id"].combine_chunks(),
            api_key_ids=pa.array(_hex_list(rng, n_total * 3, 8, "key_")),
            n_keys=rng.integers(1, 4, n_total).astype(np.int8),
            system_prompts=pa.array(_hex_list(rng, N_SYSTEM_PROMPT_POOL, 8, "sp_")),
            groups=tuple(self.groups),
            accounts=accounts_table,
            ground_truth=ground_truth,
            labels=labels_table,
            profiles=Profiles(**{k: np.concatenate(v) for k, v in self.profile_parts.items()}),
            hydra_campaign=np.array(self.hydra_campaign, dtype=object),
            hydra_interval_s=np.array(self.hydra_interval),
            network=self.network,
            segment_counts={name: int((segments == name).sum()) for name in dict.fromkeys(segments.tolist())},
            campaign_counts=self.campaign_counts,
        )


def _unique_hex(rng: np.random.Generator, n: int, n_bytes: int, prefix: str) -> pa.Array:
    while True:
        tokens = hex_tokens(rng, n, n_bytes)
        if len(np.unique(tokens)) == n:
            return pa.array([prefix + t.decode() for t in tokens], pa.string())


def _benign_labels(
    rng: np.random.Generator,
    segments: np.ndarray,
    created_us: np.ndarray,
    start_us: int,
    end_us: int,
    benign_segments: dict[str, bool],
) -> list[tuple[int, str, int, None, str, str]]:
    """Analysts clear some benign accounts after reviewing an alert, mostly automated-looking ones."""
    hard = {name for name, hard_negative in benign_segments.items() if hard_negative}
    benign_rows = np.flatnonzero(np.isin(segments, list(benign_segments)))
    weight = np.where(np.isin(segments[benign_rows], list(hard)), 20.0, 1.0)
    k = min(len(benign_rows), max(len(hard) * 2, round(BENIGN_LABEL_SHARE * len(benign_rows))))
    chosen = rng.choice(benign_rows, size=k, replace=False, p=weight / weight.sum())
    out = []
    for account in chosen:
        earliest = max(start_us, int(created_us[account]) + DAY_US)
        if earliest >= end_us:
            continue
        decided = int(earliest + rng.random() * (end_us - earliest))
        out.append(
            (int(account), "benign", decided, None, "analyst" if rng.random() < 0.7 else "rule", str(segments[account]))
        )
    return out


def _behaviour_profile(
    rng: np.random.Generator, b: Behaviour, n: int, country: np.ndarray, network: Network, release_us: int
) -> dict[str, np.ndarray]:
    """The parts of a profile that follow from its behaviour (vectorized over n accounts)."""
    tz_of = {c[0]: c[2] for c in COUNTRIES}
    tz = np.array([tz_of.get(c, 0.0) for c in country], dtype=np.float32)
    # network: a primary slot in the account's own country, a secondary (often mobile), rare travel
    categories = np.stack([_choice(rng, b.network, n) for _ in range(N_SLOTS)], axis=1)
    if "residential" in b.network:
        categories[:, 1] = np.where(rng.random(n) < 0.6, "mobile", categories[:, 1])
    places = np.stack([country, country, _choice(rng, {c: 1 for c in world.COUNTRY_CODES}, n)], axis=1)
    slot_prefix = _pick_prefixes(rng, network, categories.ravel(), places.ravel()).reshape(n, N_SLOTS)
    slot_w = np.stack([rng.uniform(0.75, 0.95, n), rng.uniform(0.05, 0.25, n), rng.uniform(0, 0.04, n)], axis=1)
    slot_cdf = np.cumsum(slot_w / slot_w.sum(axis=1, keepdims=True), axis=1)
    slot_cdf[:, -1] = 1.0
    ua_primary = _ua_pick(rng, b.ua, n) if b.ua else np.zeros(n, np.int32)
    ua_secondary = _ua_pick(rng, {"raw": 0.5, "sdk_py": 0.3, "browser": 0.2}, n)
    adopts = rng.random(n) < b.adopt_prob
    adopt_after = release_us + (rng.uniform(*b.adopt_delay_h, n) * HOUR_US).astype(np.int64)
    runs = rng.integers(b.runs[0], b.runs[1] + 1, n)
    run_start = np.sort(rng.uniform(0, 86_400, (n, 4)), axis=1)
    return dict(
        rate=b.rate * rng.lognormal(0, b.rate_sigma, n),
        tz_hours=tz,
        family_cdf=_cdf_rows(rng, _family_vector(b.families), b.family_alpha, n),
        slot_prefix=slot_prefix.astype(np.int32),
        slot_cdf=slot_cdf.astype(np.float32),
        slot_host=_hosts_for(rng, network, slot_prefix),
        ua=np.stack([ua_primary, ua_secondary], axis=1).astype(np.int32),
        system_prompt=rng.integers(0, N_SYSTEM_PROMPT_POOL, (n, 3)),
        model_cdf=_cdf_rows(rng, _model_vector(b.models), 8.0, n),
        adopt_after_us=np.where(adopts, adopt_after, np.iinfo(np.int64).max),
        adopt_share=rng.uniform(*b.adopt_share, n).astype(np.float32),
        run_start_s=run_start,
        runs=runs,
        interval_s=rng.uniform(b.intra[1], b.intra[2], n) if b.timing == "runs" else np.zeros(n),
        lag_s=rng.uniform(0, 25, n),
    )
