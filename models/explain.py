"""Plain-language reasons from per-row XGBoost contributions (SHAP values from `pred_contribs=True`).

A reason is one feature that pushed an account's score up, phrased from its registry declaration:
"share of prompts asking for step-by-step reasoning ...: 83% over 7 days". A feature without a value (a share over
a window without requests) is never phrased as evidence: the reason says "no requests in the last 7 days" when that
is why it is missing, and is left out otherwise. The phrasing templates are built on
the driver (`reason_templates`) and travel to the scoring function as plain strings, so the executor side needs
nothing but numpy.
"""

from __future__ import annotations

import math
import re

import numpy as np

from features.registry import feature_for_column


def _window_phrase(window: int | None) -> str:
    if window is None:
        return ""
    return " over the last day" if window == 1 else f" over {window} days"


VALUE_FORMATS = {
    "share": "{:.0%}",
    "count": "{:,.0f}",
    "ratio": "{:.2f}",
    "hours": "{:.1f} h",
    "bits": "{:.2f} bits",
    "seconds": "{:.1f} s",
}


def format_value(unit: str, value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    if unit == "flag":
        return "yes" if value >= 0.5 else "no"
    if unit == "days":
        return f"{value:.0f} day" + ("" if round(value) == 1 else "s")
    return VALUE_FORMATS.get(unit, "{:g}").format(value)


def reason_text(column: str, value: float) -> str:
    feature, window = feature_for_column(column)
    return _phrase(feature.description, feature.unit, _window_phrase(window), value)


def _phrase(description: str, unit: str, window_phrase: str, value: float) -> str:
    return f"{description}: {format_value(unit, value)}{window_phrase}"


def reason_templates(columns: list[str]) -> list[tuple[str, str, str]]:
    """(description, unit, window phrase) per column, in column order: everything `reason_text` needs."""
    out = []
    for column in columns:
        feature, window = feature_for_column(column)
        out.append((feature.description, feature.unit, _window_phrase(window)))
    return out


WINDOW_SUFFIX = re.compile(r"_(\d+)d$")


def _window_days(column: str) -> int | None:
    found = WINDOW_SUFFIX.search(column)
    return int(found.group(1)) if found else None


def _requests_columns(columns: list[str]) -> list[int | None]:
    """Per column, the index of the request count over the same window (`requests_<w>d`), when there is one."""
    index = {column: j for j, column in enumerate(columns)}
    return [index.get(f"requests_{days}d") if days else None for days in map(_window_days, columns)]


def no_requests_text(days: int) -> str:
    return "no requests in the last day" if days == 1 else f"no requests in the last {days} days"


def _missing_value_reason(column: str, requests_index: int | None, row_values: np.ndarray) -> str | None:
    """What is true when a feature has no value: with no requests in its window, that is the reason; anything else
    is left out, because an absent value is no evidence."""
    days = _window_days(column)
    if requests_index is None or days is None:
        return None
    requests = float(row_values[requests_index])
    if math.isnan(requests) or requests == 0:
        return no_requests_text(days)
    return None


def top_reasons(
    contributions: np.ndarray, values: np.ndarray, columns: list[str], templates: list[tuple[str, str, str]], k: int = 3
) -> list[list[dict]]:
    """The k largest *positive* contributions per row, largest first, as reason dicts.

    contributions: (rows, len(columns) + 1) from `pred_contribs=True` (the last column is the bias term).
    values: (rows, len(columns)) the feature values the model saw.
    """
    if contributions.shape[1] != len(columns) + 1:
        raise ValueError(f"expected {len(columns) + 1} contribution columns, got {contributions.shape[1]}")
    per_feature = contributions[:, :-1]
    order = np.argsort(-per_feature, axis=1, kind="stable")
    requests_of = _requests_columns(columns)
    reasons: list[list[dict]] = []
    for row in range(per_feature.shape[0]):
        row_reasons: list[dict] = []
        for j in order[row]:
            contribution = float(per_feature[row, j])
            if not contribution > 0 or len(row_reasons) == k:
                break
            description, unit, window = templates[j]
            value = float(values[row, j])
            if math.isnan(value):
                text = _missing_value_reason(columns[j], requests_of[j], values[row])
                if text is None or any(r["text"] == text for r in row_reasons):
                    continue
            else:
                text = _phrase(description, unit, window, value)
            row_reasons.append(
                {
                    "feature": columns[j],
                    "value": None if math.isnan(value) else value,
                    "contribution": contribution,
                    "text": text,
                }
            )
        reasons.append(row_reasons)
    return reasons
