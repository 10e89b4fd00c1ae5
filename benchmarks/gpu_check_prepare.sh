#!/usr/bin/env bash
# Prepare the offline bundle that benchmarks/gpu_check.sh needs, on a machine WITH network access.
#
#   benchmarks/gpu_check_prepare.sh [BUNDLE_DIR]        # default: ./gpu_bundle next to the checkout root
#
# BUNDLE_DIR/wheels: every package of constraints.txt except torch (the GPU machine has its own CUDA
#   build), downloaded for CPython $PY_VERSION (default 3.12) on manylinux x86_64 with --no-deps (the
#   lock is complete), so `pip install --no-index` works there without a network.
# BUNDLE_DIR/data/mnist: the MNIST cache of this machine ($MCAL_DATA_DIR or ~/.cache/mcal), which
#   `python -c "from mcal_utils.data import load_mnist; load_mnist()"` builds.
# Carry BUNDLE_DIR with the checkout (e.g. copy it to the checkout root as gpu_bundle/).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUNDLE=${1:-$ROOT/gpu_bundle}
PY_VERSION=${PY_VERSION:-3.12}
PY=${PYTHON:-$ROOT/.venv/bin/python}
DATA=${MCAL_DATA_DIR:-$HOME/.cache/mcal}

mkdir -p "$BUNDLE/wheels" "$BUNDLE/data"
grep -v -E '^(torch)==' "$ROOT/constraints.txt" | grep -E '^[A-Za-z0-9_.-]+==' > "$BUNDLE/lock_without_torch.txt"
# platform wheels for CPython $PY_VERSION; --no-deps also admits pure-Python sdists
"$PY" -m pip download --no-deps --dest "$BUNDLE/wheels" --python-version "$PY_VERSION" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform linux_x86_64 --platform any -r "$BUNDLE/lock_without_torch.txt"
if [ -f "$DATA/mnist/mnist_uint8.npz" ]; then
  mkdir -p "$BUNDLE/data/mnist"
  cp -p "$DATA"/mnist/* "$BUNDLE/data/mnist/"
else
  echo "warning: no MNIST cache at $DATA/mnist; build it with load_mnist() first, or the grid step is skipped" >&2
fi
du -sh "$BUNDLE"/* 2>/dev/null || true
echo "bundle ready: $BUNDLE ($(ls "$BUNDLE/wheels" | wc -l) distributions)"
