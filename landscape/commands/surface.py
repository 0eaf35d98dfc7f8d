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
    p.add_argument("--loss_name", default="crossentropy", choices=("crossentropy", "nll", "mse"),
                   help="crossentropy on logits, nll on log-probabilities, or the de facto mse")
    p.add_argument("--splits", default=None,
                   help="comma-separated: train, test or both (default: every split the data has)")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=None,
                   help="samples per forward pass (default: the fastest of a few, timed on the first point)")
    common.add_device_argument(p)
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16", "none"),
                   help="fp32 (exact; none = fp32), or bf16/fp16 forward passes under autocast: fast on CUDA "
                        "GPUs and on CPUs with bf16 units (avx512_bf16/amx_bf16), emulated and slow elsewhere; "
                        "the error is measured at fixed points in fp32, stored and printed")
    p.add_argument("--compile", action="store_true",
                   help="run the forward passes through torch.compile (opt-in: its 10-110 s compilation pays on "
                        "large grids, about 1.1-1.3x per point measured on CPU; values equal to float rounding)")
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
    p.add_argument("--x", default=None,
                   help="x axis start:stop:num, written --x=-1:1:51 (default -1:1:51), or auto[:NUM[:FACTOR]]: "
                        "NUM points over [-s, s], s where the loss first reaches FACTOR (2) x the center loss")
    p.add_argument("--y", default=None, help="y axis start:stop:num or auto[:NUM[:FACTOR]] (2D), e.g. --y=-1:1:51")
    p.add_argument("--z", default=None, help="z axis start:stop:num (3D volume, needs --y)")
    add_direction_arguments(p)
    p.add_argument("--directions", choices=("random", "hessian"), default="random",
                   help="random (filter-normalized, or toward --model_file2/3) or hessian: the top "
                        "Hessian eigenvectors at the model (unit length; eigenvalues kept in the file)")
    p.add_argument("--hessian-samples", type=int, default=512,
                   help="training examples (a seeded subset) for the Hessian directions")
    add_evaluation_arguments(p)
    p.add_argument("--mpi", action="store_true",
                   help="initialize MPI even when no launcher is detected (mpiexec and srun are)")


def parse_splits(text):
    if text is None:
        return None
    splits = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in splits if s not in SPLITS]
    if not splits or bad:
        raise ValueError(f"--splits {text!r}: expected train, test or train,test")
    return splits


def evaluation_options(args) -> dict:
    """Keywords of :func:`landscape.surface.compute_surface` from the evaluation options."""
    from regularizers.evaluation import resolve_device

    return dict(loss=args.loss_name, splits=parse_splits(args.splits), batch_size=args.batch_size,
                device=resolve_device(args.device),
                precision=args.precision,
                points_per_pass=args.points_per_pass, progress=not args.quiet, compile=args.compile,
                **(dict(fold_bn=False, first_layer=False, reorder=False) if args.plain else {}))


def _stem(args) -> str:
    checkpoint = common.checkpoint_file(args.checkpoint)
    stem = str(checkpoint) if checkpoint else (args.model or "model").replace(":", "_").replace("/", "_")
    for other in (args.model_file2, args.model_file3):
        if other:
            stem += "_" + Path(other).stem
    return stem


def recipes_from_args(args, ndim: int) -> list:
    """One :class:`landscape.files.AxisRecipe` per axis: toward --model_file2 (x) and
    --model_file3 (y) when given, else random with that axis's --Xnorm/--Xignore and --seed."""
    from landscape.files import AxisRecipe
    from landscape.store import file_sha256

    recipes = []
    for axis, target in zip("xyz"[:ndim], (args.model_file2, args.model_file3, None)):
        if target:
            other, _ = common.model_and_data(args, checkpoint=target)
            recipes.append(AxisRecipe("target", target=other,
                                      target_sha256=file_sha256(common.checkpoint_file(target))))
        else:
            recipes.append(AxisRecipe("random", norm=getattr(args, f"{axis}norm"),
                                      ignore=getattr(args, f"{axis}ignore"), seed=args.seed))
    return recipes


