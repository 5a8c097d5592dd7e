"""Per-request signals (computed once at ingest) on hand-written prompts and user agents, positive and negative
cases, and the prompt fingerprint against an independent reference of its definition."""

from __future__ import annotations

import re

import pytest
import xxhash

from features import signals as rs

COT = [
    ("Explain the reasoning behind this answer step by step.", True),
    ("Solve it STEP-BY-STEP please", True),
    ("Use chain-of-thought before answering", True),
    ("Show your work for problem 7", True),
    ("Walk me through how TCP handshakes work", True),
    ("Before you answer, write out your full reasoning in numbered steps", True),
    ("What is the capital of France?", False),
    ("Take a step back and summarize", False),
    # softened, paraphrased and translated asks for the reasoning
    ("Could you describe how you arrived at that result?", True),
    ("Justify each step of the derivation", True),
    ("Erkläre die Lösung Schritt für Schritt", True),
    ("Explica el resultado paso a paso", True),
    ("Étape par étape, explique la réponse", True),
    ("请一步一步地推导", True),
    ("Распиши решение шаг за шагом", True),
    ("How did you get to Paris last summer by train?", False),
    (None, False),
]
RUBRIC = [
    ("Grade this response against the rubric below", True),
    ("Score the following answer on a scale of 1 to 10", True),
    ("On a scale of 0-5, how helpful was it?", True),
    ("You are a reward model. Return a reward.", True),
    ("Act as a strict grader: is the response below correct?", True),
    ("Write a story about a rubber duck", False),
    ("What grade should I get in school?", False),
    (None, False),
]
# (prompt, tool_count, has_image, expected capability)
CAPABILITY = [
    ("Describe this picture", 0, True, "vision"),
    ("Describe this picture", 5, True, "vision"),
    ("Book a flight", 3, False, "agentic"),
    ("You are an autonomous agent; plan-and-execute the task", 0, False, "agentic"),
    ("Call the tools you need to book the venue, then report back", 0, False, "agentic"),
    ("Look up the weather", 1, False, "tool_use"),
    ("```python\nprint(1)\n```", 0, False, "coding"),
    ("def parse(x): return x  -- why does this fail?", 0, False, "coding"),
    ("SELECT name FROM users WHERE id = 3", 0, False, "coding"),
    ("Write a SQL query listing last month's top customers", 0, False, "coding"),
    ("I get a stack trace when I compile this", 0, False, "coding"),
    ("Prove that the square root of 2 is irrational", 0, False, "reasoning"),
    ("Solve the equation 3x + 5 = 20", 0, False, "reasoning"),
    # scripts without spaces between words: an English term followed by a Japanese or Korean particle is a word
    ("the Pythagorean theoremについて説明してください", 0, False, "reasoning"),
    ("Tell me a joke about cats", 0, False, "chat"),
    ("How do I import my photos to iCloud?", 0, False, "chat"),
    ("import numpy as np\nnp.zeros(3) gives an error", 0, False, "coding"),
    ("from pandas import DataFrame", 0, False, "coding"),
    ("Please select the best title for my essay from these", 0, False, "chat"),
    (None, None, None, "chat"),
]
NON_ENGLISH = [
    ("Объясни решение по шагам", True),
    ("请一步一步地解释", True),
    ("この答えの理由を説明してください", True),
    ("단계별로 설명해 주세요", True),
    ("اشرح الإجابة خطوة بخطوة", True),
    ("चरण दर चरण समझाइए", True),
    ("Explain this step by step", False),
    ("Erklären Sie das Schritt für Schritt, bitte: café", False),
    (None, False),
]
RAW_HTTP = [
    ("curl/8.4.0", True),
    ("python-requests/2.31.0", True),
    ("python-httpx/0.27.0", True),
    ("Go-http-client/2.0", True),
    ("okhttp/4.12.0", True),
    ("axios/1.6.2", True),
    ("node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", True),
    ("Python/3.11 aiohttp/3.9.1", True),
    ("libwww-perl/6.72", True),
    ("anthropic-python/0.40.0 httpx/0.27.0", False),
    ("Anthropic/Python 0.40.0", False),
    ("claude-code/1.0.3", False),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0)", False),
    (None, False),
]


def _evaluate(spark, rows, ddl, column):
    frame = spark.createDataFrame(rows, ddl)
    return [r["value"] for r in frame.select(column.alias("value")).collect()]


@pytest.fixture(scope="module")
def prompt_signals(spark):
    prompts = [(p,) for p, _ in COT + RUBRIC] + [(p,) for p, _ in NON_ENGLISH]
    frame = spark.createDataFrame(prompts, "prompt_prefix string")
    out = frame.select(
        "prompt_prefix",
        rs.is_cot_elicitation().alias("cot"),
        rs.is_rubric_grading().alias("rubric"),
        rs.is_non_english().alias("non_english"),
    )
    return {r["prompt_prefix"]: r for r in out.collect()}


@pytest.mark.parametrize("prompt,expected", COT)
def test_cot_elicitation(prompt_signals, prompt, expected):
    assert prompt_signals[prompt]["cot"] is expected


