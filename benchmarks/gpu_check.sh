#!/usr/bin/env bash
# The GPU check in one command, for a GPU machine (one H100 or H200, 16 cores, Python 3.12 with
# the CUDA 13 runtime, cupy, numba-cuda, pandas 3 and pyarrow; no package registry).
#
# NOT RUN YET: it has only been checked for syntax (bash -n), since no GPU was available; no GPU figure in this
# repository comes from it. Its steps run here with pandas instead of cuDF (the same code path).
#
# What it needs in the repository root:
#   .gpu-wheelhouse/part-*   built on a machine with registry access (git-ignored; carry it to the device):
#     bash infra/gpu/wheelhouse.sh .gpu-wheelhouse pysail==0.7.2 deltalake==1.6.6 arro3-core pyspark-client \
#          grpcio-status googleapis-common-protos zstandard pydantic pydantic-core annotated-types \
#          typing-inspection pytest pluggy iniconfig
#   (the wheelhouse.sh header says how it unpacks; cuDF, RMM, nvtx, XGBoost and numpy come with it)
#
# Usage (with .gpu-wheelhouse/ copied to the machine):
#   bash benchmarks/gpu_check.sh
# Sizes and limits, from the environment:
#   DG_GPU_RECORDS        bronze records of the benchmark day for cuDF against Sail          (default 2e7)
#   DG_GPU_WINDOW_DAYS    account_daily days behind that day                                  (default 28)
#   DG_GPU_REPLICATE_TO   the same day replicated for cuDF alone                              (default 2e8)
#   DG_GPU_REPLICATED_WINDOW  window of the replicated lake's history                         (default 1)
#   DG_GPU_RUNS           fresh-process runs per engine, each a cold and a warm pass          (default 1)
#   DG_GPU_STEP_TIMEOUT   seconds any one step may take                                      (default 240)
#   OUT                   where the log and results go                                       (default /tmp/dg-gpu-out)
# Why the replicated lake gets a 1-day window by default: at 200M records a day the simulator's ~14 requests per
# account-day make a 28-day window ~400M account_daily rows. The features step now rolls the window up in
# account-hash buckets sized to DG_GPU_MEMORY_BUDGET_GB (tested with pandas only), so memory no longer forbids it,
# but replicating and reading 28 such days is not expected to fit the device's 10-minute command limit; set
# DG_GPU_REPLICATED_WINDOW=28 where a longer run is possible.
#
# Steps, each under `timeout`, all output tee'd to $OUT/log:
#   1. unpack the wheelhouse into /tmp/gpusite and check that cudf, rmm, pysail and deltalake import; nvidia-smi
#   2. the cuDF variants of the write-path and parity tests (pytest -m gpu): Parquet written by cuDF, committed by
#      delta-rs, read back by Sail, list columns included
#   3. benchmarks/engines.py: one day of DG_GPU_RECORDS with its window behind it, Sail (embedded-delta) and cuDF
#      on the same lake, outputs checksummed against each other; then the day replicated to DG_GPU_REPLICATE_TO
#      for cuDF (NVTX ranges per step when nvtx imports; RMM peak and sampled GPU utilisation in the results)
#   4. a cProfile of the cuDF aggregate + features on the first lake (benchmarks/profile_frame_engine.py)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/dg-gpu-out}
mkdir -p "$OUT/results"
exec > >(tee -a "$OUT/log") 2>&1

RECORDS=${DG_GPU_RECORDS:-2e7}
WINDOW=${DG_GPU_WINDOW_DAYS:-28}
REPLICATE_TO=${DG_GPU_REPLICATE_TO:-2e8}
REPLICATED_WINDOW=${DG_GPU_REPLICATED_WINDOW:-1}
RUNS=${DG_GPU_RUNS:-1}
STEP=${DG_GPU_STEP_TIMEOUT:-240}
WORK=/tmp/dg-gpu-work
step() { echo; echo "=== $(date -u +%H:%M:%S) $*"; }

step "1. wheelhouse"
if ! ls .gpu-wheelhouse/part-* >/dev/null 2>&1; then
  echo "no .gpu-wheelhouse/part-* here: build it (see this script's header) and carry it"; exit 2
fi
cat .gpu-wheelhouse/part-*/part-* > /tmp/stack.tar && tar xf /tmp/stack.tar -C /tmp &&
  timeout "$STEP" python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/gpusite \
    /tmp/gpu-wheels/* || { echo "wheelhouse install failed"; exit 2; }
export PYTHONPATH=/tmp/gpusite:$PWD DG_ENGINE=cudf
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import cudf, rmm, pysail, deltalake, pyarrow; print('cudf', cudf.__version__, 'deltalake', deltalake.__version__)" ||
  { echo "the GPU stack does not import"; exit 2; }
python3 -c "import nvtx" 2>/dev/null && echo "nvtx: ranges on" || echo "nvtx: not importable, no ranges"

step "2. GPU tests (cuDF write path and parity)"
timeout "$STEP" python3 -m pytest -q -x -m gpu -p no:cacheprovider tests/test_frame_writes.py \
  tests/test_frame_engine.py tests/test_daily_aggregate.py tests/test_features.py
echo "tests exit code $?"

step "3a. cuDF against Sail: $RECORDS records, $WINDOW-day window"
timeout $((STEP * 4)) python3 benchmarks/engines.py --engines embedded-delta,cudf --records "$RECORDS" \
  --gen-days 1 --window-days "$WINDOW" --runs "$RUNS" --passes 2 --shuffle-partitions 32 --label gpu-vs-sail \
  --work-dir "$WORK" --out "$OUT/results" --timeout-s "$STEP" \
  --note "benchmarks/gpu_check.sh on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
echo "exit code $?"

step "3b. cuDF alone: the day replicated to $REPLICATE_TO records, $REPLICATED_WINDOW-day window"
timeout $((STEP * 4)) python3 benchmarks/engines.py --engines cudf --records "$RECORDS" --gen-days 1 \
  --window-days "$REPLICATED_WINDOW" --runs "$RUNS" --passes 2 --replicate-to "$REPLICATE_TO" \
  --replicated-engines cudf --label gpu-replicated --work-dir "$WORK" --out "$OUT/results" --timeout-s "$STEP" \
  --note "benchmarks/gpu_check.sh; window $REPLICATED_WINDOW day(s): features are not bucketed (see the script)"
echo "exit code $?"

step "4. profile of the cuDF path on the first lake"
LAKE=$(ls -d "$WORK"/lake_*_1d_w"$WINDOW" 2>/dev/null | head -1)
if [ -n "$LAKE" ]; then
  timeout "$STEP" python3 benchmarks/profile_frame_engine.py "$LAKE" 2026-01-05 --engine cudf --top 30 \
    > "$OUT/results/profile-cudf.txt"
  echo "exit code $?; profile in results/profile-cudf.txt"
fi
step "done"
