"""The Hessian's spectral density (stochastic Lanczos quadrature) and its diagonal (Hutchinson).

Both look at the Hessian ``H`` (num_params, num_params) of the mean loss over one split of the
data, with respect to the parameters chosen by ``params`` (default ``"all"``), exactly as
:mod:`analysis.curvature` does: every Hessian-vector product goes through its objective (eval
mode, batch-size independent weighting), built in :func:`curvature_objective`.

``data`` is any form :func:`regularizers.evaluation.data_splits` accepts (an ``(x, y)`` pair, a
``{split: (x, y)}`` dict, a :class:`regularizers.data.Dataset`, ...); ``split`` picks the split
(default ``train``). ``loss`` is a name (``crossentropy``, ``nll``, ``mse``) or a callable, as in
:func:`regularizers.evaluation.resolve_loss`.

- :func:`spectral_density`: Ghorbani, Krishnan & Xiao (2019), "An investigation into neural net
  optimization via Hessian eigenvalue density" (also PyHessian's ``density``): ``m`` Lanczos
  steps from each of several random unit probes ``v`` give a tridiagonal ``T`` whose
  eigenvalues ``theta_j`` (the quadrature nodes) and squared first eigenvector components
  ``tau_j`` (the weights) form the Gauss quadrature of the probe's spectral measure:
  ``v^T f(H) v ~= sum_j tau_j f(theta_j)``, exact for polynomials of degree < 2m. Averaged
  over probes it estimates ``tr f(H) / n``; with ``f`` a Gaussian of width ``sigma`` this is
  the smoothed density ``phi(t) = (1/n) sum_i g_sigma(t - lambda_i)`` (mass 1).
- :func:`hessian_diagonal`: Bekas, Kokiopoulou & Saad (2007): ``diag(H) = E[z * (H z)]`` for
  Rademacher ``z``; exact for a diagonal Hessian, with a per-entry standard error.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import List, Optional, Union

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.integrate import trapezoid
from scipy.linalg import eigh_tridiagonal
from torch import nn

from landscape.hessian import Objective, Params, evaluating
from regularizers.evaluation import DEFAULT_HOOKS, BatchHooks

PROBES = ("rademacher", "gaussian")
DIAGONAL_RTOL = 0.1        # default target: median relative standard error of the diagonal's entries
DIAGONAL_MIN_PROBES = 10   # probes before the target is first checked
DIAGONAL_MAX_PROBES = 500  # default cap on the probes when the target is not reached


@dataclass
class SpectralDensity:
    """A smoothed Hessian eigenvalue density and the quadrature behind it.

    ``grid`` (G,) eigenvalues (loss units per squared parameter unit); ``density`` (G,) the
    Gaussian-smoothed density there (``trapezoid(density, grid)`` is its mass, 1 when the grid
    covers the nodes +- 5 sigma, as the default grid does). ``nodes`` and ``weights`` (K,) are
    every probe's Ritz values and Gauss weights, the weights divided by the number of probes
    (they sum to 1); ``probe`` (K,) says which probe each node came from.
    """
    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    probe: np.ndarray
    sigma: float
    num_probes: int
    lanczos_steps: int
    seed: int
    num_hvp: int
    num_params: int

    def moment(self, k: int) -> float:
        """The quadrature's ``k``-th moment ``sum_j w_j theta_j^k``, an estimate of
        ``tr(H^k) / num_params`` (exact per probe for ``k < 2 * lanczos_steps``)."""
        return float(np.sum(self.weights * self.nodes ** k))

    @property
    def mass(self) -> float:
        """The density's integral over the grid (trapezoid rule)."""
        return float(trapezoid(self.density, self.grid))


