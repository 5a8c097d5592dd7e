#!/usr/bin/env bash
# Builds .bench-jvm/: a separate, git-ignored venv with the FULL `pyspark` package (JVM jars), for the
# "jvm-local" baseline of benchmarks/engines.py. It must stay out of the project venv, where the full
# package would clash with pyspark-client (both own the `pyspark` import name).
#
# PySpark 4.0.x runs on Java 17 (Spark 4 needs Java 17 or 21). Idempotent: a venv that already imports
# pyspark with its jars is left as it is.
#
# Usage: bash benchmarks/jvm_baseline_env.sh        (from anywhere; the venv lands in the repo root)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.bench-jvm"
PYSPARK_SPEC="${DG_BENCH_PYSPARK:-pyspark==4.0.*}"

if ! command -v java >/dev/null 2>&1; then
  echo "jvm_baseline_env: no 'java' on PATH; PySpark 4 needs Java 17 or 21" >&2
  exit 1
fi

ready() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - <<'PY' >/dev/null 2>&1
import pathlib, pyspark, deltalake, psutil, pyarrow, pandas, pydantic
assert (pathlib.Path(pyspark.__file__).parent / "jars").is_dir()
PY
}

if ready; then
  echo "jvm_baseline_env: $VENV ready (pyspark $("$VENV/bin/python" -c 'import pyspark; print(pyspark.__version__)'))"
  exit 0
fi

[ -x "$VENV/bin/python" ] || uv venv --quiet --python 3.11 "$VENV"
uv pip install --quiet --python "$VENV/bin/python" "$PYSPARK_SPEC" pyarrow pandas numpy pydantic \
  "deltalake==1.6.6" psutil
ready || { echo "jvm_baseline_env: $VENV was built but does not import pyspark with its jars" >&2; exit 1; }
echo "jvm_baseline_env: built $VENV (pyspark $("$VENV/bin/python" -c 'import pyspark; print(pyspark.__version__)'))"
