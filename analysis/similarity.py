"""How redundant a layer's filters are: cosine-similarity matrices (MMA Fig. 1), filter norms
(what norm loss drives to 1) and stable rank.

Filters are the rows of ``weight.reshape(out, -1)``; layers are those of
:func:`analysis.angles.named_layers`.
"""
from __future__ import annotations

from typing import Mapping, Union

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from analysis.angles import cosine_array, figure_axes, filter_array, named_layers, pair_values

WeightSource = Union[nn.Module, torch.Tensor, np.ndarray]


def count_above(cos, threshold: float = 0.2) -> int:
    """Number of filter pairs of a cosine matrix ``(out, out)`` (tensor or array), each
    unordered pair once and the diagonal excluded, with cosine > threshold.

    Signed, as in MMA Fig. 1: strongly negative similarities are not counted (the paper notes MMA
    keeps some negative correlations on purpose).
    """
    return int(np.count_nonzero(pair_values(torch.as_tensor(cos).detach().cpu().numpy()) > threshold))


def _layer_weight(source: WeightSource, layer: int):
    """A model's ``layer``-th weight, or ``source`` itself when it is already a weight."""
    return named_layers(source)[layer][1] if isinstance(source, nn.Module) else source


def plot_cosine_matrices(sources: Mapping[str, WeightSource], layer: int = 0,
                         threshold: float = 0.2):
    """Filter cosine matrices side by side, one panel per model (or weight), titled with
    :func:`count_above`. Colors span [-1, 1]. Returns the figure."""
    fig, axes = plt.subplots(1, len(sources), figsize=(3.6 * len(sources), 3.4), squeeze=False)
    for ax, (name, source) in zip(axes[0], sources.items()):
        cos = cosine_array(_layer_weight(source, layer))
        image = ax.imshow(cos, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(f"{name}: {count_above(cos, threshold)} pairs > {threshold:g}")
        ax.set(xlabel="filter", ylabel="filter")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="cosine similarity")
    return fig


def filter_norms(model: nn.Module) -> list:
    """Euclidean norm of every filter, per layer: a list of ``(out,)`` arrays."""
    return [np.linalg.norm(filter_array(w), axis=1) for _, w in named_layers(model)]


def plot_filter_norms(models: Mapping[str, nn.Module], ax=None):
    """Box plot of filter norms per layer index, models side by side, with the norm-loss target
    1 as a dotted line. Returns the figure."""
    fig, ax = figure_axes(ax)
    width = 0.8 / len(models)
    for k, (name, model) in enumerate(models.items()):
        norms = filter_norms(model)
        positions = np.arange(len(norms)) + (k - (len(models) - 1) / 2) * width
        color = f"C{k}"
        ax.boxplot(norms, positions=positions, widths=width * 0.9, manage_ticks=False,
                   patch_artist=True, boxprops={"facecolor": color, "alpha": 0.5},
                   medianprops={"color": "k"}, flierprops={"markersize": 2})
        ax.plot([], [], color=color, lw=6, alpha=0.5, label=name)
    ax.axhline(1.0, color="k", ls=":", lw=1)
    ax.set(xlabel="layer index", ylabel="filter norm", xticks=np.arange(len(norms)))
    ax.legend()
    return fig


def stable_rank(weight) -> float:
    """``||W||_F^2 / ||W||_2^2`` of the ``(out, fan_in)`` filter matrix; between 1 and its rank."""
    rows = filter_array(weight)
    return float(np.sum(rows ** 2) / np.linalg.norm(rows, ord=2) ** 2)


def stable_ranks(model: nn.Module) -> np.ndarray:
    """Stable rank of each layer: ``(n_layers,)``."""
    return np.array([stable_rank(w) for _, w in named_layers(model)])


def plot_stable_ranks(models: Mapping[str, nn.Module], ax=None):
    """Stable rank per layer index, one line per model. Returns the figure."""
    fig, ax = figure_axes(ax)
    for name, model in models.items():
        ranks = stable_ranks(model)
        ax.plot(np.arange(len(ranks)), ranks, marker="o", label=name)
    ax.set(xlabel="layer index", ylabel="stable rank")
    ax.legend()
    return fig
