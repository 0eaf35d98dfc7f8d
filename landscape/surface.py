"""Loss surfaces: evaluate a model over a 1D/2D/3D grid of directions, resumable from HDF5.

``compute_surface`` is the Python entry point behind ``landscape surface``; ``interpolate`` is
the 1D line between two models (Goodfellow et al. 2015). The point loop is
:func:`evaluate_points`: it takes the flat indices to compute and hands every computed chunk of
rows to a ``write`` callback, so a caller that shards points over processes chooses the indices
and where the rows go without touching the evaluation; :mod:`landscape.sharding` does so over
MPI ranks (``compute_surface(..., comm=MPI.COMM_WORLD)``).
"""
from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
from torch import nn
from tqdm import tqdm

from regularizers.evaluation import Tensors, data_splits, loss_name, resolve_loss

from .directions import Directions, origin, random_directions, target_directions
from .evaluate import Evaluator, value_keys
from .files import AxisRecipe, open_directions, surface_file_name
from .grid import AxisSpec, Grid, make_grid
from .precision import check_surface, precision_name
from .sharding import evaluate_shared, on_all, on_root
from .store import SurfaceResult, SurfaceWriter, prepare_surface, read_surface, tensors_sha256

Write = Callable[[np.ndarray, np.ndarray], None]


def evaluate_points(evaluate: Callable[[np.ndarray], np.ndarray], grid: Grid, indices, *, write: Write,
                    chunk: int = 1, progress: bool = True, desc: str = "surface") -> None:
    """Evaluate ``evaluate(coords (k, ndim)) -> rows (k, ncols)`` at the flat point ``indices``
    of ``grid``, ``chunk`` points at a time, calling ``write(indices, rows)`` after each chunk.
    A progress bar (points/s) goes to stderr unless ``progress`` is False."""
    indices = np.asarray(indices, dtype=np.int64)
    with tqdm(total=len(indices), unit="pt", desc=desc, disable=not progress, leave=False) as bar:
        for start in range(0, len(indices), chunk):
            part = indices[start:start + chunk]
            write(part, evaluate(grid.coords(part)))
            bar.update(len(part))


def data_fingerprint(data, splits: Sequence[str]) -> dict:
    """What identifies the data in a surface file: a hash of the staged tensors of ``splits``
    (``"stream"`` when a split is streamed from a loader: its content cannot be hashed without a
    pass) and the transformations the data went through (``Dataset.transforms``)."""
    sources = data_splits(data)
    staged = [sources[s] for s in splits]
    digest = (tensors_sha256(t for src in staged for t in (src.x, src.y))
              if all(isinstance(src, Tensors) for src in staged) else "stream")
    return {"data_sha256": digest, "data_transforms": list(getattr(data, "transforms", ())) or "none"}


def surface_attrs(model: nn.Module, data, directions: Directions, *, loss, splits: Sequence[str]) -> dict:
    """Settings a surface depends on, stored in its file and checked on resume: loss, splits,
    directions (kind, normalization, ignore policy, seed, and a hash of their values), and
    hashes of the model's state and of the data (with the data's transformations)."""
    return {"loss": loss_name(loss), "splits": list(splits), **directions.attrs(),
            "directions_sha256": tensors_sha256(t for axis in directions.axes for t in axis),
            "weights_sha256": tensors_sha256(origin(model, "states")), **data_fingerprint(data, splits)}


def _check_options(data, splits, loss, rewrites: dict) -> Tuple[str, ...]:
    """Every keyword checked before any file is touched; returns the splits to compute."""
    available = data_splits(data)
    splits = tuple(available) if splits is None else tuple(splits)
    missing = [s for s in splits if s not in available]
    if not splits or missing:
        raise ValueError(f"the data has no {missing[0] if missing else 'selected'!r} split "
                         f"(it has {', '.join(available)})")
    resolve_loss(loss)
    allowed = set(inspect.signature(Evaluator).parameters) - {"model", "data", "directions", "splits", "loss"}
    unknown = sorted(set(rewrites) - allowed)
    if unknown:
        raise TypeError(f"compute_surface got unknown keyword(s) {', '.join(unknown)}; "
                        f"evaluation options are {', '.join(sorted(allowed))}")
    return splits