@pytest.mark.parametrize("prompt,expected", RUBRIC)
def test_rubric_grading(prompt_signals, prompt, expected):
    assert prompt_signals[prompt]["rubric"] is expected


@pytest.mark.parametrize("prompt,expected", NON_ENGLISH)
def test_non_english(prompt_signals, prompt, expected):
    assert prompt_signals[prompt]["non_english"] is expected


def test_capability(spark):
    actual = _evaluate(
        spark, [c[:3] for c in CAPABILITY], "prompt_prefix string, tool_count int, has_image boolean", rs.capability()
    )
    assert actual == [c[3] for c in CAPABILITY]
    assert set(actual) == set(rs.CAPABILITIES)


def test_raw_http_client(spark):
    actual = _evaluate(spark, [(ua,) for ua, _ in RAW_HTTP], "user_agent string", rs.is_raw_http_client())
    assert actual == [expected for _, expected in RAW_HTTP]


def _reference_fingerprint(prompt: str) -> int:
    """The fingerprint's definition, written independently: lower-case, digits -> '#', runs of ASCII whitespace ->
    one space, trimmed, first 256 characters, XXH64 of the UTF-8 bytes with Spark's seed 42, as a signed int64."""
    normalized = re.sub(r"[ \t\n\r\f\v]+", " ", re.sub(r"[0-9]", "#", prompt.lower())).strip(" ")[:256]
    unsigned = xxhash.xxh64_intdigest(normalized.encode(), seed=42)
    return unsigned - (1 << 64) if unsigned >= 1 << 63 else unsigned


def test_prompt_fingerprint_normalizes_case_digits_and_whitespace(spark):
    prompts = [
        "Translate item 12 into  French",
        "translate ITEM 97 into French  ",
        "Translate item 12 into German",
        "x" * 300 + "tail one",
        "x" * 300 + "tail two",
        "Объясни\tрешение 42",
        None,
        " Mixed \t\n runs\x0bof\fwhite\r\rspace 7 ",
    ]
    actual = _evaluate(spark, [(p,) for p in prompts], "prompt_prefix string", rs.prompt_fingerprint())
    assert actual[0] == actual[1] == _reference_fingerprint(prompts[0])
    assert actual[2] != actual[0]
    assert actual[3] == actual[4]  # only the first 256 normalized characters count
    assert actual[5] == _reference_fingerprint(prompts[5])
    assert actual[6] is None
    assert actual[7] == _reference_fingerprint(prompts[7])


def test_with_request_signals_adds_one_column_per_signal(spark):
    frame = spark.createDataFrame(
        [("r1", "Show your work", "curl/8", 0, False)],
        "request_id string, prompt_prefix string, user_agent string, tool_count int, has_image boolean",
    )
    row = rs.with_request_signals(frame).collect()[0]
    assert (
        row["is_cot_elicitation"],
        row["is_rubric_grading"],
        row["capability"],
        row["is_non_english"],
        row["is_raw_http_client"],
    ) == (True, False, "chat", False, True)
    assert row["prompt_fingerprint"] == _reference_fingerprint("Show your work")
    assert row["signals_version"] == rs.SIGNALS_VERSION
    assert set(rs.SIGNAL_COLUMNS) <= set(row.asDict())


# --- The same matches on every engine -------------------------------------------------------------------------
# Each pattern, and each of its branches on its own, must match the same rows in Python `re` (the reference: a
# search of the lower-cased text, as _matches runs it), Sail and JVM Spark. The corpus puts every keyword between
# neighbours that engines disagree on when a regex is Unicode-aware in one and ASCII in another: accented and
# non-Latin letters, a non-breaking space, digits, '_', the Kelvin sign and the long s (which fold to ASCII
# letters), the dotted capital I (whose lower case is two characters), an emoji outside the BMP.
KEYWORDS = (
    "step by step",
    "numbered steps",
    "explain each step",
    "rubric",
    "grader",
    "grade this response",
    "reward model",
    "score from 1 to 10",
    "agent",
    "agentic",
    "autonomously",
    "use the tools",
    "def f(",
    "class Parser:",
    "function (",
    "write a function",
    "select distinct",
    "select a, b from",
    "import numpy",
    "from x import y",
    "bug",
    "compiler",
    "debugging",
    "prove",
    "proof",
    "solving",
    "equations",
    "integral",
    "theorem",
    "probability",
    "riddle",
    "curl/8.4",
    "python-httpx/0.27",
    "anthropic-python",
    "think it through",
    "thought process",
    "reasoning process",
    "walk me through your logic",
    "thinking trace",
    "before giving your final answer",
    "orchestrate",
    "computer-use",
    "multi-step workflow",
    "#include <stdio.h>",
    "traceback",
    "refactoring",
    "calculate",
    "derivative",
    "logical puzzle",
    "schritt für schritt",
    "par étape",
    "passo a passo",
    "passo dopo passo",
    "adım adım",
    "шаг за шагом",
    "一步一步",
    "逐步",
    "ステップバイステップ",
    "段階的",
)
NEIGHBOURS = ("", " ", "x", "_", "7", "é", "ß", "ж", "中", "\u00a0", "\u212a", "\u017f", "\u0130", "\U0001f600", "\n")
HAND_WRITTEN = [p for p, _ in COT + RUBRIC + NON_ENGLISH] + [c[0] for c in CAPABILITY] + [ua for ua, _ in RAW_HTTP]


