"""Points/s of the surface engine against the de facto per-point loop and the forward-pass floor,
on a suite of models of different shapes, in one run.

Per model, on the same 2D grid of directions (filter-normalized, BN and biases fixed):

- **de facto** (tomgoldstein/loss-landscape): write ``theta + x d1 + y d2`` into the model's
  parameters, then a ``DataLoader`` with batch 128 under ``torch.no_grad`` at every point;
- **engine**: :func:`landscape.surface.compute_surface` at its defaults (batch size auto-tuned,
  rewrites on; set-up included in its time);
- **engine/pt**: the same evaluator's points alone, its set-up (tracing, checks, batch-size
  timing, first-layer cache) excluded -- what a long surface converges to;
- **bf16/pt**: the engine's points alone with ``precision="bf16"`` (forward passes under
  autocast, its own batch size timed), beside its speed-up over ``eng/pt`` and its error: the
  largest absolute difference of the loss from the fp32 engine's over the whole grid, and that
  as a percentage of the fp32 surface's loss range (``--no-bf16`` leaves these columns out);
- **floor**: plain forward passes of the unmodified model over the same data at the fastest of
  the engine's candidate batch sizes, no loss, no weight updates -- one pass per point. An
  engine above the floor is faster than merely running the model.

The engine's values must equal the de facto loop's to 1e-5 relative (losses) and exactly
(accuracies). Timings are the best of interleaved rounds, which damps the noise of a shared
machine.

    python benchmarks/bench_engine.py [--points 5] [--rounds 2] [--threads N] [--models a,b] [--no-bf16]
    python benchmarks/bench_engine.py --gpu          # = --device cuda --models resnet20 --samples 10000
"""
from __future__ import annotations

import argparse
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from landscape.directions import random_directions
from landscape.perturbed import BATCH_CANDIDATES, Evaluator
from landscape.grid import make_grid
from landscape.surface import compute_surface
from regularizers.models import create_model


@dataclass
class Case:
    """A model of the suite: its factory, the shape of one input, and the default sample count."""

    build: Callable[[], nn.Module]
    shape: Tuple[int, ...]
    samples: int
    about: str


def cnn_pool_every_block() -> nn.Module:
    """The first benchmark model: bias-free convs, BN, max-pool after every block."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def cnn_bias_pool_once() -> nn.Module:
    """Convs with biases, BN, max-pool after the second block only, adaptive average pooling."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def vgg_bn() -> nn.Module:
    """VGG-style: pairs of conv3x3-BN-ReLU (16, 32, 64 channels) with max-pools, FC-BN-ReLU-FC."""
    layers, c = [], 3
    for width in (16, 32, 64):
        for _ in range(2):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            c = width
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * 4 * 4, 64), nn.BatchNorm1d(64),
                         nn.ReLU(inplace=True), nn.Linear(64, 10))


SUITE = {
    "cnn_pool_every_block": Case(cnn_pool_every_block, (1, 16, 16), 2000, "bias-free Conv-BN CNN, max-pool per block"),
    "cnn_bias_pool_once": Case(cnn_bias_pool_once, (1, 16, 16), 2000,
                               "Conv(bias)-BN CNN, one max-pool, adaptive avg pool"),
    "resnet20": Case(lambda: create_model("resnet20", num_classes=10, in_channels=3), (3, 32, 32), 500,
                     "ResNet-20 (CIFAR)"),
    "vgg_bn": Case(vgg_bn, (3, 32, 32), 500, "VGG-style, BN, 6 convs + FC-BN"),
    "mlp": Case(lambda: create_model("mlp", num_classes=10, input_shape=(1, 16, 16), hidden=(256, 256)),
                (1, 16, 16), 2000, "MLP 256-256-256-10"),
}


