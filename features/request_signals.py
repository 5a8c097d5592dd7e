"""Per-request signals derived from bronze `requests` columns, as Spark Column expressions.

Only built-in functions (rlike, regexp_replace, sha2, ...) so the expressions run inside the engine
on any Spark Connect backend; no Python UDFs. The patterns are plain module constants because the
cuDF/pandas engine mirrors them: they stay within the regex subset that Java, Rust (Sail) and Python
`re` read identically (no possessive quantifiers, no \\p{...} classes; scripts are code-point ranges).

Prompt text is only ever read here to derive booleans, a category and a one-way fingerprint; callers
must never copy `prompt_prefix` itself into a feature or risk table.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column
from pyspark.sql import functions as F

PROMPT = "prompt_prefix"
USER_AGENT = "user_agent"

@dataclass(frozen=True)
class Branch:
    """One alternative of a prompt pattern, and the lower-case literals every match of it contains (one of).

    The patterns are built from their branches, so Spark runs one regex while the GPU engine, whose regex
    engine is slow on long alternations, runs each branch only on rows holding one of its literals (a cheap
    substring search), and skips the regex entirely for branches that are a literal. tests/ check the literals
    on hand-written prompts and on every simulated prompt."""

    literals: tuple[str, ...]
    regex: str

    @property
    def is_literal(self) -> bool:
        return self.literals == (self.regex,)


def _literal(text: str) -> Branch:
    return Branch((text,), text)


def _case_insensitive_alternation(branches: tuple[Branch, ...]) -> str:
    return "(?i)(" + "|".join(branch.regex for branch in branches) + ")"


# Asking the model to expose its reasoning: the campaign-A chain-of-thought harvesting pattern.
COT_ELICITATION_BRANCHES = (
    Branch(("step",), r"step[- ]by[- ]step"),
    _literal("reasoning behind"),
    Branch(("chain",), r"chain[- ]of[- ]thought"),
    Branch(("show ",), r"show (your|all|the) (work|reasoning|steps)"),
    _literal("walk me through"),
    Branch(("through",), r"think (it )?through"),
    Branch(("explain ",), r"explain (your|the|each) (reasoning|thought process|steps)"),
    _literal("thought process"),
    _literal("reasoning process"),
    Branch((" out ",), r"(write|lay|spell) out (your|the|all|every)"),
    Branch((" steps",), r"\b(numbered|intermediate) steps\b"),
)

# Using the model as a grader / reward model.
RUBRIC_GRADING_BRANCHES = (
    Branch(("rubric",), r"\brubric\b"),
    Branch(("grader",), r"\bgrader\b"),
    Branch(("grade ", "score ", "rate ", "evaluate "),
           r"\b(grade|score|rate|evaluate) (this|the following|these|each) (response|answer|completion|output)s?"),
    Branch(("on a scale ",), r"on a scale (of|from) \d+"),
    Branch(("reward",), r"\breward( model| score| signal)?\b"),
    Branch(("score ",), r"\bscore (from|between) \d+ (to|and) \d+"),
)

AGENTIC_BRANCHES = (
    Branch(("agent",), r"\bagent(s|ic)?\b"),
    Branch(("plan",), r"plan[- ](and|&)[- ]execute"),
    Branch(("autonomous",), r"\bautonomous(ly)?\b"),
    _literal("orchestrat"),
    Branch(("computer",), r"computer[- ]use"),
    Branch(("multi",), r"multi[- ]step (task|plan|workflow)"),
    Branch((" tools",), r"\b(use|call) (the|your) tools\b"),
)

CODING_BRANCHES = (
    _literal("```"),
    Branch(("def ",), r"\bdef \w+\s*\("),
    Branch(("class ",), r"\bclass \w+\s*[:({]"),
    Branch(("function",), r"\bfunction\s*\w*\s*\("),
    Branch(("write ", "implement ", "fix ", "refactor ", "debug "),
           r"\b(write|implement|fix|refactor|debug) (a|an|the|this|my) "
           r"(function|class|method|script|program|code|sql|select|query|regex|unit tests?)\b"),
    Branch(("select",), r"\bselect\s+(\*|distinct\b|[\w.]+\s*(,|\s+from\b))"),
    Branch(("import ",), r"(^|\n)\s*import [\w.]+"),
    Branch((" import ",), r"\bfrom [\w.]+ import \w"),
    _literal("#include"),
    Branch(("bug",), r"\bbug\b"),
    Branch(("stack",), r"stack ?trace"),
    _literal("traceback"),
    Branch(("compil",), r"\bcompil(e|er|es|ing|ation)\b"),
    Branch(("refactor",), r"\brefactor"),
    Branch(("debug",), r"\bdebug"),
)

REASONING_BRANCHES = (
    Branch(("prov",), r"\bprov(e|ing)\b"),
    Branch(("proof",), r"\bproof\b"),
    Branch(("solv",), r"\bsolv(e|ing)\b"),
    Branch(("calculat",), r"\bcalculat"),
    Branch(("equation",), r"\bequations?\b"),
    Branch(("integral",), r"\bintegral\b"),
    Branch(("derivative",), r"\bderivative\b"),
    Branch(("theorem",), r"\btheorem\b"),
    Branch(("puzzle",), r"logic(al)? puzzle"),
    Branch(("probability",), r"\bprobability\b"),
    Branch(("riddle",), r"\briddle\b"),
)

COT_ELICITATION_PATTERN = _case_insensitive_alternation(COT_ELICITATION_BRANCHES)
RUBRIC_GRADING_PATTERN = _case_insensitive_alternation(RUBRIC_GRADING_BRANCHES)
AGENTIC_PATTERN = _case_insensitive_alternation(AGENTIC_BRANCHES)
CODING_PATTERN = _case_insensitive_alternation(CODING_BRANCHES)
REASONING_PATTERN = _case_insensitive_alternation(REASONING_BRANCHES)
PATTERN_BRANCHES = {
    COT_ELICITATION_PATTERN: COT_ELICITATION_BRANCHES,
    RUBRIC_GRADING_PATTERN: RUBRIC_GRADING_BRANCHES,
    AGENTIC_PATTERN: AGENTIC_BRANCHES,
    CODING_PATTERN: CODING_BRANCHES,
    REASONING_PATTERN: REASONING_BRANCHES,
}

# Non-Latin scripts, as explicit code-point ranges (portable across regex engines):
# Greek, Cyrillic, Armenian, Hebrew, Arabic (+ supplement), Indic scripts from Devanagari to Malayalam,
# Thai, Georgian, Hangul Jamo, CJK punctuation/Hiragana/Katakana, CJK ideographs (+ ext A), Hangul syllables.
NON_LATIN_RANGES = (
    (0x0370, 0x03FF), (0x0400, 0x052F), (0x0530, 0x058F), (0x0590, 0x05FF), (0x0600, 0x06FF),
    (0x0750, 0x077F), (0x0900, 0x0D7F), (0x0E00, 0x0E7F), (0x10A0, 0x10FF), (0x1100, 0x11FF),
    (0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7AF),
)
NON_LATIN_SCRIPT_PATTERN = "[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in NON_LATIN_RANGES) + "]"

# HTTP libraries and command-line tools: traffic sent without the official SDKs.
RAW_HTTP_CLIENT_PATTERN = (
    r"(?i)(\bcurl\b|\bwget\b|python-requests|python-urllib|\bhttpx\b|go-http-client|\bokhttp\b|\baxios\b|"
    r"node-fetch|\bundici\b|\baiohttp\b|libwww-perl|java-http-client|apache-httpclient|guzzlehttp|"
    r"postmanruntime|\binsomnia\b|\breqwest\b)"
)
# Official SDKs may embed their HTTP library's name in the agent string; they are never "raw".
OFFICIAL_SDK_PATTERN = r"(?i)(\banthropic\b|claude-(code|cli|sdk))"

CAPABILITIES = ("coding", "agentic", "tool_use", "reasoning", "vision", "chat")

FINGERPRINT_PREFIX_CHARS = 256


def _matches(column: str, pattern: str) -> Column:
    """rlike that reads a missing value as 'no match' rather than null."""
    return F.coalesce(F.col(column).rlike(pattern), F.lit(False))


def is_cot_elicitation() -> Column:
    return _matches(PROMPT, COT_ELICITATION_PATTERN)


def is_rubric_grading() -> Column:
    return _matches(PROMPT, RUBRIC_GRADING_PATTERN)


def capability() -> Column:
    """One category per request, first match wins: the order encodes how specific the evidence is
    (an image or a multi-tool request says more than a keyword in the prompt)."""
    tool_count = F.coalesce(F.col("tool_count"), F.lit(0))
    return (
        F.when(F.coalesce(F.col("has_image"), F.lit(False)), F.lit("vision"))
        .when((tool_count >= 3) | _matches(PROMPT, AGENTIC_PATTERN), F.lit("agentic"))
        .when(tool_count > 0, F.lit("tool_use"))
        .when(_matches(PROMPT, CODING_PATTERN), F.lit("coding"))
        .when(_matches(PROMPT, REASONING_PATTERN), F.lit("reasoning"))
        .otherwise(F.lit("chat"))
    )


def is_non_english() -> Column:
    return _matches(PROMPT, NON_LATIN_SCRIPT_PATTERN)


def normalized_prompt() -> Column:
    """lower-case, every digit -> '#', whitespace runs -> one space, trimmed, first 256 chars: prompts
    generated from one template with different numbers or spacing normalize to the same text."""
    text = F.lower(F.col(PROMPT))
    text = F.regexp_replace(text, r"[0-9]", "#")
    text = F.regexp_replace(text, r"\s+", " ")
    return F.substring(F.trim(text), 1, FINGERPRINT_PREFIX_CHARS)


def prompt_fingerprint() -> Column:
    """SHA-256 hex of the normalized prompt; null when the request has no prompt text."""
    return F.sha2(normalized_prompt(), 256)


def is_raw_http_client() -> Column:
    return _matches(USER_AGENT, RAW_HTTP_CLIENT_PATTERN) & ~_matches(USER_AGENT, OFFICIAL_SDK_PATTERN)


def with_request_signals(requests):
    """Bronze requests plus one column per signal; `prompt_prefix` stays only as an input column."""
    return requests.select(
        "*",
        is_cot_elicitation().alias("is_cot_elicitation"),
        is_rubric_grading().alias("is_rubric_grading"),
        capability().alias("capability"),
        is_non_english().alias("is_non_english"),
        prompt_fingerprint().alias("prompt_fingerprint"),
        is_raw_http_client().alias("is_raw_http_client"),
    )
