"""Memorization under label and input corruption (Zhang et al. 2017, "Understanding deep
learning requires rethinking generalization"; lecture 002).

The same model (same initialization) is trained on the true data and on corrupted copies:
random labels, one pixel permutation shared by all images, an independent permutation per
image, and Gaussian inputs (see :mod:`regularizers.data`). Networks fit all of them; the
corrupted ones take longer, and their test accuracy stays at chance.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Sequence

import torch
from torch import nn

from regularizers.data import Dataset, corrupt
from regularizers.train import fit

KINDS = ("true", "labels", "shuffled_pixels", "random_pixels", "gaussian")
LABELS = {"true": "true labels", "labels": "random labels", "shuffled_pixels": "shuffled pixels",
          "random_pixels": "random pixels", "gaussian": "Gaussian"}


@dataclass
class MemorizationRun:
    """One training run: ``history`` holds per-epoch lists ``epoch``, ``train_loss``,
    ``train_acc``, ``test_loss``, ``test_acc`` (accuracies in percent), as the trainer writes."""
    kind: str
    dataset: str            # name of the (corrupted) data set trained on
    seed: int               # model initialization, corruption and shuffling
    history: dict


def variant(data: Dataset, kind: str, seed: int = 0) -> Dataset:
    """The data for ``kind``: ``"true"``, a corruption name, or ``"labels:P"`` (a fraction P of
    the training labels randomized; ``"labels"`` is P = 1)."""
    if kind == "true":
        return data
    name, _, p = kind.partition(":")
    return corrupt(data, name, p=float(p) if p else 1.0, seed=seed)


def memorization_experiment(data: Dataset, model_factory: Callable[[], nn.Module],
                            kinds: Sequence[str] = KINDS, epochs: int = 50, *, seed: int = 0,
                            **fit_options) -> Dict[str, MemorizationRun]:
    """Train ``model_factory()`` on each variant of ``data`` for ``epochs`` epochs, without
    regularization unless ``fit_options`` (passed to :func:`regularizers.train.fit`) add some.

    Every run starts from the same initialization (the factory is called after
    ``torch.manual_seed(seed)``). Returns ``{kind: MemorizationRun}`` in the order of ``kinds``.
    """
    fit_options.setdefault("progress", False)
    runs = {}
    for kind in kinds:
        train_on = variant(data, kind, seed)
        torch.manual_seed(seed)
        model = model_factory()
        result = fit(model, train_on, epochs=epochs, seed=seed, out=None, **fit_options)
        runs[kind] = MemorizationRun(kind, train_on.name, seed, result.history)
    return runs


def plot_memorization(runs: Dict[str, MemorizationRun]):
    """Training loss, training accuracy and test accuracy against epoch, one line per kind.
    Returns the matplotlib Figure (three panels)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    panels = (("train_loss", "training loss"), ("train_acc", "training accuracy (%)"),
              ("test_acc", "test accuracy (%)"))
    for ax, (key, title) in zip(axes, panels):
        for kind, run in runs.items():
            name, _, p = kind.partition(":")
            label = LABELS.get(name, name) + (f" ({float(p):.0%})" if p else "")
            ax.plot(run.history["epoch"], run.history[key], label=label)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].legend()
    return fig
