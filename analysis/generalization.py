"""Generalization from training histories: learning curves (residual smoothing Figs. 5-6), the
train/test gap, and train/test accuracy scatters with the LinR "sweet point" (LinR Figs. 3-4).

A history is the trainer's ``history.json`` (see CONTRACTS.md): per-epoch lists ``epoch``
(1-based), ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc`` (accuracy in percent), ``lr``.
Functions accept the dict itself, a run folder holding ``history.json``, or the file's path.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

import matplotlib.pyplot as plt
import numpy as np

REQUIRED_HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc")
HistorySource = Union[Mapping, str, Path]


def load_history(source: HistorySource) -> Dict[str, np.ndarray]:
    """History as float arrays of one length (``lr`` kept when present).

    ``source``: a history dict, a run folder, or a ``history.json`` path. Missing keys or
    lists of different lengths raise ValueError.
    """
    if not isinstance(source, Mapping):
        path = Path(source)
        path = path / "history.json" if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"no history file at {path}")
        source = json.loads(path.read_text())
    missing = [k for k in REQUIRED_HISTORY_KEYS if k not in source]
    if missing:
        raise ValueError(f"history lacks {', '.join(missing)}")
    history = {k: np.asarray(source[k], dtype=float) for k in (*REQUIRED_HISTORY_KEYS, "lr") if k in source}
    if len({len(v) for v in history.values()}) > 1:
        raise ValueError("history lists have different lengths")
    return history


def plot_learning_curves(runs: Mapping[str, HistorySource]):
    """Train loss, test loss and test accuracy (%) per epoch in three panels, runs overlaid.
    Returns the figure."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = (("train_loss", "train loss"), ("test_loss", "test loss"),
              ("test_acc", "test accuracy (%)"))
    for name, source in runs.items():
        history = load_history(source)
        for ax, (key, _) in zip(axes, panels):
            ax.plot(history["epoch"], history[key], label=name)
    for ax, (_, label) in zip(axes, panels):
        ax.set(xlabel="epoch", ylabel=label)
    axes[0].legend()
    fig.tight_layout()
    return fig


@dataclass
class Gap:
    """Generalization gap per epoch, each ``(epochs,)``: ``accuracy`` = train - test accuracy
    (percentage points), ``loss`` = test - train loss. Positive means overfitting."""

    epoch: np.ndarray
    accuracy: np.ndarray
    loss: np.ndarray


def generalization_gap(source: HistorySource) -> Gap:
    """The :class:`Gap` of one history."""
    h = load_history(source)
    return Gap(h["epoch"], h["train_acc"] - h["test_acc"], h["test_loss"] - h["train_loss"])


def plot_gap(runs: Mapping[str, HistorySource]):
    """Accuracy gap and loss gap per epoch in two panels, runs overlaid. Returns the figure."""
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, source in runs.items():
        gap = generalization_gap(source)
        acc_ax.plot(gap.epoch, gap.accuracy, label=name)
        loss_ax.plot(gap.epoch, gap.loss, label=name)
    acc_ax.set(xlabel="epoch", ylabel="train - test accuracy (points)")
    loss_ax.set(xlabel="epoch", ylabel="test - train loss")
    for ax in (acc_ax, loss_ax):
        ax.axhline(0.0, color="k", lw=0.8)
    acc_ax.legend()
    fig.tight_layout()
    return fig


def accuracy_points(source: HistorySource) -> np.ndarray:
    """``(epochs, 2)``: train and test accuracy (%) of each epoch of a history."""
    h = load_history(source)
    return np.stack([h["train_acc"], h["test_acc"]], axis=1)


def plot_accuracy_scatter(groups: Mapping[str, np.ndarray], ax=None):
    """Test vs train accuracy (%) scatter, one color per group of ``(n, 2)`` points, with the
    diagonal train = test (LinR Fig. 3: upper left is less overfitting). Returns the figure."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
    fig = ax.figure
    groups = {name: np.asarray(p, dtype=float).reshape(-1, 2) for name, p in groups.items()}
    for name, points in groups.items():
        ax.scatter(points[:, 0], points[:, 1], s=14, label=name)
    low, high = _limits(np.concatenate(list(groups.values())))
    ax.plot([low, high], [low, high], color="k", lw=0.8, ls="--")
    ax.set(xlim=(low, high), ylim=(low, high), xlabel="train accuracy (%)",
           ylabel="test accuracy (%)")
    ax.legend()
    return fig


def _limits(points: np.ndarray):
    """Common axis limits covering every coordinate of ``points`` with a 5 % margin."""
    low, high = float(points.min()), float(points.max())
    pad = 0.05 * max(high - low, 1.0)
    return low - pad, high + pad


@dataclass
class RefineSweep:
    """Baseline checkpoints and the rounds of refining started from each (LinR Fig. 4).

    ``epochs`` is ``(E,)`` baseline epochs in increasing order; ``baseline`` is ``(E, 2)`` train and
    test accuracy (%) of each checkpoint; ``refined[i]`` is ``(T_i, 2)``, the same for each refine
    round started from checkpoint ``i``.
    """

    epochs: np.ndarray
    baseline: np.ndarray
    refined: List[np.ndarray]

    @classmethod
    def from_histories(cls, baseline: HistorySource,
                       refined: Mapping[int, HistorySource]) -> "RefineSweep":
        """From the baseline run's history and ``{baseline epoch: refine run history}``."""
        base = load_history(baseline)
        rows = {int(e): i for i, e in enumerate(base["epoch"])}
        epochs = sorted(refined)
        unknown = [e for e in epochs if e not in rows]
        if unknown:
            raise ValueError(f"baseline history has no epoch {unknown[0]}")
        points = accuracy_points(base)
        return cls(np.array(epochs), points[[rows[e] for e in epochs]],
                   [accuracy_points(refined[e]) for e in epochs])


def sweet_point(sweep: RefineSweep) -> Optional[int]:
    """LinR's "sweet point": the first baseline epoch from which, for it and every later epoch,
    all refined results have strictly higher test accuracy than their baseline. None if the last
    epoch already fails."""
    found = None
    for epoch, base, refined in reversed(list(zip(sweep.epochs, sweep.baseline, sweep.refined))):
        if len(refined) == 0:
            raise ValueError(f"no refined results for epoch {epoch}")
        if not np.all(refined[:, 1] > base[1]):
            break
        found = int(epoch)
    return found


def plot_refine_sweep(sweep: RefineSweep, epochs: Optional[Sequence[int]] = None, columns: int = 4):
    """One scatter panel per baseline epoch (all, or those listed): the baseline point, a dotted
    line at its test accuracy, and its refined points, titled with the epoch; the sweet point, if
    any, is marked. Returns the figure."""
    chosen = list(sweep.epochs) if epochs is None else list(epochs)
    index = {int(e): i for i, e in enumerate(sweep.epochs)}
    rows = -(-len(chosen) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.2 * rows), squeeze=False)
    sweet = sweet_point(sweep)
    for ax, epoch in zip(axes.flat, chosen):
        i = index[int(epoch)]
        plot_accuracy_scatter({"baseline": sweep.baseline[i], "refined": sweep.refined[i]}, ax=ax)
        ax.axhline(sweep.baseline[i, 1], color="C0", lw=0.8, ls=":")  # refined must end above
        mark = " (sweet point)" if sweet == int(epoch) else ""
        ax.set_title(f"epoch {int(epoch)}{mark}")
    for ax in axes.flat[len(chosen):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig
