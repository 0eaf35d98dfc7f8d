"""Intervals for conclusions across seeds: means, differences (paired or Welch) and bounded
intervals for quantities that cannot be negative, plus a reusable bootstrap.

Every function takes plain sequences of numbers (one per run), leaves out None and non-finite
entries, and returns an :class:`Interval` whose ``method`` says how it was computed:

- ``"t"``: the two-sided Student t-interval of the mean, ``mean +- t(n-1) s / sqrt(n)``;
- ``"log-t"``: for a non-negative quantity, the t-interval built on the log scale of the mean,
  ``mean * exp(+- t(n-1) SE / mean)`` with ``SE = s / sqrt(n)`` (the delta-method log
  transform): centred on the arithmetic mean, it never falls below 0;
- ``"paired-t"``: the t-interval of the per-seed differences ``group - baseline``;
- ``"welch"``: the Welch t-interval of the difference of means (Welch-Satterthwaite degrees of
  freedom), for groups that do not share seeds;
- ``"bootstrap-percentile"``: :func:`bootstrap_interval`, the percentile bootstrap of any
  statistic over runs (``scipy.stats.bootstrap``; resamples whole runs, paired across samples).

Bounds are NaN when there are too few values for an interval (fewer than two).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass
class Interval:
    """A point estimate ``mean`` of ``n`` values with its two-sided interval ``[low, high]``
    (NaN bounds when ``n < 2``) and the ``method`` that built it (module docstring)."""

    mean: float
    low: float
    high: float
    n: int
    method: str = "t"

    @property
    def half_width(self) -> float:
        """Half the interval's width (NaN without an interval)."""
        return (self.high - self.low) / 2

    @property
    def excludes_zero(self) -> bool | None:
        """True when the interval lies on one side of 0, False when it holds 0, None without one."""
        if math.isnan(self.low) or math.isnan(self.high):
            return None
        return bool(self.low > 0 or self.high < 0)


def finite(values: Sequence[float | None]) -> np.ndarray:
    """The finite entries of ``values`` as a float array (None, NaN and infinities left out)."""
    array = np.asarray([v for v in values if v is not None], dtype=float)
    return array[np.isfinite(array)]


def _check(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return (1 + confidence) / 2


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean and t-interval of the finite entries of ``values`` (NaN bounds with one value)."""
    q, v = _check(confidence), finite(values)
    if len(v) == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(v.mean())
    if len(v) < 2:
        return Interval(mean, math.nan, math.nan, 1)
    half = stats.t.ppf(q, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return Interval(mean, mean - half, mean + half, len(v))


def log_t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean of non-negative values with the log-scale t-interval ``mean * exp(+- t SE / mean)``:
    both bounds >= 0 (``[0, 0]`` when every value is 0). Negative values: ValueError."""
    q, v = _check(confidence), finite(values)
    if (v < 0).any():
        raise ValueError(f"log_t_interval needs non-negative values, got {float(v.min())}")
    if len(v) < 2:
        return Interval(float(v.mean()) if len(v) else math.nan, math.nan, math.nan, len(v), "log-t")
    mean = float(v.mean())
    if mean == 0:
        return Interval(0.0, 0.0, 0.0, len(v), "log-t")
    spread = stats.t.ppf(q, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)) / mean
    return Interval(mean, mean * math.exp(-spread), mean * math.exp(spread), len(v), "log-t")


def welch_interval(group: Sequence[float], baseline: Sequence[float], confidence: float = 0.95) -> Interval:
    """``mean(group) - mean(baseline)`` with the Welch t-interval; ``n`` counts the group's values."""
    q, a, b = _check(confidence), finite(group), finite(baseline)
    if len(a) == 0 or len(b) == 0:
        return Interval(math.nan, math.nan, math.nan, len(a), "welch")
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return Interval(diff, math.nan, math.nan, len(a), "welch")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(diff, diff, diff, len(a), "welch")
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = stats.t.ppf(q, dof) * se
    return Interval(diff, diff - half, diff + half, len(a), "welch")


def paired_interval(group: Sequence[float], baseline: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean of the per-pair differences ``group[i] - baseline[i]`` with its t-interval; pairs
    with a non-finite side are left out; ``n`` counts the pairs used."""
    if len(group) != len(baseline):
        raise ValueError(f"paired values must pair up, got {len(group)} and {len(baseline)}")
    diffs = [a - b for a, b in zip(group, baseline) if a is not None and b is not None]
    result = t_interval(diffs, confidence)
    result.method = "paired-t"
    return result


def bootstrap_interval(samples: Sequence[Sequence[float]], statistic: Callable[..., float], *,
                       confidence: float = 0.95, resamples: int = 9999, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of ``statistic(*samples)`` over runs.

    Args:
        samples: one or more sequences of equal length ``n`` (one entry per run); runs are
            resampled together (paired), so a statistic of several per-run numbers (a rank
            correlation, a mean difference of pairs) keeps each run's numbers together.
        statistic: ``f(*arrays) -> float`` on resampled ``(n,)`` arrays.
        confidence: coverage of the interval.
        resamples: number of bootstrap resamples.
        seed: seed of the resampling.

    Returns:
        :class:`Interval` with ``mean`` = the statistic on the data itself; NaN bounds with
        fewer than two runs or when every resample gives the same value.
    """
    _check(confidence)
    arrays = [np.asarray(s, dtype=float) for s in samples]
    n = len(arrays[0]) if arrays else 0
    if any(len(a) != n for a in arrays):
        raise ValueError("every sample must hold one value per run")
    point = float(statistic(*arrays)) if n else math.nan
    if n < 2:
        return Interval(point, math.nan, math.nan, n, "bootstrap-percentile")
    result = stats.bootstrap(tuple(arrays), statistic, paired=True, vectorized=False, n_resamples=resamples,
                             confidence_level=confidence, method="percentile", random_state=seed)
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return Interval(point, low, high, n, "bootstrap-percentile")
