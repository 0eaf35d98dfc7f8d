"""Data-free weight diagnostics: each layer's empirical spectral density and its power-law tail.

For every ``Conv1d/2d/3d`` and ``Linear`` layer the weight is read as a matrix ``W`` of shape
``(rows, cols) = (out, in * k * k)`` (a conv's kernel flattened per output filter, as
:func:`regularizers.norms.filter_rows` reads it). Its empirical spectral density (ESD) is that of
the correlation matrix ``X = W^T W / N`` with ``N = max(rows, cols)``, the normalization of
Martin & Mahoney (2021, "Implicit self-regularization in deep neural networks", JMLR 22:165)
and of their WeightWatcher tool; we keep its ``M = min(rows, cols)`` eigenvalues that can be
non-zero, the squared singular values of ``W`` divided by ``N``.

The tail of the ESD is fitted with a power law ``p(x) ~ x^-alpha`` for ``x >= xmin`` by the
method of Clauset, Shalizi & Newman (2009, "Power-law distributions in empirical data", SIAM
Review 51(4):661-703): for each candidate ``xmin`` (every distinct value leaving at least
``min_tail`` points in the tail) the continuous maximum-likelihood exponent
``alpha = 1 + n / sum_i ln(x_i / xmin)`` over the ``n`` tail points, and the ``xmin`` kept is
the one minimizing the Kolmogorov-Smirnov distance between the tail's empirical CDF and the
fitted one, ``P(x) = 1 - (x / xmin)^(1 - alpha)``. The standard error of alpha is
``(alpha - 1) / sqrt(n)`` (CSN eq. 3.2). Martin & Mahoney read alpha in about [2, 6] as a
well-trained layer and alpha < 2 as a very heavy tail (strong correlations, possible overfit).

A layer's alpha is reported (:attr:`WeightSpectrum.alpha`) only when it means something:
the ESD has at least ``min_eigenvalues`` (default 50, WeightWatcher's minimum) eigenvalues, and
the spectrum has a tail to fit. A layer has *no power-law tail* (a poor fit, flagged in
:attr:`WeightSpectrum.note`, alpha NaN) when its largest eigenvalue stays within ``MP_SLACK``
times the Marchenko-Pastur bulk edge ``s2 (1 + sqrt(M / N))^2`` of a random matrix of the same
shape and mean eigenvalue ``s2`` (the ESD of a Gaussian matrix ends there), or when the fitted
alpha exceeds ``ALPHA_MAX`` = 6, where WeightWatcher reads the layer as random-like
(under-trained) and the fit as no heavy tail.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
MIN_EIGENVALUES = 50  # WeightWatcher's default: fewer eigenvalues hold no tail to fit
ALPHA_MAX = 6.0       # above it WeightWatcher reads no heavy tail (random-like layer)
MP_SLACK = 1.1        # largest eigenvalue within 1.1x the Marchenko-Pastur edge: no tail


@dataclass
class PowerLawFit:
    """A power-law tail ``p(x) ~ x^-alpha`` for ``x >= xmin`` holding ``num_tail`` samples.

    ``ks_distance`` is the Kolmogorov-Smirnov distance of the fit on its tail and
    ``alpha_stderr`` = ``(alpha - 1) / sqrt(num_tail)``. All NaN (``num_tail`` 0) when there
    were too few positive samples to fit.
    """
    alpha: float
    xmin: float
    ks_distance: float
    num_tail: int
    alpha_stderr: float


@dataclass
class WeightSpectrum:
    """The ESD of one layer: ``eigenvalues`` (M,) ascending of ``W^T W / normalization`` with
    ``W`` of ``shape`` (rows, cols), M = min(rows, cols), normalization = max(rows, cols),
    and the power-law fit of its tail (``fit``, as fitted). ``note`` says why alpha is not
    reported ("" when it is): too few eigenvalues, or no power-law tail (module docstring)."""
    name: str
    shape: tuple
    eigenvalues: np.ndarray
    normalization: int
    fit: PowerLawFit
    note: str = ""

    @property
    def alpha(self) -> float:
        """The tail exponent, NaN when :attr:`note` says it means nothing."""
        return math.nan if self.note else self.fit.alpha


def alpha_note(values: np.ndarray, shape: tuple, fit: PowerLawFit, min_eigenvalues: int = MIN_EIGENVALUES) -> str:
    """Why the alpha of an ESD ``values`` of a ``shape`` matrix is not reported ("" when it is)."""
    if len(values) < min_eigenvalues:
        return f"not fitted: {len(values)} eigenvalues, fewer than {min_eigenvalues}"
    if not fit.num_tail:
        return "not fitted: no tail of positive eigenvalues"
    edge = float(np.mean(values)) * (1 + math.sqrt(min(shape) / max(shape))) ** 2
    if float(np.max(values)) <= MP_SLACK * edge:
        return (f"no power-law tail: the largest eigenvalue is within {MP_SLACK:g}x the Marchenko-Pastur "
                f"edge of a random matrix (fitted alpha {fit.alpha:.3g} is not a tail exponent)")
    if fit.alpha > ALPHA_MAX:
        return f"no power-law tail: fitted alpha {fit.alpha:.3g} > {ALPHA_MAX:g} (random-like layer)"
    return ""


_NO_FIT = PowerLawFit(math.nan, math.nan, math.nan, 0, math.nan)


def fit_power_law(samples, *, min_tail: int = 10) -> PowerLawFit:
    """The Clauset-Shalizi-Newman power-law fit of the tail of ``samples`` (module docstring).

    Args:
        samples: (K,) values; non-positive ones are left out (a power law lives on x > 0).
        min_tail: the fewest samples a tail may hold (the largest ``xmin`` tried keeps that many).

    Returns:
        :class:`PowerLawFit`; all NaN when fewer than ``min_tail`` positive samples, or when
        every candidate tail is a single repeated value.

    Raises:
        ValueError: ``min_tail`` below 2.
    """
    if min_tail < 2:
        raise ValueError(f"min_tail must be at least 2, got {min_tail}")
    x = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    x = x[x > 0]
    if len(x) < min_tail:
        return _NO_FIT
    logs = np.log(x)
    tail_log_sums = np.cumsum(logs[::-1])[::-1]  # sum of ln x_j for j >= i
    values, first = np.unique(x, return_index=True)
    best = None
    for xmin, i in zip(values, first):
        n = len(x) - i
        if n < min_tail:
            break
        total = tail_log_sums[i] - n * logs[i]
        if total <= 0:  # the rest of the tail is one repeated value
            break
        alpha = 1 + n / total
        cdf = 1 - (x[i:] / xmin) ** (1 - alpha)
        steps = np.arange(1, n + 1) / n
        distance = max(np.max(np.abs(steps - cdf)), np.max(np.abs(steps - 1 / n - cdf)))
        if best is None or distance < best[0]:
            best = (distance, alpha, xmin, n)
    if best is None:
        return _NO_FIT
    distance, alpha, xmin, n = best
    return PowerLawFit(float(alpha), float(xmin), float(distance), int(n), float((alpha - 1) / math.sqrt(n)))


def layer_matrix(weight: torch.Tensor) -> torch.Tensor:
    """A conv/linear weight ``(out, ...)`` as the float64 CPU matrix ``(out, prod(rest))``."""
    return weight.detach().to(device="cpu", dtype=torch.float64).reshape(len(weight), -1)


def esd(weight: torch.Tensor) -> np.ndarray:
    """The (M,) ascending eigenvalues of ``W^T W / max(rows, cols)`` that can be non-zero,
    M = min(rows, cols), for ``W`` = :func:`layer_matrix` of ``weight``."""
    w = layer_matrix(weight)
    return np.sort(torch.linalg.svdvals(w).numpy() ** 2 / max(w.shape))


def weight_spectra(model: nn.Module, *, min_tail: int = 10,
                   min_eigenvalues: int = MIN_EIGENVALUES) -> List[WeightSpectrum]:
    """The ESD and power-law tail exponent alpha of every conv and linear layer of ``model``.

    Args:
        model: any ``nn.Module``; only read.
        min_tail: passed to :func:`fit_power_law`; layers with fewer eigenvalues get NaN alpha.
        min_eigenvalues: layers with fewer eigenvalues get no alpha (``note`` says so).

    Returns:
        One :class:`WeightSpectrum` per layer, in ``model.named_modules()`` order (``.name``,
        ``.alpha`` (NaN where ``.note`` says why), ``.eigenvalues``, ``.fit``).

    Raises:
        ValueError: the model has no conv or linear layer.
    """
    out = []
    for name, module in model.named_modules():
        if isinstance(module, LAYERS):
            w = layer_matrix(module.weight)
            values = esd(module.weight)
            fit = fit_power_law(values, min_tail=min_tail)
            out.append(WeightSpectrum(name, tuple(w.shape), values, max(w.shape), fit,
                                      alpha_note(values, tuple(w.shape), fit, min_eigenvalues)))
    if not out:
        raise ValueError("the model has no Conv1d/2d/3d or Linear layer to take a weight spectrum of")
    return out


def plot_weight_spectra(results: Sequence[WeightSpectrum], *, bins: int = 30,
                        title: Optional[str] = None) -> Figure:
    """Log-log histograms (densities) of each layer's ESD, with the fitted power-law tail
    ``(num_tail / M) (alpha - 1) / xmin (x / xmin)^-alpha`` drawn from ``xmin`` on.
    One panel per layer; returns a matplotlib ``Figure``."""
    results = list(results)
    if not results:
        raise ValueError("no weight spectra to plot")
    ncols = min(3, len(results))
    nrows = math.ceil(len(results) / ncols)
    fig = Figure(figsize=(4.0 * ncols, 3.2 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.ravel(fig.subplots(nrows, ncols, squeeze=False))
    for ax in axes[len(results):]:
        ax.remove()
    for ax, r in zip(axes, results):
        values = r.eigenvalues[r.eigenvalues > 0]
        if len(values) == 0:
            ax.set_title(f"{r.name}: all eigenvalues zero", fontsize="small")
            continue
        lo, hi = values.min(), values.max()
        edges = np.geomspace(lo, hi, bins + 1) if hi > lo else np.geomspace(lo / 1.5, hi * 1.5, 4)
        ax.hist(values, bins=edges, density=True, color="tab:blue", alpha=0.6, label="ESD")
        fit = r.fit
        label = "no fit"
        if fit.num_tail:
            xs = np.geomspace(fit.xmin, hi, 50)
            pdf = fit.num_tail / len(r.eigenvalues) * (fit.alpha - 1) / fit.xmin * (xs / fit.xmin) ** -fit.alpha
            ax.plot(xs, pdf, color="tab:red", lw=1.5, label=f"power law, xmin {fit.xmin:.3g}")
            ax.axvline(fit.xmin, color="tab:red", ls=":", lw=0.8)
            label = (f"alpha = {fit.alpha:.2f} +- {fit.alpha_stderr:.2f}" if not r.note
                     else r.note.split(":")[0])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("eigenvalue of W^T W / N")
        ax.set_ylabel("density")
        ax.set_title(f"{r.name} {r.shape[0]}x{r.shape[1]}: {label}", fontsize="small")
        ax.legend(fontsize="x-small")
    if title:
        fig.suptitle(title)
    return fig
