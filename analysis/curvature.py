"""Curvature and sharpness of the training loss: Hessian spectrum, trace, convexity, sharpness.

Every function here looks at the *mean* loss over a whole data set ``x`` (n, ...), ``y`` (n,),
evaluated in batches of ``batch_size`` samples. Each batch's loss is weighted by its size / n,
so values (loss, gradient, Hessian eigenvalues) do not depend on the batch size. ``criterion``
maps ``(model(x_batch), y_batch)`` to the batch-mean loss (default: cross entropy).

Only the parameters chosen by ``params`` move or are differentiated: ``"weights"`` (default, the
tensors with dim > 1, as in the loss landscapes), ``"all"``, or an explicit list of parameters.
Vectors over those parameters are flat, of length ``num_params``, in ``model.parameters()``
order.

The model is put in eval mode while these functions run (dropout off, batch norm uses its
running statistics), so the loss is a deterministic function of the parameters; the training
flags and the parameter values are restored afterwards.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import LinearOperator, eigsh
from torch import nn

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Params = Union[str, Sequence[nn.Parameter]]


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


def select_params(model: nn.Module, params: Params = "weights") -> list:
    """The parameters curvature is taken over, in ``model.parameters()`` order."""
    if isinstance(params, str):
        if params not in ("weights", "all"):
            raise ValueError(f"params must be 'weights', 'all' or a list of parameters, got {params!r}")
        chosen = [p for p in model.parameters() if p.requires_grad and (params == "all" or p.dim() > 1)]
    else:
        wanted = {id(p) for p in params}
        chosen = [p for p in model.parameters() if id(p) in wanted]
        if len(chosen) != len(wanted):
            raise ValueError("params holds tensors that are not parameters of the model")
        if not all(p.requires_grad for p in chosen):
            raise ValueError("every chosen parameter must require grad")
    if not chosen:
        raise ValueError(f"the model has no parameters matching params={params!r}")
    return chosen


def _flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


@contextmanager
def _shifted(params: Sequence[torch.Tensor], deltas: Sequence[torch.Tensor]) -> Iterator[None]:
    """Add ``deltas`` to ``params`` for the duration of the block, then restore them exactly."""
    saved = [p.detach().clone() for p in params]
    try:
        with torch.no_grad():
            for p, d in zip(params, deltas):
                p.add_(d.to(device=p.device, dtype=p.dtype))
        yield
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode with gradients enabled; each module's training flag is restored afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.enable_grad():
            yield
    finally:
        for m, flag in flags:
            m.train(flag)


class _Objective:
    """The mean loss over (x, y) as a function of the flat vector of the chosen parameters."""

    def __init__(self, model, x, y, criterion, batch_size, params):
        self.model, self.x, self.y = model, x, y
        self.criterion = criterion or F.cross_entropy
        self.batch_size = batch_size or len(x)
        self.params = select_params(model, params)
        self.dim = sum(p.numel() for p in self.params)
        self.device, self.dtype = self.params[0].device, self.params[0].dtype
        self.num_hvp = 0

    def _batches(self):
        n = len(self.x)
        for start in range(0, n, self.batch_size):
            xb = self.x[start:start + self.batch_size].to(self.device)
            yb = self.y[start:start + self.batch_size].to(self.device)
            yield self.criterion(self.model(xb), yb) * (len(xb) / n)

    def unflat(self, v: torch.Tensor) -> list:
        v = v.to(device=self.device, dtype=self.dtype)
        return [c.view_as(p) for c, p in zip(v.split([p.numel() for p in self.params]), self.params)]

    def shifted(self, delta: torch.Tensor):
        return _shifted(self.params, self.unflat(delta))

    def loss(self) -> float:
        with torch.no_grad():
            return sum(part.item() for part in self._batches())

    def loss_and_gradient(self) -> Tuple[float, torch.Tensor]:
        loss, grad = 0.0, torch.zeros(self.dim, device=self.device, dtype=self.dtype)
        for part in self._batches():
            grad += _flat(torch.autograd.grad(part, self.params, materialize_grads=True))
            loss += part.item()
        return loss, grad

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        """Hessian-vector product by double backprop, ``v`` and the result flat (num_params,)."""
        self.num_hvp += 1
        vs, out = self.unflat(v), torch.zeros(self.dim, device=self.device, dtype=self.dtype)
        for part in self._batches():
            grads = torch.autograd.grad(part, self.params, create_graph=True, materialize_grads=True)
            dot = sum((g * u).sum() for g, u in zip(grads, vs))
            if dot.requires_grad:  # false only when the loss is linear in the parameters
                out += _flat(torch.autograd.grad(dot, self.params, materialize_grads=True))
        return out

    def dense(self) -> np.ndarray:
        """The explicit (num_params, num_params) Hessian from one HVP per basis vector."""
        eye = torch.eye(self.dim, device=self.device, dtype=self.dtype)
        h = torch.stack([self.hvp(e) for e in eye]).double().cpu().numpy()
        return (h + h.T) / 2

    def extremes(self, k: int, which: str, seed: int, tol: float, maxiter: Optional[int]):
        """``k`` eigenpairs at one end ('LA', 'SA') or both ends ('BE'), values ascending."""
        if self.dim <= k + 1:  # too small for ARPACK: take the explicit Hessian
            values, vectors = np.linalg.eigh(self.dense())
            pick = {"LA": np.arange(self.dim - k, self.dim), "SA": np.arange(k), "BE": np.array([0, self.dim - 1])}[which]
            return values[pick], vectors[:, pick]

        def matvec(v):
            return self.hvp(torch.from_numpy(np.asarray(v, dtype=np.float64).ravel())).double().cpu().numpy()

        op = LinearOperator((self.dim, self.dim), matvec=matvec, dtype=np.float64)
        v0 = np.random.default_rng(seed).standard_normal(self.dim)
        values, vectors = eigsh(op, k=k, which=which, v0=v0, tol=tol, maxiter=maxiter)
        order = np.argsort(values)
        return values[order], vectors[:, order]


def hessian_vector_product(model: nn.Module, x: torch.Tensor, y: torch.Tensor, vector, *,
                           criterion: Optional[Criterion] = None, batch_size: Optional[int] = None,
                           params: Params = "weights") -> torch.Tensor:
    """H v for the mean loss over (x, y). ``vector``: flat (num_params,) or one tensor per chosen
    parameter; returns flat (num_params,)."""
    with _evaluating(model):
        obj = _Objective(model, x, y, criterion, batch_size, params)
        v = vector if torch.is_tensor(vector) else _flat(vector)
        return obj.hvp(v).detach()


def dense_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                  criterion: Optional[Criterion] = None, batch_size: Optional[int] = None,
                  params: Params = "weights") -> np.ndarray:
    """The explicit (num_params, num_params) float64 Hessian: num_params HVPs, small models only."""
    with _evaluating(model):
        return _Objective(model, x, y, criterion, batch_size, params).dense()


def top_eigenvalues(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int = 1, *,
                    criterion: Optional[Criterion] = None, batch_size: Optional[int] = None,
                    params: Params = "weights", seed: int = 0, tol: float = 1e-6,
                    maxiter: Optional[int] = None) -> EigenResult:
    """The ``k`` largest (algebraic) Hessian eigenvalues, descending, by Lanczos (ARPACK)."""
    with _evaluating(model):
        obj = _Objective(model, x, y, criterion, batch_size, params)
        values, vectors = obj.extremes(k, "LA", seed, tol, maxiter)
    return EigenResult(values[::-1].copy(), vectors[:, ::-1].copy(), "largest", seed, obj.num_hvp, obj.dim)


def min_eigenvalue(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int = 1, *,
                   criterion: Optional[Criterion] = None, batch_size: Optional[int] = None,
                   params: Params = "weights", seed: int = 0, tol: float = 1e-6,
                   maxiter: Optional[int] = None) -> EigenResult:
    """The ``k`` smallest (most negative) Hessian eigenvalues, ascending, by Lanczos (ARPACK)."""
    with _evaluating(model):
        obj = _Objective(model, x, y, criterion, batch_size, params)
        values, vectors = obj.extremes(k, "SA", seed, tol, maxiter)
    return EigenResult(values, vectors, "smallest", seed, obj.num_hvp, obj.dim)


def hessian_trace(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_probes: int = 99, *,
                  method: str = "hutchinson", criterion: Optional[Criterion] = None,
                  batch_size: Optional[int] = None, params: Params = "weights",
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
    with _evaluating(model):
        obj = _Objective(model, x, y, criterion, batch_size, params)
        gen = torch.Generator().manual_seed(seed)

        def rademacher(m):
            signs = torch.randint(0, 2, (obj.dim, m), generator=gen, dtype=torch.float64) * 2 - 1
            return signs.to(device=obj.device, dtype=obj.dtype)

        def quad(z):  # z^T H z for each column of z
            return torch.stack([col @ obj.hvp(col) for col in z.T]).double()

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


def _convexity(obj: _Objective, seed: int, tol: float, maxiter: Optional[int]) -> Tuple[float, float, float]:
    (lmin, lmax), _ = obj.extremes(2, "BE", seed, tol, maxiter)
    return float(abs(lmin / lmax)), float(lmin), float(lmax)


def convexity_ratio(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                    criterion: Optional[Criterion] = None, batch_size: Optional[int] = None,
                    params: Params = "weights", seed: int = 0, tol: float = 1e-4,
                    maxiter: Optional[int] = None) -> ConvexityResult:
    """``|lambda_min / lambda_max|`` of the Hessian (algebraic extremes, one Lanczos run)."""
    with _evaluating(model):
        obj = _Objective(model, x, y, criterion, batch_size, params)
        ratio, lmin, lmax = _convexity(obj, seed, tol, maxiter)
    return ConvexityResult(ratio, lmin, lmax, seed, obj.dim)


def convexity_map(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  directions: Tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]],
                  xcoords, ycoords, *, criterion: Optional[Criterion] = None,
                  batch_size: Optional[int] = None, params: Params = "weights", seed: int = 0,
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
    with _evaluating(model):
        obj = _Objective(model, x, y, criterion, batch_size, params)
        for i, b in enumerate(ycoords):
            for j, a in enumerate(xcoords):
                with _shifted(all_params, [float(a) * u + float(b) * v for u, v in zip(d1, d2)]):
                    out[:, i, j] = _convexity(obj, seed, tol, maxiter)
    return ConvexityMap(out[0], out[1], out[2], xcoords, ycoords, seed, obj.dim)


def epsilon_sharpness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3, *,
                      steps: int = 10, criterion: Optional[Criterion] = None,
                      batch_size: Optional[int] = None, params: Params = "weights",
                      seed: int = 0) -> SharpnessResult:
    """Keskar et al.'s sharpness ``100 (max_z L(w + z) - L(w)) / (1 + L(w))`` in percent.

    The box is |z_i| <= eps (|w_i| + 1). The max is approximated by ``steps`` steps of
    projected sign-gradient ascent (step 2.5 radius / steps) from a seeded uniform point in the
    box, keeping the largest loss met.
    """
    with _evaluating(model):
        obj = _Objective(model, x, y, criterion, batch_size, params)
        radius = eps * (_flat(obj.params).detach().abs() + 1)
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


def rho_sharpness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, rho: float = 0.05, *,
                  adaptive: bool = False, eta: float = 0.01, criterion: Optional[Criterion] = None,
                  batch_size: Optional[int] = None, params: Params = "weights") -> SharpnessResult:
    """SAM's one-step sharpness ``L(w + e) - L(w)``, e = rho g / ||g|| (g the full gradient).

    ``adaptive=True`` is ASAM's form: e = rho T^2 g / ||T g|| with T = diag(|w| + eta).
    """
    with _evaluating(model):
        obj = _Objective(model, x, y, criterion, batch_size, params)
        base, grad = obj.loss_and_gradient()
        scale = _flat(obj.params).detach().abs() + eta if adaptive else torch.ones_like(grad)
        step = rho * scale ** 2 * grad / (scale * grad).norm().clamp_min(1e-12)
        with obj.shifted(step):
            perturbed = obj.loss()
    return SharpnessResult(perturbed - base, base, perturbed, "asam" if adaptive else "rho", rho, 0.0, 1, None)


def average_sharpness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigma: float = 0.01, *,
                      num_samples: int = 20, criterion: Optional[Criterion] = None,
                      batch_size: Optional[int] = None, params: Params = "weights",
                      seed: int = 0) -> SharpnessResult:
    """Average-case sharpness ``E[L(w + sigma e)] - L(w)``, e ~ N(0, I), over ``num_samples``
    seeded draws; ``stderr`` is the standard error of the mean."""
    with _evaluating(model):
        obj = _Objective(model, x, y, criterion, batch_size, params)
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
