"""Verdicts across seeds: group means with t-intervals, differences against a baseline group,
rank correlations with test accuracy, and the plain-sentence "Findings" built from them.

A *run* is a flat ``{metric: value}`` dict (``"test_acc"``, ``"top_eigenvalue"``,
``"min_angle/features.0"``, ...); a *group* is the runs of one configuration, usually several
seeds. The rules, stated once here and repeated in every report:

- the mean of a group carries a two-sided t-interval over its runs (``confidence``, default 95%);
  a group of one run has no interval (NaN bounds): nothing can be said about noise;
- the difference of a group against the baseline is ``mean(group) - mean(baseline)`` with a
  Welch t-interval (unequal variances); it *changed beyond noise* when that interval excludes 0;
  with fewer than two runs on either side the difference is undecided (``changed is None``);
- the rank correlation of a measure with test accuracy over all runs is Spearman's rho with a
  Fisher-z interval using the Bonett-Wright standard error ``sqrt((1 + rho^2 / 2) / (n - 3))``
  (needs ``n >= 4`` runs); it *tracks* accuracy when that interval excludes 0.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

Run = Mapping[str, float]


@dataclass
class Stat:
    """Mean of ``n`` finite values with its two-sided t-interval ``[low, high]`` (NaN if n < 2)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        """Half the interval's width (NaN without an interval)."""
        return (self.high - self.low) / 2


@dataclass
class Difference:
    """``group - baseline`` of one metric: the difference of means and its Welch t-interval.
    ``changed``: True when the interval excludes 0, False when it holds 0, None when undecided."""

    metric: str
    group: str
    baseline: str
    stat: Stat
    changed: bool | None


@dataclass
class Correlation:
    """Spearman's rank correlation of ``metric`` with ``target`` over ``n`` runs, and its
    Fisher-z interval (NaN when n < 4). ``tracks``: interval excludes 0 (None when undecided)."""

    metric: str
    target: str
    rho: float
    low: float
    high: float
    n: int
    tracks: bool | None


def _finite(values: Sequence[float]) -> np.ndarray:
    array = np.asarray([v for v in values if v is not None], dtype=float)
    return array[np.isfinite(array)]


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Stat:
    """Mean and t-interval of the finite entries of ``values``.

    Args:
        values: one number per run (None and non-finite entries are left out).
        confidence: coverage of the two-sided interval, in (0, 1).

    Returns:
        :class:`Stat`; NaN mean with no values, NaN bounds with one value.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    v = _finite(values)
    if len(v) == 0:
        return Stat(math.nan, math.nan, math.nan, 0)
    mean = float(v.mean())
    if len(v) < 2:
        return Stat(mean, math.nan, math.nan, 1)
    half = stats.t.ppf((1 + confidence) / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return Stat(mean, mean - half, mean + half, len(v))


def difference_interval(group: Sequence[float], baseline: Sequence[float],
                        confidence: float = 0.95) -> Stat:
    """``mean(group) - mean(baseline)`` with a Welch t-interval (Welch-Satterthwaite degrees
    of freedom). Bounds are NaN when either side has fewer than two finite values; ``n`` is
    the number of runs of ``group``.
    """
    a, b = _finite(group), _finite(baseline)
    if len(a) == 0 or len(b) == 0:
        return Stat(math.nan, math.nan, math.nan, len(a))
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return Stat(diff, math.nan, math.nan, len(a))
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Stat(diff, diff, diff, len(a))
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = stats.t.ppf((1 + confidence) / 2, dof) * se
    return Stat(diff, diff - half, diff + half, len(a))


def _excludes_zero(low: float, high: float) -> bool | None:
    if math.isnan(low) or math.isnan(high):
        return None
    return bool(low > 0 or high < 0)


def metrics_of(groups: Mapping[str, Sequence[Run]]) -> list[str]:
    """Every metric name found in the runs, in first-seen order."""
    seen: dict[str, None] = {}
    for runs in groups.values():
        for run in runs:
            seen.update(dict.fromkeys(run))
    return list(seen)


@dataclass
class GroupComparison:
    """Per metric: each group's :class:`Stat` (``stats[metric][group]``) and each non-baseline
    group's :class:`Difference` against ``baseline`` (``differences[metric][group]``)."""

    baseline: str
    groups: dict[str, int]                      # group -> number of runs
    stats: dict[str, dict[str, Stat]]
    differences: dict[str, dict[str, Difference]]
    confidence: float

    @property
    def single_run_groups(self) -> list[str]:
        """Groups with one run: their noise is unknown."""
        return [g for g, n in self.groups.items() if n < 2]


def compare_groups(groups: Mapping[str, Sequence[Run]], baseline: str | None = None,
                   confidence: float = 0.95) -> GroupComparison:
    """Group statistics and differences against the baseline for every metric.

    Args:
        groups: ``{group name: [run dict, ...]}`` in display order.
        baseline: the reference group (default: the first).
        confidence: coverage of every interval.

    Returns:
        :class:`GroupComparison`.
    """
    if not groups or any(len(runs) == 0 for runs in groups.values()):
        raise ValueError("every group needs at least one run")
    baseline = next(iter(groups)) if baseline is None else baseline
    if baseline not in groups:
        raise ValueError(f"baseline {baseline!r} is not a group; groups: {', '.join(groups)}")
    table, diffs = {}, {}
    for metric in metrics_of(groups):
        column = {g: [run.get(metric, math.nan) for run in runs] for g, runs in groups.items()}
        table[metric] = {g: mean_interval(v, confidence) for g, v in column.items()}
        diffs[metric] = {}
        for g, v in column.items():
            if g == baseline:
                continue
            d = difference_interval(v, column[baseline], confidence)
            diffs[metric][g] = Difference(metric, g, baseline, d, _excludes_zero(d.low, d.high))
    return GroupComparison(baseline, {g: len(r) for g, r in groups.items()}, table, diffs, confidence)


