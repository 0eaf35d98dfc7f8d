"""The Hessian of the mean loss over a data set: its vector products and its top eigenvectors.

:class:`Objective` is the mean loss over one split of ``data`` (any form of
:func:`regularizers.evaluation.data_splits`) as a function of the flat vector of the chosen
parameters (``params``: ``"all"``, ``"weights"`` -- tensors with dim > 1 -- or a list). Every
curvature number of the toolkit (:mod:`analysis.curvature`, :mod:`analysis.spectrum`) and the
Hessian directions of loss surfaces (:func:`hessian_directions`, the ``kind="hessian"`` axis of
:class:`landscape.recipes.AxisRecipe`) goes through it.

Hessian-vector products reuse the first backward's graph, as PyHessian does: the gradient of
each batch is taken once with ``create_graph=True`` and kept, and every product is then one
``autograd.grad(grads, params, v, retain_graph=True)`` per batch. The graphs of the first
batches are kept while they fit in :func:`memory_budget` (measured, not guessed: the bytes
autograd saves are counted); the batches beyond recompute their forward pass and first backward
for every product. Staged
data is cut into batches whose graph fits the budget (measured on a probe batch) unless
``batch_size`` is given. Batch losses are summed and divided by the number of examples, so the
values do not depend on the batching.

Every forward pass runs in eval mode under the math kernel of ``scaled_dot_product_attention``
(the fused CPU/flash kernels have no double backward), so attention models work.
"""
from __future__ import annotations

import math
import sys
import time
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from torch import nn

try:  # torch >= 2.3
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def math_attention():
        """``scaled_dot_product_attention`` on its math kernel, the one with a double backward."""
        return sdpa_kernel(SDPBackend.MATH)
except ImportError:  # torch 2.2
    def math_attention():
        """``scaled_dot_product_attention`` on its math kernel, the one with a double backward."""
        return torch.backends.cuda.sdp_kernel(enable_flash=False, enable_math=True, enable_mem_efficient=False)

from regularizers.evaluation import (DEFAULT_HOOKS, BatchHooks, Tensors, loss_name, resolve_loss, seeded_subset,
                                     select_output, split_source, summed_loss)

from .directions import Directions
from .grid import free_memory

Params = Union[str, Sequence[nn.Parameter]]
MEMORY_CAP = 2 << 30      # bytes of autograd graph held at once (2 GiB) ...
MEMORY_FRACTION = 0.25    # ... or this fraction of the free memory when that is less
PROBE_EXAMPLES = 8        # examples of the batch that measures the graph's bytes per example


def select_params(model: nn.Module, params: Params = "all") -> list:
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


def flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The tensors concatenated into one flat vector."""
    return torch.cat([t.reshape(-1) for t in tensors])


@contextmanager
def shifted(params: Sequence[torch.Tensor], deltas: Sequence[torch.Tensor]) -> Iterator[None]:
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
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode, gradients on, attention on the twice-differentiable math kernel; each
    module's training flag is restored afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.enable_grad(), math_attention():
            yield
    finally:
        for m, flag in flags:
            m.train(flag)


def memory_budget(device: torch.device) -> int:
    """Bytes of autograd graph held at once: :data:`MEMORY_CAP`, or :data:`MEMORY_FRACTION` of
    the device's free memory when that is less."""
    return int(min(MEMORY_CAP, MEMORY_FRACTION * free_memory(device)))


class _SavedBytes:
    """Counts the bytes autograd saves inside the block (distinct storages, parameters excluded)."""

    def __init__(self, params: Sequence[torch.Tensor]):
        self.skip = {p.untyped_storage().data_ptr() for p in params}
        self.sizes = {}

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        """Count ``t``'s storage once; ``t`` is kept as it is."""
        try:
            key, size = t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()
        except (RuntimeError, NotImplementedError):  # tensors without a plain storage
            key, size = id(t), t.numel() * t.element_size()
        if key not in self.skip:
            self.sizes[key] = max(self.sizes.get(key, 0), size)
        return t

    @property
    def total(self) -> int:
        return sum(self.sizes.values())