def hessian_file(args, model, data, ndim: int, attrs: dict):
    """(Hessian directions, their file): an existing --dir_file as it is, a derived file reused
    when made with the same settings, else the top-``ndim`` eigenvectors on a seeded subset of
    --hessian-samples training examples, saved with their eigenvalues."""
    from analysis.hessian_directions import hessian_directions
    from landscape.files import keep_directions
    from regularizers.evaluation import seeded_subset

    if args.dir_type == "states":
        raise ValueError("Hessian directions move the parameters: use --dir_type weights")
    if args.hessian_samples < 1:
        raise ValueError(f"--hessian-samples must be positive, got {args.hessian_samples}")
    settings = {**attrs, "hessian_samples": args.hessian_samples, "hessian_loss": args.loss_name}
    stored = dict(settings)  # a new file's attributes: the settings, then the eigenvalues found

    def make():
        subset = seeded_subset(data.x_train, data.y_train, args.hessian_samples, args.seed)
        print(f"Hessian directions: top {ndim} eigenvectors on {len(subset[0])} training examples", flush=True)
        directions = hessian_directions(model, subset, k=ndim, seed=args.seed, loss=args.loss_name)
        stored["eigenvalues"] = directions.meta["eigenvalues"]
        print("  eigenvalues " + ", ".join(f"{v:.4g}" for v in stored["eigenvalues"]), flush=True)
        return directions

    path = args.dir_file or f"{_stem(args)}_weights_hessian_k={ndim}_seed={args.seed}.h5"
    return keep_directions(path, model, ndim, make, dir_type="weights",
                           wanted=settings if args.dir_file is None else None, attrs=stored)


def report(result, seconds: float, computed: int, ranks: int = 1) -> None:
    """One line per file: points computed and speed, then the loss range and the origin's values."""
    import numpy as np

    rate = computed / seconds if seconds > 0 else float("nan")
    on = f" on {ranks} ranks" if ranks > 1 else ""
    print(f"{result.path}: {int(result.done.sum())}/{result.done.size} points "
          f"({computed} computed in {seconds:.1f} s, {rate:.2f} points/s{on})")
    if result.nan_count():
        print(f"  {result.nan_count()} points are NaN (the loss diverged there)")
    for key, values in result.values.items():
        finite = values[np.isfinite(values)]
        if finite.size:
            print(f"  {key}: min {finite.min():.4g}  max {finite.max():.4g}")


def provenance_from_args(args, model, data) -> dict:
    """:func:`landscape.files.provenance` of the model the flags name."""
    from landscape.files import provenance

    return provenance(model, model_spec=args.model or common.run_config(args.checkpoint).get("model", ""),
                      checkpoint=common.checkpoint_file(args.checkpoint), data_name=data.name)


def surface_from_args(args, model, data, axes, comm=None) -> int:
    """The computation shared by `surface` and `interpolate`: recipes and provenance from the
    flags, then :func:`landscape.surface.compute_surface`; ``comm`` shares the points among
    MPI ranks (rank 0 makes the direction file and reports)."""
    from landscape.surface import compute_surface

    options = evaluation_options(args)
    attrs = provenance_from_args(args, model, data)
    computed = []
    start = time.perf_counter()
    x, y, z = (list(axes) + [None, None])[:3]
    if getattr(args, "directions", "random") == "hessian":
        from landscape import sharding

        directions, dir_file = sharding.on_root(comm, lambda: hessian_file(args, model, data, len(axes), attrs))
    else:
        directions, dir_file = recipes_from_args(args, len(axes)), args.dir_file
    result = compute_surface(model, data, directions=directions, x=x, y=y, z=z,
                             surf_file=args.surf_file or "auto", dir_file=dir_file, dir_type=args.dir_type,
                             stem=_stem(args), attrs=attrs, comm=comm,
                             on_rows=lambda idx, rows: computed.append(len(idx)), **options)
    if comm is None or comm.Get_rank() == 0:
        report(result, time.perf_counter() - start, sum(computed), 1 if comm is None else comm.Get_size())
    return 0


def run(args) -> int:
    from landscape import sharding

    comm = sharding.start(force=args.mpi)
    with sharding.guard(comm, "landscape surface"):
        model, data, axes = sharding.on_all(comm, lambda: _setup(args))
        return surface_from_args(args, model, data, axes, comm)


def _setup(args):
    import torch

    from landscape.grid import make_grid
    from landscape.surface import parse_auto

    if args.x is None and (args.y is not None or args.z is not None):
        raise ValueError("--y/--z need an explicit --x (e.g. --x=-1:1:51)")
    if args.z is not None and args.y is None:
        raise ValueError("--z needs --y (a 3D volume is x, y, z)")
    axes = [a for a in (args.x or "-1:1:51", args.y, args.z) if a is not None]
    # checked (format and memory) before anything is loaded; an automatic axis counts its points
    make_grid(*[f"-1:1:{parse_auto(a)[0]}" if a.startswith("auto") else a for a in axes])
    torch.manual_seed(args.seed)  # reproducible initial weights when no checkpoint is given
    return (*common.model_and_data(args), tuple(axes))
