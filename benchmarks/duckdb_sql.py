"""The project's declarations (features/signals.py, features/daily_stats.py, features/registry.py) as DuckDB SQL:
the independent engine of benchmarks/duckdb_anchor.py.

Only the declarations are shared: the patterns, the daily statistics and the feature formulas. Every query
around them (joins, windows, the roll-ups, the registry and cluster inputs) is written here again in SQL, after
the conventions features/spark_engine.py documents, so a disagreement between the two is a finding.

Left out: validation, quarantine and pseudonymisation at ingest (the anchor derives only the signal columns from
raw prompts and user agents), the clustering step (it reads the project's account_clusters), and Delta writes
(results stay in DuckDB). The prompt fingerprint is DuckDB's own 64-bit hash of the same normalized text, not
Spark's xxhash64: the anchor checks that it groups prompts the same way.
"""

from __future__ import annotations

import datetime as dt

from features import daily_stats, registry, signals
from features.daily_stats import GAP_COLUMN, NEWEST_RELEASED_AT, WINDOW_DAYS
from features.expr import Expr


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"CAST({value!r} AS DOUBLE)"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


_INFIX = {
    "add": "+",
    "sub": "-",
    "mul": "*",
    "gt": ">",
    "ge": ">=",
    "lt": "<",
    "le": "<=",
    "eq": "=",
    "ne": "<>",
    "and": "AND",
    "or": "OR",
}


# ops whose SQL is a template of their compiled arguments, in order
_FUNCTIONS = {
    "not": "(NOT {})",
    "is_null": "({} IS NULL)",
    "not_null": "({} IS NOT NULL)",
    "as_float": "CAST({} AS DOUBLE)",
    "sqrt": "sqrt({})",
    "greatest": "greatest({}, {})",
    "when": "CASE WHEN {} THEN {} ELSE {} END",
    "fill_null": "coalesce({}, {})",
    "epoch_micros": "epoch_us({})",
    "mod": "({} % {})",
    "div": "(CAST({} AS DOUBLE) / CAST({} AS DOUBLE))",
    "floordiv": "CAST(floor({} / {}) AS BIGINT)",
}


def to_sql(expr: Expr, resolve) -> str:
    """DuckDB SQL for `expr` with the null semantics features/expr.py documents; `resolve(name)` gives the SQL a
    `col(name)` stands for."""

    def go(e: Expr) -> str:
        op, args = e.op, e.args
        if op == "col":
            return resolve(args[0])
        if op == "lit":
            return literal(args[0])
        if op in _INFIX:
            return f"({go(args[0])} {_INFIX[op]} {go(args[1])})"
        if op == "ratio":
            denominator = go(args[1])
            return (
                f"(CAST({go(args[0])} AS DOUBLE) / CASE WHEN {denominator} > 0 THEN CAST({denominator} AS DOUBLE) END)"
            )
        if op in _FUNCTIONS:
            return _FUNCTIONS[op].format(*(go(a) for a in args))
        if op == "isin":
            return f"({go(args[0])} IN ({', '.join(literal(v) for v in args[1])}))"
        if op == "log2":  # Spark's log2 is null where x <= 0
            x = go(args[0])
            return f"CASE WHEN {x} > 0 THEN log2({x}) END"
        if op == "lookup":
            cases = " ".join(f"WHEN {literal(k)} THEN {literal(float(v))}" for k, v in args[1])
            return f"CASE {go(args[0])} {cases} ELSE CAST(NULL AS DOUBLE) END"
        raise ValueError(f"unknown expression op {op!r}")

    return go(expr)


# --- bronze signals from raw prompts ------------------------------------------------------------------------


def _matches(column: str, pattern: str) -> str:
    return f"coalesce(regexp_matches(lower({quote(column)}), {literal(pattern)}), FALSE)"