AUTO_POINTS = 51
SPAN_BATCH_SIZE = 256


def _is_auto(spec) -> bool:
    return isinstance(spec, str) and spec.split(":")[0].strip() == "auto"


def parse_auto(spec: str) -> Tuple[int, float]:
    """``"auto[:NUM[:FACTOR]]"`` -> ``(num, factor)`` (defaults 51 points, factor 2)."""
    parts = [p.strip() for p in spec.split(":")][1:]
    try:
        num = int(parts[0]) if parts and parts[0] else AUTO_POINTS
        factor = float(parts[1]) if len(parts) > 1 else 2.0
    except ValueError:
        num, factor = 0, 0.0
    if len(parts) > 2 or num < 2 or not factor > 1:
        raise ValueError(f"axis {spec!r}: expected auto[:NUM[:FACTOR]] with NUM >= 2 and FACTOR > 1, "
                         "e.g. auto:51:2")
    return num, factor


def _automatic_axes(model, data, directions, specs, automatic, split, loss, evaluation, progress):
    """Axes ``-s:s:num`` where the loss along each automatic axis first reaches its factor times
    the center loss (:func:`landscape.span.auto_span`); the spans as file attributes."""
    from .span import direction_spans

    options = {k: v for k, v in evaluation.items() if k in ("device", "output", "precision")}
    options["batch_size"] = evaluation.get("batch_size") or SPAN_BATCH_SIZE  # not timed: reruns agree
    axes, attrs = list(specs), {}
    for i, (num, factor) in automatic.items():
        one = Directions([directions.axes[i]], directions.dir_type, [directions.info[i]], directions.meta)
        span = direction_spans(model, data, one, split=split, loss=loss, factor=factor, **options)[0]
        # found to 1 % by bisection; 3 digits keep a resumed file's grid equal despite float noise
        axis, s = "xyz"[i], float(f"{span.span:.3g}")
        axes[i] = np.linspace(-s, s, num)
        attrs.update({f"{axis}span_auto": s, f"{axis}span_factor": factor, f"{axis}span_reached": bool(span.reached)})
        if progress:
            reached = "" if span.reached else f" (not reached by {s:g}: the span is capped)"
            print(f"{axis} axis auto: the {split} loss reaches {factor:g}x its center value "
                  f"{span.center_loss:.4g} at +-{s:g}{reached}; axis -{s:g}:{s:g}:{num}", file=sys.stderr, flush=True)
    return axes, attrs


