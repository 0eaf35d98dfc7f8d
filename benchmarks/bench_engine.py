"""Points/s of the surface engine against the de facto per-point loop, in one run.

The de facto method (tomgoldstein/loss-landscape) writes ``theta + x d1 + y d2`` into the
model and runs a DataLoader with batch 128 under ``torch.no_grad`` at every point. The engine
(:func:`landscape.surface.compute_surface`) evaluates the same model, data and grid; the values
must agree to 1e-5 relative. Also timed: the engine without some of its rewrites and with vmap,
to show what each part contributes on this machine. Timings are the best of interleaved rounds,
which damps the noise of a shared machine.

    python benchmarks/bench_engine.py [--points 5] [--samples 2000] [--rounds 3] [--threads N]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from landscape.directions import random_directions
from landscape.grid import make_grid
from landscape.surface import compute_surface


def small_cnn() -> nn.Sequential:
    """Conv-BN CNN for 1x16x16 inputs, with trained-looking BN statistics."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    net.train()
    with torch.no_grad():
        for _ in range(5):
            net(torch.randn(256, 1, 16, 16))
    return net.eval()


def de_facto_surface(net, x, y, directions, grid):
    """The reference loop: in-place weights, DataLoader(batch 128), no_grad; (train_loss, train_acc)."""
    loader = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=False)
    theta = [p.detach().clone() for p in net.parameters()]
    rows = []
    with torch.no_grad():
        for cx, cy in grid.coords(np.arange(grid.size)):
            for p, w, dx, dy in zip(net.parameters(), theta, *directions.axes):
                p.copy_(w + float(cx) * dx + float(cy) * dy)
            total, correct, n = 0.0, 0, 0
            for inputs, targets in loader:
                out = net(inputs)
                total += F.cross_entropy(out, targets).item() * len(targets)
                correct += (out.argmax(1) == targets).sum().item()
                n += len(targets)
            rows.append((total / n, 100.0 * correct / n))
        for p, w in zip(net.parameters(), theta):
            p.copy_(w)
    return np.array(rows)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=5, help="grid points per axis (2D grid)")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; the best time counts")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    net = small_cnn()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.samples, 1, 16, 16, generator=g)
    y = torch.randint(0, 10, (args.samples,), generator=g)
    directions = random_directions(net, ndim=2, seed=0)
    axis = f"-1:1:{args.points}"
    grid = make_grid(axis, axis)

    def engine(**kwargs):
        result = compute_surface(net, {"train": (x, y)}, directions=directions, x=axis, y=axis,
                                 splits=("train",), device="cpu", progress=False, **kwargs)
        return np.stack([result["train_loss"].reshape(-1), result["train_acc"].reshape(-1)], axis=1)

    methods = {
        "de facto (DataLoader 128, no_grad)": lambda: de_facto_surface(net, x, y, directions, grid),
        "engine (default)": engine,
        "engine, no pooling rewrites": lambda: engine(reorder=False),
        "engine, no BN folding": lambda: engine(fold_bn=False),
        "engine plain path (no rewrites)": lambda: engine(fold_bn=False, first_layer=False, reorder=False),
        "engine vmap, 4 points/pass": lambda: engine(points_per_pass=4),
    }
    engine()  # warm-up (allocator, oneDNN kernels)
    best, values = {name: float("inf") for name in methods}, {}
    for _ in range(args.rounds):
        for name, method in methods.items():
            values[name], seconds = timed(method)
            best[name] = min(best[name], seconds)
    print(f"{grid.size} points, {args.samples} samples 1x16x16, Conv-BN CNN, {torch.get_num_threads()} threads, "
          f"best of {args.rounds} interleaved rounds")
    ref_name = next(iter(methods))
    ref, t_ref = values[ref_name], best[ref_name]
    for name, seconds in best.items():
        rel = np.max(np.abs(values[name][:, 0] / ref[:, 0] - 1))
        same_acc = np.array_equal(values[name][:, 1], ref[:, 1])
        print(f"{name:36s} {grid.size / seconds:7.2f} points/s  speed-up {t_ref / seconds:5.2f}x  "
              f"max rel. diff of loss {rel:.1e}  accuracies {'equal' if same_acc else 'DIFFER'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