def signals_select() -> str:
    """The signal columns of features/signals.py over a relation with the raw request columns."""
    prompt, agent = signals.PROMPT, signals.USER_AGENT
    tools = "coalesce(tool_count, 0)"
    capability = (
        f"CASE WHEN coalesce(has_image, FALSE) THEN 'vision' "
        f"WHEN {tools} >= 3 OR {_matches(prompt, signals.AGENTIC_PATTERN)} THEN 'agentic' "
        f"WHEN {tools} > 0 THEN 'tool_use' "
        f"WHEN {_matches(prompt, signals.CODING_PATTERN)} THEN 'coding' "
        f"WHEN {_matches(prompt, signals.REASONING_PATTERN)} THEN 'reasoning' ELSE 'chat' END"
    )
    digits = "0123456789"
    normalized = f"translate(lower({quote(prompt)}), '{digits}', '{'#' * len(digits)}')"
    whitespace = signals.WHITESPACE
    normalized = (
        f"substr(trim(translate(regexp_replace({normalized}, {literal(signals.WHITESPACE_RUN)}, ' ', 'g'), "
        f"{literal(whitespace)}, {literal(' ' * len(whitespace))}), ' '), 1, {signals.FINGERPRINT_PREFIX_CHARS})"
    )
    return ", ".join(
        (
            f"{_matches(prompt, signals.COT_ELICITATION_PATTERN)} AS is_cot_elicitation",
            f"{_matches(prompt, signals.RUBRIC_GRADING_PATTERN)} AS is_rubric_grading",
            f"{capability} AS capability",
            f"coalesce(regexp_matches({quote(prompt)}, {literal(signals.NON_LATIN_SCRIPT_PATTERN)}), FALSE)"
            " AS is_non_english",
            f"CASE WHEN {quote(prompt)} IS NOT NULL THEN hash({normalized}) END AS prompt_fingerprint",
            f"({_matches(agent, signals.RAW_HTTP_CLIENT_PATTERN)} AND NOT {_matches(agent, signals.OFFICIAL_SDK_PATTERN)})"
            " AS is_raw_http_client",
        )
    )


# --- one day of bronze -> account_daily ---------------------------------------------------------------------


def newest_release(day_end: str) -> str:
    """One row (newest_model, newest_released_at): the latest release strictly before `day_end`, ties to the
    greatest model name; nulls when none."""
    return (
        f"SELECT (SELECT model FROM model_releases WHERE released_at < {day_end} ORDER BY released_at DESC, model DESC "
        f"LIMIT 1) AS newest_model, (SELECT max(released_at) FROM model_releases WHERE released_at < {day_end}) "
        "AS newest_released_at"
    )


def day_end(day: dt.date) -> str:
    return f"TIMESTAMPTZ '{(day + dt.timedelta(days=1)).isoformat()} 00:00:00+00'"


def _daily_aggregate(stat: daily_stats.DailyStat, resolve) -> str | None:
    agg = stat.daily
    value = to_sql(agg.value, resolve) if agg.value is not None else None
    if agg.kind == "count":
        return "count(*)"
    if agg.kind == "sum":
        return f"coalesce(sum({value}), 0)"
    if agg.kind == "count_distinct":
        return f"count(DISTINCT {value})"
    if agg.kind == "repeats":
        return f"count({value}) - count(DISTINCT {value})"
    if agg.kind == "min_where":
        return f"min(CASE WHEN {to_sql(agg.where, resolve)} THEN {value} END)"
    if agg.kind == "day_constant":
        return f"max({value})"
    return None


def _keyed_aggregate(stat: daily_stats.DailyStat, resolve) -> str:
    """account_id + the statistic for the kinds that group each account's rows by a key first."""
    agg = stat.daily
    key = to_sql(agg.value, resolve)
    keyed = f"SELECT account_id, {key} AS _key FROM request_rows WHERE {key} IS NOT NULL"
    if agg.kind == "peak_group":
        return (
            f"SELECT account_id, max(_n) AS v FROM (SELECT account_id, _key, count(*) AS _n FROM ({keyed}) "
            "GROUP BY ALL) GROUP BY account_id"
        )
    if agg.kind == "first_majority":
        hit = f"CASE WHEN {to_sql(agg.where, resolve)} THEN 1 ELSE 0 END"
        return (
            f"SELECT account_id, min(_key) AS v FROM (SELECT account_id, {key} AS _key, count(*) AS _n, "
            f"sum({hit}) AS _hits FROM request_rows WHERE {key} IS NOT NULL GROUP BY ALL) "
            "WHERE _hits * 2 > _n GROUP BY account_id"
        )
    if agg.kind == "sorted_set":
        return f"SELECT account_id, list_sort(list(DISTINCT _key)) AS v FROM ({keyed}) GROUP BY account_id"
    raise ValueError(f"daily stat {stat.name}: unknown aggregation {agg.kind!r}")


def request_rows_sql(day: dt.date) -> str:
    """The day's bronze rows (relation `bronze`) with the reference values and the derived request columns."""
    derived: dict[str, str] = {}

    def resolve(name: str) -> str:
        return f"({derived[name]})" if name in derived else quote(name)

    for name, expr in daily_stats.REQUEST_COLUMNS.items():
        derived[name] = to_sql(expr, resolve)
    gap = (
        "CAST(floor((epoch_us(event_ts) - lag(epoch_us(event_ts)) OVER (PARTITION BY account_id ORDER BY "
        "epoch_us(event_ts))) / 1000) AS BIGINT)"
    )
    return (
        "SELECT b.*, a.asn_category, s.signup_country, n.newest_model, "
        + ", ".join(f"{sql} AS {quote(name)}" for name, sql in derived.items())
        + f", {gap} AS {GAP_COLUMN} "
        "FROM (SELECT * FROM bronze WHERE event_date = " + literal(day) + ") b "
        "LEFT JOIN (SELECT asn, min(category) AS asn_category FROM asn_info GROUP BY asn) a USING (asn) "
        "LEFT JOIN (SELECT account_id, min(signup_country) AS signup_country FROM accounts GROUP BY account_id) s "
        f"USING (account_id) CROSS JOIN ({newest_release(day_end(day))}) n"
    )


