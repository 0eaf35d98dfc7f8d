"""`landscape trajectory`: PCA directions of a run's checkpoints and the projected optimizer path.

Reads ``RUN/checkpoints/epoch_*.pt`` and the final model ``RUN/model.pt`` (Li et al. 2018,
Sec. 7), writes ``trajectory_directions.h5`` (a direction file with the explained variance) and
``trajectory_path.h5`` (``proj_xcoord``, ``proj_ycoord``), and with ``--surface`` the loss
surface around the final model in those directions (``trajectory_surface.h5``), on a grid that
covers the path unless ``--x``/``--y`` are given. ``trajectory.png`` shows the path (over the
surface's train-loss contours with ``--surface``), the explained variance on the axes.

How much of the path the plane holds is printed and written into the figure's title: the share
of the path's variance the two PCA directions explain, and each checkpoint's distance from the
plane (absolute, and relative to its distance from the final model; every checkpoint when there
are at most 20, else the five farthest). The path file records the share and the largest
distances as attributes.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from . import common
from .surface import add_evaluation_arguments, compute_and_report, provenance_of, surface_options

HELP = "PCA directions of a run's checkpoints, the projected optimizer path, optional surface around it"


def add_arguments(p) -> None:
    """The flags of `landscape trajectory`."""
    p.add_argument("run", help="run folder with checkpoints/epoch_*.pt, model.pt and config.json")
    common.add_model_arguments(p, checkpoint=False)
    common.add_data_arguments(p)
    p.add_argument("--dir_type", choices=("weights", "states"), default="weights",
                   help="PCA of the parameters (weights) or of the whole state dict incl. BN statistics (states)")
    p.add_argument("--ignore", choices=("biasbn", "none"), default="biasbn",
                   help="biasbn: leave 1-D tensors (biases, BN) out of the PCA")
    p.add_argument("--out", default=None, help="folder for the files (default: the run folder)")
    p.add_argument("--surface", action="store_true", help="also compute the surface around the final model")
    p.add_argument("--x", default=None, help="x axis start:stop:num (default: the path's range, 21 points)")
    p.add_argument("--y", default=None, help="y axis start:stop:num (default: the path's range, 21 points)")
    p.add_argument("--margin", type=common.nonnegative_float, default=0.3,
                   help="default axes extend the path's range by this fraction")
    add_evaluation_arguments(p)


def path_axis(values: np.ndarray, margin: float, num: int = 21) -> np.ndarray:
    """An axis covering ``values`` and 0, widened by ``margin`` of its range on each side."""
    lo, hi = min(values.min(), 0.0), max(values.max(), 0.0)
    pad = margin * (hi - lo) if hi > lo else 1.0
    return np.linspace(lo - pad, hi + pad, num)


def print_distances(traj, most: int = 20, farthest: int = 5) -> None:
    """Each checkpoint's distance from the PCA plane (all of them up to ``most``, else the
    ``farthest`` ones by relative distance)."""
    order = range(len(traj.labels))
    if len(traj.labels) > most:
        order = sorted(np.argsort(traj.relative_distance)[::-1][:farthest])
        print(f"  the {farthest} checkpoints farthest from the plane, of {len(traj.labels)}:")
    for t in order:
        print(f"  {traj.labels[t]}: {traj.distance[t]:.4g} off the plane "
              f"({100 * traj.relative_distance[t]:.1f} % of its distance to the final model)")


def run(args) -> int:
    """`landscape trajectory`: PCA of the run's checkpoints, the projected path, the optional
    surface (:func:`compute_and_report`) and the figure."""
    from landscape.store import save_directions, save_projection
    from landscape.trajectory import run_trajectory

    model, data = common.model_and_data(args, checkpoint=args.run)  # the final model: the run's model.pt
    traj = run_trajectory(model, args.run, dir_type=args.dir_type, ignore=args.ignore)
    out = Path(args.out or args.run)  # made only once the inputs are checked
    out.mkdir(parents=True, exist_ok=True)
    attrs = provenance_of(model, data, args.model, args.run)
    dir_file = save_directions(out / "trajectory_directions.h5", traj.directions, attrs)
    path_file = save_projection(out / "trajectory_path.h5", traj.coords, labels=traj.labels,
                                attrs={**attrs, "dir_file": str(dir_file),
                                       "explained_fraction": traj.explained_fraction,
                                       "max_plane_distance": float(traj.distance.max()),
                                       "max_relative_plane_distance": float(traj.relative_distance.max())})
    ratio = ", ".join(f"{r:.3f}" for r in traj.explained_variance_ratio)
    print(f"{dir_file}: explained variance ratio {ratio}")
    print(f"{path_file}: {len(traj.labels)} checkpoints, x in [{traj.coords[:, 0].min():.3g}, "
          f"{traj.coords[:, 0].max():.3g}], y in [{traj.coords[:, 1].min():.3g}, {traj.coords[:, 1].max():.3g}]")
    print(f"{path_file}: {traj.summary()}")
    print_distances(traj)
    surface = trajectory_surface(args, model, data, traj, dir_file, out, attrs) if args.surface else None
    plot_path(traj, surface, out / "trajectory.png")
    return 0


def trajectory_surface(args, model, data, traj, dir_file, out: Path, attrs: dict):
    """The surface around the final model in the PCA plane, on a grid covering the path unless
    --x/--y are given: ``(x, y, train loss)`` for the figure."""
    x = args.x if args.x is not None else path_axis(traj.coords[:, 0], args.margin)
    y = args.y if args.y is not None else path_axis(traj.coords[:, 1], args.margin)
    options = surface_options(args)
    surf_file = str(options.surf_file or out / "trajectory_surface.h5")
    result = compute_and_report(model, data, directions=traj.directions, axes=(x, y), dir_file=str(dir_file),
                                attrs=attrs, stem=str(Path(args.run) / "model.pt"),
                                options=replace(options, surf_file=surf_file))
    return result.x, result.y, result["train_loss" if "train_loss" in result.values else "test_loss"]


def plot_path(traj, surface, figure: Path) -> None:
    """The path over the loss contours (or the PCA plane), its farthest checkpoint marked."""
    from landscape.plot import plot_trajectory
    from regularizers.safe_io import atomic_path

    worst = int(np.argmax(traj.relative_distance))
    title = (f"the PCA plane explains {100 * traj.explained_fraction:.1f} % of the path's variance\n"
             f"farthest checkpoint: {traj.labels[worst]}, {traj.distance[worst]:.3g} off the plane "
             f"({100 * traj.relative_distance[worst]:.1f} % of its distance to the end)")
    fig = plot_trajectory(traj.coords, traj.explained_variance_ratio, surface, log=True, label="train loss",
                          title=title)
    fig.axes[0].annotate(f"{traj.labels[worst]}: {100 * traj.relative_distance[worst]:.0f} % off the plane",
                         traj.coords[worst], textcoords="offset points", xytext=(6, 6), fontsize="small")
    with atomic_path(figure) as tmp:
        fig.savefig(tmp, format="png", dpi=150, bbox_inches="tight")
    print(f"{figure}: the path over {'the loss contours' if surface else 'the PCA plane'}")