def calibrated(case: Case) -> nn.Module:
    """The model with trained-looking BN statistics (a few train-mode passes), in eval mode."""
    torch.manual_seed(0)
    net = case.build().train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(128, *case.shape))
    return net.eval()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def de_facto_surface(net, x, y, directions, grid, device):
    """The reference loop: in-place weights, DataLoader(batch 128) moving each batch to the
    device, no_grad; rows (train_loss, train_acc) per point."""
    loader = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=False)
    params = list(net.parameters())
    theta = [p.detach().clone() for p in params]
    axes = [[t.to(device) for t in axis] for axis in directions.axes]
    rows = []
    with torch.no_grad():
        for cx, cy in grid.coords(np.arange(grid.size)):
            for p, w, dx, dy in zip(params, theta, *axes):
                p.copy_(w + float(cx) * dx + float(cy) * dy)
            total, correct, n = 0.0, 0, 0
            for inputs, targets in loader:
                inputs, targets = inputs.to(device), targets.to(device)
                out = net(inputs)
                total += F.cross_entropy(out, targets).item() * len(targets)
                correct += (out.argmax(1) == targets).sum().item()
                n += len(targets)
            rows.append((total / n, 100.0 * correct / n))
        for p, w in zip(params, theta):
            p.copy_(w)
    return np.array(rows)


def floor_pass(net, x, batch_size: int, device) -> float:
    """Seconds of one plain forward pass of ``net`` over staged ``x`` in batches."""
    sync(device)
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            net(x[i:i + batch_size])
    sync(device)
    return time.perf_counter() - start


