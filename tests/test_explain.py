"""Plain-language reason texts built from the feature registry."""

from __future__ import annotations

import math

import pytest

from models.explain import format_value, reason_text


@pytest.mark.parametrize(
    ("unit", "value", "text"),
    [
        ("share", 0.834, "83%"),
        ("count", 12345.4, "12,345"),
        ("ratio", 9.456, "9.46"),
        ("hours", 3.25, "3.2 h"),
        ("days", 4.4, "4 days"),
        ("days", 1.2, "1 day"),
        ("bits", 1.234, "1.23 bits"),
        ("flag", 1.0, "yes"),
        ("flag", 0.0, "no"),
        ("level", 2.0, "2"),
        ("share", math.nan, "missing"),
    ],
)
def test_values_are_formatted_by_unit(unit, value, text):
    assert format_value(unit, value) == text


def test_reason_text_names_the_feature_its_window_and_value():
    assert reason_text("cot_elicitation_rate_7d", 0.83) == (
        "share of prompts asking for step-by-step reasoning or the reasoning behind an answer: 83% over 7 days"
    )
    assert reason_text("hosting_proxy_share_1d", 1.0).endswith(": 100% over the last day")
    assert reason_text("account_age_days", 4.0) == "days since the account was created: 4 days"


def test_an_absent_value_is_never_presented_as_evidence():
    import numpy as np

    from models.explain import reason_templates, top_reasons

    columns = ["hosting_proxy_share_7d", "requests_7d", "interarrival_cv_7d", "hosting_proxy_share_28d"]
    templates = reason_templates(columns)
    nan = math.nan
    values = np.array(
        [
            [nan, 0.0, nan, 0.5],  # nothing in the last 7 days: that is the reason, said once
            [nan, 12.0, nan, 0.5],  # requests, yet no value: left out
        ]
    )
    contributions = np.array([[2.0, 0.5, 1.5, 1.0, 0.0], [2.0, 0.5, 1.5, 1.0, 0.0]])
    first, second = top_reasons(contributions, values, columns, templates, k=3)
    assert [r["text"] for r in first] == [
        "no requests in the last 7 days",
        "share of requests from hosting or proxy ASNs: 50% over 28 days",
        reason_text("requests_7d", 0.0),
    ]
    assert first[0]["value"] is None
    assert [r["feature"] for r in second] == ["hosting_proxy_share_28d", "requests_7d"]
    assert not any("missing" in r["text"] for r in first + second)
