"""Pairwise angles between the filters of each layer (MMA paper, Table 3 and supplementary Fig. 1).

A layer's weight of shape ``(out, ...)`` is read as ``out`` filter vectors, one per row of
``weight.reshape(out, -1)``. All angles are in **degrees**, in ``[0, 180]``. Layers are those of
:func:`regularizers.base.weight_layers` (Conv and Linear weights, in module order).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from regularizers.angular import cosine_matrix
from regularizers.base import weight_layers
from regularizers.norms import filter_rows


def _float64(weight) -> torch.Tensor:
    """A detached float64 CPU copy of a tensor or array."""
    return torch.as_tensor(weight).detach().cpu().to(torch.float64)


def filter_array(weight) -> np.ndarray:
    """:func:`regularizers.norms.filter_rows` of any tensor or array, as a float64 array
    ``(out, fan_in)``, one filter per row."""
    return filter_rows(_float64(weight)).numpy()


def named_layers(model: nn.Module, include_output: bool = True) -> List[Tuple[str, torch.Tensor]]:
    """``[(parameter name, weight), ...]`` for the layers of ``weight_layers(model)``."""
    names = {id(p): name for name, p in model.named_parameters()}
    return [(names[id(w)], w) for w in weight_layers(model, include_output=include_output)]


def cosine_array(weight) -> np.ndarray:
    """:func:`regularizers.angular.cosine_matrix` of any tensor or array in float64, as an array
    ``(out, out)`` clamped to [-1, 1]: diagonal 1 (a zero filter has cosine 0 with everything)."""
    return cosine_matrix(_float64(weight)).clamp(-1.0, 1.0).numpy()


def pairwise_angles(weight) -> np.ndarray:
    """Angle between every pair of filters in degrees: ``(out, out)``, symmetric, zero diagonal."""
    angles = np.degrees(np.arccos(cosine_array(weight)))
    np.fill_diagonal(angles, 0.0)
    return angles


def minimal_angles(weight) -> np.ndarray:
    """Each filter's smallest angle to any other filter of the layer, degrees: ``(out,)``
    (``inf`` for a layer with a single filter)."""
    angles = pairwise_angles(weight)
    np.fill_diagonal(angles, np.inf)
    return angles.min(axis=1)


def pair_values(matrix: np.ndarray) -> np.ndarray:
    """Entries above the diagonal (each unordered pair once): ``(out * (out - 1) / 2,)``."""
    return matrix[np.triu_indices(matrix.shape[0], k=1)]


@dataclass
class AngleHistogram:
    """Histogram of filter angles (degrees) for several models on shared bins.

    ``kind`` is ``"minimal"`` (one value per filter) or ``"pairwise"`` (one per unordered pair);
    ``edges`` is ``(bins + 1,)`` and ``counts[name]`` is ``(bins,)``.
    """

    kind: str
    layer: Optional[int]
    edges: np.ndarray
    counts: Dict[str, np.ndarray]


def angle_values(model: nn.Module, kind: str = "minimal",
                 layer: Optional[int] = None) -> np.ndarray:
    """All minimal (per filter) or pairwise (per pair) angles of one layer, or of every layer
    pooled when ``layer`` is None; degrees, 1-D."""
    if kind not in ("minimal", "pairwise"):
        raise ValueError(f"kind must be 'minimal' or 'pairwise', got {kind!r}")
    layers = [w for _, w in named_layers(model)]
    if layer is not None:
        layers = [layers[layer]]
    if kind == "minimal":
        return np.concatenate([minimal_angles(w) for w in layers])
    return np.concatenate([pair_values(pairwise_angles(w)) for w in layers])


def angle_histogram(models: Mapping[str, nn.Module], kind: str = "minimal",
                    layer: Optional[int] = None, bins: int = 36) -> AngleHistogram:
    """Histogram of :func:`angle_values` per model, ``bins`` equal bins over [0, 180] degrees."""
    edges = np.linspace(0.0, 180.0, bins + 1)
    counts = {name: np.histogram(angle_values(m, kind, layer), bins=edges)[0]
              for name, m in models.items()}
    return AngleHistogram(kind, layer, edges, counts)


def plot_angle_histogram(hist: AngleHistogram, ax=None):
    """Overlaid step histograms, one line per model. Returns the figure."""
    fig, ax = figure_axes(ax)
    for name, counts in hist.counts.items():
        ax.stairs(counts, hist.edges, label=name)
    where = "all layers" if hist.layer is None else f"layer {hist.layer}"
    ax.set(xlabel=f"{hist.kind} angle (degrees)", ylabel="count", xlim=(0, 180),
           title=f"{hist.kind} angles, {where}")
    ax.legend()
    return fig


@dataclass
class MinAngleTable:
    """Per-layer minimal pairwise angles of several models (MMA Table 3), degrees.

    ``min_angle[name]`` and ``mean_min_angle[name]`` are ``(n_layers,)``: the smallest angle of
    any pair in the layer and the mean over filters of each filter's minimal angle.
    """

    layers: List[str]
    n_filters: List[int]
    min_angle: Dict[str, np.ndarray]
    mean_min_angle: Dict[str, np.ndarray]

    def to_text(self) -> str:
        """Markdown table: one row per layer, ``min / mean`` per model."""
        names = list(self.min_angle)
        lines = ["| # | layer | filters | " + " | ".join(f"{n} min / mean" for n in names) + " |",
                 "|---|---|---|" + "---|" * len(names)]
        for i, (layer, n) in enumerate(zip(self.layers, self.n_filters)):
            cells = [f"{self.min_angle[m][i]:.1f} / {self.mean_min_angle[m][i]:.1f}" for m in names]
            lines.append(f"| {i} | {layer} | {n} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def min_angle_table(models: Mapping[str, nn.Module], include_output: bool = True) -> MinAngleTable:
    """Minimal-angle table for models sharing one architecture (same layer names and widths)."""
    layers = n_filters = None
    min_angle, mean_min = {}, {}
    for name, model in models.items():
        named = named_layers(model, include_output)
        these = [n for n, _ in named]
        if layers is not None and these != layers:
            raise ValueError(f"model {name!r} has different layers from the first model")
        layers, n_filters = these, [w.shape[0] for _, w in named]
        mins = [minimal_angles(w) for _, w in named]
        min_angle[name] = np.array([m.min() for m in mins])
        mean_min[name] = np.array([m.mean() for m in mins])
    return MinAngleTable(layers, n_filters, min_angle, mean_min)


def plot_min_angles(table: MinAngleTable, ax=None):
    """Minimal angle (solid) and mean minimal angle (dashed) per layer index, one color per model
    (MMA supplementary Fig. 1). Returns the figure."""
    fig, ax = figure_axes(ax)
    x = np.arange(len(table.layers))
    for name in table.min_angle:
        line, = ax.plot(x, table.min_angle[name], marker="o", label=f"{name} min")
        ax.plot(x, table.mean_min_angle[name], ls="--", color=line.get_color(),
                label=f"{name} mean")
    ax.set(xlabel="layer index", ylabel="minimal pairwise angle (degrees)", xticks=x)
    ax.legend()
    return fig


def figure_axes(ax=None):
    """``(figure, axes)`` to draw on: ``ax``'s figure, or a new 6x4 inch one when ``ax`` is None."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
        return fig, ax
    return ax.figure, ax