def spearman_interval(x: Sequence[float], y: Sequence[float], confidence: float = 0.95,
                      metric: str = "x", target: str = "y") -> Correlation:
    """Spearman's rho of the pairs where both values are finite, with a Fisher-z interval.

    Args:
        x, y: one value per run, paired by position.
        confidence: coverage of the interval.

    Returns:
        :class:`Correlation` (NaN rho with fewer than 3 pairs or a constant side; NaN bounds
        with fewer than 4 pairs).
    """
    if len(x) != len(y):
        raise ValueError(f"x and y must pair up, got {len(x)} and {len(y)} values")
    pairs = np.array([(a, b) for a, b in zip(x, y)
                      if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)],
                     dtype=float).reshape(-1, 2)
    n = len(pairs)
    if n < 3 or np.ptp(pairs[:, 0]) == 0 or np.ptp(pairs[:, 1]) == 0:
        return Correlation(metric, target, math.nan, math.nan, math.nan, n, None)
    rho = float(stats.spearmanr(pairs[:, 0], pairs[:, 1]).statistic)
    if n < 4:
        return Correlation(metric, target, rho, math.nan, math.nan, n, None)
    z = math.atanh(max(min(rho, 1 - 1e-12), -1 + 1e-12))
    half = stats.norm.ppf((1 + confidence) / 2) * math.sqrt((1 + rho ** 2 / 2) / (n - 3))
    low, high = math.tanh(z - half), math.tanh(z + half)
    return Correlation(metric, target, rho, low, high, n, _excludes_zero(low, high))


def rank_correlations(runs: Sequence[Run], metrics: Sequence[str], target: str = "test_acc",
                      confidence: float = 0.95) -> list[Correlation]:
    """:func:`spearman_interval` of each metric with ``target`` over all ``runs``."""
    goal = [run.get(target, math.nan) for run in runs]
    return [spearman_interval([run.get(m, math.nan) for run in runs], goal, confidence, m, target)
            for m in metrics]


def _number(value: float) -> str:
    return f"{value:+.3g}" if math.isfinite(value) else "n/a"


def describe_difference(d: Difference, label: str) -> str:
    """``"test accuracy (%) +1.2 (95% interval +0.3 to +2.1)"``, or without an interval."""
    if d.changed is None:
        return f"{label} {_number(d.stat.mean)} (no interval)"
    return f"{label} {_number(d.stat.mean)} (interval {_number(d.stat.low)} to {_number(d.stat.high)})"


def findings_text(comparison: GroupComparison, labels: Mapping[str, str],
                  correlations: Sequence[Correlation] = (), target_label: str = "test accuracy",
                  correlation_labels: Mapping[str, str] | None = None) -> list[str]:
    """The Findings: one plain sentence (or paragraph) per item, generated from the numbers.

    Args:
        comparison: from :func:`compare_groups`.
        labels: ``{metric: readable label}``; only these metrics are discussed, in this order.
        correlations: from :func:`rank_correlations`.
        target_label: what the correlations are taken with.
        correlation_labels: ``{metric: label}`` of the correlated measures (default ``labels``).

    Returns:
        The sentences, in order: noise caveats, per group what changed beyond noise and what did
        not, then the rank correlations.
    """
    pct = f"{100 * comparison.confidence:g}%"
    out = []
    single = comparison.single_run_groups
    if single:
        out.append(f"{', '.join(single)} {'has' if len(single) == 1 else 'have'} a single run: no "
                   "conclusion about noise can be drawn for "
                   f"{'it' if len(single) == 1 else 'them'}; differences involving "
                   f"{'it' if len(single) == 1 else 'them'} are shown without an interval. "
                   "Train more seeds to decide.")
    for group in comparison.groups:
        if group == comparison.baseline:
            continue
        diffs = [(comparison.differences[m][group], label) for m, label in labels.items()
                 if m in comparison.differences and group in comparison.differences[m]
                 and math.isfinite(comparison.differences[m][group].stat.mean)]
        changed = [describe_difference(d, lab) for d, lab in diffs if d.changed]
        steady = [lab for d, lab in diffs if d.changed is False]
        undecided = [describe_difference(d, lab) for d, lab in diffs if d.changed is None]
        head = f"{group} vs {comparison.baseline}"
        if changed:
            out.append(f"{head}: changed beyond noise ({pct} Welch interval of the difference "
                       f"excludes 0): " + "; ".join(changed) + ".")
        elif not undecided:
            out.append(f"{head}: nothing changed beyond noise.")
        if steady:
            out.append(f"{head}: within noise (interval holds 0): " + ", ".join(steady) + ".")
        if undecided:
            out.append(f"{head}: undecided (fewer than two runs on a side): " + "; ".join(undecided) + ".")
    decided = [c for c in correlations if math.isfinite(c.rho)]
    if decided:
        n = max(c.n for c in decided)
        parts = []
        for c in decided:
            label = (correlation_labels or labels).get(c.metric, c.metric)
            if c.tracks is None:
                parts.append(f"{label} rho {c.rho:+.2f} (too few runs for an interval)")
            else:
                verdict = "tracks it" if c.tracks else "no clear link"
                parts.append(f"{label} rho {c.rho:+.2f} ({pct} interval {c.low:+.2f} to {c.high:+.2f}, {verdict})")
        out.append(f"Across all {n} runs, Spearman rank correlation with {target_label}: "
                   + "; ".join(parts) + ".")
    elif correlations:
        out.append(f"Rank correlations with {target_label} need at least 3 runs with varying values; "
                   "none could be computed.")
    return out
