"""The feature registry: every model input is declared here exactly once.

A declaration carries the name, a description, its family (DESIGN.md §6), an owner, tags, the
windows it is computed over and a unit used to phrase explanations. Each engine implements every
declared feature as a function named after the feature (features/spark_features.py for Spark);
tests/test_feature_registry.py fails when a declaration lacks an implementation or vice versa.

Windowed features become one column per window: `<name>_<w>d`. Account-level features are one column.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

WINDOWS: tuple[int, ...] = (1, 7, 28)
FAMILIES = ("volume", "automation", "content", "model_pivot", "infrastructure", "account", "cluster")
UNITS = ("count", "share", "ratio", "hours", "days", "bits", "seconds", "level", "flag")
DEFAULT_OWNER = "detection-ml@distillguard"


@dataclass(frozen=True)
class Feature:
    name: str
    description: str
    family: str
    unit: str
    windowed: bool = True
    owner: str = DEFAULT_OWNER
    tags: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"feature {self.name}: unknown family {self.family!r}")
        if self.unit not in UNITS:
            raise ValueError(f"feature {self.name}: unknown unit {self.unit!r}")
        if not self.description.strip():
            raise ValueError(f"feature {self.name}: a description is required")

    @property
    def columns(self) -> tuple[str, ...]:
        if self.windowed:
            return tuple(f"{self.name}_{w}d" for w in WINDOWS)
        return (self.name,)


def _f(name: str, family: str, unit: str, description: str, *tags: str, windowed: bool = True) -> Feature:
    return Feature(name=name, description=description, family=family, unit=unit, windowed=windowed, tags=tags)


FEATURES: tuple[Feature, ...] = (
    # volume
    _f("requests", "volume", "count", "API requests made", "volume"),
    _f("input_tokens", "volume", "count", "input tokens sent", "volume", "tokens"),
    _f("output_tokens", "volume", "count", "output tokens harvested", "volume", "tokens"),
    _f("active_hours", "volume", "count", "distinct clock hours with at least one request", "volume"),
    # automation and timing
    _f("interarrival_cv", "automation", "ratio",
       "coefficient of variation of seconds between consecutive requests (low = metronome-like)", "timing"),
    _f("hour_entropy", "automation", "bits", "entropy of the hour-of-day distribution (max 4.58 = flat 24/7)", "timing"),
    _f("coverage_24_7", "automation", "share", "share of the window's hours with any request", "timing"),
    _f("burstiness", "automation", "ratio", "peak requests in one minute over mean requests per active minute", "timing"),
    _f("peak_rpm", "automation", "count", "most requests in any single minute (peak concurrency)", "timing"),
    _f("batch_share", "automation", "share", "share of requests sent through the batch endpoint", "automation"),
    _f("stream_share", "automation", "share", "share of streamed requests", "automation"),
    # content
    _f("cot_elicitation_rate", "content", "share",
       "share of prompts asking for step-by-step reasoning or the reasoning behind an answer", "content", "campaign_a"),
    _f("rubric_grading_rate", "content", "share",
       "share of prompts using the model as a grader/reward model against a rubric", "content", "campaign_a"),
    _f("template_reuse_rate", "content", "share",
       "share of requests whose normalized prompt fingerprint repeats one already seen that day", "content"),
    _f("coding_share", "content", "share", "share of coding requests", "content", "capability"),
    _f("agentic_share", "content", "share", "share of agentic (multi-tool orchestration) requests", "content", "capability"),
    _f("tool_use_share", "content", "share", "share of requests declaring tools", "content", "capability"),
    _f("reasoning_share", "content", "share", "share of math/logic reasoning requests", "content", "capability"),
    _f("vision_share", "content", "share", "share of requests with an image", "content", "capability"),
    _f("capability_entropy", "content", "bits",
       "entropy over coding/agentic/tool-use/reasoning/vision/chat (low = narrow capability focus)", "content", "capability"),
    _f("output_input_ratio", "content", "ratio", "output tokens per input token", "content", "tokens"),
    _f("max_tokens_saturation", "content", "share", "share of responses cut off at max_tokens", "content", "tokens"),
    _f("non_english_share", "content", "share", "share of prompts in a non-Latin script", "content", "language"),
    _f("system_prompt_reuse", "content", "share", "share of requests using the day's most frequent system prompt", "content"),
    # model pivot
    _f("newest_model_share", "model_pivot", "share", "share of requests on the newest released model", "pivot", "campaign_c"),
    _f("hours_to_newest_model", "model_pivot", "hours",
       "hours from the newest model's release to this account's first request on it", "pivot", "campaign_c"),
    _f("hours_to_newest_majority", "model_pivot", "hours",
       "hours from the newest model's release to the first hour where it carried most of this account's traffic",
       "pivot", "campaign_c"),
    # infrastructure
    _f("distinct_ip_prefixes", "infrastructure", "count", "distinct /24 (IPv4) or /48 (IPv6) client prefixes", "network"),
    _f("hosting_proxy_share", "infrastructure", "share", "share of requests from hosting or proxy ASNs", "network"),
    _f("distinct_countries", "infrastructure", "count", "distinct request countries", "network"),
    _f("signup_country_mismatch", "infrastructure", "share",
       "share of requests from a country other than the signup country", "network"),
    _f("raw_http_share", "infrastructure", "share",
       "share of requests from raw HTTP clients (curl, requests, httpx, Go) rather than an official SDK", "client"),
    # account
    _f("account_age_days", "account", "days", "days since the account was created", "account", windowed=False),
    _f("verification_level", "account", "level",
       "identity verification: 0 none, 1 email, 2 card, 3 KYC", "account", windowed=False),
    _f("credit_program", "account", "flag",
       "1 when the account is on an education, research or startup credit programme", "account", windowed=False),
    _f("payment_shared_accounts", "cluster", "count",
       "other accounts sharing this account's payment fingerprint", "account", "hydra", windowed=False),
)

FEATURES_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
if len(FEATURES_BY_NAME) != len(FEATURES):
    raise RuntimeError("duplicate feature names in the registry")


def feature_columns() -> list[str]:
    """Model input columns, in the fixed order used for training and scoring."""
    return [column for feature in FEATURES for column in feature.columns]


def feature_for_column(column: str) -> tuple[Feature, int | None]:
    """Map a column like `cot_elicitation_rate_7d` back to its declaration and window."""
    if column in FEATURES_BY_NAME:
        return FEATURES_BY_NAME[column], None
    name, _, window = column.rpartition("_")
    return FEATURES_BY_NAME[name], int(window.rstrip("d"))


def implementations(namespace: dict) -> dict:
    """name -> function for every declared feature an engine module defines, in declaration order.

    Each engine module calls this on its own globals() so the registry is the one list of features;
    tests/test_feature_registry.py fails when an engine lacks one."""
    return {f.name: namespace[f.name] for f in FEATURES if callable(namespace.get(f.name))}


def feature_set_version() -> str:
    """Content hash of the declarations: changes whenever a feature is added, removed or redefined."""
    payload = json.dumps([asdict(f) for f in FEATURES] + [list(WINDOWS)], sort_keys=True)
    return "fs-" + hashlib.sha256(payload.encode()).hexdigest()[:12]
