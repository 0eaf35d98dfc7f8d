"""Optimizer paths (Li et al. 2018, Sec. 7): PCA directions of the checkpoints ``w_t - w_final``
and the path projected onto them, in the coordinates a surface around ``w_final`` uses."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .directions import Directions, Source, as_vector, direction_names, pca_directions, tensors_of


def checkpoint_paths(run_dir) -> List[Path]:
    """``run_dir/checkpoints/epoch_*.pt`` in epoch order."""
    paths = sorted(Path(run_dir, "checkpoints").glob("epoch_*.pt"))
    if not paths:
        raise FileNotFoundError(f"{run_dir}: no checkpoints/epoch_*.pt files")
    return paths


def load_state(path) -> Mapping[str, torch.Tensor]:
    """The model state dict of a checkpoint file (a trainer checkpoint's ``model`` entry, or a
    plain state dict); see :func:`regularizers.models.read_state_dict`."""
    from regularizers.models import read_state_dict

    return read_state_dict(path)


def project(model: nn.Module, states: Sequence[Source], directions: Directions) -> np.ndarray:
    """Coordinates (T, ndim) of each ``w_t - w_model`` in the span of ``directions`` (least
    squares; the dot products for orthonormal directions such as PCA components)."""
    names = direction_names(model, directions.dir_type)
    final = as_vector(tensors_of(model, names))
    basis = torch.stack([as_vector(axis) for axis in directions.axes], dim=1).numpy()
    diffs = torch.stack([as_vector(tensors_of(s, names)) - final for s in states], dim=1).numpy()
    coords, *_ = np.linalg.lstsq(basis, diffs, rcond=None)
    return coords.T


@dataclass
class Trajectory:
    """PCA directions of a path, the path's coordinates (T, ndim) in them, and labels (T,)."""

    directions: Directions
    coords: np.ndarray
    labels: List[str]

    @property
    def explained_variance_ratio(self) -> List[float]:
        return self.directions.meta["explained_variance_ratio"]


def pca_trajectory(model: nn.Module, states: Sequence[Source], *, labels: Optional[Sequence[str]] = None,
                   dir_type: str = "weights", ignore="biasbn", ndim: int = 2) -> Trajectory:
    """PCA directions of ``states`` around ``model`` (``w_final``) and the projected path."""
    directions = pca_directions(model, states, dir_type=dir_type, ignore=ignore, ndim=ndim)
    labels = list(labels) if labels is not None else [str(i) for i in range(len(states))]
    return Trajectory(directions, project(model, states, directions), labels)


def run_trajectory(model: nn.Module, run_dir, **kwargs) -> Trajectory:
    """:func:`pca_trajectory` of a run folder's ``checkpoints/epoch_*.pt`` around ``model``."""
    paths = checkpoint_paths(run_dir)
    return pca_trajectory(model, [load_state(p) for p in paths], labels=[p.stem for p in paths], **kwargs)
