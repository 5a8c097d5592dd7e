"""The tables whose columns are the declared daily statistics and features, registered with the catalog.

lake/ cannot import features/ (it sits below it), so these declarations live here and are registered when the
`features` package is imported.
"""

from __future__ import annotations

import pyarrow as pa

from features import daily_stats
from features.registry import feature_columns
from lake import catalog


def _feature_fields() -> tuple[tuple[str, pa.DataType], ...]:
    return tuple((column, pa.float64()) for column in feature_columns())


ACCOUNT_DAILY = catalog.Table(
    "account_daily", "silver",
    catalog.fields_schema(("account_id", pa.string()), ("event_date", pa.date32()), *daily_stats.daily_fields()),
    "per account-day sufficient statistics (features/daily_stats.py)", ("event_date",))

ACCOUNT_FEATURES = catalog.Table(
    "account_features", "gold",
    catalog.fields_schema(("account_id", pa.string()), ("feature_date", pa.date32()), *_feature_fields(),
                          ("feature_set_version", pa.string())),
    "per-account features over 1/7/28-day windows, account and cluster features (features/registry.py)",
    ("feature_date",))

TRAINING_SETS = catalog.Table(
    "training_sets", "gold",
    catalog.fields_schema(
        ("as_of", pa.date32()), ("account_id", pa.string()), ("feature_date", pa.date32()), *_feature_fields(),
        ("label", pa.int32()), ("resolved", pa.bool_()), ("campaign_id", pa.string()),
        ("benign_segment", pa.string()), ("feature_set_version", pa.string()),
        ("reference", pa.string())),  # JSON: the pinned input table versions and labelling rules
    "point-in-time training sets (features + labels), one partition per as_of", ("as_of",))

for _declaration in (ACCOUNT_DAILY, ACCOUNT_FEATURES, TRAINING_SETS):
    catalog.register(_declaration)
