"""Per-request signals for the frame engines (cuDF / pandas): the sibling of features/request_signals.py.

Same patterns, same precedence, same normalization; only the API differs. Case-insensitive patterns are
matched against the lower-cased prompt with their `(?i)` prefix removed, because cuDF's regex engine has
no inline flags; every pattern's literals are lower-case, so the two are equivalent.

Word boundaries: Sail's Rust regex reads \\b and \\w as Unicode, cuDF and pandas (RE2 via Arrow) as ASCII, so
"theorem을" has no boundary after "m" on Spark but has one here. Before matching, letters of the scripts the
platform sees (Latin-1/Extended letters and the NON_LATIN ranges) are replaced by an ASCII letter, which puts
the boundaries where Spark does. What remains different, documented rather than hidden: letters of other
scripts, and non-ASCII whitespace in the fingerprint's whitespace collapsing.
"""

from __future__ import annotations

import warnings

from features import request_signals as spark_signals
from lake.frames import FrameEngine

CAPABILITY_CODES = {name: code for code, name in enumerate(spark_signals.CAPABILITIES)}


# Latin-1 and Latin Extended-A/B letters (skipping the signs x and /), plus the NON_LATIN script ranges.
_WORD_LETTER_RANGES = ((0x00C0, 0x00D6), (0x00D8, 0x00F6), (0x00F8, 0x024F), *spark_signals.NON_LATIN_RANGES)
NON_ASCII_LETTER_PATTERN = "[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _WORD_LETTER_RANGES) + "]"


def _ascii_words(text):
    return text.str.replace(NON_ASCII_LETTER_PATTERN, "x", regex=True)


def _case_folded(pattern: str) -> str:
    return pattern.removeprefix("(?i)")


def _matches(text, pattern: str):
    """str.contains that reads a missing value as 'no match'."""
    with warnings.catch_warnings():  # pandas warns that the patterns have groups; they are alternations
        warnings.filterwarnings("ignore", message="This pattern is interpreted as a regular expression")
        return text.str.contains(pattern, regex=True).fillna(False).astype("bool")


def _contains_any(text, literals: tuple[str, ...]):
    found = text.str.contains(literals[0], regex=False).fillna(False)
    for literal in literals[1:]:
        found = found | text.str.contains(literal, regex=False).fillna(False)
    return found


def _prompt_matches(lower_text, pattern: str):
    """_matches for a lower-cased prompt pattern, branch by branch (request_signals.Branch): a branch's regex
    runs only on rows that hold one of its literals and no earlier branch matched, and a literal branch needs
    no regex. Same answer as the whole alternation; a fraction of the regex work, which dominates on a GPU."""
    matched = None
    for branch in spark_signals.PATTERN_BRANCHES[pattern]:
        candidate = _contains_any(lower_text, branch.literals)
        if matched is not None:
            candidate = candidate & ~matched
        if branch.is_literal:
            hit = candidate
        else:
            hit = _matches(lower_text[candidate], branch.regex).reindex(lower_text.index).fillna(False)
        matched = hit.astype("bool") if matched is None else matched | hit.astype("bool")
    return matched


def _per_distinct_value(engine: FrameEngine, text, compute):
    """compute(text) evaluated once per distinct value and spread back: user agents have a few dozen
    distinct values a day against millions of requests."""
    codes, uniques = text.fillna("").factorize()
    per_unique = compute(engine.xp.Series(uniques))
    return engine.xp.Series(per_unique.values[codes], index=text.index)


def normalized_prompt(lower_prompt):
    """digits -> '#', whitespace runs -> one space, trimmed, first 256 characters (request_signals.normalized_prompt)."""
    text = lower_prompt.str.replace(r"[0-9]", "#", regex=True)
    text = text.str.replace(r"\s+", " ", regex=True)
    return text.str.strip(" ").str.slice(0, spark_signals.FINGERPRINT_PREFIX_CHARS)


def _is_raw_http_client(user_agents):
    lower = _ascii_words(user_agents.str.lower())
    return (_matches(lower, _case_folded(spark_signals.RAW_HTTP_CLIENT_PATTERN))
            & ~_matches(lower, _case_folded(spark_signals.OFFICIAL_SDK_PATTERN)))


def request_signals(engine: FrameEngine, requests):
    """One frame with the signal columns the daily aggregate needs, in the same order of precedence as Spark:
    is_cot_elicitation, is_rubric_grading, capability_code (index into CAPABILITIES), is_non_english,
    prompt_fingerprint (a 64-bit hash of the normalized prompt, null without prompt text) and
    is_raw_http_client."""
    prompt = requests[spark_signals.PROMPT]
    lower = _ascii_words(prompt.str.lower())
    agent = requests[spark_signals.USER_AGENT]
    tool_count = requests["tool_count"].fillna(0)
    has_image = requests["has_image"].fillna(False).astype("bool")

    # lowest precedence first; each later rule overwrites (the Spark CASE's first match wins)
    capability = (tool_count * 0 + CAPABILITY_CODES["chat"]).astype("int8")
    for name, condition in (
        ("reasoning", _prompt_matches(lower, spark_signals.REASONING_PATTERN)),
        ("coding", _prompt_matches(lower, spark_signals.CODING_PATTERN)),
        ("tool_use", tool_count > 0),
        ("agentic", (tool_count >= 3) | _prompt_matches(lower, spark_signals.AGENTIC_PATTERN)),
        ("vision", has_image),
    ):
        capability = capability.where(~condition, CAPABILITY_CODES[name])

    fingerprint = engine.hash64(normalized_prompt(prompt.str.lower())).where(prompt.notna())
    raw_http = _per_distinct_value(engine, agent, _is_raw_http_client)
    signals = engine.xp.DataFrame({
        "is_cot_elicitation": _prompt_matches(lower, spark_signals.COT_ELICITATION_PATTERN),
        "is_rubric_grading": _prompt_matches(lower, spark_signals.RUBRIC_GRADING_PATTERN),
        "capability_code": capability.astype("int8"),
        "is_non_english": _matches(prompt, spark_signals.NON_LATIN_SCRIPT_PATTERN),
        "prompt_fingerprint": fingerprint,
        "is_raw_http_client": raw_http,
    })
    return signals
