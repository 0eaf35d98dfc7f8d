"""`landscape surface`: a 1D/2D/3D loss surface around a model, written to a resumable HDF5 file.

Accepts the flags of tomgoldstein/loss-landscape's plot_surface.py (``--x --y --xnorm --ynorm
--xignore --yignore --dir_type --dir_file --surf_file --model_file --model_file2 --model_file3
--loss_name``). Directions: ``--model_file2`` (``--model_file3``) makes the x (y) direction
point to that model; other axes are random from ``--seed``. An existing ``--dir_file`` (ours or
de facto) is used as it is (refused when it records other weights); a new one is created under
that name. Without ``--dir_file`` / ``--surf_file`` the names are derived from the settings; a
derived direction file that exists is reused only when it was made with the same settings for
the same weights.

The flags become typed options once (:func:`surface_options`, :func:`axis_specs`); the library
does the rest (:func:`landscape.surface.compute_surface`). Under ``mpiexec -n N`` (or ``srun``)
the ranks share the unfinished points; rank 0 writes the file (see :mod:`landscape.sharding`).
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

from . import common

MPI = True  # shares its points among the ranks when started by mpiexec / srun
HELP = "compute a loss surface (1D/2D/3D) along random or target directions into a resumable HDF5 file"
DEFAULT_AXIS = "-1:1:51"


def splits_list(text: str) -> Tuple[str, ...]:
    """``--splits``: comma-separated split names, each at most once (an argparse ``type``)."""
    from regularizers.data import SPLITS

    splits = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in splits if s not in SPLITS]
    if not splits or bad:
        raise argparse.ArgumentTypeError(f"{text!r}: expected {', '.join(SPLITS)} or {','.join(SPLITS)}")
    if len(set(splits)) != len(splits):
        raise argparse.ArgumentTypeError(f"{text!r} names a split twice")
    return splits


def add_direction_arguments(p, dir_type_default=None) -> None:
    """``--dir_type``, ``--Xnorm``/``--Xignore`` per axis, ``--seed`` and ``--dir_file``."""
    p.add_argument("--dir_type", choices=("weights", "states"), default=dir_type_default,
                   help="move the parameters (weights) or the whole state dict incl. BN running "
                        "statistics (states); none given: the direction file's, else weights")
    for axis in "xyz":
        p.add_argument(f"--{axis}norm", default="filter", choices=("filter", "layer", "weight", "none"),
                       help=f"normalization of a random {axis} direction")
        p.add_argument(f"--{axis}ignore", default="biasbn", choices=("biasbn", "none"),
                       help=f"1-D entries of a random {axis} direction: biasbn = zero, none = random, "
                            "normalized per tensor")
    p.add_argument("--seed", type=common.seed_int, default=0,
                   help="seed of the random directions (and of the initial weights without a checkpoint)")
    p.add_argument("--dir_file", default=None,
                   help="direction file to use (existing; refused when made for other weights) or create; "
                        "none given: a name derived from the settings")


def add_evaluation_arguments(p) -> None:
    """Options of the evaluation and of the surface file shared by the surface commands."""
    p.add_argument("--surf_file", default=None, help="surface file to write or resume (none given: a derived name)")
    p.add_argument("--loss_name", default="crossentropy", choices=("crossentropy", "nll", "mse"),
                   help="crossentropy on logits, nll on log-probabilities, or the de facto mse")
    p.add_argument("--splits", type=splits_list, default=None,
                   help="comma-separated: train, test or both (none given: every split the data has)")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=common.positive_int, default=None,
                   help="samples per forward pass (none given: the resumed file's, else the fastest of a few, "
                        "timed on the first point)")
    common.add_device_argument(p)
    common.add_output_argument(p)
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16", "none"),
                   help="fp32 (exact; none = fp32), or bf16/fp16 forward passes under autocast: fast on CUDA "
                        "GPUs and on CPUs with bf16 units (avx512_bf16/amx_bf16), emulated and slow elsewhere; "
                        "the error is measured at fixed points in fp32, stored and printed")
    p.add_argument("--compile", action="store_true",
                   help="run the forward passes through torch.compile (opt-in: its 10-110 s compilation pays on "
                        "large grids, about 1.1-1.3x per point measured on CPU; values equal to float rounding)")
    p.add_argument("--points-per-pass", type=common.positive_int, default=None,
                   help="points evaluated per vmap pass (none given: 1 on CPU, 8 on CUDA); refused when the "
                        "perturbed weights would not fit in memory")
    p.add_argument("--plain", action="store_true",
                   help="no BN folding, first-layer cache or pooling rewrites (the reference path)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_arguments(p) -> None:
    """The flags of `landscape surface`."""
    common.add_model_arguments(p)
    p.add_argument("--model_file2", default=None, help="x direction = this checkpoint - the model")
    p.add_argument("--model_file3", default=None, help="y direction = this checkpoint - the model")
    common.add_data_arguments(p)
    p.add_argument("--x", default=None,
                   help=f"x axis start:stop:num, written --x=-1:1:51 (none given: {DEFAULT_AXIS}), or "
                        "auto[:NUM[:FACTOR]]: NUM points over [-s, s], s where the loss first reaches FACTOR (2) "
                        "x the center loss")
    p.add_argument("--y", default=None, help="y axis start:stop:num or auto[:NUM[:FACTOR]] (2D), e.g. --y=-1:1:51")
    p.add_argument("--z", default=None, help="z axis start:stop:num (3D volume, needs --y)")
    add_direction_arguments(p)
    p.add_argument("--directions", choices=("random", "hessian"), default="random",
                   help="random (filter-normalized, or toward --model_file2/3) or hessian: the top "
                        "Hessian eigenvectors at the model (unit length; eigenvalues kept in the file)")
    p.add_argument("--hessian-samples", type=common.positive_int, default=None,
                   help="Hessian directions from a seeded subset of this many training examples (the file and "
                        "the printout then also give the curvature along them on the whole split); default: "
                        "the whole training split, the data the surface uses")
    add_evaluation_arguments(p)
    p.add_argument("--mpi", action="store_true",
                   help="initialize MPI even when no launcher is detected (mpiexec and srun are)")


@dataclass(frozen=True)
class SurfaceOptions:
    """The evaluation and file flags of the surface commands, typed (:func:`surface_options`)."""

    loss: str = "crossentropy"
    splits: Optional[Tuple[str, ...]] = None
    batch_size: Optional[int] = None
    device: str = "auto"
    output: Optional[object] = None
    precision: str = "fp32"
    compile: bool = False
    points_per_pass: Optional[int] = None
    plain: bool = False
    progress: bool = True
    surf_file: Optional[str] = None

    def keywords(self) -> dict:
        """Keywords of :func:`landscape.surface.compute_surface` (all but the files)."""
        from regularizers.evaluation import resolve_device

        return dict(loss=self.loss, splits=self.splits, batch_size=self.batch_size, device=resolve_device(self.device),
                    output=self.output, precision=self.precision, compile=self.compile,
                    points_per_pass=self.points_per_pass,
                    progress=self.progress, **(dict(fold_bn=False, first_layer=False, reorder=False) if self.plain else {}))


def surface_options(args) -> SurfaceOptions:
    """:class:`SurfaceOptions` from the parsed flags of :func:`add_evaluation_arguments` (the
    one place a namespace becomes options)."""
    return SurfaceOptions(loss=args.loss_name, splits=args.splits, batch_size=args.batch_size, device=args.device,
                          output=common.output_selector(args.output),
                          precision=args.precision, compile=args.compile,
                          points_per_pass=args.points_per_pass, plain=args.plain, progress=not args.quiet,
                          surf_file=args.surf_file)


def file_stem(model_spec: Optional[str], checkpoint, targets: Sequence[Optional[str]] = ()) -> str:
    """The stem of derived file names: the checkpoint's path (else the model spec), plus the
    stems of the target checkpoints."""
    checkpoint = common.checkpoint_file(checkpoint)
    stem = str(checkpoint) if checkpoint else (model_spec or "model").replace(":", "_").replace("/", "_")
    for other in targets:
        if other:
            stem += "_" + Path(other).stem
    return stem


def target_recipe(args, target: str):
    """:class:`landscape.recipes.AxisRecipe` toward the checkpoint ``target`` (built like the model)."""
    from landscape.recipes import AxisRecipe
    from landscape.store import file_sha256

    other, _ = common.model_and_data(args, checkpoint=target)
    return AxisRecipe("target", target=other, target_sha256=file_sha256(common.checkpoint_file(target)))


def recipes_from_args(args, ndim: int) -> list:
    """One :class:`landscape.recipes.AxisRecipe` per axis: toward --model_file2 (x) and
    --model_file3 (y) when given, else random with that axis's --Xnorm/--Xignore and --seed."""
    from landscape.recipes import AxisRecipe

    recipes = []
    for axis, target in zip("xyz"[:ndim], (args.model_file2, args.model_file3, None)):
        recipes.append(target_recipe(args, target) if target else
                       AxisRecipe("random", norm=getattr(args, f"{axis}norm"), ignore=getattr(args, f"{axis}ignore"),
                                  seed=args.seed))
    return recipes


