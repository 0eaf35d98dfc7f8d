"""Adaptive regularization via residual smoothing (Cho, Kwon, Hong 2019; seed 001).

The loss replaces cross-entropy by the squared norm of a smoothed residual (Algorithm 1):

- residual ``d = |h(x) - onehot(y)|`` with ``h`` the softmax output, ``(b, M)`` (eq. 9);
- diffusivity ``kappa = S(d~; s_t, alpha) = s_t / (1 + exp(-alpha d~))`` (eqs. 12, 19) with
  ``d~`` each sample's residual normalized to mean 0, standard deviation 1 (eqs. 18, 20);
- one smoothing layer ``r = W d`` with ``W_jj = 1 - kappa_j``, ``W_jk = kappa_j / (M - 1)``
  (eq. 22), rows summing to 1; ``kappa`` is a constant of the layer (no gradient flows into it);
- loss ``mean over the batch of ||r||^2`` (Algorithm 1, lines 11 and 13); ``kappa = 0`` gives
  ``mean ||h - onehot||^2``, the plain squared error on one-hot targets.

Schemes: global only (``alpha = 0``, so ``kappa = s_t / 2`` everywhere, eqs. 15-16), local only
(constant ``s``, ``schedule="none"``, eq. 17) and both (the default, eqs. 19-21). ``s_t`` follows
a Laplace or Logistic pdf over training time scaled to peak at 1 (eqs. 13-14, Fig. 2); time is
the fraction of training done, ``epoch / epochs``, so the peak ``mu`` (default 0.75, "75% of
epochs") and the scale ``b`` are in units of the whole run.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from .base import Regularizer

ANNEALING_SCHEDULES = ("laplace", "logistic", "none")


def annealing(t: float, mu: float = 0.75, b: float = 0.2, schedule: str = "laplace") -> float:
    """Scale ``s_t`` at training time ``t`` (fraction of training done): the Laplace (eq. 14) or
    Logistic (eq. 13) pdf with mean ``mu`` and scale ``b``, divided by its peak; 1 at ``t = mu``.
    ``schedule="none"`` is the constant 1 (the local-only scheme)."""
    if schedule == "laplace":
        return math.exp(-abs(t - mu) / b)
    if schedule == "logistic":
        return 1.0 / math.cosh((t - mu) / (2 * b)) ** 2
    if schedule == "none":
        return 1.0
    raise ValueError(f"unknown annealing schedule {schedule!r}; choose one of {ANNEALING_SCHEDULES}")


def diffusivity(residual: torch.Tensor, s: float, alpha: float, eps: float = 1e-8) -> torch.Tensor:
    """``kappa = s * sigmoid(alpha * d~)`` (eq. 19), ``d~`` the per-sample standardized
    ``residual`` (``(b, M)``; population standard deviation, ``eps`` added). Same shape."""
    mean = residual.mean(dim=1, keepdim=True)
    std = residual.std(dim=1, keepdim=True, correction=0)
    return s * torch.sigmoid(alpha * (residual - mean) / (std + eps))


def smoothing_matrix(kappa: torch.Tensor) -> torch.Tensor:
    """``(b, M, M)`` smoothing layers of eq. 22 from ``(b, M)`` diffusivities: row ``j`` holds
    ``1 - kappa_j`` on the diagonal and ``kappa_j / (M - 1)`` elsewhere."""
    m = kappa.shape[1]
    eye = torch.eye(m, dtype=kappa.dtype, device=kappa.device)
    off = (kappa / (m - 1)).unsqueeze(2).expand(-1, m, m)
    return off * (1 - eye) + (1 - kappa).unsqueeze(2) * eye


def residual_smoothing_loss(logits: torch.Tensor, y: torch.Tensor, s: float = 1.0,
                            alpha: float = 1.0) -> torch.Tensor:
    """Loss of Algorithm 1 for ``(b, M)`` logits and ``(b,)`` class indices: the batch mean of
    ``||W(kappa) d||^2`` with ``d = |softmax(logits) - onehot(y)|``. ``s = 0`` (or ``kappa = 0``)
    is ``mean ||softmax - onehot||^2``."""
    residual = (logits.softmax(dim=1) - F.one_hot(y, logits.shape[1]).to(logits.dtype)).abs()
    kappa = diffusivity(residual.detach(), s, alpha)
    smoothed = torch.einsum("bjk,bk->bj", smoothing_matrix(kappa), residual)
    return smoothed.pow(2).sum(dim=1).mean()


class ResidualSmoothing(Regularizer):
    """Residual smoothing as a ``loss`` hook (replaces the criterion; labels are class indices).

    The coefficient is the peak diffusivity scale (default 1, the paper's scaling). Options:
    ``schedule`` (``laplace``, ``logistic``, ``none``), ``mu`` (0.75), ``b`` (0.2, the paper's
    Laplace value of Table 3; it uses 0.25 with Logistic), ``alpha`` (1; 0 = global only).
    ``start_epoch(epoch, epochs)`` sets ``s_t`` for the epoch.
    """

    name = "residual"
    coefficient = 1.0

    def __init__(self, coefficient: Optional[float] = None, schedule: str = "laplace",
                 mu: float = 0.75, b: float = 0.2, alpha: float = 1.0):
        if coefficient is not None:
            self.coefficient = float(coefficient)
        if b <= 0:
            raise ValueError(f"residual: the scale b must be positive, got {b}")
        self.schedule, self.mu, self.b, self.alpha = schedule, mu, b, alpha
        self.s = self.coefficient * annealing(0.0, mu, b, schedule)  # also checks the name

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Set this epoch's annealed coefficient (``epoch`` counts from 0 of ``epochs``)."""
        self.s = self.coefficient * annealing(epoch / epochs, self.mu, self.b, self.schedule)

    def loss(self, model, x, y, criterion):
        """The residual-smoothing loss of the batch's logits at this epoch's ``s`` (replaces ``criterion``; a scalar)."""
        return residual_smoothing_loss(model(x), y, self.s, self.alpha)

    def __repr__(self) -> str:
        return (f"ResidualSmoothing(coefficient={self.coefficient}, schedule={self.schedule!r}, "
                f"mu={self.mu}, b={self.b}, alpha={self.alpha})")
