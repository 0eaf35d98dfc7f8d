"""Classic regularizers of the lecture (seed 002): L1, label smoothing, mixup, CutMix, cutout,
RandAugment.

Weight decay is the optimizer's ``weight_decay``, dropout and stochastic depth are model
options, learning-rate schedules are ``torch.optim.lr_scheduler`` and early stopping lives in
the trainer. Image hooks expect standardized ``(b, C, H, W)`` batches (zero = the data mean),
as :mod:`regularizers.data` produces.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Optional

import torch
import torch.nn.functional as F

from .base import Regularizer
from .norms import WeightPenalty


def _coefficient(reg: Regularizer, coefficient: Optional[float]) -> None:
    if coefficient is not None:
        reg.coefficient = float(coefficient)


def _images(x: torch.Tensor, name: str) -> None:
    if x.dim() != 4:
        raise ValueError(f"{name} needs (batch, channels, height, width) images, got shape {tuple(x.shape)}")


def l1_loss(w: torch.Tensor) -> torch.Tensor:
    """``||w||_1``, the sum of absolute values (scalar)."""
    return w.abs().sum()


class L1(WeightPenalty):
    """L1 penalty ``beta * sum ||W||_1`` over conv and linear weights (biases and batch norm
    excluded). The lecture gives no value; default ``beta = 1e-5``."""

    name = "l1"
    coefficient = 1e-5
    loss_fn = staticmethod(l1_loss)


class LabelSmoothing(Regularizer):
    """Label smoothing as a ``criterion`` hook: cross-entropy against ``(1 - e) onehot + e / K``
    (``F.cross_entropy(label_smoothing=e)``; the lecture's ``alpha / (K - 1)`` form is
    ``e = alpha K / (K - 1)``). Replaces the base cross-entropy. Default ``e = 0.1``."""

    name = "label_smoothing"
    coefficient = 0.1

    def __init__(self, coefficient: Optional[float] = None):
        _coefficient(self, coefficient)
        if not 0 <= self.coefficient <= 1:
            raise ValueError(f"label_smoothing must be in [0, 1], got {self.coefficient}")

    def criterion(self, base):
        """Cross-entropy with label smoothing ``coefficient`` in place of ``base``."""
        return partial(F.cross_entropy, label_smoothing=self.coefficient)


def _mixed_loss(criterion, logits, y, perm, lam: float) -> torch.Tensor:
    """``lam * criterion(logits, y) + (1 - lam) * criterion(logits, y[perm])``: the loss of the
    mixed target ``lam y + (1 - lam) y[perm]`` for any criterion linear in the target."""
    return lam * criterion(logits, y) + (1 - lam) * criterion(logits, y[perm])


class Mixup(Regularizer):
    """mixup as a ``loss`` hook: ``x~ = lam x + (1 - lam) x[perm]``, the target mixed alike,
    ``lam ~ Beta(alpha, alpha)`` once per batch. The coefficient is ``alpha`` (default 1)."""

    name = "mixup"
    coefficient = 1.0

    def __init__(self, coefficient: Optional[float] = None):
        _coefficient(self, coefficient)

    def loss(self, model, x, y, criterion):
        """The mixup loss: ``criterion`` on a convex mix of two examples, weighted like their labels."""
        lam = torch.distributions.Beta(self.coefficient, self.coefficient).sample().item()
        perm = torch.randperm(len(x), device=x.device)
        return _mixed_loss(criterion, model(torch.lerp(x[perm], x, lam)), y, perm, lam)


class CutMix(Regularizer):
    """CutMix as a ``loss`` hook: a box of ``x[perm]`` of side ``sqrt(1 - lam)`` times the
    image's, centred uniformly (clipped at the border), is pasted into ``x``; the target is mixed
    with the pasted area's share, ``lam ~ Beta(alpha, alpha)``. Coefficient ``alpha`` (default 1)."""

    name = "cutmix"
    coefficient = 1.0

    def __init__(self, coefficient: Optional[float] = None):
        _coefficient(self, coefficient)

    def loss(self, model, x, y, criterion):
        """The CutMix loss: ``criterion`` on images with a pasted patch, labels weighted by its area."""
        _images(x, "cutmix")
        lam = torch.distributions.Beta(self.coefficient, self.coefficient).sample().item()
        h, w = x.shape[2:]
        ch, cw = round(h * math.sqrt(1 - lam)), round(w * math.sqrt(1 - lam))
        cy, cx = torch.randint(h, ()).item(), torch.randint(w, ()).item()
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch - ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw - cw // 2, w)
        perm = torch.randperm(len(x), device=x.device)
        mixed = x.clone()
        mixed[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
        return _mixed_loss(criterion, model(mixed), y, perm, lam)


class Cutout(Regularizer):
    """Cutout as a ``transform`` hook: each image gets a zeroed (= data mean) square centred at a
    uniform pixel, clipped at the border. The coefficient is the square's side as a fraction of
    the image side (default 0.5: 16 px on 32 x 32 CIFAR)."""

    name = "cutout"
    coefficient = 0.5

    def __init__(self, coefficient: Optional[float] = None):
        _coefficient(self, coefficient)

    def transform(self, x, y):
        """``(inputs, targets)`` with one random square of each image zeroed."""
        _images(x, "cutout")
        b, _, h, w = x.shape

        def band(size):  # (b, size) True inside each image's patch along one axis
            side = max(1, round(self.coefficient * size))
            start = torch.randint(size, (b, 1), device=x.device) - side // 2
            pos = torch.arange(size, device=x.device)
            return (pos >= start) & (pos < start + side)

        mask = band(h).unsqueeze(2) & band(w).unsqueeze(1)
        return x.masked_fill(mask.unsqueeze(1), 0.0), y


# ------------------------------------------------------------------------------ RandAugment
# Ops on standardized tensors; ``v`` is a (b,) signed strength in [-1, 1] (magnitude / 30 with a
# random sign). Geometric ops fill with 0 (the data mean). The lecture's AutoContrast, Equalize,
# Posterize and Solarize are left out: they need raw [0, 255] pixel values and histograms.


def _affine(x, rows):
    """Warp ``x`` with per-sample ``(b, 2, 3)`` affine matrices (normalized coordinates)."""
    grid = F.affine_grid(rows, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


def _matrix(a, b, c, d, tx, ty):
    """``(b, 2, 3)`` affine matrices ``[[a, b, tx], [c, d, ty]]`` from ``(b,)`` entries."""
    return torch.stack([torch.stack([a, b, tx], 1), torch.stack([c, d, ty], 1)], 1)


def _rotate(x, v):  # up to 30 degrees
    t = v * math.radians(30)
    z = torch.zeros_like(v)
    return _affine(x, _matrix(t.cos(), -t.sin(), t.sin(), t.cos(), z, z))


def _shear(x, v, axis):  # shear factor up to 0.3
    one, z, s = torch.ones_like(v), torch.zeros_like(v), 0.3 * v
    return _affine(x, _matrix(one, s, z, one, z, z) if axis == 0 else _matrix(one, z, s, one, z, z))


def _translate(x, v, axis):  # up to 0.45 of the side (normalized coordinates span 2)
    one, z, t = torch.ones_like(v), torch.zeros_like(v), 0.9 * v
    return _affine(x, _matrix(one, z, z, one, t, z) if axis == 0 else _matrix(one, z, z, one, z, t))


def _blend(x, anchor, v):  # anchor + (1 + 0.9 v) (x - anchor): factor in [0.1, 1.9]
    return anchor + (1 + 0.9 * v).view(-1, 1, 1, 1) * (x - anchor)


def _sharpness(x, v):  # blend with the 3x3 smoothing filter (centre weight 5, as PIL)
    kernel = torch.ones(3, 3, dtype=x.dtype, device=x.device)
    kernel[1, 1] = 5
    kernel = (kernel / kernel.sum()).expand(x.shape[1], 1, 3, 3)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=x.shape[1])
    return _blend(x, blurred, v)


RANDAUGMENT_OPS = {
    "identity": lambda x, v: x,
    "rotate": _rotate,
    "shear_x": partial(_shear, axis=0),
    "shear_y": partial(_shear, axis=1),
    "translate_x": partial(_translate, axis=0),
    "translate_y": partial(_translate, axis=1),
    "brightness": lambda x, v: x + 0.9 * v.view(-1, 1, 1, 1),  # shift in standard deviations
    "contrast": lambda x, v: _blend(x, x.mean(dim=(1, 2, 3), keepdim=True), v),
    "color": lambda x, v: _blend(x, x.mean(dim=1, keepdim=True), v),  # saturation; no-op if C = 1
    "sharpness": _sharpness,
}


def randaugment(x: torch.Tensor, n: int = 2, magnitude: float = 9) -> torch.Tensor:
    """RandAugment on a standardized ``(b, C, H, W)`` batch: each image gets ``n`` ops drawn
    uniformly from :data:`RANDAUGMENT_OPS`, all of strength ``magnitude / 30`` with a random sign."""
    _images(x, "randaugment")
    names = list(RANDAUGMENT_OPS)
    level = magnitude / 30
    for _ in range(n):
        choice = torch.randint(len(names), (len(x),), device=x.device)
        signs = torch.randint(2, (len(x),), device=x.device).to(x.dtype) * 2 - 1
        out = x.clone()
        for k, name in enumerate(names):
            sel = (choice == k).nonzero().squeeze(1)
            if len(sel):
                out[sel] = RANDAUGMENT_OPS[name](x[sel], level * signs[sel])
        x = out
    return x


class RandAugment(Regularizer):
    """RandAugment as a ``transform`` hook. The coefficient is the magnitude ``M`` on the 0-30
    scale (default 9 with ``n = 2`` ops, the lecture's Fig. 1 / ImageNet ResNet-50 setting)."""

    name = "randaugment"
    coefficient = 9.0

    def __init__(self, coefficient: Optional[float] = None, n: int = 2):
        _coefficient(self, coefficient)
        self.n = int(n)

    def transform(self, x, y):
        """``(inputs, targets)`` with RandAugment's random operations applied per image."""
        return randaugment(x, self.n, self.coefficient), y

    def __repr__(self) -> str:
        return f"RandAugment(coefficient={self.coefficient}, n={self.n})"
