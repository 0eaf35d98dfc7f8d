"""Curvature and sharpness of the training loss: Hessian spectrum, trace, convexity, sharpness.

Every function here looks at the *mean* loss over a whole data set, ``data`` in any form of
:func:`regularizers.evaluation.data_splits` (an ``(x, y)`` pair, a Dataset -- its ``train``
split --, a DataLoader, ...), evaluated in batches: staged tensors in batches of ``batch_size``
examples (default: as many as the autograd graph's measured memory allows, see
:mod:`landscape.hessian`), a loader in its own batches. Batch losses are summed and divided by
the number of examples, so values (loss, gradient, Hessian eigenvalues) do not depend on the
batching. ``loss`` is a name or a callable ``loss(outputs, targets)`` (per-example losses or the
batch mean; see :func:`regularizers.evaluation.resolve_loss`), ``output`` picks the predictions
of a model returning a dict or tuple (e.g. ``"logits"``), and ``hooks``
(:class:`regularizers.evaluation.BatchHooks`) reads other batch layouts, e.g. HuggingFace dict
batches with the labels inside.

Hessian-vector products go through :class:`landscape.hessian.Objective`: the first backward's
graph is kept per batch and reused by every product while it fits in memory (PyHessian's
method), and attention runs on the twice-differentiable math kernel.

Only the parameters chosen by ``params`` move or are differentiated: ``"all"`` (default: every
parameter, as PyHessian and an exact Hessian count them), ``"weights"`` (the tensors with
dim > 1, as in the loss landscapes), or an explicit list of parameters. Vectors over those
parameters are flat, of length ``num_params``, in ``model.parameters()`` order.

The model is put in eval mode while these functions run (dropout off, batch norm uses its
running statistics), so the loss is a deterministic function of the parameters; the training
flags and the parameter values are restored afterwards.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from landscape.hessian import Objective, Params, evaluating, flat, select_params, shifted
from regularizers.evaluation import DEFAULT_HOOKS, BatchHooks

__all__ = ["ConvexityMap", "ConvexityResult", "EigenResult", "Params", "SharpnessResult", "TraceResult",
           "average_sharpness", "convexity_map", "convexity_ratio", "dense_hessian", "epsilon_sharpness",
           "extreme_eigenvalues", "hessian_trace", "hessian_vector_product", "min_eigenvalue", "rho_sharpness",
           "select_params", "top_eigenvalues"]


@dataclass
class EigenResult:
    """Extreme Hessian eigenvalues: ``values`` (k,), ``vectors`` (num_params, k) float64."""
    values: np.ndarray
    vectors: np.ndarray
    which: str              # "largest" (descending) or "smallest" (ascending)
    seed: int               # seed of the Lanczos start vector
    num_hvp: int            # Hessian-vector products used
    num_params: int


@dataclass
class TraceResult:
    """Stochastic Hessian trace estimate ``mean`` with its standard error ``stderr``."""
    mean: float
    stderr: float
    method: str             # "hutchinson" or "hutch++"
    num_hvp: int            # Hessian-vector products used: num_probes (hutch++: 3 * (num_probes // 3),
                            # fewer when a third exceeds num_params)
    seed: int
    num_params: int


@dataclass
class ConvexityResult:
    """Li et al.'s convexity ratio ``|lambda_min / lambda_max|`` at one parameter point."""
    ratio: float
    lambda_min: float
    lambda_max: float
    seed: int
    num_params: int


@dataclass
class ConvexityMap:
    """Convexity ratio over a surface grid; arrays are (ny, nx), Z[i, j] at (xcoords[j], ycoords[i])."""
    ratio: np.ndarray
    lambda_min: np.ndarray
    lambda_max: np.ndarray
    xcoords: np.ndarray
    ycoords: np.ndarray
    seed: int
    num_params: int


