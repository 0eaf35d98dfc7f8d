"""The Regularizer protocol shared by every training method.

A regularizer is an object with any subset of these hooks; the trainer calls those it defines:

- ``penalty(model) -> Tensor``: a scalar added to the loss, already multiplied by the
  method's coefficient (weight penalties: MMA, norm loss, L1, ...).
- ``transform(x, y) -> (x, y)``: changes a training batch before the forward pass
  (cutout, RandAugment). ``x`` is ``(batch, channels, height, width)`` or ``(batch, features)``.
- ``criterion(base) -> callable``: replaces the per-batch criterion ``(logits, y) -> scalar``
  (label smoothing).
- ``loss(model, x, y, criterion) -> Tensor``: replaces ``criterion(model(x), y)`` for the batch
  (mixup, CutMix, LinR, residual smoothing). At most one regularizer may define it.
- ``after_step(model)``: runs after each optimizer step (projection-based weight normalization).
- ``start_epoch(epoch, epochs)``: runs before each training epoch, ``epoch`` counted from 0
  (annealing schedules).
- ``prepare(model)`` / ``finish(model)``: run once before the optimizer is created and once
  after training, before ``model.pt`` is written (weight normalization reparametrizes the
  layers and folds them back into plain weights).
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

HOOKS = ("penalty", "transform", "criterion", "loss", "after_step", "start_epoch", "prepare", "finish")

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Regularizer:
    """Optional base class: subclasses override only the hooks they need.

    ``name`` is the registry name, ``coefficient`` the method's main number (the one after the
    colon in ``--reg name:coef``).
    """

    name: str = "regularizer"
    coefficient: float = 0.0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(coefficient={self.coefficient})"


def defines(reg: object, hook: str) -> bool:
    """True when ``reg`` implements ``hook`` itself (not the do-nothing default)."""
    return callable(getattr(reg, hook, None))


def check_regularizers(regs: Iterable[object]) -> list:
    """Validate a list of regularizers: each must implement a hook; one ``loss`` at most."""
    regs = list(regs)
    for reg in regs:
        if not any(defines(reg, h) for h in HOOKS):
            raise TypeError(f"{reg!r} implements none of the regularizer hooks {HOOKS}")
    replacing = [r for r in regs if defines(r, "loss")]
    if len(replacing) > 1:
        raise ValueError(f"only one regularizer may replace the loss, got {replacing}")
    return regs


def weight_layers(model: nn.Module, include_output: bool = True) -> list:
    """Weights a penalty covers by default: those of Conv*d and Linear layers, in module order.

    Biases and normalization layers are never included. With ``include_output=False`` the last
    Linear layer (the classifier) is left out.
    """
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))]
    if not include_output and layers and isinstance(layers[-1], nn.Linear):
        layers = layers[:-1]
    return [m.weight for m in layers]
