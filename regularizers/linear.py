"""Linear Regularization (LinR) and its variants LinRC, LinRNL, LinRNM; the refine schedule.

LinR (eqs. 4-7) asks the network to be linear on its output distributions:
``KL(P1 || P2)`` with ``P1 = f(a x + b y)`` and ``P2 = a f(x) + b f(y)``, ``b = 1 - a``,
``a ~ Beta(0.75, 0.75)`` (one draw per batch, as in mixup), ``f`` the softmax of the logits and
``P2`` detached. The pairs ``(x, y)`` are a batch and the same batch shuffled. Variants:

- LinRC (eq. 9): only the entries with ``P2 > 1/NC`` count (NC = number of classes);
- LinRNL: refine without labels (no classification iterations);
- LinRNM (eq. 10): no mix, ``KL(f(a x) || a f(x))``; as ``a f(x)`` sums to ``a`` the value
  carries a constant ``-log a`` (no gradient);
- Table 6 ablations: ``distance="mse"`` and ``detach=False`` (gradient through P2);
- multi-label: each logit is a Bernoulli probability (sigmoid); the divergence sums the
  two-outcome KL over the labels (LinRC then keeps outcomes above 1/2).

Source: "Linear Regularization: An easy approach to refine your model" (seed 000), Algorithm 1
and the settings of its Sec. 4.2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .base import Regularizer

DISTANCES = ("kl", "mse")
LINR_OPTIONS = ("mix", "alpha", "distance", "confidence", "detach", "multilabel")


def log_probs(logits: torch.Tensor, multilabel: bool = False) -> torch.Tensor:
    """Log-probabilities over the last dim: ``(b, K)`` softmax, or ``(b, K, 2)`` per-label
    Bernoulli ``(log p, log(1 - p))`` with ``p = sigmoid(logits)`` for ``multilabel``."""
    if multilabel:
        return torch.stack([F.logsigmoid(logits), F.logsigmoid(-logits)], dim=-1)
    return F.log_softmax(logits, dim=-1)


def linr_divergence(log_p1: torch.Tensor, p2: torch.Tensor, distance: str = "kl",
                    confidence: bool = False) -> torch.Tensor:
    """``Dis(P1, P2)`` averaged over the batch (first dim), summed over the other dims.

    ``log_p1``: log-probabilities of P1; ``p2``: probabilities of P2 (same shape, the last dim
    holds the outcomes). ``kl``: ``sum P1 (log P1 - log P2)`` (eq. 7, written out: P1 is the
    first argument). ``mse``: ``sum (P1 - P2)^2`` (Table 6). ``confidence`` keeps only the
    entries with ``P2 > 1/NC``, ``NC = p2.shape[-1]`` (LinRC, eq. 9).
    """
    if distance not in DISTANCES:
        raise ValueError(f"unknown LinR distance {distance!r}; choose one of {DISTANCES}")
    p1 = log_p1.exp()
    if distance == "kl":
        terms = p1 * (log_p1 - p2.clamp_min(torch.finfo(p2.dtype).tiny).log())
    else:
        terms = (p1 - p2).pow(2)
    if confidence:
        terms = terms * (p2 > 1.0 / p2.shape[-1])
    return terms.sum() / len(terms)


def linr_loss(model: nn.Module, x: torch.Tensor, *, a: Optional[float] = None,
              perm: Optional[torch.Tensor] = None, logits: Optional[torch.Tensor] = None,
              mix: bool = True, alpha: float = 0.75, distance: str = "kl",
              confidence: bool = False, detach: bool = True, multilabel: bool = False) -> torch.Tensor:
    """LinR loss of a batch ``x`` (``(b, ...)``) paired with ``x[perm]``; a scalar.

    ``a`` defaults to a ``Beta(alpha, alpha)`` draw, ``perm`` to a random permutation,
    ``logits`` to ``model(x)`` (pass them to reuse a forward pass; ``f(x[perm])`` is taken as
    ``f(x)[perm]``, exact for per-sample networks and batch norm alike). ``mix=False`` is LinRNM.
    The mixes use ``torch.lerp`` so ``perm = identity`` gives ``P1 = P2`` up to rounding.
    """
    if a is None:
        a = torch.distributions.Beta(alpha, alpha).sample().item()
    if logits is None:
        logits = model(x)
    p = log_probs(logits, multilabel).exp()
    if mix:
        if perm is None:
            perm = torch.randperm(len(x), device=x.device)
        log_p1 = log_probs(model(torch.lerp(x[perm], x, a)), multilabel)
        p2 = torch.lerp(p[perm], p, a)
    else:
        log_p1 = log_probs(model(a * x), multilabel)
        p2 = a * p
    return linr_divergence(log_p1, p2.detach() if detach else p2, distance, confidence)


class LinR(Regularizer):
    """LinR as a ``loss`` hook: ``criterion(f(x), y) + coefficient * linr_loss`` (one shared
    forward of ``x``), or ``coefficient * linr_loss`` alone with ``labels=False`` (LinRNL).

    Registry variants: ``linrc`` (``confidence=True``), ``linrnl`` (``labels=False``),
    ``linrnm`` (``mix=False``). Other options go to :func:`linr_loss` (``alpha``,
    ``distance``, ``detach``, ``multilabel``). Default coefficient 1. The paper's own schedule,
    alternating the two losses with separate optimizers, is :func:`refine`.
    """

    name = "linr"
    coefficient = 1.0

    def __init__(self, coefficient: Optional[float] = None, labels: bool = True, **options):
        if coefficient is not None:
            self.coefficient = float(coefficient)
        unknown = set(options) - set(LINR_OPTIONS)
        if unknown:
            raise ValueError(f"linr: unknown option(s) {sorted(unknown)}; choose from {LINR_OPTIONS}")
        if options.get("distance", "kl") not in DISTANCES:
            raise ValueError(f"linr: distance must be one of {DISTANCES}, got {options['distance']!r}")
        self.labels = bool(labels)
        self.options = options

    def loss(self, model, x, y, criterion):
        """``criterion`` on the batch plus the LinR penalty on interpolated inputs (a scalar tensor)."""
        logits = model(x)
        reg = self.coefficient * linr_loss(model, x, logits=logits, **self.options)
        return criterion(logits, y) + reg if self.labels else reg

    def __repr__(self) -> str:
        return f"LinR(coefficient={self.coefficient}, labels={self.labels}, options={self.options})"


@dataclass
class RefineHistory:
    """Accuracies (percent) of :func:`refine`: before refining and after each round."""

    initial_train_acc: float
    initial_test_acc: float
    train_acc: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)


def _batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator):
    """Endless shuffled mini-batches, one pass of the data after another."""
    while True:
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            yield x[idx], y[idx]


def refine(model: nn.Module, data, rounds: int = 50, n_cls: Optional[int] = None,
           n_linr: Optional[int] = None, *, labels: bool = True, batch_cls: int = 128,
           batch_linr: int = 128, lr_cls: float = 3e-4, lr_linr: float = 1e-2,
           momentum: float = 0.9, weight_decay_cls: float = 5e-4, seed: int = 0,
           eval_batch_size: int = 1000, **linr_options) -> RefineHistory:
    """Algorithm 1: ``rounds`` (T) rounds of ``n_cls`` cross-entropy iterations, then ``n_linr``
    LinR iterations, starting from the (converged) ``model``; trains it in place.

    Defaults are the paper's (Sec. 4.2): T = 50; classification SGD lr 3e-4, momentum 0.9,
    weight decay 5e-4; LinR SGD lr 1e-2 (or 1e-3), momentum 0.9, no weight decay;
    ``n_cls`` and ``n_linr`` default to one pass over the training data (``N / B``).
    ``labels=False`` is LinRNL (no classification iterations); ``linr_options`` go to
    :func:`linr_loss` (``confidence=True``: LinRC, ``mix=False``: LinRNM, ...).
    ``data`` is a :class:`regularizers.data.Dataset`; accuracies are on its train and test splits.
    """
    from .evaluation import evaluate

    device = next(model.parameters()).device
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    n_cls = math.ceil(len(x_train) / batch_cls) if n_cls is None else n_cls
    n_linr = math.ceil(len(x_train) / batch_linr) if n_linr is None else n_linr
    generator = torch.Generator().manual_seed(seed)
    cls_batches = _batches(x_train, y_train, batch_cls, generator)
    linr_batches = _batches(x_train, y_train, batch_linr, generator)
    opt_cls = torch.optim.SGD(model.parameters(), lr=lr_cls, momentum=momentum,
                              weight_decay=weight_decay_cls)
    opt_linr = torch.optim.SGD(model.parameters(), lr=lr_linr, momentum=momentum)

    def step(optimizer, loss):
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    history = RefineHistory(evaluate(model, (x_train, y_train), batch_size=eval_batch_size)[1],
                            evaluate(model, (x_test, y_test), batch_size=eval_batch_size)[1])
    model.train()
    for _ in range(rounds):
        for _ in range(n_cls if labels else 0):
            x, y = next(cls_batches)
            step(opt_cls, F.cross_entropy(model(x), y))
        for _ in range(n_linr):
            x, _y = next(linr_batches)
            step(opt_linr, linr_loss(model, x, **linr_options))
        history.train_acc.append(evaluate(model, (x_train, y_train), batch_size=eval_batch_size)[1])
        history.test_acc.append(evaluate(model, (x_test, y_test), batch_size=eval_batch_size)[1])
    return history
