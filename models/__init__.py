"""Training sets, XGBoost training and evaluation, the MLflow model registry, scoring and explanations."""
