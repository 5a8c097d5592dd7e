#!/usr/bin/env bash
# Build an offline wheelhouse for a Python 3.12 x86_64 GPU host that cannot reach a package registry:
# the RAPIDS cuDF stack for CUDA 13, XGBoost, a numpy that numba-cuda accepts, plus any extra
# packages named on the command line (each fetched alone, without its dependencies: name every one the
# host lacks). The result is split into parts of at most 58 MB so each part can be copied on its own.
#
#   usage: infra/gpu/wheelhouse.sh OUT_DIR [EXTRA_PACKAGE ...]
#          e.g. infra/gpu/wheelhouse.sh .gpu-wheelhouse pysail==0.7.2 deltalake==1.6.6 arro3-core pyspark-client \
#               grpcio-status googleapis-common-protos zstandard    (Sail + Spark Connect client + delta-rs)
#   writes OUT_DIR/part-00/part-00 ... part-NN/part-NN and OUT_DIR/SHA256
#
#   on the GPU host, with every part copied into one folder P:
#     cat P/part-* > /tmp/stack.tar && tar xf /tmp/stack.tar -C /tmp &&
#     python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/gpusite /tmp/gpu-wheels/* &&
#     export PYTHONPATH=/tmp/gpusite
#
# The host must already have the CUDA 13 runtime libraries, cupy-cuda13x, numba-cuda, pandas 3.0.x and
# pyarrow (true of the RAPIDS and PyTorch CUDA 13 images). These versions were checked together on an
# H100 with driver 580: cudf 26.10 imports and runs there once numpy 2.4 shadows the image's numpy 2.5.
set -euo pipefail
out=${1:?usage: infra/gpu/wheelhouse.sh OUT_DIR [EXTRA_PACKAGE ...]}
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/gpu-wheels" "$out"
target=(--only-binary=:all: --python-version 3.12 --implementation cp
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64)
fetch() { python3 -m pip download -q --no-deps "${target[@]}" -d "$work/gpu-wheels" "$@"; }
fetch "cudf-cu13==26.10.*" "pylibcudf-cu13==26.10.*" "libcudf-cu13==26.10.*" \
      "rmm-cu13==26.10.*" "librmm-cu13==26.10.*" "libkvikio-cu13==26.10.*" \
      "nvidia-libnvcomp-cu13==5.3.0.16" "rapids-logger==0.3.*" nvtx cachetools \
      "xgboost==3.4.*" "numpy==2.4.*"
for pkg in "$@"; do
  # a pure-Python package published only as a source archive is fetched as one
  fetch "$pkg" 2>/dev/null || python3 -m pip download -q --no-deps --no-binary=:all: -d "$work/gpu-wheels" "$pkg"
done
(cd "$work" && tar cf stack.tar gpu-wheels)
rm -rf "$out"/part-*
(cd "$out" && split -b 58M -d -a 2 "$work/stack.tar" part- &&
  for f in part-??; do mkdir "$f.d" && mv "$f" "$f.d/$f" && mv "$f.d" "$f"; done)
sha256sum "$work/stack.tar" | cut -d' ' -f1 > "$out/SHA256"
ls "$work/gpu-wheels"
echo "wrote $(ls -d "$out"/part-* | wc -l) parts to $out (tar sha256 $(cat "$out/SHA256"))"
