"""`landscape demo`: the main job on the embedded digits data.

Trains a small CNN twice on scikit-learn's digits, once plain and once with MMA regularization
(both cached in the output folder once trained), then computes their filter-normalized 1D and 2D
loss landscapes on the same random directions, the 1D interpolation between the two models, and
writes the HDF5 files and the figures side by side.
"""
from __future__ import annotations

import time
from pathlib import Path

HELP = "train a baseline and an MMA-regularized CNN on digits and compare their loss landscapes"

RUNS = {"baseline": [], "mma": ["mma:0.07"]}  # name -> regularizers


def add_arguments(p) -> None:
    """Add the flags of ``landscape demo`` to the argparse parser ``p``."""
    from .common import number, positive_int, seed_int

    p.add_argument("--out", default="runs/demo", help="folder for runs, surfaces and figures")
    p.add_argument("--epochs", type=positive_int, default=15, help="training epochs of each of the two CNNs")
    p.add_argument("--points", type=number(int, low=3, high=1001), default=31,
                   help="2D grid points per side (1D: 2x-1), 3 to 1001")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the weights and the directions")
    p.add_argument("--device", default="auto", help="'auto' (cuda when present), 'cpu', 'cuda', 'cuda:1'")


def train_runs(out: Path, epochs: int, seed: int, device: str) -> dict:
    """The baseline and the MMA run folders, trained unless they are there with these settings
    (a folder made with other settings is trained anew)."""
    from regularizers.train import train_run

    for name, reg in RUNS.items():
        print(f"{name}: a CNN on digits, {epochs} epochs", flush=True)
        train_run(out / name, model="cnn", data="digits", epochs=epochs, regularizers=reg, seed=seed,
                  device=device, overwrite=True)
    return {name: out / name for name in RUNS}


def run(args) -> int:
    """Run ``landscape demo`` with the parsed flags ``args``; returns the exit status (0: done)."""
    from landscape.plot import compare_surface_files, plot_surface_file
    from landscape.surface import interpolate, landscape_files
    from regularizers.evaluation import resolve_device
    from regularizers.train import load_run

    began = time.perf_counter()
    out = Path(args.out)
    device = resolve_device(args.device)
    runs = train_runs(out, args.epochs, args.seed, args.device)
    models, lines, planes = {}, [], []
    for name, folder in runs.items():
        model, data, history = load_run(folder)
        models[name] = model
        print(f"{name}: train acc {history['train_acc'][-1]:.1f}%  test acc {history['test_acc'][-1]:.1f}%;"
              f" computing its landscapes", flush=True)
        line, plane = landscape_files(model, data, out / "surfaces", name, points_1d=2 * args.points - 1,
                                      points_2d=args.points, seed=args.seed, device=device)
        lines.append(line)
        planes.append(plane)

    between = out / "surfaces" / "interpolation_baseline_to_mma.h5"
    between.unlink(missing_ok=True)
    print("interpolating from the baseline (0) to the MMA model (1)", flush=True)
    interpolate(models["baseline"], models["mma"], data, "-0.5:1.5:41", surf_file=between, device=device)

    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    written = compare_surface_files(lines, out_dir=figures)
    written += compare_surface_files(planes, kinds=("contour", "filled"), out_dir=figures, log=True)
    for plane in planes:
        written += plot_surface_file(plane, kinds=("surface3d", "heatmap"), out_dir=figures, log=True)
    written += plot_surface_file(between, out_dir=figures)

    print("\nsurfaces (HDF5, readable by tomgoldstein/loss-landscape's plotting scripts):")
    for path in lines + planes + [between]:
        print(f"  {path}")
    print("figures:")
    for path in written:
        print(f"  {path}")
    print(f"done in {time.perf_counter() - began:.0f} s")
    return 0
