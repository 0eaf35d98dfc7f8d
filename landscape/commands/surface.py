"""`landscape surface`: a 1D/2D/3D loss surface around a model, written to a resumable HDF5 file.

Accepts the flags of tomgoldstein/loss-landscape's plot_surface.py (``--x --y --xnorm --ynorm
--xignore --yignore --dir_type --dir_file --surf_file --model_file --model_file2 --model_file3
--loss_name``). Directions: ``--model_file2`` (``--model_file3``) makes the x (y) direction
point to that model; other axes are random from ``--seed``. An existing ``--dir_file`` (ours or
de facto) is used as it is; a new one is created under that name. Without ``--dir_file`` /
``--surf_file`` the names are derived from the settings; a derived direction file that exists is
reused only when it was made with the same settings.

Under ``mpiexec -n N`` (or ``srun``) the ranks share the unfinished points; rank 0 writes the
file (see :mod:`landscape.sharding`).
"""
from __future__ import annotations

import time
from pathlib import Path

from . import common

MPI = True  # shares its points among the ranks when started by mpiexec / srun
HELP = "compute a loss surface (1D/2D/3D) along random or target directions into a resumable HDF5 file"

SPLITS = ("train", "test")


def add_direction_arguments(p, dir_type_default=None) -> None:
    p.add_argument("--dir_type", choices=("weights", "states"), default=dir_type_default,
                   help="move the parameters (weights) or the whole state dict incl. BN running "
                        "statistics (states); default: the direction file's, else weights")
    for axis in "xyz":
        p.add_argument(f"--{axis}norm", default="filter", choices=("filter", "layer", "weight", "none"),
                       help=f"normalization of a random {axis} direction")
        p.add_argument(f"--{axis}ignore", default="biasbn", choices=("biasbn", "none"),
                       help=f"1-D entries of a random {axis} direction: biasbn = zero, none = random, "
                            "normalized per tensor")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random directions (and of the initial weights without a checkpoint)")
    p.add_argument("--dir_file", default=None, help="direction file to use (existing) or create")


def add_evaluation_arguments(p) -> None:
    """Options of the evaluation and of the surface file shared by the surface commands."""
    p.add_argument("--surf_file", default=None, help="surface file to write or resume")
    p.add_argument("--loss_name", default="crossentropy", choices=("crossentropy", "mse"))
    p.add_argument("--splits", default="train,test", help="comma-separated: train, test or both")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=500,
                   help="samples per forward pass")
    common.add_device_argument(p)
    p.add_argument("--precision", default="none", choices=("none", "bf16", "fp16"),
                   help="autocast forward passes (GPU)")
    p.add_argument("--points-per-pass", type=int, default=None,
                   help="points evaluated per vmap pass (default 1 on CPU, 8 on CUDA)")
    p.add_argument("--plain", action="store_true",
                   help="no BN folding, first-layer cache or pooling rewrites (the reference path)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_arguments(p) -> None:
    common.add_model_arguments(p)
    p.add_argument("--model_file2", default=None, help="x direction = this checkpoint - the model")
    p.add_argument("--model_file3", default=None, help="y direction = this checkpoint - the model")
    common.add_data_arguments(p)
    p.add_argument("--x", default="-1:1:51", help="x axis start:stop:num, written --x=-1:1:51")
    p.add_argument("--y", default=None, help="y axis start:stop:num (2D), e.g. --y=-1:1:51")
    p.add_argument("--z", default=None, help="z axis start:stop:num (3D volume, needs --y)")
    add_direction_arguments(p)
    add_evaluation_arguments(p)
    p.add_argument("--mpi", action="store_true",
                   help="initialize MPI even when no launcher is detected (mpiexec and srun are)")


def parse_splits(text: str) -> tuple:
    splits = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in splits if s not in SPLITS]
    if not splits or bad:
        raise ValueError(f"--splits {text!r}: expected train, test or train,test")
    return splits


def evaluation_options(args) -> dict:
    """Keywords of :func:`landscape.surface.compute_surface` from the evaluation options."""
    return dict(loss=args.loss_name, splits=parse_splits(args.splits), batch_size=args.batch_size,
                device=common.resolve_device(args.device),
                precision=None if args.precision == "none" else args.precision,
                points_per_pass=args.points_per_pass, progress=not args.quiet,
                **(dict(fold_bn=False, first_layer=False, reorder=False) if args.plain else {}))


def _sha(path) -> str:
    from landscape.store import file_sha256

    return file_sha256(path) if path is not None else "none"


def provenance(args, model, data) -> dict:
    """Settings stored in direction and surface files: the model (spec, checkpoint and state
    hashes) and the data's name."""
    from landscape.directions import origin
    from landscape.store import tensors_sha256

    checkpoint = common.checkpoint_file(args.checkpoint)
    spec = args.model or common.run_config(args.checkpoint).get("model", "")
    return {"model": spec, "checkpoint_sha256": _sha(checkpoint), "data": data.name,
            "weights_sha256": tensors_sha256(origin(model, "states"))}


def _stem(args) -> str:
    checkpoint = common.checkpoint_file(args.checkpoint)
    stem = str(checkpoint) if checkpoint else (args.model or "model").replace(":", "_").replace("/", "_")
    for other in (args.model_file2, args.model_file3):
        if other:
            stem += "_" + Path(other).stem
    return stem


