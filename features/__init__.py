"""Feature registry (one declaration per feature) and its engine implementations."""
