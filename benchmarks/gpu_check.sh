#!/usr/bin/env bash
# GPU check (issue 9): one CUDA GPU, its own PyTorch, Python 3.12, no network; <= 10 minutes.
#
#   benchmarks/gpu_check.sh                 # from the checkout root (or anywhere: it cds there)
#
# Needs the bundle of benchmarks/gpu_check_prepare.sh next to the checkout ($MCAL_GPU_BUNDLE,
# default ./gpu_bundle): wheels of the project's packages except torch, and the MNIST cache.
# Steps (each under its own time limit; a step that fails or times out is logged and the rest go on):
#   1. a venv over the system site-packages (the machine's CUDA torch) + the missing packages from
#      the wheels (--no-index);
#   2. the CUDA tests and the population tests (tests/test_training.py, tests/test_mc.py, tests/test_device.py);
#   3. the MC, lockstep and DEIMOS benchmarks (benchmarks/run_all.py) on the GPU;
#   4. a paper-scale lockstep grid: DEIMOS 7-vs-9 batch 1, 15 runs (5 methods x 3 seeds), as many steps
#      as fit in its time budget, and the cost model of the whole 200-step protocol
#      (benchmarks/gpu_grid.py).
# Every table and log goes to one folder: $OUT (default ./gpu_check_out); summary in $OUT/summary.md.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUNDLE=${MCAL_GPU_BUNDLE:-$ROOT/gpu_bundle}
OUT=${OUT:-$ROOT/gpu_check_out}
PY=${PYTHON:-python3}
VENV=${MCAL_GPU_VENV:-/tmp/mcal_gpu_venv}
GRID_BUDGET_S=${GRID_BUDGET_S:-100}
mkdir -p "$OUT"
T_START=$(date +%s)
log() { echo "[$(date -u +%H:%M:%S) +$(( $(date +%s) - T_START ))s] $*" | tee -a "$OUT/gpu_check.log"; }
step() {  # step NAME LIMIT_S CMD...: run CMD with a time limit, output to $OUT/NAME.txt, log the outcome
  local name=$1 limit=$2; shift 2
  log "$name: start (limit ${limit}s)"
  timeout --signal=INT --kill-after=15 "$limit" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  log "$name: exit $rc$([ $rc = 124 ] && echo ' (time limit)')"
  return $rc
}

# 0. the machine
"$PY" - > "$OUT/environment.txt" 2>&1 <<'EOF'
import platform, sys
import torch
print("python", sys.version.split()[0], "|", platform.platform())
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| cuDNN", torch.backends.cudnn.version())
print("GPU", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
sys.exit(0 if torch.cuda.is_available() else 3)
EOF
rc=$?
cat "$OUT/environment.txt" | tee -a "$OUT/gpu_check.log"
if [ $rc != 0 ]; then log "no CUDA device (or no torch): stop"; exit 3; fi

# 1. environment: the machine's torch + the project's missing packages from the bundle's wheels
TARGET=""
if [ ! -x "$VENV/bin/python" ] && ! "$PY" -m venv --system-site-packages "$VENV" >> "$OUT/gpu_check.log" 2>&1; then
  TARGET="$VENV/site"   # no venv module: install into a folder on PYTHONPATH instead
  log "python -m venv failed; installing into $TARGET"
fi
if [ -n "$TARGET" ]; then VPY="$PY"; else VPY="$VENV/bin/python"; fi
grep -v -E '^(torch)==' constraints.txt | grep -E '^[A-Za-z0-9_.-]+==' > "$OUT/lock_without_torch.txt"
"$VPY" - "$OUT/lock_without_torch.txt" > "$OUT/missing.txt" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
for line in open(sys.argv[1]):
    name, want = line.strip().split("==")
    try:
        if version(name) == want:
            continue
    except PackageNotFoundError:
        pass
    print(f"{name}=={want}")
EOF
log "missing packages: $(wc -l < "$OUT/missing.txt")"
if [ -s "$OUT/missing.txt" ]; then
  if [ -d "$BUNDLE/wheels" ]; then
    step install 90 "$VPY" -m pip install --no-index --find-links "$BUNDLE/wheels" --no-deps \
      --no-build-isolation ${TARGET:+--target "$TARGET"} -r "$OUT/missing.txt"
  else
    log "no wheels at $BUNDLE/wheels (run benchmarks/gpu_check_prepare.sh on a networked machine); going on"
  fi
fi
export PYTHONPATH="${TARGET:+$TARGET:}$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export MCAL_OFFLINE=1 MPLBACKEND=Agg MCAL_PROFILE=smoke
[ -d "$BUNDLE/data/mnist" ] && export MCAL_DATA_DIR="$BUNDLE/data"

# 2. CUDA tests + the population tests
step tests 90 "$VPY" -m pytest tests/test_training.py tests/test_mc.py tests/test_device.py tests/loop/test_lockstep.py \
  -q -p no:cacheprovider -m "not slow" \
  -k "cuda or population or lockstep" -rs
tail -3 "$OUT/tests.txt" | tee -a "$OUT/gpu_check.log"

# 3. benchmarks on the GPU (each its own table)
step bench_lockstep 180 "$VPY" benchmarks/run_all.py --only lockstep --out "$OUT/bench_lockstep.md"
step bench_mc 45 "$VPY" benchmarks/run_all.py --only mc --out "$OUT/bench_mc.md"
step bench_deimos 45 "$VPY" benchmarks/run_all.py --only deimos --out "$OUT/bench_deimos.md"

# 4. one paper-scale lockstep grid, as many steps as fit
step grid $(( GRID_BUDGET_S + 45 )) "$VPY" benchmarks/gpu_grid.py --out "$OUT" --budget-s "$GRID_BUDGET_S"

{
  echo "# GPU check ($(date -u +'%Y-%m-%d %H:%M UTC'), $(( $(date +%s) - T_START )) s)"
  echo; echo '```'; cat "$OUT/environment.txt"; echo '```'; echo
  echo "Tests: $(tail -1 "$OUT/tests.txt")"; echo
  for f in bench_lockstep bench_mc bench_deimos; do
    [ -f "$OUT/$f.md" ] && sed -n '/^| benchmark/,$p' "$OUT/$f.md" && echo
  done
  [ -f "$OUT/gpu_grid.md" ] && cat "$OUT/gpu_grid.md"
  echo; echo '```'; cat "$OUT/gpu_check.log"; echo '```'
} > "$OUT/summary.md"
log "done: $OUT/summary.md"