def compute_surface(model: nn.Module, data, *, directions: Union[Directions, Sequence[AxisRecipe]],
                    x: AxisSpec, y: Optional[AxisSpec] = None, z: Optional[AxisSpec] = None,
                    loss="crossentropy", splits: Optional[Sequence[str]] = None, surf_file=None,
                    dir_file=None, dir_type: Optional[str] = None, stem: str = "model",
                    attrs: Optional[dict] = None, progress: bool = True, on_rows: Optional[Write] = None,
                    comm=None, **evaluation) -> SurfaceResult:
    """Loss and accuracy of ``model`` at ``theta + a d1 (+ b d2 (+ c d3))`` over a grid.

    Args:
        model: any ``nn.Module``; left bit-exactly unchanged.
        data: any form of :func:`regularizers.evaluation.data_splits` (a Dataset, ``{split:
            (inputs, targets)}``, an ``(inputs, targets)`` pair, a torch Dataset, a DataLoader).
        directions: :class:`Directions`, or one :class:`landscape.files.AxisRecipe` per axis;
            recipes are turned into directions kept in ``dir_file`` (see
            :func:`landscape.files.open_directions`, which also reuses an existing file).
        x, y, z: grid axes, ``"start:stop:num"`` or increasing coordinate arrays, or
            ``"auto[:NUM[:FACTOR]]"``: ``NUM`` points over ``[-s, s]``, ``s`` the distance at which
            the loss first reaches ``FACTOR`` times the center loss (recorded in the file).
        loss: a name or callable ``loss(outputs, targets)`` (per-example or batch mean).
        splits: the data splits to evaluate (default: all the data has).
        surf_file: HDF5 file written as points are computed and resumed when it exists (made
            with other settings -- :func:`surface_attrs` plus ``attrs`` -- it is refused);
            ``"auto"`` derives the name from the direction file; None keeps values in memory.
        dir_file, dir_type, stem: the direction file, the tensors moved (``weights`` or
            ``states``), and the stem of derived file names (see :mod:`landscape.files`).
        attrs: provenance stored in the files (e.g. :func:`landscape.files.provenance`).
        on_rows: ``on_rows(indices, rows)`` after every stored chunk.
        comm: an mpi4py communicator whose ranks share the points (call on every rank with the
            same arguments). Rank 0 alone touches files and returns the whole surface; other
            ranks return the points they computed. Errors in the common steps are raised on
            every rank as :class:`landscape.sharding.SharedError`.
        evaluation: options of :class:`landscape.evaluate.Evaluator` (``batch_size``,
            ``device``, ``precision``, ``points_per_pass``, ``output``, the rewrite switches).

    Returns:
        a :class:`SurfaceResult`: ``values[key]`` shaped ``(nx,)``, ``(ny, nx)`` or
        ``(nz, ny, nx)`` with ``Z[i, j]`` at ``(x[j], y[i])``.

    Raises:
        ValueError / TypeError: bad arguments, all checked before any file is created.

    A linear model under MSE has a quadratic surface, ``L(a) = mean((w + a d) x - y)^2``:

    >>> import torch
    >>> from landscape.directions import Directions
    >>> model = torch.nn.Linear(1, 1, bias=False)
    >>> _ = model.weight.data.fill_(1.0)
    >>> x, y = torch.ones(4, 1), torch.ones(4, 1)          # loss 0 at the model, (a d)^2 around it
    >>> line = Directions([[torch.tensor([[2.0]])]])
    >>> result = compute_surface(model, (x, y), directions=line, x="-1:1:3", loss="mse", progress=False)
    >>> result["train_loss"].tolist()                      # (2a)^2 at a = -1, 0, 1
    [4.0, 0.0, 4.0]
    """
    specs = [a for a in (x, y, z) if a is not None]
    automatic = {i: parse_auto(spec) for i, spec in enumerate(specs) if _is_auto(spec)}
    if z is not None and y is None:
        raise ValueError("a z axis needs a y axis")
    splits = _check_options(data, splits, loss, evaluation)
    grid = make_grid(*[spec if i not in automatic else "0:0:1" for i, spec in enumerate(specs)])
    if not isinstance(directions, Directions):
        recipes = list(directions)
        if len(recipes) != grid.ndim:
            raise ValueError(f"a {grid.ndim}D grid needs {grid.ndim} axis recipes, got {len(recipes)}")
        directions, dir_file = on_root(comm, lambda: open_directions(
            model, recipes, dir_type=dir_type, dir_file=dir_file, stem=stem, attrs=attrs))
    if grid.ndim != directions.ndim:
        raise ValueError(f"a {grid.ndim}D grid needs {grid.ndim} directions, got {directions.ndim}")
    if automatic:
        axes, auto_attrs = on_root(comm, lambda: _automatic_axes(
            model, data, directions, specs, automatic, splits[0], loss, evaluation, progress))
        grid, attrs = make_grid(*axes), {**(attrs or {}), **auto_attrs}
    if surf_file == "auto":
        if dir_file is None:
            raise ValueError("surf_file='auto' derives the name from the direction file; give dir_file")
        surf_file = surface_file_name(dir_file, grid.axes, loss_name(loss), splits)
    keys = value_keys(splits)
    root = comm is None or comm.Get_rank() == 0

    def settings() -> dict:
        return {**surface_attrs(model, data, directions, loss=loss, splits=splits),
                "precision": precision_name(evaluation.get("precision")), **(attrs or {})}

    dir_name = "" if dir_file is None else str(dir_file)
    if surf_file is None:
        pending = np.arange(grid.size)
    else:  # rank 0 checks or creates the file; every rank learns the unfinished points
        pending = on_root(comm, lambda: prepare_surface(surf_file, grid=grid, keys=keys, attrs=settings(),
                                                        dir_file=dir_name))
    if surf_file is not None and root:
        result = read_surface(surf_file)
    else:
        result = SurfaceResult.empty(grid, keys, attrs=settings() if root else {}, dir_file=dir_name)
    if len(pending) == 0:
        return result
    stored = on_root(comm, lambda: result.attrs.get("batch_size")) if surf_file is not None else None
    found = re.match(r"(?:auto: )?(\d+)", stored) if isinstance(stored, str) else None
    resumed = evaluation.get("batch_size") is None and found is not None
    if resumed:  # the batch size the file was begun with: the same summation order, the same values
        evaluation = {**evaluation, "batch_size": int(found.group(1))}
    evaluator = on_all(comm, lambda: Evaluator(model, data, directions, splits=splits, loss=loss, **evaluation))
    note = stored if resumed else evaluator.batch_size_note
    if comm is not None and comm.Get_size() > 1:  # every rank uses rank 0's choice
        evaluator.batch_size, note = comm.bcast((evaluator.batch_size, note), root=0)
    result.attrs["batch_size"] = note  # recorded, not a setting: resuming with another batch size is fine
    writer = SurfaceWriter(surf_file, keys, notes={"batch_size": note}) if surf_file is not None and root else None

    def write(indices, rows):
        result.put(indices, rows, keys)
        if writer is not None:
            writer(indices, rows)
        if on_rows is not None:
            on_rows(indices, rows)

    try:
        if comm is None or comm.Get_size() == 1:
            evaluate_points(evaluator, grid, pending, write=write, chunk=evaluator.points_per_pass,
                            progress=progress, desc=f"surface (batch {note})")
        else:
            evaluate_shared(comm, evaluator, grid, pending, write=write, chunk=evaluator.points_per_pass,
                            progress=progress, desc=f"surface (batch {note})")
    finally:
        if writer is not None:
            writer.close()
    if root:  # a reduced-precision surface: its error measured at fixed points on the exact path
        check_surface(result, lambda coords: Evaluator(model, data, directions, splits=splits, loss=loss, **{
            **evaluation, "precision": "fp32", "compile": False, "batch_size": evaluator.batch_size})(coords), keys,
            surf_file=surf_file, progress=progress)
    return result