def account_daily_sql(day: dt.date) -> str:
    """`account_daily` of `day` from relation `request_rows` (request_rows_sql)."""
    one_pass = {s.name: _daily_aggregate(s, quote) for s in daily_stats.DAILY_STATS}
    grouped = ", ".join(f"{sql} AS {quote(name)}" for name, sql in one_pass.items() if sql is not None)
    sql = f"WITH base AS (SELECT account_id, {grouped} FROM request_rows GROUP BY account_id)"
    joins, columns = [], []
    for index, stat in enumerate(daily_stats.DAILY_STATS):
        if one_pass[stat.name] is None:
            sql += f", k{index} AS ({_keyed_aggregate(stat, quote)})"
            joins.append(f"LEFT JOIN k{index} USING (account_id)")
            if stat.daily.kind == "peak_group":
                value = f"coalesce(k{index}.v, 0)"
            elif stat.daily.kind == "sorted_set":
                value = f"coalesce(k{index}.v, CAST([] AS VARCHAR[]))"
            else:
                value = f"k{index}.v"
        else:
            value = f"base.{quote(stat.name)}"
        if stat.dtype == daily_stats.TS:
            value = f"make_timestamp({value})"
        columns.append(f"{value} AS {quote(stat.name)}")
    return f"{sql} SELECT account_id, {literal(day)} AS event_date, {', '.join(columns)} FROM base {' '.join(joins)}"


# --- account_daily windows + registry + clusters -> account_features ----------------------------------------


def _windowed(stat: str, days: int) -> str:
    return f"{stat}__{days}d"


def _in_window(day: dt.date, days: int) -> str:
    return f"(event_date > {literal(day - dt.timedelta(days=days))} AND event_date <= {literal(day)})"


def window_stats_sql(day: dt.date) -> str:
    """account_id + `<stat>__<w>d` over relation `daily` (account_daily rows of the longest window)."""
    current = newest_release(day_end(day))
    aggregates = []
    for days in registry.WINDOWS:
        inside = _in_window(day, days)
        on_current = f"({inside} AND d.newest_model = c._current_newest_model)"
        for stat in daily_stats.DAILY_STATS:
            if not stat.window_stat or stat.window == "distinct_count":
                continue
            value = quote(stat.name)
            if stat.dtype == daily_stats.TS:
                value = f"epoch_us({value})"
            if stat.window == "sum":
                sql = f"sum(CASE WHEN {inside} THEN coalesce({value}, 0) ELSE 0 END)"
            elif stat.window == "max":
                sql = f"coalesce(max(CASE WHEN {inside} THEN {value} END), 0)"
            elif stat.window == "sum_on_current_newest":
                sql = f"sum(CASE WHEN {on_current} THEN coalesce({value}, 0) ELSE 0 END)"
            else:
                sql = f"min(CASE WHEN {on_current} THEN {value} END)"
            aggregates.append(f"{sql} AS {quote(_windowed(stat.window_stat, days))}")
        aggregates.append(f"max(c.{NEWEST_RELEASED_AT}) AS {quote(_windowed(NEWEST_RELEASED_AT, days))}")
    sql = (
        f"WITH c AS (SELECT newest_model AS _current_newest_model, epoch_us(newest_released_at) AS "
        f"{NEWEST_RELEASED_AT} FROM ({current})), "
        f"base AS (SELECT d.account_id, {', '.join(aggregates)} FROM daily d CROSS JOIN c GROUP BY d.account_id)"
    )
    selects, joins = ["base.*"], []
    for index, stat in enumerate(daily_stats.DAILY_STATS):
        if stat.window != "distinct_count":
            continue
        counts = ", ".join(
            f"sum(CASE WHEN _last > {literal(day - dt.timedelta(days=days))} THEN 1 ELSE 0 END) AS w{days}"
            for days in registry.WINDOWS
        )
        sql += (
            f", s{index} AS (SELECT account_id, {counts} FROM (SELECT account_id, _item, max(event_date) AS _last "
            f"FROM (SELECT account_id, event_date, unnest({quote(stat.name)}) AS _item FROM daily) GROUP BY ALL) "
            "GROUP BY account_id)"
        )
        joins.append(f"LEFT JOIN s{index} USING (account_id)")
        selects += [
            f"CAST(coalesce(s{index}.w{days}, 0) AS INTEGER) AS {quote(_windowed(stat.window_stat, days))}"
            for days in registry.WINDOWS
        ]
    return f"{sql} SELECT {', '.join(selects)} FROM base {' '.join(joins)}"