@dataclass
class SharpnessResult:
    """A sharpness value and the losses behind it.

    ``value`` is in percent of ``1 + loss`` for ``kind="epsilon"`` (Keskar et al.) and an
    absolute loss increase otherwise. ``radius`` is eps, rho or sigma. ``stderr`` and
    ``num_samples`` describe the Monte-Carlo spread (0 and 1 for one deterministic point).
    """
    value: float
    loss: float
    perturbed_loss: float
    kind: str               # "epsilon", "rho", "asam" or "average"
    radius: float
    stderr: float
    num_samples: int
    seed: Optional[int]


def hessian_vector_product(model: nn.Module, data, vector, *,
                           loss="crossentropy", output=None, hooks: BatchHooks = DEFAULT_HOOKS,
                           batch_size: Optional[int] = None,
                           params: Params = "all") -> torch.Tensor:
    """H v for the mean loss over ``data``. ``vector``: flat (num_params,) or one tensor per chosen
    parameter; returns flat (num_params,)."""
    with evaluating(model):
        obj = Objective(model, data, loss, batch_size, params, output, hooks)
        v = vector if torch.is_tensor(vector) else flat(vector)
        return obj.hvp(v).detach().to(obj.dtype)


def dense_hessian(model: nn.Module, data, *,
                  loss="crossentropy", output=None, hooks: BatchHooks = DEFAULT_HOOKS, batch_size: Optional[int] = None,
                  params: Params = "all") -> np.ndarray:
    """The explicit (num_params, num_params) float64 Hessian: num_params HVPs, small models only."""
    with evaluating(model):
        return Objective(model, data, loss, batch_size, params, output, hooks).dense()


def extreme_eigenvalues(model: nn.Module, data, k: int = 1, *, which: str = "largest",
                        loss="crossentropy", output=None, hooks: BatchHooks = DEFAULT_HOOKS,
                        batch_size: Optional[int] = None, params: Params = "all", seed: int = 0,
                        tol: float = 1e-6, maxiter: Optional[int] = None) -> EigenResult:
    """The ``k`` largest (``which="largest"``, descending) or smallest (``"smallest"``, most
    negative first, ascending) algebraic Hessian eigenvalues by Lanczos (ARPACK)."""
    if which not in ("largest", "smallest"):
        raise ValueError(f"which must be 'largest' or 'smallest', got {which!r}")
    with evaluating(model):
        obj = Objective(model, data, loss, batch_size, params, output, hooks)
        values, vectors = obj.extremes(k, "LA" if which == "largest" else "SA", seed, tol, maxiter)
    if which == "largest":
        values, vectors = values[::-1].copy(), vectors[:, ::-1].copy()
    return EigenResult(values, vectors, which, seed, obj.num_hvp, obj.dim)


def top_eigenvalues(model: nn.Module, data, k: int = 1, **options) -> EigenResult:
    """The ``k`` largest Hessian eigenvalues, descending: :func:`extreme_eigenvalues` (same keywords:
    loss, output, hooks, batch_size, params, seed, tol, maxiter)."""
    return extreme_eigenvalues(model, data, k, which="largest", **options)


def min_eigenvalue(model: nn.Module, data, k: int = 1, **options) -> EigenResult:
    """The ``k`` smallest (most negative) Hessian eigenvalues, ascending: :func:`extreme_eigenvalues`."""
    return extreme_eigenvalues(model, data, k, which="smallest", **options)


