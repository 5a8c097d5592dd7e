"""Jobs: thin wrappers that parse config, read tables, apply pure transforms and write tables."""

# Registers the tables whose columns are declared features (account_daily, account_features, training_sets) with
# the catalog before any job reads or writes them; lake/ sits below features/ and cannot do it itself.
from features import registry as _feature_registry  # noqa: F401 - imported for its registration (above)