def hessian_recipes(args, data, ndim: int) -> list:
    """One :class:`landscape.recipes.AxisRecipe` of kind ``hessian`` per axis: the top eigenvectors
    of the --loss_name Hessian on the training split (or a seeded --hessian-samples subset)."""
    from landscape.recipes import AxisRecipe

    if args.dir_type == "states":
        raise ValueError("Hessian directions move the parameters: use --dir_type weights")
    output = common.output_selector(getattr(args, "output", None))
    return [AxisRecipe("hessian", seed=args.seed, data=data, output=output, loss=args.loss_name,
                       samples=args.hessian_samples, progress=not args.quiet) for _ in range(ndim)]


def hessian_file(args, model, data, ndim: int, attrs: dict, stem: str):
    """(Hessian directions, their file), on rank 0: an existing --dir_file as it is, a derived
    file reused when made with the same settings, else the recipes' eigenvectors saved there with
    their eigenvalues; a line on their eigenvalues and search time when they are computed (the
    surface's points/s are timed after this returns)."""
    from landscape.recipes import open_directions

    recipes = hessian_recipes(args, data, ndim)
    start = time.perf_counter()
    directions, path = open_directions(model, recipes, dir_type="weights", dir_file=args.dir_file or "auto",
                                       stem=stem, attrs=attrs)
    if "eigenvalue" in directions.info[0]:  # computed now (whatever name it got), not read from a file
        info = directions.info
        values = ", ".join(f"{a['eigenvalue']:.4g}" for a in info)
        print(f"Hessian directions: eigenvalues {values} on "
              f"{info[0]['examples']} training examples ({time.perf_counter() - start:.1f} s, not counted "
              "in the surface's points/s)", flush=True)
        if "curvature_all" in info[0]:
            values = ", ".join(f"{a['curvature_all']:.4g}" for a in info)
            print(f"  curvature along them on the whole training split (the surface's data): {values}", flush=True)
    return directions, path


