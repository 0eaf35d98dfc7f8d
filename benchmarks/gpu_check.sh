#!/usr/bin/env bash
# GPU check of the surface engine, from a fresh checkout, in under 8 minutes on one GPU:
#   1. a virtual environment with the CUDA build of torch (the package index's default build) and
#      this project (pip install -e '.[dev]', no constraints file: constraints.txt pins the CPU build);
#   2. the CUDA tests (pytest -m cuda): CPU and CUDA values equal to 1e-4 relative for every
#      rewrite and for vmap with 1, 8 and 32 points per pass;
#   3. the engine suite on CUDA: ResNet-20 on 3x32x32 at 10,000 samples, points/s of the de facto
#      loop on the GPU and of the engine (goal: >= 10x the de facto loop).
# Everything is printed and written to $OUT/gpu_check.out when OUT is set, else to
# benchmarks/gpu_check.out. The exit status is non-zero when a step fails.
#
#   bash benchmarks/gpu_check.sh            # VENV=.venv-gpu by default; PYTHON=python3
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOG="${OUT:+$OUT/gpu_check.out}"
LOG="${LOG:-$ROOT/benchmarks/gpu_check.out}"
mkdir -p "$(dirname "$LOG")"
exec > >(tee "$LOG") 2>&1

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-$ROOT/.venv-gpu}"
step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "machine"
date -u
git rev-parse --short HEAD 2>/dev/null || echo "not a git checkout"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi not found"

step "virtual environment $VENV with the CUDA build of torch"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q torch
"$VENV/bin/python" -m pip install -q -e '.[dev]'
"$VENV/bin/python" - <<'EOF'
import torch
print("torch", torch.__version__, "CUDA", torch.version.cuda)
if not torch.cuda.is_available():
    raise SystemExit("gpu_check: torch sees no CUDA device")
print("device", torch.cuda.get_device_name(0))
EOF

step "CUDA tests: pytest -m cuda"
"$VENV/bin/python" -m pytest -q -m cuda tests/test_cuda.py -p no:cacheprovider

step "engine suite on CUDA: ResNet-20, 3x32x32, 10,000 samples"
"$VENV/bin/python" benchmarks/bench_engine.py --gpu --rounds 2

step "done; output in $LOG"
