"""Account link graph and connected components, as DataFrame -> DataFrame transforms.

Hydra clusters are many small accounts run by one operator. Four kinds of evidence link them:
  payment    accounts paying with the same (hashed) payment fingerprint
  ip_prefix  accounts sending traffic from the same /24 (IPv4) or /48 (IPv6) prefix in the window, when few
             accounts use that prefix (a crowded prefix is shared infrastructure)
  template   accounts repeatedly sending the same rare normalised prompt template
  timing     accounts active in largely the same minutes (MinHash bands over their active minutes)

Edges are "star" edges: every member of a group is linked to the group's smallest account_id.
That keeps connectivity while producing one edge per member instead of all pairs, so a prefix
shared by k accounts costs k-1 edges, not k(k-1)/2.

Components are found with min-label propagation plus pointer jumping, one DataFrame per
iteration. The caller decides how each iteration is materialised (the cluster job writes it to a
scratch Delta table, because Sail has no cache/checkpoint and the lineage would otherwise grow
with every iteration). Nothing here collects rows or edges to the driver; the only driver-side
values are per-iteration counts of changed labels.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

PAYMENT_LINK = "payment"
IP_PREFIX_LINK = "ip_prefix"
TEMPLATE_LINK = "template"
TIMING_LINK = "timing"
LINK_TYPES = (PAYMENT_LINK, IP_PREFIX_LINK, TEMPLATE_LINK, TIMING_LINK)

DEFAULT_WINDOW_DAYS = 7
# A prefix seen from more accounts than this is shared infrastructure (carrier NAT, campus NAT, corporate egress,
# clouds, residential proxy pools), not evidence that the accounts share an operator. Star edges through such a
# prefix chained unrelated populations into one giant component, so the bound is tight.
DEFAULT_MAX_ACCOUNTS_PER_PREFIX = 10
# A prompt template (normalised fingerprint) is rare when at most this many accounts send it in the window; each
# account must send it at least twice, so a one-off coincidence is no link.
DEFAULT_MAX_ACCOUNTS_PER_TEMPLATE = 25
MIN_TEMPLATE_USES = 2
# Synchronised activity (SynchroTrap-style, without all pairs): each account's set of active minutes is summarised
# by MinHash signatures; accounts whose signatures agree on a whole band are active in largely the same minutes
# (P(agree) = J^rows for Jaccard similarity J). Accounts active in few minutes coincide by chance, and a band
# shared by many accounts is a busy clock, not an operator.
TIMING_BANDS = 4
TIMING_ROWS_PER_BAND = 3
MIN_ACTIVE_MINUTES = 20
MAX_ACCOUNTS_PER_TIMING_BAND = 50
DEFAULT_MAX_ITERATIONS = 40


def window_activity(account_daily: DataFrame, feature_date: dt.date,
                    window_days: int = DEFAULT_WINDOW_DAYS) -> DataFrame:
    """account_daily rows in the trailing window (feature_date - window_days, feature_date]."""
    if window_days < 1:
        raise ValueError(f"window_days must be >= 1, got {window_days}")
    first_day = feature_date - dt.timedelta(days=window_days - 1)
    return account_daily.filter(
        (F.col("event_date") >= F.lit(first_day)) & (F.col("event_date") <= F.lit(feature_date)))


def _star_edges(members: DataFrame, group_column: str, link_type: str) -> DataFrame:
    """Link every member of a group (distinct account_id, group_column rows) to the group's
    smallest account_id. Groups of one account produce no edge."""
    anchors = members.groupBy(group_column).agg(F.min("account_id").alias("anchor"))
    return (members.join(anchors, group_column)
            .filter(F.col("account_id") != F.col("anchor"))
            .select(F.col("account_id").alias("src"), F.col("anchor").alias("dst"),
                    F.lit(link_type).alias("link_type")))


def payment_edges(accounts: DataFrame, window: DataFrame, feature_date: dt.date) -> DataFrame:
    """Star edges between accounts sharing a payment fingerprint.

    Only accounts created on or before feature_date and active in the window take part: an
    account created later did not exist on that day, and one idle all window is not part of
    the day's picture (a replacement account in a hydra shows up as soon as it sends traffic).
    """
    day_end = dt.datetime.combine(feature_date + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)
    active = window.select("account_id").distinct()
    members = (accounts
               .filter(F.col("payment_fingerprint").isNotNull() & (F.col("payment_fingerprint") != ""))
               # an unknown creation time is no evidence the account did not exist yet
               .filter(F.col("created_at").isNull() | (F.col("created_at") < F.lit(day_end)))
               .join(active, "account_id")
               .select("account_id", "payment_fingerprint")
               .distinct())
    return _star_edges(members, "payment_fingerprint", PAYMENT_LINK)


def ip_prefix_edges(window: DataFrame,
                    max_accounts_per_prefix: int = DEFAULT_MAX_ACCOUNTS_PER_PREFIX) -> DataFrame:
    """Star edges between accounts that used the same IP prefix in the window, ignoring prefixes
    used by more than max_accounts_per_prefix accounts."""
    if max_accounts_per_prefix < 2:
        raise ValueError(f"max_accounts_per_prefix must be >= 2, got {max_accounts_per_prefix}")
    usage = (window
             .select("account_id", F.explode("ip_prefixes").alias("ip_prefix"))
             .filter(F.col("ip_prefix").isNotNull() & (F.col("ip_prefix") != ""))
             .distinct())
    linkable = (usage.groupBy("ip_prefix").agg(F.count("account_id").alias("accounts"))
                .filter((F.col("accounts") >= 2) & (F.col("accounts") <= max_accounts_per_prefix))
                .select("ip_prefix"))
    return _star_edges(usage.join(linkable, "ip_prefix"), "ip_prefix", IP_PREFIX_LINK)


def template_edges(requests: DataFrame, max_accounts_per_template: int = DEFAULT_MAX_ACCOUNTS_PER_TEMPLATE
                   ) -> DataFrame:
    """Star edges between accounts that each sent the same rare normalised prompt template at least twice in the
    window (bronze `prompt_fingerprint`, computed at ingest; never prompt text)."""
    usage = (requests.where(F.col("prompt_fingerprint").isNotNull())
             .groupBy("prompt_fingerprint", "account_id").agg(F.count(F.lit(1)).alias("uses"))
             .where(F.col("uses") >= MIN_TEMPLATE_USES).select("prompt_fingerprint", "account_id"))
    rare = (usage.groupBy("prompt_fingerprint").agg(F.count(F.lit(1)).alias("accounts"))
            .where((F.col("accounts") >= 2) & (F.col("accounts") <= max_accounts_per_template))
            .select("prompt_fingerprint"))
    return _star_edges(usage.join(rare, "prompt_fingerprint"), "prompt_fingerprint", TEMPLATE_LINK)


def timing_edges(requests: DataFrame) -> DataFrame:
    """Star edges between accounts active in largely the same minutes of the window (MinHash LSH over each
    account's active minutes: nothing is compared all-pairs, nothing is collected)."""
    minutes = requests.select("account_id", F.floor(F.unix_seconds("event_ts") / 60).alias("minute")).distinct()
    busy = (minutes.groupBy("account_id").agg(F.count(F.lit(1)).alias("active_minutes"))
            .where(F.col("active_minutes") >= MIN_ACTIVE_MINUTES).select("account_id"))
    hashes = TIMING_BANDS * TIMING_ROWS_PER_BAND
    signatures = (minutes.join(busy, "account_id")
                  .groupBy("account_id")
                  .agg(*(F.min(F.xxhash64("minute", F.lit(i))).alias(f"h{i}") for i in range(hashes))))
    band_keys = [F.concat_ws(":", F.lit(band), *(F.col(f"h{band * TIMING_ROWS_PER_BAND + r}")
                                                for r in range(TIMING_ROWS_PER_BAND)))
                 for band in range(TIMING_BANDS)]
    members = signatures.select("account_id", F.explode(F.array(*band_keys)).alias("band_key"))
    crowded = (members.groupBy("band_key").agg(F.count(F.lit(1)).alias("accounts"))
               .where(F.col("accounts") <= MAX_ACCOUNTS_PER_TIMING_BAND).select("band_key"))
    return _star_edges(members.join(crowded, "band_key"), "band_key", TIMING_LINK)


def link_edges(accounts: DataFrame, account_daily: DataFrame, feature_date: dt.date, *,
               window_days: int = DEFAULT_WINDOW_DAYS,
               max_accounts_per_prefix: int = DEFAULT_MAX_ACCOUNTS_PER_PREFIX,
               requests: DataFrame | None = None) -> DataFrame:
    """All star edges (src, dst, link_type) for feature_date, distinct. `requests` (bronze rows of the window)
    adds the template and timing evidence; without it only payment and IP-prefix links are drawn."""
    window = window_activity(account_daily, feature_date, window_days)
    edges = (payment_edges(accounts, window, feature_date)
             .unionByName(ip_prefix_edges(window, max_accounts_per_prefix)))
    if requests is not None:
        first_day = feature_date - dt.timedelta(days=window_days - 1)
        in_window = requests.where((F.col("event_date") >= F.lit(first_day)) & (F.col("event_date") <= F.lit(feature_date)))
        edges = edges.unionByName(template_edges(in_window)).unionByName(timing_edges(in_window))
    return edges.distinct()


def account_link_types(edges: DataFrame) -> DataFrame:
    """(account_id, link_types): the sorted distinct kinds of link each endpoint has."""
    endpoints = (edges.select(F.col("src").alias("account_id"), "link_type")
                 .unionByName(edges.select(F.col("dst").alias("account_id"), "link_type")))
    return endpoints.groupBy("account_id").agg(F.array_sort(F.collect_set("link_type")).alias("link_types"))


def initial_labels(edges: DataFrame) -> DataFrame:
    """Every linked account starts labelled with itself."""
    vertices = (edges.select(F.col("src").alias("account_id"))
                .unionByName(edges.select(F.col("dst").alias("account_id")))
                .distinct())
    return vertices.select("account_id", F.col("account_id").alias("label"), F.lit(True).alias("changed"))


def propagate_labels(labels: DataFrame, edges: DataFrame) -> DataFrame:
    """One iteration: take the smallest label among an account and its neighbours, then jump to
    the label's own label (pointer jumping), which shortens long chains to about log(length)
    iterations. Labels only ever decrease and always name an account in the same component, so
    the fixpoint labels every component with its minimum account_id.

    Returns (account_id, label, changed) where changed says the label moved this iteration.
    """
    current = labels.select("account_id", "label")
    undirected = (edges.select("src", "dst")
                  .unionByName(edges.select(F.col("dst").alias("src"), F.col("src").alias("dst"))))
    neighbour_min = (undirected
                     .join(current.select(F.col("account_id").alias("src"), F.col("label").alias("src_label")),
                           "src")
                     .groupBy(F.col("dst").alias("account_id"))
                     .agg(F.min("src_label").alias("neighbour_label")))
    stepped = (current.join(neighbour_min, "account_id", "left")
               .select("account_id",
                       F.col("label").alias("previous_label"),
                       F.least("label", F.coalesce("neighbour_label", "label")).alias("label")))
    label_of_label = stepped.select(F.col("account_id").alias("label"), F.col("label").alias("label_of_label"))
    return (stepped.join(label_of_label, "label", "left")
            .select("account_id",
                    F.least("label", F.coalesce("label_of_label", "label")).alias("label"),
                    "previous_label")
            .select("account_id", "label", (F.col("label") != F.col("previous_label")).alias("changed")))


class ComponentsDidNotConverge(RuntimeError):
    pass


def connected_components(edges: DataFrame, materialize: Callable[[DataFrame, int], DataFrame], *,
                         max_iterations: int = DEFAULT_MAX_ITERATIONS) -> DataFrame:
    """(account_id, component) for every account that appears in an edge; component is the
    smallest account_id of its connected component.

    materialize(labels, iteration) must persist that iteration's labels and return a DataFrame
    reading them back, so each iteration starts from stored data instead of the whole lineage.
    Raises ComponentsDidNotConverge rather than returning partially propagated labels.
    """
    if max_iterations < 1:
        raise ValueError(f"max_iterations must be >= 1, got {max_iterations}")
    labels = materialize(initial_labels(edges), 0)
    for iteration in range(1, max_iterations + 1):
        labels = materialize(propagate_labels(labels, edges), iteration)
        changed = labels.filter(F.col("changed")).count()
        log.info("connected components iteration %d: %d labels changed", iteration, changed)
        if changed == 0:
            return labels.select("account_id", F.col("label").alias("component"))
    raise ComponentsDidNotConverge(
        f"connected components still changing after {max_iterations} iterations; "
        "raise max_iterations (the link graph has unusually long chains)")


def cluster_id(component: F.Column) -> F.Column:
    """Stable id from the component's smallest account_id, so reruns give identical ids."""
    return F.concat(F.lit("c-"), F.substring(F.sha2(component, 256), 1, 12))


def account_clusters(components: DataFrame, link_types: DataFrame, feature_date: dt.date) -> DataFrame:
    """Rows of the account_clusters table. Only linked accounts appear (every vertex of the link
    graph is in a component of at least two accounts); an account with no link has no row."""
    return (components.join(link_types, "account_id")
            .select(F.lit(feature_date).alias("feature_date"), "account_id",
                    cluster_id(F.col("component")).alias("cluster_id"), "link_types"))
