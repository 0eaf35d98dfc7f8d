"""Numerical Tammes problem: spread ``n`` unit vectors in R^d to maximize their minimal pairwise
angle, by gradient descent on one of the energies compared in MMA Table 1.

The energies are the layer losses of :mod:`regularizers.angular`, applied to the ``(n, d)``
matrix of points (they normalize its rows): ``"mma"`` (eq. 6), ``"cosine"`` (eq. 5),
``"riesz"`` (Riesz-Fisher eq. 9 with s = 2, ``mhe_loss(w, s=2)``) and ``"log"`` (eq. 11,
``mhe_loss(w, s=0)``).

Optimizer: points drawn from a standard normal (seeded), SGD with momentum 0.9 on the energy of
the normalized rows, rows renormalized after every step (projected GD). The learning rate decays
from ``lr`` to 0 on a cosine schedule, where the paper reduces it by 5 on plateaus over 10000
iterations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib.pyplot as plt
import numpy as np
import torch

from analysis.angles import minimal_angles
from regularizers.angular import cosine_loss, mhe_loss, mma_loss


ENERGIES = {"mma": mma_loss, "cosine": cosine_loss, "riesz": partial(mhe_loss, s=2),
            "log": partial(mhe_loss, s=0)}
LOSSES = tuple(ENERGIES)

# MMA Table 1, minimal angle in degrees: (d, n) -> (optimal, MMA, cosine, Riesz-Fisher s=2, log).
MMA_TABLE1: Dict[Tuple[int, int], Tuple[float, float, float, float, float]] = {
    (3, 4): (109.5, 109.5, 109.5, 109.4, 109.5),
    (3, 30): (38.6, 38.5, 0.0, 34.9, 35.4),
    (3, 130): (18.5, 17.6, 0.0, 12.6, 16.7),
    (4, 5): (104.5, 104.5, 104.5, 104.5, 104.5),
    (4, 30): (54.3, 54.0, 53.7, 49.3, 48.6),
    (4, 130): (33.4, 32.0, 32.1, 27.9, 27.2),
    (4, 600): (19.8, 19.3, 0.0, 15.9, 13.1),
    (5, 6): (101.5, 101.5, 101.5, 101.2, 101.5),
    (5, 30): (65.6, 65.5, 64.0, 57.1, 60.0),
    (5, 130): (43.8, 42.9, 42.5, 35.8, 35.6),
}


def known_optimum(n: int, d: int) -> Optional[float]:
    """Best possible minimal angle in degrees when known: the regular simplex
    ``arccos(-1/(n-1))`` for n <= d + 1, 90 for d + 2 <= n <= 2d (cross-polytope and its subsets),
    else the optimum listed in MMA Table 1 (from Sloane's tables), else None."""
    if n <= d + 1:
        return math.degrees(math.acos(-1.0 / (n - 1)))
    if n <= 2 * d:
        return 90.0
    row = MMA_TABLE1.get((d, n))
    return row[0] if row else None


@dataclass
class TammesResult:
    """``points``: ``(n, d)`` unit rows; ``min_angle``: their minimal pairwise angle, degrees;
    ``energy``: the final value of ``loss``."""

    n: int
    d: int
    loss: str
    points: np.ndarray
    min_angle: float
    energy: float


def tammes(n: int, d: int, loss: str = "mma", steps: int = 3000, lr: float = 0.1,
           seed: int = 0) -> TammesResult:
    """Place ``n`` unit vectors in R^d by ``steps`` projected-SGD steps on ``loss``."""
    if loss not in ENERGIES:
        raise ValueError(f"unknown loss {loss!r}; choose from {', '.join(ENERGIES)}")
    if n < 2 or d < 2:
        raise ValueError(f"need n >= 2 points in d >= 2 dimensions, got n={n}, d={d}")
    energy = ENERGIES[loss]
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(n, d, generator=generator, dtype=torch.float64)
    w = (w / w.norm(dim=1, keepdim=True)).requires_grad_()
    optimizer = torch.optim.SGD([w], lr=lr, momentum=0.9)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(steps):
        value = energy(w)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            w /= w.norm(dim=1, keepdim=True)
    points = w.detach().numpy().copy()
    return TammesResult(n, d, loss, points, float(minimal_angles(points).min()),
                        float(energy(torch.from_numpy(points))))


@dataclass
class TammesTable:
    """Minimal angles (degrees) of several (d, n) cases: ``measured[loss]`` is ``(cases,)``;
    ``optimal`` is ``(cases,)`` with NaN where unknown."""

    cases: List[Tuple[int, int]]
    optimal: np.ndarray
    measured: Dict[str, np.ndarray]
    steps: int

    def to_markdown(self) -> str:
        """Markdown table, ours first with MMA Table 1's number in parentheses where listed."""
        losses = list(self.measured)
        lines = ["| d | n | optimal | " + " | ".join(losses) + " |",
                 "|---|---|---|" + "---|" * len(losses)]
        for i, (d, n) in enumerate(self.cases):
            paper = MMA_TABLE1.get((d, n))
            cells = []
            for loss in losses:
                cell = f"{self.measured[loss][i]:.1f}"
                if paper:
                    cell += f" ({paper[1 + LOSSES.index(loss)]:.1f})"
                cells.append(cell)
            lines.append(f"| {d} | {n} | {self.optimal[i]:.1f} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def tammes_table(cases: Sequence[Tuple[int, int]] = tuple(MMA_TABLE1),
                 losses: Sequence[str] = LOSSES, steps: int = 3000, lr: float = 0.1,
                 seed: int = 0) -> TammesTable:
    """Run :func:`tammes` for every ``(d, n)`` case and loss (MMA Table 1 by default)."""
    optimal = np.array([known_optimum(n, d) or np.nan for d, n in cases], dtype=float)
    measured = {loss: np.array([tammes(n, d, loss, steps, lr, seed).min_angle for d, n in cases])
                for loss in losses}
    return TammesTable(list(cases), optimal, measured, steps)


def plot_tammes_table(table: TammesTable, ax=None):
    """Grouped bars: each loss's minimal angle as a percentage of the optimum, per case.
    Returns the figure."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(table.cases)), 4))
    fig = ax.figure
    x = np.arange(len(table.cases))
    width = 0.8 / len(table.measured)
    for k, (loss, angles) in enumerate(table.measured.items()):
        ax.bar(x + (k - (len(table.measured) - 1) / 2) * width, 100 * angles / table.optimal,
               width, label=loss)
    ax.axhline(100.0, color="k", lw=0.8)
    ax.set_xticks(x, [f"d={d}\nn={n}" for d, n in table.cases])
    ax.set(ylabel="minimal angle (% of optimum)", ylim=(0, 118),
           title=f"Tammes problem, {table.steps} steps")
    ax.legend(ncol=len(table.measured), loc="upper center")
    return fig
