"""Feature definitions: per-request signals, daily statistics, features, and their compilation to each engine.

Importing the package registers the feature tables with the catalog (features/tables.py)."""

from features import tables as _tables  # noqa: F401  (registers account_daily, account_features, training_sets)
