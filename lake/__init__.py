"""Lake plumbing: settings, the engine seam and the table catalog."""

import warnings

# pyspark warns at import that it "does not yet fully support pandas" 3, whichever module imports it first. The
# project runs the Spark Connect client with pandas 3 on purpose (uv.lock) and its parity tests hold the results;
# left in, the warning would turn every one-line CLI error into several lines. Every package imports lake first.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