@dataclass
class HessianDiagonal:
    """Hutchinson estimate of ``diag(H)``: ``values`` and ``stderr`` (num_params,) float64.

    Entries follow the chosen parameters in ``model.parameters()`` order; ``names`` and
    ``shapes`` give those parameters so that :meth:`per_parameter` can split the vector.
    ``rel_stderr`` is the per-entry precision reached (median relative standard error).
    """
    values: np.ndarray
    stderr: np.ndarray
    names: List[str]
    shapes: List[tuple]
    num_probes: int
    seed: int
    num_hvp: int
    num_params: int
    rel_stderr: float = math.nan       # median over entries of stderr / |value| (0 where both are 0)
    rtol: Optional[float] = None       # the target it was run to (None: a fixed num_probes)
    converged: Optional[bool] = None   # rel_stderr <= rtol within the cap (None: fixed num_probes)

    def per_parameter(self) -> dict:
        """``{parameter name: values shaped like the parameter}``."""
        sizes = [math.prod(s) for s in self.shapes]
        pieces = np.split(self.values, np.cumsum(sizes)[:-1])
        return {n: p.reshape(s) for n, p, s in zip(self.names, pieces, self.shapes)}


def curvature_objective(model: nn.Module, data, *, split: str = "train", loss="crossentropy",
                        output=None, hooks: BatchHooks = DEFAULT_HOOKS, batch_size: Optional[int] = None,
                        params: Params = "all") -> Objective:
    """The mean loss over one split of ``data`` as a function of the chosen parameters
    (:class:`landscape.hessian.Objective`), whose ``.hvp(v)`` (flat (num_params,)) is every
    Hessian-vector product of this module. Call inside :func:`landscape.hessian.evaluating`.
    """
    return Objective(model, data, loss, batch_size, params, output, hooks, split=split)


def _probe(gen: torch.Generator, dim: int, kind: str) -> torch.Tensor:
    """A float64 (dim,) probe: Rademacher signs or standard Gaussian entries."""
    if kind == "rademacher":
        return torch.randint(0, 2, (dim,), generator=gen, dtype=torch.float64) * 2 - 1
    return torch.randn(dim, generator=gen, dtype=torch.float64)


def _hvp64(obj: Objective, v: torch.Tensor) -> torch.Tensor:
    return obj.hvp(v).detach().to(device="cpu", dtype=torch.float64)


def _lanczos(obj: Objective, v: torch.Tensor, steps: int):
    """``steps`` Lanczos steps from ``v`` with full reorthogonalization (twice per step).

    Returns the tridiagonal's diagonal (m,) and off-diagonal (m - 1,), m <= steps (fewer when
    an invariant subspace is found: the quadrature is then exact).
    """
    basis = torch.zeros(steps, len(v), dtype=torch.float64)
    q = v / v.norm()
    alphas, betas = [], []
    for j in range(steps):
        basis[j] = q
        w = _hvp64(obj, q)
        alphas.append(float(q @ w))
        for _ in range(2):  # "twice is enough" (Parlett): Gram-Schmidt against every Lanczos vector
            w -= basis[:j + 1].T @ (basis[:j + 1] @ w)
        beta = float(w.norm())
        scale = max(max(abs(a) for a in alphas), max(betas, default=0.0), 1e-300)
        if j == steps - 1 or beta <= 1e-10 * scale:
            break
        betas.append(beta)
        q = w / beta
    return np.array(alphas), np.array(betas)