def axis_info(args, ndim: int) -> list:
    """How each axis is made: ``{"kind": "target", "sha256": ...}`` for --model_file2/3 axes,
    ``{"kind": "random", "norm", "ignore", "seed"}`` for the others."""
    targets = (args.model_file2, args.model_file3, None)
    return [{"kind": "target", "sha256": _sha(common.checkpoint_file(t))} if t else
            {"kind": "random", "norm": getattr(args, f"{a}norm"), "ignore": getattr(args, f"{a}ignore"),
             "seed": args.seed}
            for a, t in zip("xyz"[:ndim], targets)]


def derived_dir_file(args, info: list, dir_type: str) -> str:
    name = f"{_stem(args)}_{dir_type}"
    for axis, i in zip("xyz", info):
        name += f"_{axis}=target" if i["kind"] == "target" else f"_{axis}ignore={i['ignore']}_{axis}norm={i['norm']}"
    if any(i["kind"] == "random" for i in info):
        name += f"_seed={args.seed}"
    return name + ".h5"


def derived_surf_file(dir_file: str, grid, options: dict) -> str:
    stem = dir_file[:-3] if dir_file.endswith(".h5") else dir_file
    stem += "_" + "x".join(f"[{a[0]:g},{a[-1]:g},{len(a)}]" for a in grid.axes)
    if options["loss"] != "crossentropy":
        stem += "_" + options["loss"]
    if options["splits"] != SPLITS:
        stem += "_" + "+".join(options["splits"])
    return stem + ".h5"


def build_directions(args, model, info: list, dir_type: str):
    """Target axes toward --model_file2/3, random ones drawn together from --seed."""
    from landscape.directions import Directions, random_directions, target_directions

    random = [i for i in info if i["kind"] == "random"]
    drawn = random_directions(model, ndim=len(random), seed=args.seed, dir_type=dir_type,
                              norm=[i["norm"] for i in random],
                              ignore=[i["ignore"] for i in random]).axes if random else []
    axes = []
    for i, target in zip(info, (args.model_file2, args.model_file3, None)):
        if i["kind"] == "target":
            other, _ = common.model_and_data(args, checkpoint=target)
            axes += target_directions(model, other, dir_type=dir_type).axes
        else:
            axes.append(drawn.pop(0))
    return Directions(axes, dir_type, info)


def directions_for(args, model, ndim: int, attrs: dict):
    """(directions, dir_file): read from an existing direction file, or made and saved."""
    from landscape.directions import Directions
    from landscape.store import load_directions, mismatch, read_attrs, save_directions

    info = axis_info(args, ndim)
    dir_type = args.dir_type or "weights"
    dir_file = args.dir_file or derived_dir_file(args, info, dir_type)
    if not Path(dir_file).exists():
        directions = build_directions(args, model, info, dir_type)
        save_directions(dir_file, directions, attrs)
        return directions, dir_file
    directions = load_directions(dir_file, model=model, dir_type=args.dir_type)
    if directions.ndim < ndim:
        raise ValueError(f"{dir_file} holds {directions.ndim} direction(s); the grid needs {ndim}")
    if args.dir_file is None:  # a derived name: reuse only what these settings would make
        differs = mismatch(read_attrs(dir_file), {**Directions(directions.axes[:ndim], dir_type, info).attrs(), **attrs})
        if differs:
            raise ValueError(f"{dir_file} was {differs}; delete it or pass --dir_file")
    return Directions(directions.axes[:ndim], directions.dir_type, directions.info[:ndim],
                      directions.meta), dir_file


def report(result, seconds: float, computed: int, ranks: int = 1) -> None:
    """One line per file: points computed and speed, then the loss range and the origin's values."""
    import numpy as np

    rate = computed / seconds if seconds > 0 else float("nan")
    on = f" on {ranks} ranks" if ranks > 1 else ""
    print(f"{result.path}: {int(result.done.sum())}/{result.done.size} points "
          f"({computed} computed in {seconds:.1f} s, {rate:.2f} points/s{on})")
    for key, values in result.values.items():
        finite = values[np.isfinite(values)]
        if finite.size:
            print(f"  {key}: min {finite.min():.4g}  max {finite.max():.4g}")


def surface_from_args(args, model, data, grid, comm=None) -> int:
    """Directions, file names and the computation shared by `surface` and `interpolate`;
    ``comm`` shares the points among MPI ranks (rank 0 makes the direction file and reports)."""
    from landscape import sharding
    from landscape.surface import compute_surface

    options = evaluation_options(args)
    attrs = provenance(args, model, data)
    directions, dir_file = sharding.on_root(comm, lambda: directions_for(args, model, grid.ndim, attrs))
    surf_file = args.surf_file or derived_surf_file(dir_file, grid, options)
    computed = []
    start = time.perf_counter()
    result = compute_surface(model, data, directions=directions, x=grid.axes[0],
                             y=grid.axes[1] if grid.ndim > 1 else None,
                             z=grid.axes[2] if grid.ndim > 2 else None, surf_file=surf_file,
                             dir_file=dir_file, attrs=attrs, comm=comm,
                             on_rows=lambda idx, rows: computed.append(len(idx)), **options)
    if comm is None or comm.Get_rank() == 0:
        report(result, time.perf_counter() - start, sum(computed), 1 if comm is None else comm.Get_size())
    return 0


def run(args) -> int:
    from landscape import sharding

    comm = sharding.start(force=args.mpi)
    with sharding.guard(comm, "landscape surface"):
        model, data, grid = sharding.on_all(comm, lambda: _setup(args))
        return surface_from_args(args, model, data, grid, comm)


def _setup(args):
    from landscape.grid import make_grid

    import torch

    grid = make_grid(args.x, args.y, args.z)
    torch.manual_seed(args.seed)  # reproducible initial weights when no checkpoint is given
    return (*common.model_and_data(args), grid)