def hessian_trace(model: nn.Module, data, num_probes: int = 99, *,
                  method: str = "hutchinson", loss="crossentropy", output=None, hooks: BatchHooks = DEFAULT_HOOKS,
                  batch_size: Optional[int] = None, params: Params = "all",
                  seed: int = 0) -> TraceResult:
    """Hessian trace from ``num_probes`` HVPs with Rademacher probes.

    ``"hutchinson"``: mean of z^T H z; the stderr is their standard deviation / sqrt(probes).
    ``"hutch++"`` (Meyer et al. 2021): a third of the probes sketch the top subspace Q (H S, S
    Rademacher, orthonormalized), a third compute tr(Q^T H Q) exactly, and the last third run
    Hutchinson on the deflated (I - QQ^T) H (I - QQ^T); the stderr is that residual part's.
    It is exact when H has rank <= num_probes / 3.
    """
    if method not in ("hutchinson", "hutch++"):
        raise ValueError(f"method must be 'hutchinson' or 'hutch++', got {method!r}")
    if num_probes < (3 if method == "hutch++" else 2):
        raise ValueError(f"{method} needs at least {3 if method == 'hutch++' else 2} probes, got {num_probes}")
    with evaluating(model):
        obj = Objective(model, data, loss, batch_size, params, output, hooks)
        gen = torch.Generator().manual_seed(seed)

        def rademacher(m):
            signs = torch.randint(0, 2, (obj.dim, m), generator=gen, dtype=torch.float64) * 2 - 1
            return signs.to(obj.device)

        def quad(z):  # z^T H z for each column of z
            return torch.stack([col @ obj.hvp(col) for col in z.T])

        if method == "hutchinson":
            samples, exact = quad(rademacher(num_probes)), 0.0
        else:
            s = num_probes // 3
            sketch = torch.stack([obj.hvp(col) for col in rademacher(s).T], dim=1)
            q = torch.linalg.qr(sketch).Q
            g = rademacher(s)
            exact = quad(q).sum().item()
            samples = quad(g - q @ (q.T @ g))
    stderr = samples.std().item() / math.sqrt(len(samples))
    return TraceResult(exact + samples.mean().item(), stderr, method, obj.num_hvp, seed, obj.dim)


def _convexity(obj: Objective, seed: int, tol: float, maxiter: Optional[int]) -> Tuple[float, float, float]:
    (lmin, lmax), _ = obj.extremes(2, "BE", seed, tol, maxiter)
    return float(abs(lmin / lmax)), float(lmin), float(lmax)


def convexity_ratio(model: nn.Module, data, *,
                    loss="crossentropy", output=None, hooks: BatchHooks = DEFAULT_HOOKS, batch_size: Optional[int] = None,
                    params: Params = "all", seed: int = 0, tol: float = 1e-4,
                    maxiter: Optional[int] = None) -> ConvexityResult:
    """``|lambda_min / lambda_max|`` of the Hessian (algebraic extremes, one Lanczos run)."""
    with evaluating(model):
        obj = Objective(model, data, loss, batch_size, params, output, hooks)
        ratio, lmin, lmax = _convexity(obj, seed, tol, maxiter)
    return ConvexityResult(ratio, lmin, lmax, seed, obj.dim)


def convexity_map(model: nn.Module, data,
                  directions: Tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]],
                  xcoords, ycoords, *, loss="crossentropy", output=None, hooks: BatchHooks = DEFAULT_HOOKS,
                  batch_size: Optional[int] = None, params: Params = "all", seed: int = 0,
                  tol: float = 1e-4, maxiter: Optional[int] = None) -> ConvexityMap:
    """Li et al.'s convexity map: the convexity ratio at w + a d1 + b d2 over a grid.

    ``directions`` = (d1, d2), each a list with one tensor per ``model.parameters()`` entry
    (zeros for parameters the landscape ignores), as the landscape directions are.
    ``xcoords`` (nx,) and ``ycoords`` (ny,) hold a and b; the result arrays are (ny, nx).
    """
    all_params = list(model.parameters())
    for d in directions:
        if len(d) != len(all_params) or any(t.shape != p.shape for t, p in zip(d, all_params)):
            raise ValueError("each direction needs one tensor per model parameter, of the same shape")
    xcoords, ycoords = np.asarray(xcoords, dtype=float), np.asarray(ycoords, dtype=float)
    out = np.empty((3, len(ycoords), len(xcoords)))
    d1, d2 = directions
    with evaluating(model):
        obj = Objective(model, data, loss, batch_size, params, output, hooks)
        for i, b in enumerate(ycoords):
            for j, a in enumerate(xcoords):
                with shifted(all_params, [float(a) * u + float(b) * v for u, v in zip(d1, d2)]):
                    out[:, i, j] = _convexity(obj, seed, tol, maxiter)
    return ConvexityMap(out[0], out[1], out[2], xcoords, ycoords, seed, obj.dim)


