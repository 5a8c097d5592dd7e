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
