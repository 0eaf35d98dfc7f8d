"""Optimizer paths (Li et al. 2018, Sec. 7): PCA directions of the checkpoints ``w_t - w_final``
and the path projected onto them, in the coordinates a surface around ``w_final`` uses.

A projected path can look convincing while the checkpoints lie far from the plane it is drawn
in (tomgoldstein/loss-landscape issue #1), so a :class:`Trajectory` also says how much of the
path its plane holds: ``explained_fraction``, the share of the path's variance the PCA
directions explain (the sum of their explained variance ratios), and each checkpoint's distance
from the plane through ``w_final`` that the directions span, absolute and relative to its
distance from ``w_final``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .directions import Directions, Source, as_vector, direction_names, pca_directions, tensors_of


def checkpoint_paths(run_dir) -> List[Path]:
    """``run_dir/checkpoints/epoch_*.pt`` in epoch order (by number: 999 before 1000)."""
    from regularizers import train

    paths = train.checkpoint_paths(run_dir)
    if not paths:
        raise FileNotFoundError(f"{run_dir}: no checkpoints/epoch_*.pt files")
    return paths


def load_state(path) -> Mapping[str, torch.Tensor]:
    """The model state dict of a checkpoint file (a trainer checkpoint's ``model`` entry, or a
    plain state dict); see :func:`regularizers.models.read_state_dict`."""
    from regularizers.models import read_state_dict

    return read_state_dict(path)


def plane_distances(model: nn.Module, states: Sequence[Source], directions: Directions):
    """Where each state lies relative to the plane (line, volume) ``w_model + span(directions)``.

    Distances are Euclidean over every tensor the directions' ``dir_type`` names, so entries the
    directions leave out (1-D tensors under ``ignore="biasbn"``) count: a checkpoint whose
    biases differ from the final model's is off the plane by that much.

    Returns:
        ``(coords (T, ndim), distance (T,), relative (T,))``: the least-squares coordinates of
        ``w_t - w_model`` in the directions, the distance ``||w_t - w_model - sum_k c_k d_k||``,
        and that distance divided by ``||w_t - w_model||`` (0 for a state equal to the model).
    """
    names = direction_names(model, directions.dir_type)
    final = as_vector(tensors_of(model, names))
    basis = torch.stack([as_vector(axis) for axis in directions.axes], dim=1).numpy()
    diffs = torch.stack([as_vector(tensors_of(s, names)) - final for s in states], dim=1).numpy()
    coords, *_ = np.linalg.lstsq(basis, diffs, rcond=None)
    distance = np.linalg.norm(diffs - basis @ coords, axis=0)
    offset = np.linalg.norm(diffs, axis=0)
    relative = np.divide(distance, offset, out=np.zeros_like(distance), where=offset > 0)
    return coords.T, distance, relative


def project(model: nn.Module, states: Sequence[Source], directions: Directions) -> np.ndarray:
    """Coordinates (T, ndim) of each ``w_t - w_model`` in the span of ``directions`` (least
    squares; the dot products for orthonormal directions such as PCA components)."""
    return plane_distances(model, states, directions)[0]


@dataclass
class Trajectory:
    """PCA directions of a path, the path's coordinates (T, ndim) in them, labels (T,), and
    each checkpoint's ``distance`` (T,) from the plane and ``relative_distance`` (T,) (see
    :func:`plane_distances`)."""

    directions: Directions
    coords: np.ndarray
    labels: List[str]
    distance: np.ndarray
    relative_distance: np.ndarray

    @property
    def explained_variance_ratio(self) -> List[float]:
        """The share of the path's variance along each PCA direction."""
        return self.directions.meta["explained_variance_ratio"]

    @property
    def explained_fraction(self) -> float:
        """The share of the path's variance (around its mean) that the plane explains."""
        return float(sum(self.explained_variance_ratio))

    def summary(self) -> str:
        """One line: the variance the plane explains and the farthest checkpoint from it."""
        worst = int(np.argmax(self.relative_distance))
        return (f"the PCA plane explains {100 * self.explained_fraction:.1f} % of the path's variance; "
                f"the farthest checkpoint from it, {self.labels[worst]}, lies {self.distance[worst]:.3g} "
                f"off the plane ({100 * self.relative_distance[worst]:.1f} % of its distance to the final model)")


def pca_trajectory(model: nn.Module, states: Sequence[Source], *, labels: Optional[Sequence[str]] = None,
                   dir_type: str = "weights", ignore="biasbn", ndim: int = 2) -> Trajectory:
    """PCA directions of ``states`` around ``model`` (``w_final``) and the projected path."""
    directions = pca_directions(model, states, dir_type=dir_type, ignore=ignore, ndim=ndim)
    labels = list(labels) if labels is not None else [str(i) for i in range(len(states))]
    if len(labels) != len(states):
        raise ValueError(f"got {len(labels)} labels for {len(states)} checkpoints")
    coords, distance, relative = plane_distances(model, states, directions)
    return Trajectory(directions, coords, labels, distance, relative)


def run_trajectory(model: nn.Module, run_dir, **kwargs) -> Trajectory:
    """:func:`pca_trajectory` of a run folder's ``checkpoints/epoch_*.pt`` around ``model``."""
    paths = checkpoint_paths(run_dir)
    return pca_trajectory(model, [load_state(p) for p in paths], labels=[p.stem for p in paths], **kwargs)
