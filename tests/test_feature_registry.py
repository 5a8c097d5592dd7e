"""The registry and each engine's implementations stay in step: one declaration, one implementation per engine."""

from __future__ import annotations

import inspect

import pytest

from features import frame_features, registry, spark_features

ENGINE_IMPLEMENTATIONS = {
    "spark": (spark_features, spark_features.SPARK_FEATURES),
    "frame": (frame_features, frame_features.FRAME_FEATURES),
}


@pytest.mark.parametrize("engine", sorted(ENGINE_IMPLEMENTATIONS))
def test_every_declared_feature_has_an_implementation_per_engine(engine):
    _, implementations = ENGINE_IMPLEMENTATIONS[engine]
    missing = set(registry.FEATURES_BY_NAME) - set(implementations)
    assert not missing, f"declared without a {engine} implementation: {sorted(missing)}"


@pytest.mark.parametrize("engine", sorted(ENGINE_IMPLEMENTATIONS))
def test_no_feature_function_without_a_declaration(engine):
    """A function taking window statistics or account inputs is a feature; it must be declared to be used."""
    module, _ = ENGINE_IMPLEMENTATIONS[engine]
    feature_like = {name for name, fn in inspect.getmembers(module, inspect.isfunction)
                    if fn.__module__ == module.__name__
                    and [p.annotation for p in inspect.signature(fn).parameters.values()] in (["WindowStats"],
                                                                                             ["AccountInputs"])}
    assert feature_like, "the check found no feature functions at all"
    undeclared = feature_like - set(registry.FEATURES_BY_NAME)
    assert not undeclared, f"{engine} feature functions without a declaration: {sorted(undeclared)}"


@pytest.mark.parametrize("engine", sorted(ENGINE_IMPLEMENTATIONS))
def test_implementations_are_module_functions_named_after_their_feature(engine):
    module, implementations = ENGINE_IMPLEMENTATIONS[engine]
    for name, fn in implementations.items():
        assert fn.__name__ == name
        assert getattr(module, name) is fn
        assert len(inspect.signature(fn).parameters) == 1, f"{name} must take exactly the window/account inputs"


def test_every_feature_has_a_description_family_and_unit():
    for feature in registry.FEATURES:
        assert len(feature.description.strip()) >= 10, feature.name
        assert feature.family in registry.FAMILIES
        assert feature.unit in registry.UNITS


def test_at_least_25_features_covering_every_family():
    assert len(registry.FEATURES) >= 25
    assert {f.family for f in registry.FEATURES} == set(registry.FAMILIES)
    for family in set(registry.FAMILIES) - {"cluster"}:
        assert sum(f.family == family for f in registry.FEATURES) >= 3, family


def test_feature_columns_have_a_stable_order():
    expected = []
    for feature in registry.FEATURES:
        if feature.windowed:
            expected += [f"{feature.name}_{w}d" for w in registry.WINDOWS]
        else:
            expected.append(feature.name)
    assert registry.feature_columns() == expected
    assert registry.feature_columns() == registry.feature_columns()
    assert len(set(expected)) == len(expected)
    assert expected[:3] == ["requests_1d", "requests_7d", "requests_28d"]


def test_columns_map_back_to_their_feature_and_window():
    for column in registry.feature_columns():
        feature, window = registry.feature_for_column(column)
        assert column in feature.columns
        assert (window is None) == (not feature.windowed)


def test_feature_set_version_is_a_stable_content_hash():
    assert registry.feature_set_version() == registry.feature_set_version()
    assert registry.feature_set_version().startswith("fs-")