def account_inputs_sql(day: dt.date) -> str:
    end = day_end(day)
    return (
        "WITH r AS (SELECT account_id, min(created_at) AS created_at, min(verification) AS verification, "
        "min(program) AS program, min(payment_fingerprint) AS payment_fingerprint FROM accounts GROUP BY account_id), "
        f"e AS (SELECT *, coalesce(created_at < {end}, TRUE) AS existed_at_feature_date, {end} AS feature_day_end "
        "FROM r), p AS (SELECT payment_fingerprint, count(*) AS same_payment_accounts FROM e "
        "WHERE existed_at_feature_date AND payment_fingerprint IS NOT NULL GROUP BY payment_fingerprint) "
        "SELECT e.*, p.same_payment_accounts FROM e LEFT JOIN p USING (payment_fingerprint)"
    )


def cluster_inputs_sql(day: dt.date) -> str:
    """account_id + CLUSTER_INPUTS from relations clusters, registry_rows, daily and labels."""
    new_since = f"CAST({literal(day - dt.timedelta(days=registry.NEW_ACCOUNT_DAYS - 1))} AS TIMESTAMPTZ)"
    standing = (
        "SELECT account_id, label AS standing FROM (SELECT account_id, label, row_number() OVER (PARTITION BY "
        f"account_id ORDER BY decided_at DESC, label DESC) AS _n FROM labels WHERE decided_at < {day_end(day)}) "
        "WHERE _n = 1"
    )
    volume = (
        "SELECT account_id, sum(requests) AS member_requests FROM daily WHERE "
        f"{_in_window(day, registry.CLUSTER_VOLUME_DAYS)} GROUP BY account_id"
    )

    def count_if(condition: str) -> str:
        return f"sum(CASE WHEN {condition} THEN 1 ELSE 0 END)"

    links = {
        "cluster_payment_members": "payment",
        "cluster_ip_prefix_members": "ip_prefix",
        "cluster_template_members": "template",
        "cluster_timing_members": "timing",
    }
    per_cluster = ", ".join(
        [
            "count(*) AS cluster_size",
            *(f"{count_if(f'list_contains(link_types, {literal(link)})')} AS {name}" for name, link in links.items()),
            f"{count_if(f'created_at >= {new_since}')} AS cluster_new_members",
            "coalesce(sum(member_requests), 0) AS cluster_requests",
            f"{count_if(literal('extraction') + ' = standing')} AS cluster_extraction_labelled",
        ]
    )
    return (
        "WITH m AS (SELECT c.account_id, c.cluster_id, c.link_types, c.linked_accounts, c.template_links, "
        f"r.created_at, v.member_requests, l.standing FROM clusters c LEFT JOIN registry_rows r USING (account_id) "
        f"LEFT JOIN ({volume}) v USING (account_id) LEFT JOIN ({standing}) l USING (account_id)), "
        f"p AS (SELECT cluster_id, {per_cluster} FROM m GROUP BY cluster_id) "
        f"SELECT m.account_id, {', '.join(registry.CLUSTER_INPUTS)} FROM m JOIN p USING (cluster_id)"
    )


def feature_columns_sql() -> str:
    columns = []
    for feature in registry.FEATURES:
        if not feature.windowed:
            columns.append(f"CAST({to_sql(feature.formula, quote)} AS DOUBLE) AS {quote(feature.name)}")
            continue
        for days in registry.WINDOWS:

            def resolve(name: str, days=days) -> str:
                return literal(float(days)) if name == WINDOW_DAYS else quote(_windowed(name, days))

            columns.append(f"CAST({to_sql(feature.formula, resolve)} AS DOUBLE) AS {quote(f'{feature.name}_{days}d')}")
    return ", ".join(columns)


def account_features_sql(day: dt.date) -> str:
    """account_features of `day` from relations daily (the window's account_daily), accounts, model_releases,
    clusters (the day's account_clusters) and labels (enforcement_labels)."""
    return (
        f"WITH registry_rows AS ({account_inputs_sql(day)}), w AS ({window_stats_sql(day)}), "
        f"ci AS ({cluster_inputs_sql(day)}) "
        f"SELECT w.account_id, {literal(day)} AS feature_date, {feature_columns_sql()} "
        "FROM w LEFT JOIN registry_rows USING (account_id) LEFT JOIN ci USING (account_id)"
    )