class Objective:
    """The mean loss over one split of ``data`` as a function of the flat vector of the chosen
    parameters; vectors are flat (num_params,) in ``model.parameters()`` order. Use inside
    :func:`evaluating`.

    Args:
        batch_size: examples per batch of staged data; None: chosen by memory (module docstring).
            A loader keeps its own batches.
        hooks: how batches are read (:class:`regularizers.evaluation.BatchHooks`), e.g. dict
            batches with the labels inside.
        reuse: keep each batch's first-backward graph for every product (True), never (False),
            or while the graphs fit in ``budget`` bytes (None, default: :func:`memory_budget`).
    """

    def __init__(self, model, data, loss="crossentropy", batch_size=None, params: Params = "all",
                 output=None, hooks: BatchHooks = DEFAULT_HOOKS, *, split: str = "train",
                 reuse: Optional[bool] = None, budget: Optional[int] = None):
        self.model, self.output, self.hooks, self.reuse = model, output, hooks, reuse
        self.source = split_source(data, split, hooks)
        self.fn = resolve_loss(loss)
        self.params = select_params(model, params)
        self.dim = sum(p.numel() for p in self.params)
        self.device, self.dtype = self.params[0].device, self.params[0].dtype
        self.budget = memory_budget(self.device) if budget is None else int(budget)
        self.num_hvp, self.count, self.graph_bytes = 0, None, None
        self._cache, self._key, self._total, self._used = [], None, None, 0
        self.batch_size = batch_size
        if batch_size is None and isinstance(self.source, Tensors):
            self.batch_size = self._batch_size_by_memory()

    def _part(self, inputs, targets) -> Tuple[torch.Tensor, int]:
        """``(summed loss of the batch, examples in it)``."""
        inputs, targets = self.hooks.to(inputs, self.device), self.hooks.to(targets, self.device)
        n = self.hooks.size(inputs)
        outputs = select_output(self.hooks.call(self.model, inputs), self.output)
        return summed_loss(self.fn, outputs, targets, n), n

    def _parts(self):
        """``(summed loss, examples)`` for every batch of the data."""
        for inputs, targets in self.source.batches(self.batch_size):
            yield self._part(inputs, targets)

    def _graph(self, inputs, targets) -> Tuple[tuple, int, int]:
        """``(create_graph gradients, examples, bytes of graph saved)`` of one batch."""
        counter = _SavedBytes(self.params)
        with torch.autograd.graph.saved_tensors_hooks(counter.pack, lambda t: t):
            part, n = self._part(inputs, targets)
            grads = torch.autograd.grad(part, self.params, create_graph=True, materialize_grads=True)
        return grads, n, counter.total

    def _batch_size_by_memory(self) -> int:
        """The most examples whose graph fits the budget, from a probe batch's saved bytes."""
        total = len(self.source)
        if total == 0:
            raise ValueError("the data has no examples to take the Hessian on")
        inputs, targets = next(self.source.batches(min(total, PROBE_EXAMPLES)))
        _, n, used = self._graph(inputs, targets)
        self.graph_bytes = used / n * total  # estimate for the whole split, from the probe
        return int(max(1, min(total, self.budget // max(used / n, 1))))

    def unflat(self, v: torch.Tensor) -> list:
        """A flat vector as one tensor per chosen parameter (their dtype and device)."""
        v = v.to(device=self.device, dtype=self.dtype)
        return [c.view_as(p) for c, p in zip(v.split([p.numel() for p in self.params]), self.params)]

    def shifted(self, delta: torch.Tensor):
        """The chosen parameters moved by the flat ``delta`` inside the block."""
        return shifted(self.params, self.unflat(delta))

    def loss(self) -> float:
        """The mean loss over the data."""
        with torch.no_grad():
            total, count = 0.0, 0
            for part, n in self._parts():
                total, count = total + part.item(), count + n
            return total / count

    def loss_and_gradient(self) -> Tuple[float, torch.Tensor]:
        """The mean loss and its flat gradient (num_params,)."""
        loss, count, grad = 0.0, 0, torch.zeros(self.dim, device=self.device, dtype=self.dtype)
        for part, n in self._parts():
            grad += flat(torch.autograd.grad(part, self.params, materialize_grads=True))
            loss, count = loss + part.item(), count + n
        return loss / count, grad / count

    def _state(self) -> tuple:
        """What the kept graphs depend on: the parameters' identities and in-place versions."""
        return tuple((id(p), p._version) for p in self.model.parameters())

    def _graphs(self) -> Iterator[Tuple[tuple, int, bool]]:
        """``(create_graph gradients, examples, graph kept)`` of every batch. The graphs of the
        first batches are kept while their measured bytes fit the budget (all of them with
        ``reuse=True``, none with ``False``) and reused until a parameter changes; the batches
        beyond are recomputed on every pass."""
        state = self._state()
        if self._key != state:  # first pass, or the parameters moved: forget the kept graphs
            self._cache, self._key, self._total, self._used = [], state, None, 0
        if self._total is not None and len(self._cache) == self._total:  # all kept: no data to read
            yield from ((grads, n, True) for grads, n in self._cache)
            return
        closed, count, index = self._total is not None, 0, -1
        for index, (inputs, targets) in enumerate(self.source.batches(self.batch_size)):
            if index < len(self._cache):
                grads, n = self._cache[index]
                yield grads, n, True
                count += n
                continue
            grads, n, size = self._graph(inputs, targets)
            keep = not closed and self.reuse is not False and (self.reuse or self._used + size <= self.budget)
            closed = closed or not keep  # the kept graphs are a prefix of the batches
            if keep:
                self._cache.append((grads, n))
                self._used += size
            yield grads, n, keep
            count += n
        if count == 0:
            raise ValueError("the data has no examples to take the Hessian on")
        self._total, self.count = index + 1, count

    @property
    def kept_batches(self) -> int:
        """Batches whose first-backward graph is kept for the next products."""
        return len(self._cache)

    @property
    def kept_bytes(self) -> int:
        """Bytes autograd saved for the kept graphs (measured)."""
        return self._used

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        """Hessian-vector product, ``v`` flat (num_params,); the result flat float64 on the device."""
        self.num_hvp += 1
        vs, out = self.unflat(v), torch.zeros(self.dim, device=self.device, dtype=torch.float64)
        for grads, _, keep in self._graphs():
            pairs = [(g, u) for g, u in zip(grads, vs) if g.requires_grad]
            if pairs:  # none only when the loss is linear in the parameters
                out += flat(torch.autograd.grad([g for g, _ in pairs], self.params, [u for _, u in pairs],
                                                retain_graph=keep, materialize_grads=True)).double()
        return out / self.count

    def dense(self) -> np.ndarray:
        """The explicit (num_params, num_params) Hessian from one HVP per basis vector."""
        eye = torch.eye(self.dim, device=self.device, dtype=self.dtype)
        h = torch.stack([self.hvp(e) for e in eye]).cpu().numpy()
        return (h + h.T) / 2

    def extremes(self, k: int, which: str, seed: int, tol: float, maxiter: Optional[int],
                 on_product=None) -> Tuple[np.ndarray, np.ndarray]:
        """``k`` eigenpairs at one end ('LA', 'SA') or both ends ('BE') by Lanczos (ARPACK),
        values ascending (k,), vectors (num_params, k); ``on_product()`` after each HVP."""
        if self.dim <= k + 1:  # too small for ARPACK: take the explicit Hessian
            values, vectors = np.linalg.eigh(self.dense())
            pick = {"LA": np.arange(self.dim - k, self.dim), "SA": np.arange(k), "BE": np.array([0, self.dim - 1])}[which]
            return values[pick], vectors[:, pick]

        def matvec(v):
            product = self.hvp(torch.from_numpy(np.asarray(v, dtype=np.float64).ravel())).cpu().numpy()
            if on_product is not None:
                on_product()
            return product

        op = LinearOperator((self.dim, self.dim), matvec=matvec, dtype=np.float64)
        v0 = np.random.default_rng(seed).standard_normal(self.dim)
        values, vectors = eigsh(op, k=k, which=which, v0=v0, tol=tol, maxiter=maxiter)
        order = np.argsort(values)
        return values[order], vectors[:, order]


class Progress:
    """A one-line progress report on stderr, rewritten in place: ``<what>: N products, T s``."""

    def __init__(self, what: str, enabled: bool = True):
        self.what, self.enabled, self.count, self.start = what, enabled, 0, time.perf_counter()

    @property
    def seconds(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self.start

    def step(self) -> None:
        """One more Hessian-vector product."""
        self.count += 1
        if self.enabled:
            print(f"\r{self.what}: {self.count} Hessian-vector products, {self.seconds:.1f} s",
                  end="", file=sys.stderr, flush=True)

    def done(self, text: str) -> None:
        """The final line."""
        if self.enabled:
            print(f"\r{self.what}: {text} ({self.count} Hessian-vector products, {self.seconds:.1f} s)",
                  file=sys.stderr, flush=True)


def _as_direction(model: nn.Module, chosen: List[nn.Parameter], vector: np.ndarray) -> List[torch.Tensor]:
    """A flat eigenvector as one tensor per named parameter (zeros outside ``chosen``), its
    largest-magnitude entry made positive."""
    vector = vector * np.sign(vector[np.argmax(np.abs(vector))])
    ids, pieces, start = {id(p) for p in chosen}, [], 0
    for _, p in model.named_parameters():
        if id(p) in ids:
            piece = torch.from_numpy(vector[start:start + p.numel()].copy()).reshape(p.shape)
            start += p.numel()
        else:
            piece = torch.zeros(p.shape, dtype=torch.float64)
        pieces.append(piece.to(p.dtype))
    return pieces


def hessian_directions(model: nn.Module, data, k: int = 2, *, split: str = "train", loss="crossentropy",
                       output=None, params: Params = "all", batch_size: Optional[int] = None,
                       hooks: BatchHooks = DEFAULT_HOOKS, seed: int = 0, tol: float = 1e-6,
                       maxiter: Optional[int] = None, progress: bool = False) -> Directions:
    """The ``k`` (1 to 3) top Hessian eigenvectors at the model as landscape :class:`Directions`.

    Lanczos finds the ``k`` largest algebraic eigenvalues (descending: x is the sharpest
    direction). Near a minimum ``L(w + a v_k) = L(w) + a g.v_k + lambda_k a^2 / 2 + O(a^3)``.
    Each direction is the unit eigenvector in the direction-file layout (one tensor per
    ``model.named_parameters()`` entry, ``dir_type="weights"``, zeros outside ``params``, largest
    entry positive), so coordinates along it are Euclidean distances (no filter normalization).

    Args:
        data: any form of :func:`regularizers.evaluation.data_splits`; ``split`` picks the split.
        loss, output, params, batch_size, hooks: as for :class:`Objective`.
        seed, tol, maxiter: of the Lanczos solver.
        progress: a progress line on stderr.

    Returns:
        :class:`Directions`, ``info`` per axis ``{"kind": "hessian", "seed": seed}``, ``meta``:
        ``eigenvalues`` (k,) descending, ``params``, ``loss``, ``split``, ``examples``, ``num_hvp``.

    Raises:
        ValueError: ``k`` outside 1..3, or more directions than chosen parameter entries.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 3:
        raise ValueError(f"k must be 1, 2 or 3 directions, got {k!r}")
    with evaluating(model):
        obj = Objective(model, data, loss, batch_size, params, output, hooks, split=split)
        if k > obj.dim:
            raise ValueError(f"{k} Hessian directions need at least {k} chosen parameter entries")
        report = Progress(f"Hessian directions (top {k} on the {split} split)", progress)
        values, vectors = obj.extremes(int(k), "LA", seed, tol, maxiter, on_product=report.step)
    values, vectors = values[::-1], vectors[:, ::-1]
    report.done(f"eigenvalues {', '.join(f'{v:.4g}' for v in values)} on {obj.count} examples")
    meta = {"eigenvalues": values.tolist(), "params": params if isinstance(params, str) else "list",
            "loss": loss_name(loss), "split": split, "examples": obj.count, "num_hvp": obj.num_hvp,
            "seconds": report.seconds}
    axes = [_as_direction(model, obj.params, v) for v in vectors.T]
    return Directions(axes, "weights", [{"kind": "hessian", "seed": int(seed)} for _ in axes], meta)


def curvature_along(model: nn.Module, data, directions: Directions, *, split: str = "train",
                    loss="crossentropy", output=None, batch_size: Optional[int] = None,
                    hooks: BatchHooks = DEFAULT_HOOKS) -> List[float]:
    """``d^T H d / d^T d`` for each axis ``d`` of ``directions`` (weights layout) over one split:
    the second derivative of the loss along the unit direction, in loss units per squared
    parameter unit (for a Hessian eigenvector on the same data, its eigenvalue)."""
    with evaluating(model):
        obj = Objective(model, data, loss, batch_size, "all", output, hooks, split=split)
        chosen, out = {id(p) for p in obj.params}, []
        for axis in directions.axes:
            pieces = [t for t, (_, p) in zip(axis, model.named_parameters()) if id(p) in chosen]
            v = flat([t.to(torch.float64) for t in pieces]).to(obj.device)
            out.append(float(v @ obj.hvp(v) / (v @ v)) if float(v @ v) > 0 else math.nan)
    return out


def hessian_axes(model: nn.Module, recipes: Sequence) -> Directions:
    """The top ``len(recipes)`` Hessian eigenvectors as the axes of ``recipes`` (each a
    :class:`landscape.recipes.AxisRecipe` of kind ``"hessian"``; the first one's data, loss,
    samples and seed are used).

    ``info`` per axis: the recipe's settings, its ``eigenvalue`` and the ``examples`` it was
    found on; with a subset (``samples``) smaller than the train split, also ``curvature_all``:
    the curvature along the axis over the whole split -- the curvature of the surface drawn on
    it -- so that both numbers are kept.

    Raises:
        ValueError: a recipe of another kind, or ``samples`` with streamed data.
    """
    if any(r.kind != "hessian" for r in recipes):
        raise ValueError("Hessian axes cannot be mixed with random or target axes")
    first = recipes[0]
    data = first.data
    if first.samples is not None:
        source = split_source(data, "train")
        if not isinstance(source, Tensors):
            raise ValueError("a Hessian subset (samples=) needs staged (x, y) data, not a loader")
        data = {"train": seeded_subset(source.x, source.y, first.samples, first.seed)}
    found = hessian_directions(model, data, len(recipes), loss=first.loss, output=first.output, seed=first.seed,
                               progress=first.progress)
    info = [{**r.info(), "eigenvalue": value, "examples": found.meta["examples"]}
            for r, value in zip(recipes, found.meta["eigenvalues"])]
    if first.samples is not None and first.samples < len(split_source(first.data, "train")):
        for entry, value in zip(info, curvature_along(model, first.data, found, loss=first.loss, output=first.output)):
            entry["curvature_all"] = value
    return Directions(found.axes, "weights", info, found.meta)
