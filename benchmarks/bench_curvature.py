"""Curvature speed: Hessian trace and top eigenvalue against PyHessian's method, reimplemented.

PyHessian (Yao et al. 2020, "PyHessian: Neural Networks Through the Lens of the Hessian",
arXiv:1912.07145) takes the gradient once with ``create_graph=True`` and then computes every
Hessian-vector product as ``autograd.grad(grads, params, v, retain_graph=True)`` on that graph.
:class:`GraphReusing` below is that method in a few lines (our own code; PyHessian itself is not
installed). Against it, on the same model, data and number of Hessian-vector products:

- **trace**: :func:`analysis.curvature.hessian_trace` (Hutchinson, ``--probes`` Rademacher
  probes) vs the reference's Hutchinson loop with the same probe count;
- **top eigenvalue**: :func:`analysis.curvature.top_eigenvalues` (Lanczos, ARPACK, to 1e-3
  relative) vs the reference's power iteration (PyHessian's ``eigenvalues``) run for the same
  number of products the Lanczos solve used.

Both sides run at the library's defaults (batch size chosen by memory: here the whole set
fits, as in PyHessian's one-batch mode) and include their set-up (forward pass and first
backward). Times are CPU seconds of this process (``time.process_time``, one torch thread by
default), which a busy shared machine does not inflate as it does wall time; the best of
``--rounds`` rounds, alternating which side goes first, counts. The ratio is ours / reference (goal <= 1.0). Values
are printed side by side (the trace estimates use different probe draws, so they agree
within their standard errors, not exactly).

    python benchmarks/bench_curvature.py [--probes 20] [--rounds 3] [--threads 1] [--models cnn,resnet20]
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from analysis.curvature import hessian_trace, top_eigenvalues
from landscape import hessian
from regularizers.models import create_model


class GraphReusing:
    """PyHessian's method, reimplemented: one create_graph backward, then repeated autograd.grad."""

    def __init__(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor):
        self.params = [p for p in model.parameters() if p.requires_grad]
        loss = F.cross_entropy(model(inputs), targets)
        self.grads = torch.autograd.grad(loss, self.params, create_graph=True)

    def hvp(self, vs):
        """H v, one tensor per parameter, on the kept graph."""
        return torch.autograd.grad(self.grads, self.params, grad_outputs=vs, retain_graph=True)

    def trace(self, probes: int, seed: int = 0) -> float:
        """Hutchinson's trace estimate from ``probes`` Rademacher probes."""
        gen, total = torch.Generator().manual_seed(seed), 0.0
        for _ in range(probes):
            vs = [torch.randint(0, 2, p.shape, generator=gen).to(p.dtype) * 2 - 1 for p in self.params]
            total += sum((h * v).sum() for h, v in zip(self.hvp(vs), vs)).item()
        return total / probes

    def top_eigenvalue(self, iterations: int, seed: int = 0) -> float:
        """Power iteration for ``iterations`` products (PyHessian's ``eigenvalues``, one vector)."""
        gen = torch.Generator().manual_seed(seed)
        vs = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in self.params]
        value = 0.0
        for _ in range(iterations):
            norm = torch.sqrt(sum((v * v).sum() for v in vs))
            vs = [v / norm for v in vs]
            hv = self.hvp(vs)
            value = sum((h * v).sum() for h, v in zip(hv, vs)).item()
            vs = [h.detach() for h in hv]
        return value


def cnn() -> nn.Module:
    """A small conv net on 1x28x28 (no BN, so eval and train mode agree)."""
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(16 * 7 * 7, 10))


MODELS = {"cnn": (cnn, (1, 28, 28), 256),
          "resnet20": (lambda: create_model("resnet20", num_classes=10, in_channels=3), (3, 32, 32), 128)}


def best(fn, rounds: int):
    """(best CPU seconds, last value) over ``rounds`` calls."""
    times, value = [], None
    for _ in range(rounds):
        start = time.process_time()
        value = fn()
        times.append(time.process_time() - start)
    return min(times), value


def recomputing(fn):
    """``fn`` with a graph budget of 0 bytes: every product redoes the forward pass and first
    backward (the library before graph reuse, and its fallback beyond the memory budget); give
    ``fn`` an explicit batch size, as the budget also sizes the default batches."""
    def call():
        cap, hessian.MEMORY_CAP = hessian.MEMORY_CAP, 0
        try:
            return fn()
        finally:
            hessian.MEMORY_CAP = cap
    return call


def run(name: str, probes: int, rounds: int, recompute: bool = False) -> list:
    """Table rows ``(model, quantity, HVPs, ours s, reference s, our value, reference value,
    recomputing s or None)``."""
    build, shape, samples = MODELS[name]
    torch.manual_seed(0)
    model = build().eval()
    inputs, targets = torch.randn(samples, *shape), torch.randint(0, 10, (samples,))
    eig = top_eigenvalues(model, (inputs, targets), k=1, tol=1e-3)
    hvps = eig.num_hvp
    cases = {
        "trace": (lambda **kw: hessian_trace(model, (inputs, targets), num_probes=probes, **kw).mean,
                  lambda: GraphReusing(model, inputs, targets).trace(probes), probes),
        "top eigenvalue": (lambda **kw: top_eigenvalues(model, (inputs, targets), k=1, tol=1e-3, **kw).values[0],
                           lambda: GraphReusing(model, inputs, targets).top_eigenvalue(hvps), hvps),
    }
    rows = []
    for what, (ours, reference, products) in cases.items():
        t_ref = t_ours = float("inf")
        for round_ in range(rounds):  # alternating sides and order, so both meet the same machine load
            for side in ((reference, ours) if round_ % 2 == 0 else (ours, reference)):
                t, value = best(side, 1)
                if side is reference:
                    t_ref, v_ref = min(t_ref, t), value
                else:
                    t_ours, v_ours = min(t_ours, t), value
        t_old = best(recomputing(lambda: ours(batch_size=samples)), 1)[0] if recompute else None
        rows.append((name, what, products, t_ours, t_ref, v_ours, v_ref, t_old))
    return rows


def main() -> None:
    """Parse the flags, run the models, print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=20, help="Hutchinson probes of both traces")
    parser.add_argument("--rounds", type=int, default=3, help="timed repetitions; the best counts")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--recompute", action="store_true",
                        help="also time ours with every graph recomputed (budget 0; one round)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), CPU seconds, best of {args.rounds}")
    print("| model | quantity | HVPs | ours (s) | PyHessian's method (graph reuse, reimplemented) (s) | ratio "
          "| ours (value) | reference (value) | recomputing (s) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.models.split(","):
        for model, what, products, t_ours, t_ref, v_ours, v_ref, t_old in run(name, args.probes, args.rounds,
                                                                               args.recompute):
            old = "-" if t_old is None else f"{t_old:.3f} ({t_old / t_ref:.2f}x)"
            print(f"| {model} | {what} | {products} | {t_ours:.3f} | {t_ref:.3f} | {t_ours / t_ref:.2f}x "
                  f"| {v_ours:.5g} | {v_ref:.5g} | {old} |", flush=True)


if __name__ == "__main__":
    main()