def report(result, seconds: float, ranks: int = 1) -> None:
    """One line per file: points computed and speed, then the loss range (and a reduced-precision
    surface's measured error, :func:`landscape.precision.check_summary`)."""
    import numpy as np

    from landscape.precision import check_summary

    rate = result.computed / seconds if seconds > 0 else float("nan")
    on = f" on {ranks} ranks" if ranks > 1 else ""
    print(f"{result.path}: {int(result.done.sum())}/{result.done.size} points "
          f"({result.computed} computed in {seconds:.1f} s, {rate:.2f} points/s{on})")
    if result.nan_count():
        print(f"  {result.nan_count()} points are NaN (the loss diverged there)")
    for key, values in result.values.items():
        finite = values[np.isfinite(values)]
        if finite.size:
            print(f"  {key}: min {finite.min():.4g}  max {finite.max():.4g}")
    if "precision_error_abs" in result.attrs:
        print(f"  {check_summary(result.attrs)}")


def provenance_of(model, data, model_spec: Optional[str], checkpoint) -> dict:
    """:func:`landscape.recipes.provenance` of a model (its spec, else its run folder's)."""
    from landscape.recipes import provenance

    return provenance(model, model_spec=model_spec or common.run_config(checkpoint).get("model", ""),
                      checkpoint=common.checkpoint_file(checkpoint), data_name=data.name)


def compute_and_report(model, data, *, directions, axes: Sequence[str], options: SurfaceOptions, dir_file,
                       attrs: dict, stem: str, dir_type: Optional[str] = None, comm=None):
    """:func:`landscape.surface.compute_surface` with the typed options, then :func:`report` (on
    rank 0): what `surface`, `interpolate` and `trajectory` share. Returns the surface."""
    from landscape.sharding import runner
    from landscape.surface import compute_surface

    run, start = runner(comm), time.perf_counter()
    x, y, z = (list(axes) + [None, None])[:3]
    result = compute_surface(model, data, directions=directions, x=x, y=y, z=z, surf_file=options.surf_file or "auto",
                             dir_file=dir_file, dir_type=dir_type, stem=stem, attrs=attrs, comm=run,
                             **options.keywords())
    if run.root:
        report(result, time.perf_counter() - start, run.ranks)
    return result


def axis_specs(x: Optional[str], y: Optional[str], z: Optional[str]) -> Tuple[str, ...]:
    """The axes the flags ask for, checked (:func:`landscape.grid.resolve_axes`) before anything
    is loaded; ``--x`` defaults to :data:`DEFAULT_AXIS` (an empty ``--x=`` is refused)."""
    from landscape.grid import resolve_axes

    if x is None and (y is not None or z is not None):
        raise ValueError("--y/--z need an explicit --x (e.g. --x=-1:1:51)")
    axes = tuple(a for a in (DEFAULT_AXIS if x is None else x, y, z) if a is not None)
    resolve_axes(*axes)
    return axes


def load(args):
    """``(model, data)`` of the flags; the seed fixes the initial weights when no checkpoint is given."""
    import torch

    torch.manual_seed(args.seed)
    return common.model_and_data(args)


def run(args) -> int:
    """`landscape surface`: flags -> typed options -> :func:`compute_and_report`."""
    from landscape import sharding

    comm = sharding.start(force=args.mpi)
    with sharding.guard(comm, "landscape surface"):
        run = sharding.runner(comm)
        options, axes = surface_options(args), axis_specs(args.x, args.y, args.z)
        model, data = run.on_all(load, args)
        attrs = provenance_of(model, data, args.model, args.checkpoint)
        stem = file_stem(args.model, args.checkpoint, (args.model_file2, args.model_file3))
        if args.directions == "hessian":
            directions, dir_file = run.on_root(hessian_file, args, model, data, len(axes), attrs, stem)
        else:
            directions, dir_file = recipes_from_args(args, len(axes)), args.dir_file or "auto"
        compute_and_report(model, data, directions=directions, axes=axes, options=options, dir_file=dir_file,
                           dir_type=args.dir_type, attrs=attrs, stem=stem, comm=run)
        return 0