def epsilon_sharpness(model: nn.Module, data, eps: float = 1e-3, *,
                      steps: int = 10, loss="crossentropy", output=None, hooks: BatchHooks = DEFAULT_HOOKS,
                      batch_size: Optional[int] = None, params: Params = "all",
                      seed: int = 0) -> SharpnessResult:
    """Keskar et al.'s sharpness ``100 (max_z L(w + z) - L(w)) / (1 + L(w))`` in percent.

    The box is |z_i| <= eps (|w_i| + 1). The max is approximated by ``steps`` steps of
    projected sign-gradient ascent (step 2.5 radius / steps) from a seeded uniform point in the
    box, keeping the largest loss met.
    """
    with evaluating(model):
        obj = Objective(model, data, loss, batch_size, params, output, hooks)
        radius = eps * (flat(obj.params).detach().abs() + 1)
        gen = torch.Generator().manual_seed(seed)
        z = (torch.rand(obj.dim, generator=gen, dtype=torch.float64) * 2 - 1).to(radius) * radius
        base, best = obj.loss(), -math.inf
        for _ in range(steps):
            with obj.shifted(z):
                loss, grad = obj.loss_and_gradient()
            best = max(best, loss)
            z = torch.clamp(z + 2.5 * radius / steps * grad.sign(), -radius, radius)
        with obj.shifted(z):
            best = max(best, obj.loss())
    return SharpnessResult(100 * (best - base) / (1 + base), base, best, "epsilon", eps, 0.0, 1, seed)


def rho_sharpness(model: nn.Module, data, rho: float = 0.05, *,
                  adaptive: bool = False, eta: float = 0.01, loss="crossentropy", output=None,
                  hooks: BatchHooks = DEFAULT_HOOKS,
                  batch_size: Optional[int] = None, params: Params = "all") -> SharpnessResult:
    """SAM's one-step sharpness ``L(w + e) - L(w)``, e = rho g / ||g|| (g the full gradient).

    ``adaptive=True`` is ASAM's form: e = rho T^2 g / ||T g|| with T = diag(|w| + eta).
    """
    with evaluating(model):
        obj = Objective(model, data, loss, batch_size, params, output, hooks)
        base, grad = obj.loss_and_gradient()
        scale = flat(obj.params).detach().abs() + eta if adaptive else torch.ones_like(grad)
        step = rho * scale ** 2 * grad / (scale * grad).norm().clamp_min(1e-12)
        with obj.shifted(step):
            perturbed = obj.loss()
    return SharpnessResult(perturbed - base, base, perturbed, "asam" if adaptive else "rho", rho, 0.0, 1, None)


def average_sharpness(model: nn.Module, data, sigma: float = 0.01, *,
                      num_samples: int = 20, loss="crossentropy", output=None, hooks: BatchHooks = DEFAULT_HOOKS,
                      batch_size: Optional[int] = None, params: Params = "all",
                      seed: int = 0) -> SharpnessResult:
    """Average-case sharpness ``E[L(w + sigma e)] - L(w)``, e ~ N(0, I), over ``num_samples``
    seeded draws; ``stderr`` is the standard error of the mean."""
    with evaluating(model):
        obj = Objective(model, data, loss, batch_size, params, output, hooks)
        gen = torch.Generator().manual_seed(seed)
        base, losses = obj.loss(), []
        for _ in range(num_samples):
            noise = torch.randn(obj.dim, generator=gen, dtype=torch.float64)
            with obj.shifted(sigma * noise):
                losses.append(obj.loss())
    losses = np.array(losses)
    stderr = losses.std(ddof=1) / math.sqrt(num_samples) if num_samples > 1 else float("nan")
    return SharpnessResult(float(losses.mean() - base), base, float(losses.mean()), "average",
                           sigma, float(stderr), num_samples, seed)
