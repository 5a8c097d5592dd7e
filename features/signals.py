"""Per-request content and client signals, computed once at ingest into bronze `requests` columns.

Ingest is the only job that reads `prompt_prefix`: it turns each request into the columns of SIGNAL_COLUMNS plus
`signals_version`, and everything downstream (aggregation, backfills, the GPU path) reads those columns, never
text. Re-ingesting a date recomputes them. SIGNALS_VERSION is a hash of every pattern and rule below, so a
changed pattern changes it, and with it `feature_set_version`.

Only built-in functions (rlike, regexp_replace, sha2, ...) so the expressions run inside the engine
on any Spark Connect backend; no Python UDFs. The patterns stay within the regex subset that Java (JVM Spark),
Rust (Sail) and Python `re` read identically (tests/test_request_signals.py checks every branch on all three):
no possessive quantifiers, no \\p{...} classes, scripts are code-point ranges, and nothing whose meaning is
Unicode in one engine and ASCII in another. `\\b`, `\\w`, `\\s` and `\\d` are written in the branches for
reading and spelled as ASCII classes by `_portable` (`\\b` is Unicode-aware in Rust and Python, version-dependent
in Java, and Rust's fast regex engines give it up on any non-ASCII haystack). Case: the branches are lower-case and
carry no case flag; text is lower-cased by the engine before it is matched, which every engine does alike, while
their `(?i)` folds do not (Java's is ASCII-only, Rust's folds 'ſ' into 's', RE2 has no `u` flag). A caller
matching a pattern in Python lower-cases the text first.

Prompt text is only ever read here to derive booleans, a category and a one-way fingerprint; callers
must never copy `prompt_prefix` itself into a feature or risk table.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column
from pyspark.sql import functions as F

PROMPT = "prompt_prefix"
USER_AGENT = "user_agent"


# ASCII word characters: what `\\w` means in Java, and what the portable spellings below test for.
WORD_CHARS = "A-Za-z0-9_"
ASCII_WHITESPACE_CHARS = "\\t\\n\\r\\f\\x0B "
# `\\b` before a word (the previous character is not a word character) and after one (the next is not);
# each consumes that character, which rlike (a search, not a match) does not notice.
WORD_START = f"(^|[^{WORD_CHARS}])"
WORD_END = f"([^{WORD_CHARS}]|$)"
_CLASS_ESCAPES = {"w": WORD_CHARS, "s": ASCII_WHITESPACE_CHARS, "d": "0-9"}


def _portable(branch: str) -> str:
    """`branch` with `\\b`, `\\w`, `\\s` and `\\d` spelled as ASCII classes. A `\\b` followed by the end of the
    branch, `|` or `)` ends a word; any other starts one."""
    out, in_class, i = [], False, 0
    while i < len(branch):
        char = branch[i]
        if char == "\\" and i + 1 < len(branch):
            escape = branch[i + 1]
            if escape == "b" and not in_class:
                out.append(WORD_END if branch[i + 2 : i + 3] in ("", "|", ")") else WORD_START)
            elif escape in _CLASS_ESCAPES:
                out.append(_CLASS_ESCAPES[escape] if in_class else f"[{_CLASS_ESCAPES[escape]}]")
            else:
                out.append(branch[i : i + 2])
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)


def _alternation(branches: tuple[str, ...]) -> str:
    """One pattern matching any branch, for lower-cased text."""
    return "(" + "|".join(_portable(branch) for branch in branches) + ")"


# Asking the model to expose its reasoning: the campaign-A chain-of-thought harvesting pattern.
COT_ELICITATION_BRANCHES = (
    r"step[- ]by[- ]step",
    "reasoning behind",
    r"chain[- ]of[- ]thought",
    r"show (your|all|the) (work|reasoning|steps)",
    "walk me through",
    r"think (it )?through",
    r"explain (your|the|each) (reasoning|thought process|steps)",
    "thought process",
    "reasoning process",
    r"(write|lay|spell) out (your|the|all|every)",
    r"\b(numbered|intermediate) steps\b",
    # softened and paraphrased asks for the reasoning itself
    r"how (did )?you (arrive|arrived|got|get) (at|to) (this|that|the|your) (answer|result|conclusion|solution)",
    r"\b(justify|explain|describe) (each|every) (step|stage|inference)",
    r"walk (me )?through (your|the) (logic|reasoning|thinking)",
    r"(reasoning|logic|thinking) (trace|path|chain)",
    r"before (giving|stating) (the|your) (final )?answer",
    # the same ask in other languages (lower-case literals; "par étape" also matches a capitalised "Étape")
    "paso a paso",
    "schritt für schritt",
    "par étape",
    "passo a passo",
    "passo dopo passo",
    # Turkish capitals lower-case to a dotted i ("ADIM" -> "adim")
    "ad[ıi]m ad[ıi]m",
    "一步一步",
    "逐步",
    "шаг за шагом",
    "по шагам",
    "단계별",
    "ステップバイステップ",
    "段階的",
    "خطوة بخطوة",
)

# Using the model as a grader / reward model.
RUBRIC_GRADING_BRANCHES = (
    r"\brubric\b",
    r"\bgrader\b",
    r"\b(grade|score|rate|evaluate) (this|the following|these|each) (response|answer|completion|output)s?",
    r"on a scale (of|from) \d+",
    r"\breward( model| score| signal)?\b",
    r"\bscore (from|between) \d+ (to|and) \d+",
)

AGENTIC_BRANCHES = (
    r"\bagent(s|ic)?\b",
    r"plan[- ](and|&)[- ]execute",
    r"\bautonomous(ly)?\b",
    "orchestrat",
    r"computer[- ]use",
    r"multi[- ]step (task|plan|workflow)",
    r"\b(use|call) (the|your) tools\b",
)

CODING_BRANCHES = (
    "```",
    r"\bdef \w+\s*\(",
    r"\bclass \w+\s*[:({]",
    r"\bfunction\s*\w*\s*\(",
    r"\b(write|implement|fix|refactor|debug) (a|an|the|this|my) "
    r"(function|class|method|script|program|code|sql|select|query|regex|unit tests?)\b",
    r"\bselect\s+(\*|distinct\b|[\w.]+\s*(,|\s+from\b))",
    r"(^|\n)\s*import [\w.]+",
    r"\bfrom [\w.]+ import \w",
    "#include",
    r"\bbug\b",
    r"stack ?trace",
    "traceback",
    r"\bcompil(e|er|es|ing|ation)\b",
    r"\brefactor",
    r"\bdebug",
)

REASONING_BRANCHES = (
    r"\bprov(e|ing)\b",
    r"\bproof\b",
    r"\bsolv(e|ing)\b",
    r"\bcalculat",
    r"\bequations?\b",
    r"\bintegral\b",
    r"\bderivative\b",
    r"\btheorem\b",
    r"logic(al)? puzzle",
    r"\bprobability\b",
    r"\briddle\b",
)

COT_ELICITATION_PATTERN = _alternation(COT_ELICITATION_BRANCHES)
RUBRIC_GRADING_PATTERN = _alternation(RUBRIC_GRADING_BRANCHES)
AGENTIC_PATTERN = _alternation(AGENTIC_BRANCHES)
CODING_PATTERN = _alternation(CODING_BRANCHES)
REASONING_PATTERN = _alternation(REASONING_BRANCHES)

# Non-Latin scripts, as explicit code-point ranges (portable across regex engines):
# Greek, Cyrillic, Armenian, Hebrew, Arabic (+ supplement), Indic scripts from Devanagari to Malayalam,
# Thai, Georgian, Hangul Jamo, CJK punctuation/Hiragana/Katakana, CJK ideographs (+ ext A), Hangul syllables.
NON_LATIN_RANGES = (
    (0x0370, 0x03FF),
    (0x0400, 0x052F),
    (0x0530, 0x058F),
    (0x0590, 0x05FF),
    (0x0600, 0x06FF),
    (0x0750, 0x077F),
    (0x0900, 0x0D7F),
    (0x0E00, 0x0E7F),
    (0x10A0, 0x10FF),
    (0x1100, 0x11FF),
    (0x3040, 0x30FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7AF),
)
NON_LATIN_SCRIPT_PATTERN = "[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in NON_LATIN_RANGES) + "]"

# HTTP libraries and command-line tools: traffic sent without the official SDKs.
RAW_HTTP_CLIENT_PATTERN = _alternation(
    (
        *(
            rf"\b{tool}\b"
            for tool in ("curl", "wget", "httpx", "okhttp", "axios", "undici", "aiohttp", "insomnia", "reqwest")
        ),
        "python-requests",
        "python-urllib",
        "go-http-client",
        "node-fetch",
        "libwww-perl",
        "java-http-client",
        "apache-httpclient",
        "guzzlehttp",
        "postmanruntime",
    )
)
# Official SDKs may embed their HTTP library's name in the agent string; they are never "raw".
OFFICIAL_SDK_PATTERN = _alternation((r"\banthropic\b", "claude-(code|cli|sdk)"))

CAPABILITIES = ("coding", "agentic", "tool_use", "reasoning", "vision", "chat")

FINGERPRINT_PREFIX_CHARS = 256
WHITESPACE = " \t\n\r\f\x0b"
# runs of two or more; single characters are translated, which costs far less than replacing every space
WHITESPACE_RUN = "[ \\t\\n\\r\\f\\x0B]{2,}"


def _matches(column: str, pattern: str) -> Column:
    """rlike on the lower-cased text, reading a missing value as 'no match' rather than null. Every engine
    lower-cases the same way (full Unicode mappings: 'İ' -> 'i̇', the Kelvin sign -> 'k')."""
    return F.coalesce(F.lower(F.col(column)).rlike(pattern), F.lit(False))


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
    return F.coalesce(F.col(PROMPT).rlike(NON_LATIN_SCRIPT_PATTERN), F.lit(False))


def normalized_prompt() -> Column:
    """lower-case, every digit -> '#', whitespace runs -> one space, trimmed, first 256 chars: prompts
    generated from one template with different numbers or spacing normalize to the same text."""
    text = F.translate(F.lower(F.col(PROMPT)), "0123456789", "#" * 10)
    text = F.translate(F.regexp_replace(text, WHITESPACE_RUN, " "), WHITESPACE, " " * len(WHITESPACE))
    return F.substring(F.trim(text), 1, FINGERPRINT_PREFIX_CHARS)


def prompt_fingerprint() -> Column:
    """Spark's xxhash64 (seed 42, the same on every Spark engine) of the UTF-8 normalized prompt, as a signed
    64-bit integer: a cheap key to count repeats with on any engine, GPU included. Null without prompt text
    (xxhash64 of null would be the seed itself)."""
    return F.when(F.col(PROMPT).isNotNull(), F.xxhash64(normalized_prompt()))


def is_raw_http_client() -> Column:
    return _matches(USER_AGENT, RAW_HTTP_CLIENT_PATTERN) & ~_matches(USER_AGENT, OFFICIAL_SDK_PATTERN)


SIGNALS: dict[str, Callable[[], Column]] = {
    "is_cot_elicitation": is_cot_elicitation,
    "is_rubric_grading": is_rubric_grading,
    "capability": capability,
    "is_non_english": is_non_english,
    "prompt_fingerprint": prompt_fingerprint,
    "is_raw_http_client": is_raw_http_client,
}
SIGNAL_COLUMNS = tuple(SIGNALS)


def _signals_version() -> str:
    """A hash of everything that decides a signal's value: the patterns, the capability order and precedence,
    the normalisation. Function bodies are included through their source, so a changed rule changes it."""
    import hashlib
    import inspect

    rules: tuple[Callable[..., object], ...] = (*SIGNALS.values(), normalized_prompt, _matches, _portable)
    parts = [inspect.getsource(fn) for fn in rules]
    parts += [
        COT_ELICITATION_PATTERN,
        RUBRIC_GRADING_PATTERN,
        AGENTIC_PATTERN,
        CODING_PATTERN,
        REASONING_PATTERN,
        NON_LATIN_SCRIPT_PATTERN,
        RAW_HTTP_CLIENT_PATTERN,
        OFFICIAL_SDK_PATTERN,
        WHITESPACE_RUN,
        WHITESPACE,
        repr(CAPABILITIES),
        str(FINGERPRINT_PREFIX_CHARS),
    ]
    return "sig-" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


SIGNALS_VERSION = _signals_version()


def with_request_signals(requests):
    """Validated requests plus one column per signal and the signals version."""
    return requests.select(
        "*",
        *(signal().alias(name) for name, signal in SIGNALS.items()),
        F.lit(SIGNALS_VERSION).alias("signals_version"),
    )
