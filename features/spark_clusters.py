"""Account link graph and clusters, as DataFrame -> DataFrame transforms.

Hydra clusters are many small accounts run by one operator. Four kinds of evidence link two accounts:
  payment    they pay with the same (hashed) payment fingerprint
  ip_prefix  they sent traffic from the same /24 (IPv4) or /48 (IPv6) prefix in the window, when few accounts
             use that prefix (a crowded prefix is shared infrastructure)
  template   they each sent the same rare normalised prompt template at least twice
  timing     they were active in largely the same minutes (MinHash bands over their active minutes)

Why pairs with evidence, not "any shared artefact links": on simulated lakes one shared residential /24 chained
1,850 of 3,000 accounts into one component (chat users behind the same ISP), and popular-but-capped templates
chained campaigns into benign developers. So a link is a *pair* of accounts with what they share counted:
  strength = shared IP prefixes + shared rare templates / TEMPLATES_PER_POINT + shared timing bands
             + PAYMENT_STRENGTH x shared payment
A pair is a candidate when strength >= MIN_LINK_STRENGTH (four independent rare artefacts, or one payment method),
and the cluster graph keeps a candidate only when each account is among the other's KEEP_STRONGEST_LINKS
strongest (mutual k-nearest neighbours): a benign account with one coincidental strong tie to a hydra does not
bridge the hydra into its own community. Clusters are the connected components of that graph. On the extended
scenario (seed 1, 3,000 accounts) this took the largest cluster from 2,306 accounts to 231.

Nothing is all-pairs. Pairs are drawn only inside an artefact's group, and groups are small by construction
(IP prefixes <= max_accounts_per_prefix accounts, templates <= DEFAULT_MAX_ACCOUNTS_PER_TEMPLATE, timing bands <=
MAX_ACCOUNTS_PER_TIMING_BAND). Payment groups can be large (an institution's card, a hydra's pool): a group larger
than PAIR_GROUP_LIMIT links each member to its RING_NEIGHBOURS successors in a hashed order instead, which keeps
the group connected with a bounded number of pairs per member.

Every kept link keeps its evidence (the `account_links` table) so a reviewer sees what two accounts share, and every
candidate pair names the artefacts it shares (the `account_edges` table, features/spark_edges.py).
Components are found with min-label propagation plus pointer jumping, one DataFrame per iteration. The caller
decides how each iteration is materialised (the cluster job writes it to a scratch Delta table, because Sail has
no cache/checkpoint). Nothing here collects rows or edges to the driver; the only driver-side values are
per-iteration counts of changed labels.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

PAYMENT_LINK = "payment"
IP_PREFIX_LINK = "ip_prefix"
TEMPLATE_LINK = "template"
TIMING_LINK = "timing"
LINK_TYPES = (PAYMENT_LINK, IP_PREFIX_LINK, TEMPLATE_LINK, TIMING_LINK)
# account_links column counting each kind of shared artefact
EVIDENCE_COLUMNS = {
    PAYMENT_LINK: "shared_payment_methods",
    IP_PREFIX_LINK: "shared_ip_prefixes",
    TEMPLATE_LINK: "shared_templates",
    TIMING_LINK: "synchronised_bands",
}

DEFAULT_WINDOW_DAYS = 7
# A prefix seen from more accounts than this is shared infrastructure (carrier NAT, campus NAT, corporate egress,
# clouds, residential proxy pools), not evidence that the accounts share an operator.
DEFAULT_MAX_ACCOUNTS_PER_PREFIX = 10
# A prompt template (normalised fingerprint) is rare when at most this many accounts send it in the window; each
# account must send it at least twice, so a one-off coincidence is no evidence.
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
# Pair strength: one shared payment method is as strong as any artefact combination the threshold asks for.
PAYMENT_STRENGTH = 10
# How many shared templates count as one artefact. Popular prompts (benchmark questions, SDK examples, a tool's
# fixed prompts) are shared by unrelated accounts more often than IP prefixes, so counting them for less makes purer
# clusters: at 3, the simulated extended lake's largest cluster fell from 231 accounts (93.6% size-weighted purity)
# to 82 (99.8%). But training leaves out unlabelled members of clusters holding known extraction
# (models/training_set.py), and with the narrower clusters more of a labelled hydra's unlabelled siblings stayed in
# as negatives: its recall at 1% benign FPR fell from 97% to 35%. Kept at 1 until that cleaning has a link-level
# rule of its own.
TEMPLATES_PER_POINT = 1
MIN_LINK_STRENGTH = 4
KEEP_STRONGEST_LINKS = 10
PAIR_GROUP_LIMIT = 50
RING_NEIGHBOURS = 5
DEFAULT_MAX_ITERATIONS = 40


def window_activity(
    account_daily: DataFrame, feature_date: dt.date, window_days: int = DEFAULT_WINDOW_DAYS
) -> DataFrame:
    """account_daily rows in the trailing window (feature_date - window_days, feature_date]."""
    if window_days < 1:
        raise ValueError(f"window_days must be >= 1, got {window_days}")
    first_day = feature_date - dt.timedelta(days=window_days - 1)
    return account_daily.filter(
        (F.col("event_date") >= F.lit(first_day)) & (F.col("event_date") <= F.lit(feature_date))
    )


def _use_dates(event_date: str) -> tuple[F.Column, F.Column]:
    """first_used / last_used: the first and last day in the window an account used an artefact (the stored
    edges' first-seen / last-seen dates are drawn from them)."""
    return F.min(event_date).alias("first_used"), F.max(event_date).alias("last_used")


def _memberships(rows: DataFrame, item: F.Column, link_type: str) -> DataFrame:
    """(account_id, item, link_type, first_used, last_used), one row per account and artefact."""
    return rows.select(
        "account_id", item.cast("string").alias("item"), F.lit(link_type).alias("link_type"), "first_used", "last_used"
    )


def with_group_size(members: DataFrame) -> DataFrame:
    """members with `accounts`: how many accounts share each (link_type, item)."""
    # a window, not a grouped self-join: Sail has no cache, and a join would scan the members' inputs twice
    return members.withColumn("accounts", F.count(F.lit(1)).over(Window.partitionBy("link_type", "item")))


def _bounded_groups(members: DataFrame, max_accounts: int) -> DataFrame:
    """Members of groups with 2..max_accounts accounts (distinct account_id, item, link_type rows)."""
    return (
        with_group_size(members).where((F.col("accounts") >= 2) & (F.col("accounts") <= max_accounts)).drop("accounts")
    )


def payment_members(accounts: DataFrame, window: DataFrame, feature_date: dt.date) -> DataFrame:
    """(account_id, item, link_type) per payment fingerprint. Only accounts created on or before feature_date and
    active in the window take part: an account created later did not exist on that day, and one idle all window
    is not part of the day's picture (a replacement account in a hydra shows up as soon as it sends traffic)."""
    day_end = dt.datetime.combine(feature_date + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    active = window.groupBy("account_id").agg(*_use_dates("event_date"))
    members = (
        accounts.filter(F.col("payment_fingerprint").isNotNull() & (F.col("payment_fingerprint") != ""))
        # an unknown creation time is no evidence the account did not exist yet
        .filter(F.col("created_at").isNull() | (F.col("created_at") < F.lit(day_end)))
        .join(active, "account_id")
    )
    return _memberships(members, F.col("payment_fingerprint"), PAYMENT_LINK).distinct()


def ip_prefix_members(window: DataFrame, max_accounts_per_prefix: int = DEFAULT_MAX_ACCOUNTS_PER_PREFIX) -> DataFrame:
    """(account_id, item, link_type) per IP prefix used in the window by 2..max_accounts_per_prefix accounts."""
    if max_accounts_per_prefix < 2:
        raise ValueError(f"max_accounts_per_prefix must be >= 2, got {max_accounts_per_prefix}")
    usage = (
        window.select("account_id", "event_date", F.explode("ip_prefixes").alias("ip_prefix"))
        .filter(F.col("ip_prefix").isNotNull() & (F.col("ip_prefix") != ""))
        .groupBy("account_id", "ip_prefix")
        .agg(*_use_dates("event_date"))
    )
    return _bounded_groups(_memberships(usage, F.col("ip_prefix"), IP_PREFIX_LINK), max_accounts_per_prefix)


def template_members(
    requests: DataFrame, max_accounts_per_template: int = DEFAULT_MAX_ACCOUNTS_PER_TEMPLATE
) -> DataFrame:
    """(account_id, item, link_type) per rare normalised prompt template (bronze `prompt_fingerprint`, computed
    at ingest; never prompt text) that each account sent at least MIN_TEMPLATE_USES times in the window."""
    usage = (
        requests.where(F.col("prompt_fingerprint").isNotNull())
        .groupBy("prompt_fingerprint", "account_id")
        .agg(F.count(F.lit(1)).alias("uses"), *_use_dates("event_date"))
        .where(F.col("uses") >= MIN_TEMPLATE_USES)
    )
    return _bounded_groups(_memberships(usage, F.col("prompt_fingerprint"), TEMPLATE_LINK), max_accounts_per_template)


def timing_members(requests: DataFrame) -> DataFrame:
    """(account_id, item, link_type) per MinHash band of each busy account's active minutes in the window: two
    accounts in the same band were active in largely the same minutes (nothing compared all-pairs)."""
    minutes = requests.select(
        "account_id", "event_date", F.floor(F.unix_seconds("event_ts") / 60).alias("minute")
    ).distinct()
    busy = (
        minutes.groupBy("account_id")
        .agg(F.count(F.lit(1)).alias("active_minutes"))
        .where(F.col("active_minutes") >= MIN_ACTIVE_MINUTES)
        .select("account_id")
    )
    hashes = TIMING_BANDS * TIMING_ROWS_PER_BAND
    signatures = (
        minutes.join(busy, "account_id")
        .groupBy("account_id")
        .agg(
            *(F.min(F.xxhash64("minute", F.lit(i))).alias(f"h{i}") for i in range(hashes)),
            *_use_dates("event_date"),
        )
    )
    band_keys = [
        F.concat_ws(
            ":", F.lit(band), *(F.col(f"h{band * TIMING_ROWS_PER_BAND + r}") for r in range(TIMING_ROWS_PER_BAND))
        )
        for band in range(TIMING_BANDS)
    ]
    members = signatures.select(
        "account_id", F.explode(F.array(*band_keys)).alias("band_key"), "first_used", "last_used"
    )
    return _bounded_groups(_memberships(members, F.col("band_key"), TIMING_LINK), MAX_ACCOUNTS_PER_TIMING_BAND)


def artefact_pairs(members: DataFrame) -> DataFrame:
    """(src, dst, link_type, item) with src < dst for accounts sharing an artefact: every pair inside a group of
    at most PAIR_GROUP_LIMIT accounts; in a larger group, each member with its RING_NEIGHBOURS successors in a
    hashed order (the group stays connected, and pairs grow linearly with its size)."""
    sized = with_group_size(members).where(F.col("accounts") >= 2)
    small = sized.where(F.col("accounts") <= PAIR_GROUP_LIMIT).select("link_type", "item", "account_id")
    all_pairs = (
        small.alias("a")
        .join(small.alias("b"), ["link_type", "item"])
        .where(F.col("a.account_id") < F.col("b.account_id"))
        .select(F.col("a.account_id").alias("src"), F.col("b.account_id").alias("dst"), "link_type", "item")
    )
    order = Window.partitionBy("link_type", "item").orderBy(F.xxhash64("account_id"), "account_id")
    ranked = sized.where(F.col("accounts") > PAIR_GROUP_LIMIT).select(
        "link_type", "item", "account_id", "accounts", (F.row_number().over(order) - 1).alias("position")
    )
    step = F.explode(F.sequence(F.lit(1), F.lit(RING_NEIGHBOURS))).alias("step")
    successors = ranked.select("link_type", "item", "account_id", "accounts", "position", step).select(
        "link_type",
        "item",
        F.col("account_id").alias("member"),
        F.pmod(F.col("position") + F.col("step"), F.col("accounts")).alias("position"),
    )
    ring = (
        successors.join(ranked.select("link_type", "item", "position", "account_id"), ["link_type", "item", "position"])
        .where(F.col("member") != F.col("account_id"))
        .select(
            F.least("member", "account_id").alias("src"),
            F.greatest("member", "account_id").alias("dst"),
            "link_type",
            "item",
        )
    )
    return all_pairs.unionByName(ring).distinct()


def link_evidence(pairs: DataFrame) -> DataFrame:
    """One row per linked pair (src < dst): how many artefacts of each kind they share, and the pair's strength."""
    counts = [
        F.count(F.when(F.col("link_type") == kind, True)).cast("long").alias(column)
        for kind, column in EVIDENCE_COLUMNS.items()
    ]
    evidence = pairs.groupBy("src", "dst").agg(*counts)
    strength = (
        F.col("shared_ip_prefixes")
        + F.col("shared_templates") / F.lit(float(TEMPLATES_PER_POINT))
        + F.col("synchronised_bands")
        + F.least(F.col("shared_payment_methods"), F.lit(1)) * PAYMENT_STRENGTH
    )
    return evidence.withColumn("strength", strength.cast("double"))


def cluster_links(
    evidence: DataFrame, *, min_strength: int = MIN_LINK_STRENGTH, keep_strongest: int = KEEP_STRONGEST_LINKS
) -> DataFrame:
    """The candidate pairs (strength >= min_strength) where each account is among the other's `keep_strongest`
    strongest candidates (ties broken by account id, so reruns keep the same links)."""
    candidates = evidence.where(F.col("strength") >= min_strength)
    directed = candidates.select(
        F.col("src").alias("account_id"), F.col("dst").alias("other"), "src", "dst", "strength"
    ).unionByName(
        candidates.select(F.col("dst").alias("account_id"), F.col("src").alias("other"), "src", "dst", "strength")
    )
    rank = F.row_number().over(Window.partitionBy("account_id").orderBy(F.col("strength").desc(), "other"))
    kept_by_one = directed.select("src", "dst", rank.alias("rank")).where(F.col("rank") <= keep_strongest)
    mutual = kept_by_one.groupBy("src", "dst").agg(F.count(F.lit(1)).alias("ends")).where(F.col("ends") == 2)
    return candidates.join(mutual.select("src", "dst"), ["src", "dst"])


def link_edges(
    accounts: DataFrame,
    account_daily: DataFrame,
    feature_date: dt.date,
    *,
    window_days: int = DEFAULT_WINDOW_DAYS,
    max_accounts_per_prefix: int = DEFAULT_MAX_ACCOUNTS_PER_PREFIX,
    requests: DataFrame | None = None,
) -> DataFrame:
    """The cluster graph's links for feature_date with their evidence (`account_links` columns less the date).
    `requests` (bronze rows of the window) adds the template and timing evidence; without it only payment and
    IP-prefix artefacts count."""
    members = artefact_members(
        accounts,
        account_daily,
        feature_date,
        window_days=window_days,
        max_accounts_per_prefix=max_accounts_per_prefix,
        requests=requests,
    )
    return cluster_links(link_evidence(artefact_pairs(members)))


def artefact_members(
    accounts: DataFrame,
    account_daily: DataFrame,
    feature_date: dt.date,
    *,
    window_days: int = DEFAULT_WINDOW_DAYS,
    max_accounts_per_prefix: int = DEFAULT_MAX_ACCOUNTS_PER_PREFIX,
    requests: DataFrame | None = None,
) -> DataFrame:
    """(account_id, item, link_type, first_used, last_used): every linkable artefact of every account active in
    the window. The cluster job stores this before drawing pairs, since pairs read it several times and Sail
    cannot cache."""
    window = window_activity(account_daily, feature_date, window_days)
    members = payment_members(accounts, window, feature_date).unionByName(
        ip_prefix_members(window, max_accounts_per_prefix)
    )
    if requests is not None:
        first_day = feature_date - dt.timedelta(days=window_days - 1)
        in_window = requests.where(
            (F.col("event_date") >= F.lit(first_day)) & (F.col("event_date") <= F.lit(feature_date))
        )
        members = members.unionByName(template_members(in_window)).unionByName(timing_members(in_window))
    return members


# account_clusters column counting an account's cluster links that carry each kind of evidence
LINKS_WITH_EVIDENCE = {
    PAYMENT_LINK: "payment_links",
    IP_PREFIX_LINK: "ip_prefix_links",
    TEMPLATE_LINK: "template_links",
    TIMING_LINK: "timing_links",
}


def account_link_evidence(links: DataFrame) -> DataFrame:
    """Per linked account: link_types (the sorted kinds of evidence on its links), linked_accounts (its links) and,
    per kind, how many of its links carry that evidence (what a reviewer reads: "shares rare prompt templates with
    12 linked accounts")."""
    ends = links.select(F.col("src").alias("account_id"), *EVIDENCE_COLUMNS.values()).unionByName(
        links.select(F.col("dst").alias("account_id"), *EVIDENCE_COLUMNS.values())
    )
    per_kind = [
        F.count(F.when(F.col(EVIDENCE_COLUMNS[kind]) > 0, True)).cast("long").alias(column)
        for kind, column in LINKS_WITH_EVIDENCE.items()
    ]
    summary = ends.groupBy("account_id").agg(F.count(F.lit(1)).cast("long").alias("linked_accounts"), *per_kind)
    kinds = F.array(*(F.when(F.col(column) > 0, F.lit(kind)) for kind, column in LINKS_WITH_EVIDENCE.items()))
    return summary.withColumn("link_types", F.array_sort(F.filter(kinds, lambda kind: kind.isNotNull())))


def initial_labels(edges: DataFrame) -> DataFrame:
    """Every linked account starts labelled with itself."""
    vertices = (
        edges.select(F.col("src").alias("account_id"))
        .unionByName(edges.select(F.col("dst").alias("account_id")))
        .distinct()
    )
    return vertices.select("account_id", F.col("account_id").alias("label"), F.lit(True).alias("changed"))


def propagate_labels(labels: DataFrame, edges: DataFrame) -> DataFrame:
    """One iteration: take the smallest label among an account and its neighbours, then jump to
    the label's own label (pointer jumping), which shortens long chains to about log(length)
    iterations. Labels only ever decrease and always name an account in the same component, so
    the fixpoint labels every component with its minimum account_id.

    Returns (account_id, label, changed) where changed says the label moved this iteration.
    """
    current = labels.select("account_id", "label")
    undirected = edges.select("src", "dst").unionByName(
        edges.select(F.col("dst").alias("src"), F.col("src").alias("dst"))
    )
    neighbour_min = (
        undirected.join(current.select(F.col("account_id").alias("src"), F.col("label").alias("src_label")), "src")
        .groupBy(F.col("dst").alias("account_id"))
        .agg(F.min("src_label").alias("neighbour_label"))
    )
    stepped = current.join(neighbour_min, "account_id", "left").select(
        "account_id",
        F.col("label").alias("previous_label"),
        F.least("label", F.coalesce("neighbour_label", "label")).alias("label"),
    )
    label_of_label = stepped.select(F.col("account_id").alias("label"), F.col("label").alias("label_of_label"))
    return (
        stepped.join(label_of_label, "label", "left")
        .select("account_id", F.least("label", F.coalesce("label_of_label", "label")).alias("label"), "previous_label")
        .select("account_id", "label", (F.col("label") != F.col("previous_label")).alias("changed"))
    )


class ComponentsDidNotConverge(RuntimeError):
    pass


def connected_components(
    edges: DataFrame,
    materialize: Callable[[DataFrame, int], DataFrame],
    *,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
) -> DataFrame:
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
        "raise max_iterations (the link graph has unusually long chains)"
    )


def cluster_id(component: F.Column) -> F.Column:
    """Stable id from the component's smallest account_id, so reruns give identical ids."""
    return F.concat(F.lit("c-"), F.substring(F.sha2(component, 256), 1, 12))


def account_clusters(components: DataFrame, evidence: DataFrame, feature_date: dt.date) -> DataFrame:
    """Rows of the account_clusters table from the components and `account_link_evidence`. Only linked accounts
    appear (every vertex of the cluster graph is in a component of at least two accounts)."""
    return components.join(evidence, "account_id").select(
        F.lit(feature_date).alias("feature_date"),
        "account_id",
        cluster_id(F.col("component")).alias("cluster_id"),
        "link_types",
        "linked_accounts",
        *LINKS_WITH_EVIDENCE.values(),
    )


def link_rows(links: DataFrame, feature_date: dt.date) -> DataFrame:
    """Rows of the account_links table: the cluster graph's links with their evidence."""
    return links.select(F.lit(feature_date).alias("feature_date"), "src", "dst", "strength", *EVIDENCE_COLUMNS.values())
