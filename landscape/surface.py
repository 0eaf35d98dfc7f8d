"""Loss surfaces: evaluate a model over a 1D/2D/3D grid of directions, resumable from HDF5.

``compute_surface`` is the Python entry point behind ``landscape surface``; ``interpolate`` is
the 1D line between two models (Goodfellow et al. 2015). ``compute_surface`` is a composition of
named steps, each a function of this module or of the module that owns its subject:

1. :func:`check_options` -- splits, loss and evaluation keywords, before any file is touched;
2. :func:`landscape.grid.resolve_axes` -- the axis rules, checked once;
3. :func:`surface_directions` -- directions from recipes, kept in direction files
   (:mod:`landscape.recipes`: names, reuse, binding to the weights);
4. :func:`surface_grid` -- the grid, automatic spans found (:mod:`landscape.span`);
5. :func:`surface_settings` -- the provenance a surface file stores and a resume must match;
6. :func:`plan_points` -- which points are still missing (:mod:`landscape.store`);
7. :func:`make_evaluator` -- the :class:`~landscape.perturbed.Evaluator`, its batch size that of
   the file being resumed;
8. :func:`evaluate_missing` -- the points evaluated by a runner (one process, or MPI ranks:
   :mod:`landscape.sharding`) and written by :class:`~landscape.store.SurfaceWriter`.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from regularizers.evaluation import Tensors, data_splits, loss_name, resolve_device, resolve_loss

from .directions import Directions, check_finite, check_finite_weights, random_directions, target_directions
from .perturbed import Evaluator, value_keys
from .recipes import AxisRecipe, open_directions, surface_file_name, weights_sha256
from .grid import Axes, AxisSpec, Grid, free_memory, resolve_axes
from .sharding import SerialRunner, runner
from .span import automatic_spans
from .store import SurfaceResult, SurfaceWriter, check_surface, create_surface, read_surface, tensors_sha256
from .precision import check_reduced_precision, precision_name


def data_fingerprint(data, splits: Sequence[str]) -> dict:
    """What identifies the data in a surface file: a hash of the staged tensors of ``splits``
    (``"stream"`` when a split is streamed from a loader: its content cannot be hashed without a
    pass) and the transformations the data went through (``Dataset.transforms``)."""
    sources = data_splits(data)
    staged = [sources[s] for s in splits]
    digest = (tensors_sha256(t for src in staged for t in (src.x, src.y))
              if all(isinstance(src, Tensors) for src in staged) else "stream")
    return {"data_sha256": digest, "data_transforms": list(getattr(data, "transforms", ())) or "none"}


def surface_settings(data, directions: Directions, *, loss, splits: Sequence[str], weights: str,
                     precision: Optional[str] = None, attrs: Optional[dict] = None) -> dict:
    """Settings a surface depends on, stored in its file and checked on resume -- built here
    only: loss, splits, directions (kind, normalization, ignore policy, seed, and a hash of their
    values), the model's weights hash (``weights``, :func:`landscape.recipes.weights_sha256`), the
    data's hash and transformations, the precision, and the caller's provenance ``attrs``."""
    return {"loss": loss_name(loss), "splits": list(splits), **directions.attrs(),
            "directions_sha256": tensors_sha256(t for axis in directions.axes for t in axis),
            **data_fingerprint(data, splits), "precision": precision_name(precision), **(attrs or {}),
            "weights_sha256": weights}


def check_options(model: nn.Module, data, splits, loss, evaluation: dict) -> Tuple[str, ...]:
    """Every keyword checked before any file is touched; returns the splits to compute."""
    available = data_splits(data)
    splits = tuple(available) if splits is None else tuple(splits)
    missing = [s for s in splits if s not in available]
    if not splits or missing:
        raise ValueError(f"the data has no {missing[0] if missing else 'selected'!r} split "
                         f"(it has {', '.join(available)})")
    if len(set(splits)) != len(splits):
        raise ValueError(f"splits {', '.join(splits)}: a split is named twice")
    resolve_loss(loss)
    check_finite_weights(model)
    check_points_per_pass(model, data, splits[0], evaluation)
    allowed = set(inspect.signature(Evaluator).parameters) - {"model", "data", "directions", "splits", "loss"}
    unknown = sorted(set(evaluation) - allowed)
    if unknown:
        raise TypeError(f"compute_surface got unknown keyword(s) {', '.join(unknown)}; "
                        f"evaluation options are {', '.join(sorted(allowed))}")
    return splits


def activation_bytes(model: nn.Module, inputs: torch.Tensor) -> int:
    """Bytes of the outputs of every leaf module for one example ``inputs`` (1, ...), found
    by one forward pass in eval mode (the model's modes are restored; nothing else changes)."""
    sizes, modes = [], {m: m.training for m in model.modules()}
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel() * out.element_size())
                                     if isinstance(out, torch.Tensor) else None)
             for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model.eval()(inputs.to(next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
        for m, mode in modes.items():
            m.train(mode)
    return sum(sizes)


def check_points_per_pass(model: nn.Module, data, split: str, evaluation: dict) -> None:
    """Refuse a ``points_per_pass`` whose pass would not fit in the memory available: one copy
    of the model's state plus a batch's activations (:func:`activation_bytes`; a batch of 64
    when none is given) per point. One line with both sizes."""
    points = evaluation.get("points_per_pass")
    if not isinstance(points, int) or points <= 1:
        return
    source = data_splits(data)[split]
    per_point = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    if isinstance(source, Tensors) and source.x.is_floating_point():
        try:
            per_point += (evaluation.get("batch_size") or 64) * activation_bytes(model, source.x[:1])
        except Exception:  # a model this probe cannot run: its weights alone are counted
            pass
    device = resolve_device(evaluation.get("device"))  # the Evaluator's device
    available = free_memory(device)
    if points * per_point > available:
        raise ValueError(f"points_per_pass={points:,} needs about {points * per_point / 2**30:.1f} GiB "
                         f"({per_point / 2**20:.2f} MiB of weights and activations per point), more than the "
                         f"{available / 2**30:.1f} GiB available on {device.type}; use fewer points per pass")


def surface_directions(model: nn.Module, directions: Union[Directions, Sequence[AxisRecipe]], ndim: int, *,
                       weights: str, dir_type=None, dir_file=None, surf_file=None, stem: str = "model",
                       attrs: Optional[dict] = None) -> Tuple[Directions, Optional[str]]:
    """``(directions, dir_file)``: given directions as they are, or those of one recipe per
    axis (:func:`landscape.recipes.open_directions`: in memory when ``dir_file`` is None, a
    derived file when the surface file's name is derived too, ``surf_file="auto"``)."""
    if not isinstance(directions, Directions):
        recipes = list(directions)
        dir_file = "auto" if dir_file is None and surf_file == "auto" else dir_file
        if len(recipes) != ndim:
            raise ValueError(f"a {ndim}D grid needs {ndim} axis recipes, got {len(recipes)}")
        directions, dir_file = open_directions(model, recipes, dir_type=dir_type, dir_file=dir_file, stem=stem,
                                               attrs=attrs, weights=weights)
    if directions.ndim != ndim:
        raise ValueError(f"a {ndim}D grid needs {ndim} directions, got {directions.ndim}")
    check_finite(directions)
    return directions, None if dir_file is None else str(dir_file)


def surface_grid(model: nn.Module, data, directions: Directions, axes: Axes, *, split: str, loss,
                 evaluation: dict, progress: bool) -> Tuple[Grid, dict]:
    """The grid of ``axes`` and the attributes of its automatic spans (none without them)."""
    if not axes.automatic:
        return axes.grid(), {}
    spans, attrs = automatic_spans(model, data, directions, axes, split=split, loss=loss,
                                   evaluation=evaluation, progress=progress)
    return axes.grid(spans), attrs


def surface_path(surf_file, dir_file: Optional[str], grid: Grid, loss, splits: Sequence[str]):
    """The surface file: as given, None (in memory), or ``"auto"``: named after the direction file."""
    if surf_file != "auto":
        return surf_file
    if dir_file is None:
        raise ValueError("surf_file='auto' derives the name from the direction file; give dir_file")
    return surface_file_name(dir_file, grid.coordinates, loss_name(loss), splits)


@dataclass
class Plan:
    """The points a run computes: ``pending`` flat indices, and ``batch_size``, the batch size
    the file being resumed was begun with (None: a new file or none)."""

    pending: np.ndarray
    batch_size: Optional[int] = None
    new: bool = True


def plan_points(surf_file, grid: Grid, keys: Sequence[str], settings: dict) -> Plan:
    """What is missing: every point without a file (or with a new one), else the unfinished
    points of the existing file, checked against ``settings`` (:func:`landscape.store.check_surface`)."""
    found = None if surf_file is None else check_surface(surf_file, grid=grid, keys=keys, attrs=settings)
    if found is None:
        return Plan(np.arange(grid.size))
    return Plan(found[0], found[1], new=False)


def make_evaluator(run: SerialRunner, model: nn.Module, data, directions: Directions, *, splits, loss,
                   evaluation: dict, begun: Optional[int]) -> Evaluator:
    """The evaluator of every rank; without a ``batch_size`` option, that of the file being
    resumed (``begun``: the same summation order, the same values), else rank 0's timed choice."""
    if evaluation.get("batch_size") is None and begun is not None:
        evaluation = {**evaluation, "batch_size": begun}
    evaluator = run.on_all(Evaluator, model, data, directions, splits=splits, loss=loss, **evaluation)
    evaluator.batch_size, evaluator.batch_size_note = run.share((evaluator.batch_size, evaluator.batch_size_note))
    return evaluator


def start_result(run: SerialRunner, surf_file, plan: Plan, grid: Grid, keys: Sequence[str], settings: dict,
                 dir_file: Optional[str], evaluator: Evaluator) -> SurfaceResult:
    """The surface so far: a new file created (rank 0) with the evaluator's batch size and read
    back, an existing one read, or (no file, other ranks) an empty result."""
    batch = {"batch_size": evaluator.batch_size, "batch_size_choice": evaluator.batch_size_note}
    if surf_file is not None and plan.new:
        run.on_root(create_surface, surf_file, grid=grid, keys=keys, attrs=settings, dir_file=dir_file or "", **batch)
    if surf_file is not None and run.root:
        return read_surface(surf_file)
    return SurfaceResult.empty(grid, keys, dir_file=dir_file or "", attrs={**settings, **batch})


def evaluate_missing(run: SerialRunner, evaluator: Evaluator, grid: Grid, plan: Plan, result: SurfaceResult,
                     surf_file, *, keys: Sequence[str], progress: bool, desc: str) -> SurfaceResult:
    """Evaluate the ``plan``'s points (shared by the runner's ranks), each chunk's rows (one
    column per value of ``keys``) stored in ``result`` and, on rank 0, written to ``surf_file``."""
    writer = SurfaceWriter(surf_file, keys) if surf_file is not None and run.root else None

    def write(indices, rows):
        result.put(indices, rows, keys)
        result.computed += len(indices)
        if writer is not None:
            writer(indices, rows)

    try:
        run.evaluate(evaluator, grid, plan.pending, write=write, chunk=evaluator.points_per_pass,
                     progress=progress, desc=desc)
    finally:
        if writer is not None:
            writer.close()
    return result


def compute_missing(run: SerialRunner, model: nn.Module, data, directions: Directions, plan: Plan, surf_file,
                    grid: Grid, keys: Sequence[str], settings: dict, *, dir_file, splits, loss, evaluation: dict,
                    progress: bool, label: str) -> Tuple[SurfaceResult, Optional[int]]:
    """``(surface, batch size)`` once the ``plan``'s missing points are evaluated and stored; a
    finished file is read as it is (rank 0; other ranks get an empty surface)."""
    if len(plan.pending) == 0:
        return (read_surface(surf_file) if run.root else SurfaceResult.empty(grid, keys)), plan.batch_size
    evaluator = make_evaluator(run, model, data, directions, splits=splits, loss=loss, evaluation=evaluation,
                               begun=plan.batch_size)
    result = start_result(run, surf_file, plan, grid, keys, settings, dir_file, evaluator)
    label = f"{label} " + " ".join(f"{a}:{len(c)}" for a, c in zip("xyz", grid.coordinates))
    result = evaluate_missing(run, evaluator, grid, plan, result, surf_file, keys=keys, progress=progress,
                              desc=f"{label} (batch {evaluator.batch_size_note})")
    return result, evaluator.batch_size


def finish(run: SerialRunner, result: SurfaceResult, model: nn.Module, data, directions: Directions, surf_file,
           *, splits: Sequence[str], loss, evaluation: dict, progress: bool) -> SurfaceResult:
    """The finished surface, on rank 0 with a reduced-precision surface's error measured once at
    fixed points on the exact fp32 path (:func:`landscape.precision.check_reduced_precision`)."""
    if not run.root:
        return result
    exact = {**evaluation, "precision": "fp32", "compile": False}
    check_reduced_precision(result, lambda coords: Evaluator(model, data, directions, splits=splits, loss=loss,
                                                             **exact)(coords),
                            value_keys(splits), surf_file=surf_file, progress=progress)
    return result


def compute_surface(model: nn.Module, data, *, directions: Union[Directions, Sequence[AxisRecipe]],
                    x: AxisSpec, y: Optional[AxisSpec] = None, z: Optional[AxisSpec] = None,
                    loss="crossentropy", splits: Optional[Sequence[str]] = None, surf_file=None,
                    dir_file=None, dir_type: Optional[str] = None, stem: str = "model",
                    attrs: Optional[dict] = None, progress: bool = True, comm=None, **evaluation) -> SurfaceResult:
    """Loss and accuracy of ``model`` (left bit-exactly unchanged) at ``theta + a d1 (+ b d2 (+ c d3))``.

    Args:
        data: any form of :func:`regularizers.evaluation.data_splits` (a Dataset, ``{split:
            (inputs, targets)}``, an ``(inputs, targets)`` pair, a torch Dataset, a DataLoader).
        directions: :class:`Directions`, or one :class:`landscape.recipes.AxisRecipe` per axis.
        x, y, z: axes ``"start:stop:num"``, increasing arrays, or ``"auto[:NUM[:FACTOR]]"`` (``NUM``
            points over ``[-s, s]``, the loss reaching ``FACTOR`` x the center's at ``s``).
        loss, splits: a name or ``loss(outputs, targets)``; the splits (default: all the data has).
        surf_file: resumed when it exists (made with other :func:`surface_settings`: refused);
            ``"auto"``: named after the direction file; None: in memory.
        dir_file: recipes' directions kept in memory (None; derived with ``surf_file="auto"``), in
            a derived file (``"auto"``, from ``stem``) or a named one, bound to the weights.
        dir_type: ``weights`` or ``states``. attrs: provenance stored in the files; its
            ``weights_sha256``, when given, is taken as the model's.
        comm: an mpi4py communicator (or a :mod:`landscape.sharding` runner): call on every rank;
            rank 0 alone touches files and returns the whole surface.
        evaluation: options of :class:`landscape.perturbed.Evaluator` (``batch_size``, ``device``,
            ``precision``, ``points_per_pass``, ``output``, ``hooks``, the rewrite switches).

    Returns:
        :class:`SurfaceResult`, ``values[key]`` shaped ``(nx,)``, ``(ny, nx)`` or ``(nz, ny, nx)``
        (``Z[i, j]`` at ``(x[j], y[i])``); ``computed`` counts the points this call evaluated.

    Under MSE a linear model's surface is the quadratic ``L(a) = mean((w + a d) u - v)^2``:

    >>> import torch
    >>> model = torch.nn.Linear(1, 1, bias=False)
    >>> _ = model.weight.data.fill_(1.0)
    >>> inputs, targets = torch.ones(4, 1), torch.ones(4, 1)  # loss 0 at the model, (a d)^2 around it
    >>> line = Directions([[torch.tensor([[2.0]])]])
    >>> compute_surface(model, (inputs, targets), directions=line, x="-1:1:3", loss="mse",
    ...                 progress=False)["train_loss"].tolist()  # (2a)^2 at a = -1, 0, 1
    [4.0, 0.0, 4.0]
    """
    run, axes = runner(comm), resolve_axes(x, y, z)
    splits = check_options(model, data, splits, loss, evaluation)
    weights = (attrs or {}).get("weights_sha256") or weights_sha256(model)  # hashed once per surface
    directions, dir_file = run.on_root(surface_directions, model, directions, axes.ndim, weights=weights,
                                       dir_type=dir_type, dir_file=dir_file, surf_file=surf_file, stem=stem, attrs=attrs)
    grid, span_attrs = run.on_root(surface_grid, model, data, directions, axes, split=splits[0], loss=loss,
                                   evaluation=evaluation, progress=progress)
    surf_file, keys = surface_path(surf_file, dir_file, grid, loss, splits), value_keys(splits)
    settings = surface_settings(data, directions, loss=loss, splits=splits, weights=weights,
                                precision=precision_name(evaluation.get("precision")),
                                attrs={**(attrs or {}), **span_attrs})
    plan = run.on_root(plan_points, surf_file, grid, keys, settings)
    result, batch_size = compute_missing(run, model, data, directions, plan, surf_file, grid, keys, settings,
                                         dir_file=dir_file, splits=splits, loss=loss, evaluation=evaluation,
                                         progress=progress, label=Path(stem).name)
    return finish(run, result, model, data, directions, surf_file, splits=splits, loss=loss,
                  evaluation={**evaluation, "batch_size": batch_size}, progress=progress)


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
