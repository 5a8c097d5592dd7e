"""The feature registry: every model input is declared here exactly once, with its formula.

A declaration carries the name, a description, its family (docs/design.md §6), a unit used to phrase explanations,
an owner, tags, its kind and its formula, an `Expr` (features/expr.py) that every engine compiles: Spark
(features/spark_engine.py) and the frame engines, pandas and cuDF (features/frame_*.py). There is no
per-engine implementation to keep in step. Three kinds, by what the formula reads:

  window   the window statistics of features/daily_stats.py (`col("requests")` is requests summed over the
           window) and `window_days`; one column per window, `<name>_<w>d`
  account  the account registry as of the feature date (ACCOUNT_INPUTS); one column
  cluster  the account's cluster on the feature date, from the link graph (CLUSTER_INPUTS); one column

Adding a feature is one declaration here plus a known-answer case in tests/test_features.py, which runs on every
engine. A formula over a new daily statistic also needs that statistic declared in daily_stats.py.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import pyarrow as pa

from features import daily_stats
from features.expr import Expr, col, entropy_bits, epoch_micros, fill_null, greatest, lookup, ratio, sqrt, when
from features.signals import CAPABILITIES, SIGNALS_VERSION
from lake import catalog

WINDOWS: tuple[int, ...] = (1, 7, 28)
FAMILIES = ("volume", "automation", "content", "model_pivot", "infrastructure", "account", "cluster")
UNITS = ("count", "share", "ratio", "hours", "days", "bits", "seconds", "level", "flag")
KINDS = ("window", "account", "cluster")
DEFAULT_OWNER = "detection-ml@distillguard"

ACCOUNT_INPUTS = (
    "created_at",
    "verification",
    "program",
    "payment_fingerprint",
    "same_payment_accounts",
    "existed_at_feature_date",
    "feature_day_end",
)
# Per account, from the day's account_clusters (null for an account in no cluster), all as of the end of the
# feature date: its cluster's member count, how many members carry each kind of link, how many were created in
# the last NEW_ACCOUNT_DAYS days, the members' requests over the last CLUSTER_VOLUME_DAYS days, how many members
# an analyst or rule had already marked as extraction (decisions after the feature date never count), and the
# account's own links: how many, and how many of them share rare prompt templates.
CLUSTER_INPUTS = (
    "cluster_size",
    "cluster_payment_members",
    "cluster_ip_prefix_members",
    "cluster_template_members",
    "cluster_timing_members",
    "cluster_new_members",
    "cluster_requests",
    "cluster_extraction_labelled",
    "linked_accounts",
    "template_links",
)
NEW_ACCOUNT_DAYS = 30
CLUSTER_VOLUME_DAYS = 7
INPUTS_BY_KIND = {
    "window": (*daily_stats.WINDOW_STATS, daily_stats.WINDOW_DAYS),
    "account": ACCOUNT_INPUTS,
    "cluster": CLUSTER_INPUTS,
}

VERIFICATION_LEVELS = {"none": 0, "email": 1, "card": 2, "kyc": 3}
CREDIT_PROGRAMS = ("education", "research", "startup")
MICROS_PER_HOUR = 3_600_000_000.0
MICROS_PER_DAY = 86_400_000_000.0
HOURS = tuple(f"hour_{h:02d}" for h in range(24))
CAPABILITY_STATS = tuple(f"{c}_requests" for c in CAPABILITIES)


@dataclass(frozen=True)
class Feature:
    name: str
    description: str
    family: str
    unit: str
    formula: Expr
    kind: str = "window"
    owner: str = DEFAULT_OWNER
    tags: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"feature {self.name}: unknown family {self.family!r}")
        if self.unit not in UNITS:
            raise ValueError(f"feature {self.name}: unknown unit {self.unit!r}")
        if self.kind not in KINDS:
            raise ValueError(f"feature {self.name}: unknown kind {self.kind!r}")
        if not self.description.strip():
            raise ValueError(f"feature {self.name}: a description is required")
        unknown = self.formula.columns() - set(INPUTS_BY_KIND[self.kind])
        if unknown:
            raise ValueError(
                f"feature {self.name}: a {self.kind} formula cannot read {sorted(unknown)}; "
                f"known: {', '.join(INPUTS_BY_KIND[self.kind])}"
            )

    @property
    def windowed(self) -> bool:
        return self.kind == "window"

    @property
    def columns(self) -> tuple[str, ...]:
        if self.windowed:
            return tuple(f"{self.name}_{w}d" for w in WINDOWS)
        return (self.name,)


def _f(name: str, family: str, unit: str, description: str, formula: Expr, *tags: str, kind: str = "window") -> Feature:
    return Feature(name=name, description=description, family=family, unit=unit, formula=formula, kind=kind, tags=tags)


def _share(stat: str) -> Expr:
    return ratio(col(stat), col("requests"))


def _hours_since_release(stat: str) -> Expr:
    return (col(stat) - col(daily_stats.NEWEST_RELEASED_AT)) / MICROS_PER_HOUR


def _interarrival_cv() -> Expr:
    """Population standard deviation / mean of the gaps between consecutive requests of a day; the
    sum-of-squares variance can dip a rounding error below 0 for near-constant gaps."""
    mean = ratio(col("gap_sum_ms"), col("gap_count"))
    variance = ratio(col("gap_sumsq_ms2"), col("gap_count")) - mean * mean
    return ratio(sqrt(greatest(variance, 0.0)), mean)


FEATURES: tuple[Feature, ...] = (
    # volume
    _f("requests", "volume", "count", "API requests made", col("requests"), "volume"),
    _f("input_tokens", "volume", "count", "input tokens sent", col("input_tokens"), "volume", "tokens"),
    _f("output_tokens", "volume", "count", "output tokens harvested", col("output_tokens"), "volume", "tokens"),
    _f(
        "active_hours",
        "volume",
        "count",
        "distinct clock hours with at least one request",
        col("active_hours"),
        "volume",
    ),
    # automation and timing
    _f(
        "interarrival_cv",
        "automation",
        "ratio",
        "coefficient of variation of the time between consecutive requests (low = metronome-like)",
        _interarrival_cv(),
        "timing",
    ),
    _f(
        "hour_entropy",
        "automation",
        "bits",
        "entropy of the hour-of-day distribution (max 4.58 = flat 24/7)",
        entropy_bits([col(h) for h in HOURS]),
        "timing",
    ),
    _f(
        "coverage_24_7",
        "automation",
        "share",
        "share of the window's hours with any request",
        col("active_hours").as_float() / (col(daily_stats.WINDOW_DAYS) * 24.0),
        "timing",
    ),
    _f(
        "burstiness",
        "automation",
        "ratio",
        "peak requests in one minute over mean requests per active minute",
        ratio(col("peak_rpm"), ratio(col("requests"), col("active_minutes"))),
        "timing",
    ),
    _f(
        "peak_rpm",
        "automation",
        "count",
        "most requests in any single minute (peak concurrency)",
        col("peak_rpm"),
        "timing",
    ),
    _f(
        "batch_share",
        "automation",
        "share",
        "share of requests sent through the batch endpoint",
        _share("batch_requests"),
        "automation",
    ),
    _f("stream_share", "automation", "share", "share of streamed requests", _share("stream_requests"), "automation"),
    # content
    _f(
        "cot_elicitation_rate",
        "content",
        "share",
        "share of prompts asking for step-by-step reasoning or the reasoning behind an answer",
        _share("cot_requests"),
        "content",
        "campaign_a",
    ),
    _f(
        "extraction_like_requests",
        "content",
        "count",
        "requests asking for step-by-step reasoning or grading against a rubric (counted even when the account's "
        "other traffic is ordinary)",
        col("extraction_like_requests"),
        "content",
        "mixed_traffic",
    ),
    _f(
        "extraction_like_share",
        "content",
        "share",
        "share of requests that are extraction-like (reasoning or grading)",
        _share("extraction_like_requests"),
        "content",
        "mixed_traffic",
    ),
    _f(
        "rubric_grading_rate",
        "content",
        "share",
        "share of prompts using the model as a grader/reward model against a rubric",
        _share("rubric_requests"),
        "content",
        "campaign_a",
    ),
    _f(
        "template_reuse_rate",
        "content",
        "share",
        "share of requests whose normalized prompt fingerprint repeats one already seen that day",
        _share("repeated_template_requests"),
        "content",
    ),
    _f(
        "coding_share",
        "content",
        "share",
        "share of coding requests",
        _share("coding_requests"),
        "content",
        "capability",
    ),
    _f(
        "agentic_share",
        "content",
        "share",
        "share of agentic (multi-tool orchestration) requests",
        _share("agentic_requests"),
        "content",
        "capability",
    ),
    _f(
        "tool_use_share",
        "content",
        "share",
        "share of requests declaring tools",
        _share("tool_use_requests"),
        "content",
        "capability",
    ),
    _f(
        "reasoning_share",
        "content",
        "share",
        "share of math/logic reasoning requests",
        _share("reasoning_requests"),
        "content",
        "capability",
    ),
    _f(
        "vision_share",
        "content",
        "share",
        "share of requests with an image",
        _share("vision_requests"),
        "content",
        "capability",
    ),
    _f(
        "capability_entropy",
        "content",
        "bits",
        "entropy over coding/agentic/tool-use/reasoning/vision/chat (low = narrow capability focus)",
        entropy_bits([col(stat) for stat in CAPABILITY_STATS]),
        "content",
        "capability",
    ),
    _f(
        "output_input_ratio",
        "content",
        "ratio",
        "output tokens per input token",
        ratio(col("output_tokens"), col("input_tokens")),
        "content",
        "tokens",
    ),
    _f(
        "max_tokens_saturation",
        "content",
        "share",
        "share of responses cut off at max_tokens",
        _share("max_tokens_stops"),
        "content",
        "tokens",
    ),
    _f(
        "non_english_share",
        "content",
        "share",
        "share of prompts in a non-Latin script",
        _share("non_english_requests"),
        "content",
        "language",
    ),
    _f(
        "system_prompt_reuse",
        "content",
        "share",
        "share of requests using the day's most frequent system prompt",
        _share("top_system_prompt_requests"),
        "content",
    ),
    # model pivot
    _f(
        "newest_model_share",
        "model_pivot",
        "share",
        "share of requests on the newest released model",
        _share("newest_model_requests"),
        "pivot",
        "campaign_c",
    ),
    _f(
        "hours_to_newest_model",
        "model_pivot",
        "hours",
        "hours from the newest model's release to this account's first request on it",
        _hours_since_release("newest_model_first_ts"),
        "pivot",
        "campaign_c",
    ),
    _f(
        "hours_to_newest_majority",
        "model_pivot",
        "hours",
        "hours from the newest model's release to the first hour where it carried most of this account's traffic",
        _hours_since_release("newest_model_majority_hour_ts"),
        "pivot",
        "campaign_c",
    ),
    # infrastructure
    _f(
        "distinct_ip_prefixes",
        "infrastructure",
        "count",
        "distinct /24 (IPv4) or /48 (IPv6) client prefixes",
        col("ip_prefix_count"),
        "network",
    ),
    _f(
        "hosting_proxy_share",
        "infrastructure",
        "share",
        "share of requests from hosting or proxy ASNs",
        _share("hosting_proxy_requests"),
        "network",
    ),
    _f("distinct_countries", "infrastructure", "count", "distinct request countries", col("country_count"), "network"),
    _f(
        "signup_country_mismatch",
        "infrastructure",
        "share",
        "share of requests from a country other than the signup country",
        _share("signup_mismatch_requests"),
        "network",
    ),
    _f(
        "raw_http_share",
        "infrastructure",
        "share",
        "share of requests from raw HTTP clients (curl, requests, httpx, Go) rather than an official SDK",
        _share("raw_http_requests"),
        "client",
    ),
    # account
    _f(
        "account_age_days",
        "account",
        "days",
        "days since the account was created",
        (epoch_micros(col("feature_day_end")) - epoch_micros(col("created_at"))) / MICROS_PER_DAY,
        "account",
        kind="account",
    ),
    _f(
        "verification_level",
        "account",
        "level",
        "identity verification: 0 none, 1 email, 2 card, 3 KYC",
        lookup(col("verification"), VERIFICATION_LEVELS),
        "account",
        kind="account",
    ),
    _f(
        "credit_program",
        "account",
        "flag",
        "1 when the account is on an education, research or startup credit programme",
        when(col("program").isin(*CREDIT_PROGRAMS), 1.0, when(col("program").not_null(), 0.0)),
        "account",
        kind="account",
    ),
    _f(
        "payment_shared_accounts",
        "cluster",
        "count",
        "other accounts sharing this account's payment fingerprint",
        when(
            col("payment_fingerprint").is_null(),
            0.0,
            (fill_null(col("same_payment_accounts"), 0) - when(col("existed_at_feature_date"), 1, 0)).as_float(),
        ),
        "account",
        "hydra",
        kind="account",
    ),
    # cluster: the account's connected component in the day's cluster graph (jobs/cluster.py runs before features).
    # An account in no cluster reads as a cluster of one: size 1, every share and count 0.
    _f(
        "cluster_size",
        "cluster",
        "count",
        "accounts in this account's cluster of linked accounts",
        fill_null(col("cluster_size"), 1).as_float(),
        "hydra",
        kind="cluster",
    ),
    _f(
        "cluster_payment_share",
        "cluster",
        "share",
        "share of this account's cluster linked through a shared payment method",
        fill_null(ratio(col("cluster_payment_members"), col("cluster_size")), 0.0),
        "hydra",
        kind="cluster",
    ),
    _f(
        "cluster_new_account_share",
        "cluster",
        "share",
        f"share of this account's cluster created in the last {NEW_ACCOUNT_DAYS} days",
        fill_null(ratio(col("cluster_new_members"), col("cluster_size")), 0.0),
        "hydra",
        kind="cluster",
    ),
    _f(
        "cluster_requests",
        "cluster",
        "count",
        f"requests of all members of this account's cluster over the last {CLUSTER_VOLUME_DAYS} days",
        fill_null(col("cluster_requests"), 0).as_float(),
        "hydra",
        kind="cluster",
    ),
    _f(
        "cluster_template_share",
        "cluster",
        "share",
        "share of this account's cluster linked through shared rare prompt templates",
        fill_null(ratio(col("cluster_template_members"), col("cluster_size")), 0.0),
        "hydra",
        kind="cluster",
    ),
    _f(
        "cluster_synchronised_share",
        "cluster",
        "share",
        "share of this account's cluster active in the same minutes as a linked account",
        fill_null(ratio(col("cluster_timing_members"), col("cluster_size")), 0.0),
        "hydra",
        kind="cluster",
    ),
    _f(
        "linked_accounts",
        "cluster",
        "count",
        "accounts this account shares a payment method or several rare artefacts with",
        fill_null(col("linked_accounts"), 0).as_float(),
        "hydra",
        kind="cluster",
    ),
    _f(
        "template_linked_accounts",
        "cluster",
        "count",
        "linked accounts this account shares rare prompt templates with",
        fill_null(col("template_links"), 0).as_float(),
        "hydra",
        kind="cluster",
    ),
    _f(
        "cluster_labelled_extraction_share",
        "cluster",
        "share",
        "share of this account's cluster already decided as extraction on or before the day",
        fill_null(ratio(col("cluster_extraction_labelled"), col("cluster_size")), 0.0),
        "hydra",
        kind="cluster",
    ),
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


def feature_set_version() -> str:
    """A content hash of everything that decides a feature value: every formula, kind and window, every daily
    statistic's type, per-request value and roll-up, the derived request columns, and the signals version (the
    prompt patterns). Descriptions, owners and tags are left out: rewording them never forces a retrain."""
    payload = {
        "windows": list(WINDOWS),
        "features": [[f.name, f.kind, repr(f.formula)] for f in FEATURES],
        "daily_stats": [
            [s.name, str(s.dtype), repr(s.daily), s.window, s.window_stat] for s in daily_stats.DAILY_STATS
        ],
        "request_columns": {name: repr(e) for name, e in daily_stats.REQUEST_COLUMNS.items()},
        "signals": SIGNALS_VERSION,
    }
    return "fs-" + hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


# --- the tables whose columns are the declared daily statistics and features ---------------------------------
# lake/ sits below features/ and cannot import it, so they are declared here and registered with the catalog
# whenever the registry is imported (every user of these tables imports it, directly or through features/).


def _feature_fields() -> tuple[tuple[str, pa.DataType], ...]:
    return tuple((column, pa.float64()) for column in feature_columns())


ACCOUNT_DAILY = catalog.Table(
    "account_daily",
    "silver",
    catalog.fields_schema(("account_id", pa.string()), ("event_date", pa.date32()), *daily_stats.daily_fields()),
    "per account-day sufficient statistics (features/daily_stats.py)",
    ("event_date",),
)

ACCOUNT_FEATURES = catalog.Table(
    "account_features",
    "gold",
    catalog.fields_schema(
        ("account_id", pa.string()),
        ("feature_date", pa.date32()),
        *_feature_fields(),
        ("feature_set_version", pa.string()),
    ),
    "per-account features over 1/7/28-day windows, account and cluster features (features/registry.py)",
    ("feature_date",),
)

TRAINING_SETS = catalog.Table(
    "training_sets",
    "gold",
    catalog.fields_schema(
        ("as_of", pa.date32()),
        ("account_id", pa.string()),
        ("feature_date", pa.date32()),
        *_feature_fields(),
        ("label", pa.int32()),
        ("resolved", pa.bool_()),
        ("campaign_id", pa.string()),
        ("benign_segment", pa.string()),
        ("standing", pa.string()),  # the account's latest decision by as_of (models/training_set.py)
        ("linked_to_decided", pa.bool_()),  # ever in a cluster with a decided account by as_of
        # each lake family's raw score on the snapshot's date, from family_scores (null: not scored that day)
        *((catalog.family_column(name), pa.float64()) for name in catalog.LAKE_FAMILIES),
        *((catalog.family_latest_column(name), pa.float64()) for name in catalog.LAKE_FAMILIES),
        ("feature_set_version", pa.string()),
        ("reference", pa.string()),
    ),  # JSON: the pinned input table versions and labelling rules
    "point-in-time training sets (features + labels), one partition per as_of",
    ("as_of",),
)

for _declaration in (ACCOUNT_DAILY, ACCOUNT_FEATURES, TRAINING_SETS):
    catalog.register(_declaration)
