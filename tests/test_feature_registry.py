"""The registry is the one list of features: declarations are complete, formulas only read declared inputs, the
feature-set version follows every value-changing edit and ignores wording, and lake/ stays below features/."""

from __future__ import annotations

import dataclasses
import re

import pytest

from features import daily_stats, registry
from features.expr import col, ratio


def test_every_feature_has_a_description_family_unit_and_formula():
    for feature in registry.FEATURES:
        assert feature.description.strip(), feature.name
        assert feature.family in registry.FAMILIES
        assert feature.unit in registry.UNITS
        assert feature.formula.columns(), feature.name


def test_at_least_25_features_covering_every_family_and_kind():
    assert len(registry.FEATURES) >= 25
    assert {f.family for f in registry.FEATURES} == set(registry.FAMILIES)
    assert {f.kind for f in registry.FEATURES} == set(registry.KINDS)


def test_feature_columns_have_a_stable_order():
    columns = registry.feature_columns()
    assert len(columns) == len(set(columns))
    expected = []
    for feature in registry.FEATURES:
        expected += [f"{feature.name}_{w}d" for w in registry.WINDOWS] if feature.windowed else [feature.name]
    assert columns == expected


def test_columns_map_back_to_their_feature_and_window():
    for column in registry.feature_columns():
        feature, window = registry.feature_for_column(column)
        assert (window is None) == (not feature.windowed)


def test_a_formula_reading_an_undeclared_input_is_refused():
    with pytest.raises(ValueError, match="cannot read"):
        registry.Feature("bogus", "x", "volume", "share", ratio(col("no_such_stat"), col("requests")))
    with pytest.raises(ValueError, match="cannot read"):  # an account formula cannot read window statistics
        registry.Feature("bogus", "x", "account", "count", col("requests"), kind="account")


def _version_with(monkeypatch, features=None, stats=None) -> str:
    if features is not None:
        monkeypatch.setattr(registry, "FEATURES", features)
    if stats is not None:
        monkeypatch.setattr(daily_stats, "DAILY_STATS", stats)
    return registry.feature_set_version()


def test_version_changes_with_a_formula_a_window_or_a_statistic(monkeypatch):
    base = registry.feature_set_version()
    first = registry.FEATURES[0]
    changed_formula = (dataclasses.replace(first, formula=first.formula * 2), *registry.FEATURES[1:])
    assert _version_with(monkeypatch, features=changed_formula) != base
    monkeypatch.undo()
    monkeypatch.setattr(registry, "WINDOWS", (1, 7, 30))
    assert registry.feature_set_version() != base
    monkeypatch.undo()
    stat = daily_stats.DAILY_STATS[0]
    changed_stat = (dataclasses.replace(stat, window="max"), *daily_stats.DAILY_STATS[1:])
    assert _version_with(monkeypatch, stats=changed_stat) != base


def test_version_changes_with_a_signal_pattern(monkeypatch):
    from features import signals

    base = registry.feature_set_version()
    monkeypatch.setattr(registry, "SIGNALS_VERSION", "sig-other")
    assert registry.feature_set_version() != base
    assert re.fullmatch(r"sig-[0-9a-f]{12}", signals.SIGNALS_VERSION)


def test_version_ignores_descriptions_owners_and_tags(monkeypatch):
    base = registry.feature_set_version()
    reworded = tuple(
        dataclasses.replace(f, description=f.description + " (reworded)", owner="someone-else", tags=("new-tag",))
        for f in registry.FEATURES
    )
    assert _version_with(monkeypatch, features=reworded) == base