def timed(fn, device):
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).resolve().parent, check=True).stdout.strip()
        return out.stdout.strip() + (" (+ uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_case(name: str, case: Case, *, points: int, rounds: int, device: torch.device,
             samples: Optional[int], bf16: bool = True) -> dict:
    """Times of the three methods on one model (best of ``rounds`` interleaved) and the value check."""
    net = calibrated(case)
    directions = random_directions(net, ndim=2, seed=0)  # CPU tensors, drawn before the move
    net.to(device)
    n = samples or case.samples
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, *case.shape, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    x_dev = x.to(device)
    axis = f"-1:1:{points}"
    grid = make_grid(axis, axis)
    note = {}

    def engine():
        result = compute_surface(net, {"train": (x, y)}, directions=directions, x=axis, y=axis,
                                 splits=("train",), device=device, progress=False)
        note["batch"] = result.attrs.get("batch_size", "?")
        return np.stack([result["train_loss"].reshape(-1), result["train_acc"].reshape(-1)], axis=1)

    evaluator = Evaluator(net, {"train": (x, y)}, directions, splits=("train",), device=device)
    half = Evaluator(net, {"train": (x, y)}, directions, splits=("train",), device=device,
                     precision="bf16") if bf16 else None
    coords = grid.coords(np.arange(grid.size))
    candidates = sorted({min(b, n) for b in BATCH_CANDIDATES.get(device.type, BATCH_CANDIDATES["cpu"])})
    for b in candidates:  # warm-up of every shape (oneDNN / cuDNN kernel selection)
        floor_pass(net, x_dev, b, device)
    engine()
    best = {"de facto": float("inf"), "engine": float("inf"), "engine/pt": float("inf"), "floor": float("inf")}
    values = {}
    floor_batch = None
    for _ in range(rounds):
        values["de facto"], seconds = timed(lambda: de_facto_surface(net, x, y, directions, grid, device), device)
        best["de facto"] = min(best["de facto"], seconds)
        values["engine"], seconds = timed(engine, device)
        best["engine"] = min(best["engine"], seconds)
        _, seconds = timed(lambda: evaluator(coords), device)
        best["engine/pt"] = min(best["engine/pt"], seconds)
        if half is not None:
            values["bf16"], seconds = timed(lambda: half(coords), device)
            best["bf16/pt"] = min(best.get("bf16/pt", float("inf")), seconds)
        for b in candidates:
            seconds = floor_pass(net, x_dev, b, device) * grid.size
            if seconds < best["floor"]:
                best["floor"], floor_batch = seconds, b
    ref, got = values["de facto"], values["engine"]
    bf16_error = (np.max(np.abs(values["bf16"][:, 0] - got[:, 0])), np.ptp(got[:, 0])) if half is not None else None
    return {"bf16_error": bf16_error, "bf16_batch": half.batch_size if half is not None else None,
            "name": name, "about": case.about, "samples": n, "shape": case.shape, "points": grid.size,
            "pps": {k: grid.size / v for k, v in best.items()}, "batch": note["batch"], "floor_batch": floor_batch,
            "rel": float(np.max(np.abs(got[:, 0] / ref[:, 0] - 1))), "acc_equal": bool(np.array_equal(got[:, 1], ref[:, 1]))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=5, help="grid points per axis (2D grid)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions; the best time counts")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--models", default=",".join(SUITE), help=f"comma-separated, of: {', '.join(SUITE)}")
    parser.add_argument("--samples", type=int, default=None, help="examples per model (default: the suite's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--gpu", action="store_true", help="= --device cuda --models resnet20 --samples 10000")
    parser.add_argument("--no-bf16", dest="bf16", action="store_false", help="leave out the bf16 columns")
    args = parser.parse_args(argv)
    if args.gpu:
        args.device, args.models, args.samples = "cuda", "resnet20", args.samples or 10000
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("bench_engine: --device cuda but CUDA is not available")
        torch.backends.cudnn.benchmark = True
        # full fp32 everywhere, so that values can be compared at 1e-5 (TF32 would differ at 1e-3)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in SUITE]
    if unknown:
        raise SystemExit(f"bench_engine: unknown model {unknown[0]!r}; choose from {', '.join(SUITE)}")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"{args.points}x{args.points} grid, {where}, torch {torch.__version__}, best of {args.rounds} "
          f"interleaved rounds, commit {git_commit()}, {time.strftime('%Y-%m-%d')}")
    print(f"{'model':22s} {'samples':>13s} {'de facto':>9s} {'engine':>9s} {'eng/pt':>9s} {'floor':>9s} {'eng/def':>8s} "
          f"{'eng/floor':>9s}  batch (engine; floor)       max rel. loss diff, accuracies"
          + ("  |  bf16/pt  bf16/eng  batch  bf16 error (abs; % of range)" if args.bf16 else ""))
    ok = True
    for name in names:
        r = run_case(name, SUITE[name], points=args.points, rounds=args.rounds, device=device, samples=args.samples,
                     bf16=args.bf16)
        pps = r["pps"]
        speed, vs_floor = pps["engine"] / pps["de facto"], pps["engine"] / pps["floor"]
        equal = r["rel"] <= 1e-5 and r["acc_equal"]
        ok &= equal
        shape = "x".join(map(str, r["shape"]))
        print(f"{name:22s} {r['samples']:5d} {shape:>7s} {pps['de facto']:9.2f} {pps['engine']:9.2f} "
              f"{pps['engine/pt']:9.2f} {pps['floor']:9.2f} {speed:7.2f}x {vs_floor:8.2f}x  "
              f"{str(r['batch']):20s}; {r['floor_batch']:<4d} "
              f"{r['rel']:.1e}, {'equal' if r['acc_equal'] else 'DIFFER'}{'' if equal else '  VALUES DIFFER'}"
              + (f"  |  {pps['bf16/pt']:7.2f} {pps['bf16/pt'] / pps['engine/pt']:8.2f}x  {r['bf16_batch']:5d}  "
                 f"{r['bf16_error'][0]:.2e}; {100 * r['bf16_error'][0] / r['bf16_error'][1]:.3f}%" if args.bf16 else ""),
              flush=True)
    print("points/s; eng/pt: the engine's points without its set-up; eng/def = engine / de facto (goal >= 1.8x on "
          "CPU, >= 10x on GPU); eng/floor >= 0.9 means within 10% of the floor or above it"
          + ("; bf16/eng = bf16 points / fp32 points, set-up excluded (goal >= 2x on CPUs with bf16 units)"
             if args.bf16 else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
