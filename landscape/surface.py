"""Loss surfaces: evaluate a model over a 1D/2D/3D grid of directions, resumable from HDF5.

``compute_surface`` is the Python entry point behind ``landscape surface``; ``interpolate`` is
the 1D line between two models (Goodfellow et al. 2015). The point loop is
:func:`evaluate_points`: it takes the flat indices to compute and hands every computed chunk of
rows to a ``write`` callback, so a caller that shards points over processes chooses the indices
and where the rows go without touching the evaluation; :mod:`landscape.sharding` does so over
MPI ranks (``compute_surface(..., comm=MPI.COMM_WORLD)``).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
from torch import nn
from tqdm import tqdm

from .directions import Directions, origin, target_directions
from .evaluate import DEFAULT_BATCH_SIZE, Evaluator, split_tensors, value_keys
from .grid import AxisSpec, Grid, make_grid
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


def surface_attrs(model: nn.Module, data, directions: Directions, *, loss: str, splits: Sequence[str]) -> dict:
    """Settings a surface depends on, stored in its file and checked on resume: loss, splits,
    directions (kind, normalization, ignore policy, seed, and a hash of their values), and
    hashes of the model's state and of the data."""
    data_tensors = [t for s in splits for t in split_tensors(data, s)]
    return {"loss": loss, "splits": list(splits), **directions.attrs(),
            "directions_sha256": tensors_sha256(t for axis in directions.axes for t in axis),
            "weights_sha256": tensors_sha256(origin(model, "states")),
            "data_sha256": tensors_sha256(data_tensors)}


def compute_surface(model: nn.Module, data, *, directions: Directions, x: AxisSpec,
                    y: Optional[AxisSpec] = None, z: Optional[AxisSpec] = None,
                    loss: str = "crossentropy", splits: Sequence[str] = ("train", "test"),
                    surf_file=None, dir_file: str = "", attrs: Optional[dict] = None,
                    batch_size: int = DEFAULT_BATCH_SIZE, device=None, precision: Optional[str] = None,
                    points_per_pass: Optional[int] = None, progress: bool = True,
                    on_rows: Optional[Write] = None, comm=None, **rewrites) -> SurfaceResult:
    """Loss and accuracy of ``model`` at ``theta + x d1 (+ y d2 (+ z d3))`` on a grid.

    ``x``, ``y``, ``z``: ``"start:stop:num"`` or coordinate arrays (as many as directions).
    ``data``: a :class:`regularizers.data.Dataset` or ``{split: (x, y)}``. With ``surf_file``
    the values are written to that HDF5 file as they are computed and an existing file is
    resumed (only unfinished points are computed; a file made with other settings -- see
    :func:`surface_attrs`, plus ``attrs`` -- is refused). ``dir_file`` is recorded in the file.
    ``on_rows(indices, rows)`` is called after every stored chunk. The evaluation options, and
    the speed-up switches in ``rewrites`` (``fold_bn``, ``first_layer``, ``reorder``,
    ``cache_bytes``), are those of :class:`landscape.evaluate.Evaluator`.
    The model is left bit-exactly unchanged.

    ``comm``: an mpi4py communicator whose ranks share the points (call on every rank, with the
    same arguments and bitwise equal ``directions``). Rank 0 alone touches ``surf_file`` and
    returns the whole surface; other ranks return the points they computed. Errors in the
    common steps (the file's checks, building the evaluator) are raised on every rank as
    :class:`landscape.sharding.SharedError`.
    """
    grid = make_grid(x, y, z)
    if grid.ndim != directions.ndim:
        raise ValueError(f"a {grid.ndim}D grid needs {grid.ndim} directions, got {directions.ndim}")
    keys = value_keys(splits)
    root = comm is None or comm.Get_rank() == 0

    def settings() -> dict:
        return {**surface_attrs(model, data, directions, loss=loss, splits=splits),
                "precision": precision or "none", **(attrs or {})}

    if surf_file is None:
        pending = np.arange(grid.size)
    else:  # rank 0 checks or creates the file; every rank learns the unfinished points
        pending = on_root(comm, lambda: prepare_surface(surf_file, grid=grid, keys=keys, attrs=settings(),
                                                        dir_file=str(dir_file)))
    if surf_file is not None and root:
        result = read_surface(surf_file)
    else:
        result = SurfaceResult.empty(grid, keys, attrs=settings() if root else {}, dir_file=str(dir_file))
    if len(pending) == 0:
        return result
    evaluator = on_all(comm, lambda: Evaluator(
        model, data, directions, splits=splits, loss=loss, batch_size=batch_size, device=device,
        precision=precision, points_per_pass=points_per_pass, **rewrites))
    writer = SurfaceWriter(surf_file, keys) if surf_file is not None and root else None

    def write(indices, rows):
        result.put(indices, rows, keys)
        if writer is not None:
            writer(indices, rows)
        if on_rows is not None:
            on_rows(indices, rows)

    try:
        if comm is None or comm.Get_size() == 1:
            evaluate_points(evaluator, grid, pending, write=write, chunk=evaluator.points_per_pass,
                            progress=progress)
        else:
            evaluate_shared(comm, evaluator, grid, pending, write=write, chunk=evaluator.points_per_pass,
                            progress=progress)
    finally:
        if writer is not None:
            writer.close()
    return result


def interpolate(model1: nn.Module, model2: nn.Module, data, alphas: AxisSpec = "-0.5:1.5:41", *,
                dir_type: str = "states", **kwargs) -> SurfaceResult:
    """Loss and accuracy along ``w1 + a (w2 - w1)`` (``a`` in ``alphas``; 0 is ``model1``, 1
    is ``model2``). ``dir_type="states"`` also interpolates BN running statistics. Other
    keywords go to :func:`compute_surface`."""
    directions = target_directions(model1, model2, dir_type=dir_type)
    return compute_surface(model1, data, directions=directions, x=alphas, **kwargs)
