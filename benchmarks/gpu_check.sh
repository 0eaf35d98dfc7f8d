#!/usr/bin/env bash
# GPU check of the surface engine, from a fresh checkout, in under 8 minutes on one GPU:
#   1. a virtual environment with the CUDA build of torch (the package index's default build) and
#      this project (pip install -e '.[dev]', no constraints file: constraints.txt pins the CPU build);
#   2. the CUDA tests (pytest -m cuda): CPU and CUDA values equal to 1e-4 relative for every
#      rewrite and for vmap with 1, 8 and 32 points per pass;
#   3. the engine suite on CUDA: ResNet-20 on 3x32x32 at 10,000 samples, points/s of the de facto
#      loop on the GPU and of the engine (goal: >= 10x the de facto loop), with the bf16 columns
#      (bf16 points/s over the fp32 engine's, and the bf16 error over the grid);
#   4. precision on CUDA: a 7x7 ResNet-20 surface (4,096 samples) in true fp32 (TF32 off, the
#      reference), in fp32 with TF32 on, and in bf16 (compute_surface's fp32 check stored in
#      the file): milliseconds per point, largest error and % of the range against the
#      reference; and whether batch sizes 256 and 1024 give the same bits on this GPU.
#
# TF32 notes. On Ampere and later GPUs (A100, H100, H200), PyTorch runs float32 convolutions in
# TF32 by default (torch.backends.cudnn.allow_tf32 = True: a 10-bit mantissa, like fp16's) and
# float32 matrix products in full fp32 (torch.backends.cuda.matmul.allow_tf32 = False, i.e.
# torch.set_float32_matmul_precision("highest")). The engine leaves these settings as the
# caller has them: `--precision fp32` on such a GPU is TF32 for convolutions unless the caller
# switches TF32 off; the tests and bench_engine.py switch it off to compare with the CPU at 1e-5.
# Step 4 measures what TF32 costs in accuracy and gains in speed next to bf16.
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

step "precision on CUDA: fp32 (TF32 off), fp32 with TF32, bf16 with its stored check; bits vs batch size"
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$VENV/bin/python" - <<'EOF'
import sys
import time

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
from bench_engine import SUITE, calibrated  # noqa: E402
from landscape.directions import random_directions  # noqa: E402
from landscape.surface import compute_surface  # noqa: E402

net = calibrated(SUITE["resnet20"])
d = random_directions(net, ndim=2, seed=0)
net.cuda()
g = torch.Generator().manual_seed(1)
data = {"train": (torch.randn(4096, 3, 32, 32, generator=g), torch.randint(0, 10, (4096,), generator=g))}
grid = dict(x="-1:1:7", y="-1:1:7")


def run(precision, tf32, batch_size=None):
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
    options = dict(directions=d, device="cuda", precision=precision, progress=False, batch_size=batch_size)
    compute_surface(net, data, x="0:0:1", y="0:0:1", **options)  # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    result = compute_surface(net, data, **grid, **options)
    torch.cuda.synchronize()
    return result, (time.perf_counter() - start) / result["train_loss"].size


ref, t_ref = run("fp32", False)
span = np.ptp(ref["train_loss"])
print(f"fp32, TF32 off: {t_ref * 1e3:.1f} ms/point (the reference; batch {ref.attrs['batch_size']})")
for label, precision, tf32 in (("fp32, TF32 on", "fp32", True), ("bf16", "bf16", False)):
    result, t = run(precision, tf32)
    err = np.abs(result["train_loss"] - ref["train_loss"]).max()
    stored = (f"; stored check {result.attrs['precision_error_abs']:.3g} "
              f"({100 * result.attrs['precision_error_rel']:.3g}%)" if "precision_error_abs" in result.attrs else "")
    print(f"{label}: {t * 1e3:.1f} ms/point (check included), {t_ref / t:.2f}x the reference, largest error "
          f"{err:.3g} ({100 * err / span:.3g}% of the range){stored}")
a, _ = run("fp32", False, 256)
b, _ = run("fp32", False, 1024)
print("batch 256 and 1024 give the same bits on this GPU:", all(np.array_equal(a[k], b[k]) for k in a.values))
EOF

step "done; output in $LOG"
