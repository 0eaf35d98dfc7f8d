"""Norm constraints on filters: norm loss, projection-based and reparametrized weight normalization.

A layer's weight is read as a matrix of rows, one per filter or neuron: ``(out, in * kh * kw)``
for a convolution, ``(out, in)`` for a linear layer (:func:`filter_rows`). This module also holds
:class:`WeightPenalty`, the class every weight penalty of the package derives from.

Source: Georgiou et al., "Norm Loss" (seed 003): eq. 7 (the loss), eq. 11 (its gradient),
PBWN (Huang et al., its ref. [19]) and WN (Salimans & Kingma, its ref. [20]).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from .base import Regularizer, weight_layers


def filter_rows(w: torch.Tensor) -> torch.Tensor:
    """``(out, ...)`` weight -> ``(out, fan_in)`` matrix, one row per filter; a 1-D tensor is one row."""
    return w.reshape(1, -1) if w.dim() == 1 else w.flatten(1)


class WeightPenalty(Regularizer):
    """``coefficient * sum over covered layers of loss_fn(weight, **options)`` (a ``penalty`` hook).

    Subclasses set ``name``, the paper's default ``coefficient``, ``loss_fn``,
    ``include_output`` (whether the classifier layer is covered by default) and, for losses with
    keyword arguments, ``options``.
    """

    loss_fn: Callable[..., torch.Tensor]
    include_output: bool = True

    def __init__(self, coefficient: Optional[float] = None, include_output: Optional[bool] = None):
        if coefficient is not None:
            self.coefficient = float(coefficient)
        if include_output is not None:
            self.include_output = bool(include_output)
        self.options = {}

    def penalty(self, model: nn.Module) -> torch.Tensor:
        """``coefficient`` times the layer loss summed over the model's layers (a scalar tensor)."""
        weights = weight_layers(model, include_output=self.include_output)
        return self.coefficient * sum(self.loss_fn(w, **self.options) for w in weights)

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return (f"{type(self).__name__}(coefficient={self.coefficient}, "
                f"include_output={self.include_output}{extra})")


def norm_loss(w: torch.Tensor) -> torch.Tensor:
    """Norm loss of one layer (eq. 7): ``sum_c (1 - ||w_c||)^2`` over its filters ``w_c``.

    Its gradient is ``2 w_c (1 - 1 / ||w_c||)`` (eq. 11). Scalar, differentiable.
    """
    return (1 - filter_rows(w).norm(dim=1)).pow(2).sum()


class NormLoss(WeightPenalty):
    """Norm loss (eq. 8): ``lambda_nl * sum over layers of eq. 7``; weights only, every conv and
    linear layer including the classifier. Default ``lambda_nl = 0.01`` (the paper's ResNet
    setting on CIFAR-10/100)."""

    name = "norm"
    coefficient = 0.01
    loss_fn = staticmethod(norm_loss)


@torch.no_grad()
def project_rows(w: torch.Tensor, eps: float = 1e-12) -> None:
    """Scale every filter of ``w`` to unit Euclidean norm in place (eq. 6)."""
    norms = filter_rows(w).norm(dim=1).clamp_min(eps)
    w.div_(norms.view(-1, *([1] * (w.dim() - 1))))


class ProjectionWeightNorm(Regularizer):
    """Projection-based weight normalization (PBWN): every ``period`` optimizer steps each
    filter is projected back to unit norm (eq. 6), an ``after_step`` hook.

    The coefficient is the period ``T`` (default 1; the seed gives no value). The classifier is
    left out by default: unit-norm classifier rows cap the scale of the logits.
    """

    name = "pbwn"
    coefficient = 1

    def __init__(self, coefficient: Optional[float] = None, include_output: bool = False):
        if coefficient is not None:
            if int(coefficient) != coefficient or coefficient < 1:
                raise ValueError(f"pbwn: the period T must be a positive integer, got {coefficient}")
            self.coefficient = int(coefficient)
        self.include_output = include_output
        self.steps = 0

    def after_step(self, model: nn.Module) -> None:
        """Every ``coefficient``-th optimizer step (period T), project each layer's weight rows (:func:`project_rows`)."""
        self.steps += 1
        if self.steps % self.coefficient == 0:
            for w in weight_layers(model, include_output=self.include_output):
                project_rows(w)


def apply_weight_norm(model: nn.Module, include_output: bool = True) -> nn.Module:
    """Reparametrize the covered layers as ``w_c = g_c v_c / ||v_c||`` (weight normalization)
    with ``torch.nn.utils.parametrizations.weight_norm``; returns ``model``.

    Apply it before the optimizer is created: it replaces each ``weight`` parameter by ``g`` and
    ``v`` (so it is a model transformation, not a training hook).
    """
    covered = {id(w) for w in weight_layers(model, include_output=include_output)}
    for module in list(model.modules()):
        if id(getattr(module, "weight", None)) in covered:
            nn.utils.parametrizations.weight_norm(module, name="weight", dim=0)
    return model


class WeightNorm(Regularizer):
    """Weight normalization as a training method: :func:`apply_weight_norm` before the optimizer
    exists (``prepare``), folded back into plain weights after training (``finish``) so the final
    ``model.pt`` loads into the unmodified architecture. Per-epoch checkpoints hold the ``g``/``v``
    parametrization. It has no coefficient."""

    name = "weight_norm"

    def __init__(self, coefficient: Optional[float] = None, include_output: bool = True):
        self.include_output = include_output

    def prepare(self, model: nn.Module) -> None:
        """Reparametrize the model's layers as ``g * v / ||v||`` before the optimizer is built."""
        apply_weight_norm(model, include_output=self.include_output)

    def finish(self, model: nn.Module) -> None:
        """Fold ``g`` and ``v`` back into plain weights so the model loads without this regularizer."""
        for module in model.modules():
            if nn.utils.parametrize.is_parametrized(module, "weight"):
                nn.utils.parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