def interpolate(model1: nn.Module, model2: nn.Module, data, alphas: AxisSpec = "-0.5:1.5:41", *,
                dir_type: str = "states", **kwargs) -> SurfaceResult:
    """Loss and accuracy along ``w1 + a (w2 - w1)`` (``a`` in ``alphas``; 0 is ``model1``, 1
    is ``model2``). ``dir_type="states"`` also interpolates BN running statistics. Other
    keywords go to :func:`compute_surface`."""
    directions = target_directions(model1, model2, dir_type=dir_type)
    return compute_surface(model1, data, directions=directions, x=alphas, **kwargs)


def landscape_files(model: nn.Module, data, out, stem: str, *, points_1d: int = 21, points_2d: int = 11,
                    span: float = 1.0, samples: Optional[int] = 2000, seed: int = 0, device=None,
                    progress: bool = True) -> Tuple[Path, Path]:
    """A filter-normalized random 1D line and 2D plane around ``model`` (directions from
    ``seed``, BN and biases fixed) on a seeded subset of at most ``samples`` examples of each
    split of ``data`` (a :class:`regularizers.data.Dataset`), written to ``out/1d/<stem>.h5`` and
    ``out/2d/<stem>.h5`` (recomputed when present).

    Returns:
        the paths of the 1D and the 2D surface files.
    """
    from regularizers.evaluation import seeded_subset

    splits = {name: seeded_subset(src.x, src.y, samples, seed) for name, src in data_splits(data).items()}
    paths = []
    for ndim, num in ((1, points_1d), (2, points_2d)):
        path = Path(out) / f"{ndim}d" / f"{stem}.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        axis = f"{-span}:{span}:{num}"
        compute_surface(model, splits, directions=random_directions(model, ndim=ndim, seed=seed),
                        x=axis, y=axis if ndim == 2 else None, surf_file=path, device=device, progress=progress)
        paths.append(path)
    return paths[0], paths[1]