def _portability_corpus() -> list[str]:
    corpus = set(p for p in HAND_WRITTEN if p is not None)
    for keyword in KEYWORDS:
        for variant in (
            keyword,
            keyword.upper(),
            keyword.title(),
            keyword.replace("s", "\u017f").replace("k", "\u212a"),
        ):
            corpus.update(left + variant for left in NEIGHBOURS)
            corpus.update(variant + right for right in NEIGHBOURS)
            corpus.update(around + variant + around for around in NEIGHBOURS)
    corpus.update(("İntegral", "STEP-BY-STEP", "Schritt FÜR Schritt", "PAR ÉTAPE", "ШАГ ЗА ШАГОМ", "", "\u00a0"))
    return sorted(corpus)


def _patterns() -> dict[str, str]:
    """Every full pattern and every branch of it, each as the engines receive it."""
    patterns = {
        name: getattr(rs, name)
        for name in (
            "COT_ELICITATION_PATTERN",
            "RUBRIC_GRADING_PATTERN",
            "AGENTIC_PATTERN",
            "CODING_PATTERN",
            "REASONING_PATTERN",
            "RAW_HTTP_CLIENT_PATTERN",
            "OFFICIAL_SDK_PATTERN",
        )
    }
    for group in ("COT_ELICITATION", "RUBRIC_GRADING", "AGENTIC", "CODING", "REASONING"):
        for index, branch in enumerate(getattr(rs, f"{group}_BRANCHES")):
            patterns[f"{group}[{index}]"] = rs._alternation((branch,))
    return patterns


def _reference_matches(corpus: list[str], patterns: dict[str, str]) -> dict[str, list[bool]]:
    matches = {name: [re.search(p, text.lower()) is not None for text in corpus] for name, p in patterns.items()}
    matches["non_english"] = [re.search(rs.NON_LATIN_SCRIPT_PATTERN, text) is not None for text in corpus]
    return matches


def _engine_matches(spark, corpus: list[str], patterns: dict[str, str]) -> dict[str, list[bool]]:
    frame = spark.createDataFrame([(i, text) for i, text in enumerate(corpus)], "i int, prompt_prefix string")
    columns = [rs._matches(rs.PROMPT, p).alias(f"p{k}") for k, p in enumerate(patterns.values())]
    rows = frame.select("i", *columns, rs.is_non_english().alias("non_english")).orderBy("i").collect()
    matches = {name: [row[f"p{k}"] for row in rows] for k, name in enumerate(patterns)}
    matches["non_english"] = [row["non_english"] for row in rows]
    return matches


def _differences(corpus, expected, actual) -> list[str]:
    return [
        f"{name}: {corpus[i]!r} re={expected[name][i]} engine={actual[name][i]}"
        for name in expected
        for i in range(len(corpus))
        if expected[name][i] != actual[name][i]
    ]


def test_the_patterns_hold_no_unicode_dependent_escapes_and_no_case_flag():
    for name, pattern in _patterns().items():
        assert not re.search(r"\\[bBwWsSdD]", pattern), name
        assert "(?" not in pattern, name  # case flags fold differently per engine; text is lower-cased instead
    for group in ("COT_ELICITATION", "RUBRIC_GRADING", "AGENTIC", "CODING", "REASONING"):
        for branch in getattr(rs, f"{group}_BRANCHES"):
            assert branch == branch.lower(), branch  # matched against lower-cased text


def test_the_corpus_exercises_both_sides_of_every_pattern():
    corpus = _portability_corpus()
    for name, matched in _reference_matches(corpus, _patterns()).items():
        assert any(matched) and not all(matched), name


def test_every_pattern_matches_the_same_rows_on_sail_as_in_python_re(spark):
    corpus, patterns = _portability_corpus(), _patterns()
    expected = _reference_matches(corpus, patterns)
    assert _differences(corpus, expected, _engine_matches(spark, corpus, patterns)) == []


@pytest.mark.jvm
def test_every_pattern_matches_the_same_rows_on_jvm_spark_as_in_python_re(tmp_path):
    """JVM Spark 4.2's Connect server (java.util.regex), started without Delta: only the patterns are read."""
    from pyspark.sql import SparkSession

    from tests.helpers.spark_servers import jvm_connect_server

    conf = tmp_path / "patterns.conf"
    conf.write_text("spark.ui.enabled false\n")
    corpus, patterns = _portability_corpus(), _patterns()
    expected = _reference_matches(corpus, patterns)
    with jvm_connect_server(tmp_path / "logs", master="local[1]", conf_file=conf, shuffle_partitions=1) as server:
        session = SparkSession.builder.remote(server.url).create()
        try:
            actual = _engine_matches(session, corpus, patterns)
        finally:
            session.stop()
    assert _differences(corpus, expected, actual) == []
