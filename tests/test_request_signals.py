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
