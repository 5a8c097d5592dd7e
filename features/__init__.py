"""Feature definitions: per-request signals (signals.py), daily statistics (daily_stats.py), features and the
tables built from them (registry.py), an expression layer (expr.py) and its compilation to each engine
(spark_engine.py, frame_*.py)."""