def _check_count(name: str, value: int, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    return int(value)


def _check_density_settings(probe: str, sigma: Optional[float], grid):
    """The grid as a count or a float64 array; a ValueError naming a bad probe, sigma or grid."""
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {', '.join(PROBES)}; got {probe!r}")
    if sigma is not None and not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    if not isinstance(grid, (int, np.integer)):
        grid = np.asarray(grid, dtype=np.float64)
        if grid.ndim != 1 or len(grid) < 2 or np.any(np.diff(grid) <= 0):
            raise ValueError("grid must be a count or an increasing 1-D array of at least 2 eigenvalues")
    elif grid < 2:
        raise ValueError(f"grid must hold at least 2 points, got {grid}")
    return grid


def spectral_density(model: nn.Module, data, *, num_probes: int = 5, lanczos_steps: int = 80,
                     sigma: Optional[float] = None, grid: Union[int, np.ndarray] = 1000,
                     probe: str = "rademacher", split: str = "train", loss="crossentropy",
                     output=None, hooks: BatchHooks = DEFAULT_HOOKS, batch_size: Optional[int] = None,
                     params: Params = "all", seed: int = 0) -> SpectralDensity:
    """The Hessian's eigenvalue density by stochastic Lanczos quadrature (module docstring).

    Args:
        model: any ``nn.Module``; left unchanged (eval mode while it runs).
        data: any accepted data form; ``split`` picks the split (default ``train``).
        num_probes: random unit start vectors; the moments' spread shrinks as 1/sqrt(num_probes).
        lanczos_steps: Lanczos steps per probe (capped at num_params); memory num_params x steps
            float64. Cost: ``num_probes * lanczos_steps`` Hessian-vector products.
        sigma: width of the Gaussian kernel in eigenvalue units; default 1 % of the spread of
            the nodes (or of their magnitude when they coincide).
        grid: number of evenly spaced eigenvalues over ``[min node - 5 sigma, max node + 5 sigma]``,
            or an explicit (G,) array.
        probe: ``"rademacher"`` (default) or ``"gaussian"`` entries, normalized to unit length.
        loss, output, hooks, batch_size, params: as in :mod:`analysis.curvature` (default every
            parameter).
        seed: seed of the probes.

    Returns:
        :class:`SpectralDensity`: ``grid`` (G,), ``density`` (G,), the nodes and weights (K,).

    Raises:
        ValueError: a bad count, probe kind, sigma or grid.
    """
    num_probes = _check_count("num_probes", num_probes, 1)
    lanczos_steps = _check_count("lanczos_steps", lanczos_steps, 1)
    grid = _check_density_settings(probe, sigma, grid)
    gen = torch.Generator().manual_seed(int(seed))
    nodes, weights, owner = [], [], []
    with evaluating(model):
        obj = curvature_objective(model, data, split=split, loss=loss, output=output, hooks=hooks,
                                  batch_size=batch_size, params=params)
        steps = min(lanczos_steps, obj.dim)
        for p in range(num_probes):
            alphas, betas = _lanczos(obj, _probe(gen, obj.dim, probe), steps)
            theta, vectors = eigh_tridiagonal(alphas, betas)
            nodes.append(theta)
            weights.append(vectors[0] ** 2 / num_probes)
            owner.append(np.full(len(theta), p))
    nodes, weights, owner = np.concatenate(nodes), np.concatenate(weights), np.concatenate(owner)
    if sigma is None:
        spread = nodes.max() - nodes.min()
        sigma = 0.01 * (spread if spread > 0 else max(abs(nodes.max()), 1.0))
    if isinstance(grid, (int, np.integer)):
        grid = np.linspace(nodes.min() - 5 * sigma, nodes.max() + 5 * sigma, int(grid))
    kernel = np.exp(-0.5 * ((grid[:, None] - nodes[None, :]) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    return SpectralDensity(grid, kernel @ weights, nodes, weights, owner, float(sigma), num_probes,
                           steps, int(seed), obj.num_hvp, obj.dim)


def plot_spectral_density(result: SpectralDensity, *, title: Optional[str] = None) -> Figure:
    """The density on a log-scaled density axis (as PyHessian plots it), the extreme
    quadrature nodes marked. Returns a matplotlib ``Figure``."""
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    floor = result.density.max() * 1e-8
    ax.semilogy(result.grid, np.maximum(result.density, floor), color="tab:blue", lw=1.2)
    for value, name in ((result.nodes.min(), "min"), (result.nodes.max(), "max")):
        ax.axvline(value, color="tab:red", ls=":", lw=0.8)
        ax.annotate(f"$\\lambda_{{{name}}}$ = {value:.3g}", (value, result.density.max()),
                    fontsize="small", ha="right" if name == "max" else "left", va="top")
    ax.set_ylim(bottom=floor)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density (log scale)")
    ax.set_title(title or f"Hessian spectral density ({result.num_probes} probes x "
                          f"{result.lanczos_steps} Lanczos steps, sigma {result.sigma:.2g})",
                 fontsize="medium")
    return fig


def _relative_stderr(mean: torch.Tensor, stderr: torch.Tensor) -> float:
    """The median over entries of ``stderr / |mean|`` (0 where both are 0: an exact entry)."""
    rel = torch.where(stderr == 0, torch.zeros_like(stderr), stderr / mean.abs())
    return float(rel.median())


def hessian_diagonal(model: nn.Module, data, *, num_probes: Optional[int] = None, rtol: float = DIAGONAL_RTOL,
                     max_probes: int = DIAGONAL_MAX_PROBES, split: str = "train", loss="crossentropy",
                     output=None, hooks: BatchHooks = DEFAULT_HOOKS, batch_size: Optional[int] = None,
                     params: Params = "all", seed: int = 0) -> HessianDiagonal:
    """Hutchinson's estimate of the Hessian diagonal, ``mean_p z_p * (H z_p)``, z Rademacher.

    The error of entry ``i`` has variance ``sum_{j != i} H_ij^2 / num_probes``; ``stderr`` is
    the sample standard deviation of the products over the probes / sqrt(num_probes).

    Args:
        num_probes: a fixed number of Hessian-vector products (at least 2); None (default):
            probes are added until the median relative standard error of the entries
            (``stderr_i / |value_i|``) is at most ``rtol`` -- checked from
            :data:`DIAGONAL_MIN_PROBES` probes on -- or ``max_probes`` are spent.
        rtol, max_probes: that target (default 0.1: 10 % per entry) and cap (default 500).
        split, loss, output, hooks, batch_size, params: as in :mod:`analysis.curvature`.
        seed: seed of the probes.

    Returns:
        :class:`HessianDiagonal`: ``values`` and ``stderr`` (num_params,) float64, the precision
        reached (``rel_stderr``) and, for the default, ``rtol`` and ``converged``.
    """
    if num_probes is not None:
        num_probes = _check_count("num_probes", num_probes, 2)
    elif not rtol > 0:
        raise ValueError(f"rtol must be positive, got {rtol}")
    cap = num_probes or _check_count("max_probes", max_probes, DIAGONAL_MIN_PROBES)
    gen = torch.Generator().manual_seed(int(seed))
    with evaluating(model):
        obj = curvature_objective(model, data, split=split, loss=loss, output=output, hooks=hooks,
                                  batch_size=batch_size, params=params)
        mean = torch.zeros(obj.dim, dtype=torch.float64)
        spread = torch.zeros(obj.dim, dtype=torch.float64)  # Welford's sum of squared deviations
        for count in range(1, cap + 1):
            z = _probe(gen, obj.dim, "rademacher")
            sample = z * _hvp64(obj, z)
            delta = sample - mean
            mean += delta / count
            spread += delta * (sample - mean)
            if count > 1:
                stderr = (spread / (count - 1) / count).sqrt()
                reached = _relative_stderr(mean, stderr)
                if num_probes is None and count >= DIAGONAL_MIN_PROBES and reached <= rtol:
                    break
    if num_probes is None and reached > rtol:
        warnings.warn(f"Hessian diagonal: median relative standard error {reached:.3g} after {count} probes, "
                      f"above the target {rtol:g} (raise max_probes for more)", stacklevel=2)
    names = {id(p): n for n, p in model.named_parameters()}
    return HessianDiagonal(mean.numpy(), stderr.numpy(), [names[id(p)] for p in obj.params],
                           [tuple(p.shape) for p in obj.params], count, int(seed), obj.num_hvp, obj.dim,
                           reached, None if num_probes else float(rtol),
                           None if num_probes else bool(reached <= rtol))
