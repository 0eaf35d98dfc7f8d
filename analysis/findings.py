"""Verdicts across seeds: group means with intervals, differences against a baseline group,
rank correlations with test accuracy, and the plain-sentence "Findings" built from them.

A *run* is a flat ``{metric: value}`` dict (``"test_acc"``, ``"top_eigenvalue"``,
``"min_angle/features.0"``, ...); a *group* is the runs of one configuration, usually several
seeds. The rules, stated once here and repeated in every report (intervals from
:mod:`analysis.statistics`):

- the mean of a group carries a two-sided t-interval over its runs (``confidence``, default 95%);
  measures that cannot be negative (angles, counts, widths, norms, ranks, losses) carry the
  log-scale t-interval ``mean * exp(+- t SE / mean)``, which stays >= 0; a group of one run has
  no interval (NaN bounds): nothing can be said about noise;
- the difference of a group against the baseline is ``mean(group) - mean(baseline)``. When the
  two groups hold runs of the same seeds (each seed once), the runs are paired by seed and the
  interval is the t-interval of the per-seed differences (``paired``); otherwise it is Welch's
  t-interval. It *changed beyond noise* when that interval excludes 0; with fewer than two runs
  (or pairs) the difference is undecided (``changed is None``);
- a *censored* value is a bound, not a measurement (a basin width whose loss never rose enough
  within the searched span is a lower bound): a difference involving one is never called a
  change (``changed is None``, ``censored`` True), and it enters no correlation;
- the rank correlation of a measure with test accuracy over all runs is Spearman's rho with a
  Fisher-z interval using the Bonett-Wright standard error ``sqrt((1 + rho^2 / 2) / (n - 3))``
  (needs ``n >= 4`` runs); it *tracks* accuracy when that interval excludes 0.
"""
from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from analysis.statistics import Interval, log_t_interval, paired_interval, t_interval, welch_interval

Run = Mapping[str, float]
Stat = Interval  # the name callers use for a mean (or difference) with its interval

# measures that cannot be negative: their group intervals are log-scale (metric or "metric/layer")
NONNEGATIVE = ("min_angle", "mean_min_angle", "pairs_above", "mean_norm", "stable_rank", "basin_width",
               "train_loss", "test_loss", "alpha")
# measures whose comparison depends on where training stopped (said when train loss differs)
CURVATURE = ("top_eigenvalue", "hessian_trace", "sharpness", "diagonal_sum", "basin_width")


@dataclass
class Difference:
    """``group - baseline`` of one metric: the difference of means and its interval, ``paired``
    by seed (t-interval of per-seed differences) or not (Welch). ``changed``: True when the
    interval excludes 0, False when it holds 0, None when undecided or ``censored`` (a value on
    either side is only a bound)."""

    metric: str
    group: str
    baseline: str
    stat: Interval
    changed: bool | None
    paired: bool = False
    censored: bool = False


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


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean and t-interval of the finite entries of ``values`` (:func:`analysis.statistics.t_interval`).

    Args:
        values: one number per run (None and non-finite entries are left out).
        confidence: coverage of the two-sided interval, in (0, 1).

    Returns:
        :class:`Stat`; NaN mean with no values, NaN bounds with one value.
    """
    return t_interval(values, confidence)


def difference_interval(group: Sequence[float], baseline: Sequence[float],
                        confidence: float = 0.95) -> Interval:
    """``mean(group) - mean(baseline)`` with a Welch t-interval (:func:`analysis.statistics.welch_interval`).
    Bounds are NaN when either side has fewer than two finite values; ``n`` counts ``group``'s runs."""
    return welch_interval(group, baseline, confidence)


def is_nonnegative(metric: str) -> bool:
    """Whether ``metric`` (``"name"`` or ``"name/layer"``) cannot be negative (:data:`NONNEGATIVE`)."""
    return metric.split("/", 1)[0] in NONNEGATIVE


def group_interval(values: Sequence[float], metric: str, confidence: float = 0.95) -> Interval:
    """The group interval of ``metric``: log-scale for :data:`NONNEGATIVE` measures, else t."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if is_nonnegative(metric) and all(v >= 0 for v in finite):
        return log_t_interval(finite, confidence)
    return t_interval(finite, confidence)


def metrics_of(groups: Mapping[str, Sequence[Run]]) -> list[str]:
    """Every metric name found in the runs, in first-seen order."""
    seen: dict[str, None] = {}
    for runs in groups.values():
        for run in runs:
            seen.update(dict.fromkeys(run))
    return list(seen)


def paired_seeds(seeds: Sequence | None, base_seeds: Sequence | None) -> bool:
    """Whether two groups can be paired: every run of both has a seed, no seed repeats within a
    group, and both hold the same seeds."""
    if not seeds or not base_seeds or any(s is None for s in (*seeds, *base_seeds)):
        return False
    return len(set(seeds)) == len(seeds) == len(base_seeds) and set(seeds) == set(base_seeds)


@dataclass
class GroupComparison:
    """Per metric: each group's :class:`Stat` (``stats[metric][group]``), each non-baseline
    group's :class:`Difference` against ``baseline`` (``differences[metric][group]``), and the
    number of censored runs (``censored[metric][group]``, only where non-zero)."""

    baseline: str
    groups: dict[str, int]                      # group -> number of runs
    stats: dict[str, dict[str, Interval]]
    differences: dict[str, dict[str, Difference]]
    confidence: float
    censored: dict[str, dict[str, int]] | None = None

    @property
    def single_run_groups(self) -> list[str]:
        """Groups with one run: their noise is unknown."""
        return [g for g, n in self.groups.items() if n < 2]

    def censored_runs(self, metric: str, group: str) -> int:
        """How many runs of ``group`` hold only a bound of ``metric``."""
        return (self.censored or {}).get(metric, {}).get(group, 0)


def _difference(metric, group, baseline, column, seeds, censored, confidence) -> Difference:
    """One :class:`Difference`, paired by seed when :func:`paired_seeds` allows."""
    paired = paired_seeds(seeds.get(group), seeds.get(baseline))
    if paired:
        order = {s: i for i, s in enumerate(seeds[baseline])}
        base = [column[baseline][order[s]] for s in seeds[group]]
        d = paired_interval(column[group], base, confidence)
    else:
        d = welch_interval(column[group], column[baseline], confidence)
    bound = bool(censored.get(group) or censored.get(baseline))
    return Difference(metric, group, baseline, d, None if bound else d.excludes_zero, paired, bound)


def compare_groups(groups: Mapping[str, Sequence[Run]], baseline: str | None = None,
                   confidence: float = 0.95, *, seeds: Mapping[str, Sequence] | None = None,
                   censored: Mapping[str, Sequence[Collection[str]]] | None = None) -> GroupComparison:
    """Group statistics and differences against the baseline for every metric.

    Args:
        groups: ``{group name: [run dict, ...]}`` in display order.
        baseline: the reference group (default: the first).
        confidence: coverage of every interval.
        seeds: ``{group: [seed or None per run]}``; groups holding the same seeds are paired.
        censored: ``{group: [metrics whose value is a bound, per run]}``.

    Returns:
        :class:`GroupComparison`.
    """
    if not groups or any(len(runs) == 0 for runs in groups.values()):
        raise ValueError("every group needs at least one run")
    baseline = next(iter(groups)) if baseline is None else baseline
    if baseline not in groups:
        raise ValueError(f"baseline {baseline!r} is not a group; groups: {', '.join(groups)}")
    seeds, censored = dict(seeds or {}), dict(censored or {})
    table, diffs, bounds = {}, {}, {}
    for metric in metrics_of(groups):
        column = {g: [run.get(metric, math.nan) for run in runs] for g, runs in groups.items()}
        count = {g: sum(metric in c for c in censored.get(g, [])) for g in groups}
        bounds.update({metric: {g: k for g, k in count.items() if k}} if any(count.values()) else {})
        table[metric] = {g: group_interval(v, metric, confidence) for g, v in column.items()}
        for g, k in count.items():
            if k:  # a mean over bounds is itself only a bound: no interval
                table[metric][g] = Interval(table[metric][g].mean, math.nan, math.nan, table[metric][g].n,
                                            "lower bound (censored)")
        diffs[metric] = {g: _difference(metric, g, baseline, column, seeds, count, confidence)
                         for g in groups if g != baseline}
    return GroupComparison(baseline, {g: len(r) for g, r in groups.items()}, table, diffs, confidence, bounds)


def spearman_interval(x: Sequence[float], y: Sequence[float], confidence: float = 0.95,
                      metric: str = "x", target: str = "y") -> Correlation:
    """Spearman's rho of the pairs where both values are finite, with a Fisher-z interval.

    Args:
        x: one value per run (the measure).
        y: one value per run, paired with ``x`` by position.
        confidence: coverage of the interval.
        metric: the name of ``x``, carried into the result.
        target: the name of ``y``, carried into the result.

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
    return Correlation(metric, target, rho, low, high, n, bool(low > 0 or high < 0))


def rank_correlations(runs: Sequence[Run], metrics: Sequence[str], target: str = "test_acc",
                      confidence: float = 0.95, censored: Sequence[Collection[str]] | None = None
                      ) -> list[Correlation]:
    """:func:`spearman_interval` of each metric with ``target`` over all ``runs``; a value listed
    in ``censored`` (per run, the metrics holding only a bound) is left out, never ranked."""
    censored = censored or [()] * len(runs)
    goal = [run.get(target, math.nan) for run in runs]
    return [spearman_interval([math.nan if m in cut else run.get(m, math.nan) for run, cut in zip(runs, censored)],
                              goal, confidence, m, target) for m in metrics]


def _number(value: float) -> str:
    return f"{value:+.3g}" if math.isfinite(value) else "n/a"


def rule_name(d: Difference) -> str:
    """``"paired t-interval of per-seed differences"`` or ``"Welch t-interval"``."""
    return "paired t-interval of per-seed differences" if d.paired else "Welch t-interval"


def describe_difference(d: Difference, label: str) -> str:
    """``"test accuracy (%) +1.2 (interval +0.3 to +2.1)"``, or without an interval."""
    if d.censored:
        return f"{label} not compared (a value is only a lower bound, no difference is computed from bounds)"
    if d.changed is None:
        return f"{label} {_number(d.stat.mean)} (no interval)"
    return f"{label} {_number(d.stat.mean)} (interval {_number(d.stat.low)} to {_number(d.stat.high)})"


def verdict(d: Difference, up: str, down: str) -> str:
    """``up``/``down`` when the interval lies above/below 0, else why there is no verdict."""
    if d.censored:
        return "not compared (a value is only a bound)"
    if d.changed is None:
        return "undecided (fewer than two runs or pairs on a side)"
    return (up if d.stat.low > 0 else down) if d.changed else "no change beyond noise"


def answer(comparison: GroupComparison, metric: str, label: str, unit: str, up: str, down: str) -> str | None:
    """One sentence answering, per group against the baseline, how ``metric`` moved."""
    pct = f"{100 * comparison.confidence:g}%"
    parts = []
    for group, d in comparison.differences.get(metric, {}).items():
        if not math.isfinite(d.stat.mean):
            continue
        interval = (f"{pct} {rule_name(d)} [{d.stat.low:+.2f}, {d.stat.high:+.2f}], n={d.stat.n}"
                    if d.changed is not None else f"{rule_name(d)}: no interval, n={d.stat.n}")
        parts.append(f"{group} vs {d.baseline}: {d.stat.mean:+.2f} {unit} ({interval}): {verdict(d, up, down)}")
    return f"{label}: " + "; ".join(parts) + "." if parts else None


def group_means(comparison: GroupComparison, metric: str, label: str, unit: str) -> str:
    """``"Test accuracy: base 96.1% [95.2, 97.0] (one group: nothing to compare it with)."``"""
    pct = f"{100 * comparison.confidence:g}%"
    parts = []
    for group, stat in comparison.stats.get(metric, {}).items():
        if not math.isfinite(stat.mean):
            parts.append(f"{group} n/a (no such split)")
        elif math.isfinite(stat.low):
            parts.append(f"{group} {stat.mean:.2f}{unit} ({pct} t-interval [{stat.low:.2f}, {stat.high:.2f}], n={stat.n})")
        else:
            parts.append(f"{group} {stat.mean:.2f}{unit} (n={stat.n}, no interval)")
    return f"{label}: " + "; ".join(parts) + " (no other group to compare with)."


def confounded(comparison: GroupComparison, group: str) -> list[str]:
    """The train measures (loss, accuracy) that differ beyond noise between ``group`` and the baseline."""
    return [label for m, label in (("train_loss", "train loss"), ("train_acc", "train accuracy"))
            if comparison.differences.get(m, {}).get(group) is not None
            and comparison.differences[m][group].changed]


def group_findings(comparison: GroupComparison, group: str, labels: Mapping[str, str]) -> list[str]:
    """What changed beyond noise for ``group`` and what did not, with the confounder note."""
    pct, head = f"{100 * comparison.confidence:g}%", f"{group} vs {comparison.baseline}"
    diffs = [(comparison.differences[m][group], m, label) for m, label in labels.items()
             if group in comparison.differences.get(m, {}) and math.isfinite(comparison.differences[m][group].stat.mean)]
    if not diffs:
        return []
    rule = rule_name(diffs[0][0])
    unequal = confounded(comparison, group)
    differ = f"{' and '.join(unequal)} {'differs' if len(unequal) == 1 else 'differ'} beyond noise"
    note = f" [at unequal train loss: {differ}]" if unequal else ""

    def said(d, m, label):
        return describe_difference(d, label) + (note if m.split("/")[0] in CURVATURE else "")

    changed = [said(d, m, lab) for d, m, lab in diffs if d.changed]
    steady = [lab for d, _, lab in diffs if d.changed is False]
    undecided = [said(d, m, lab) for d, m, lab in diffs if d.changed is None]
    out = []
    if changed:
        out.append(f"{head}: changed beyond noise ({pct} {rule} excludes 0): " + "; ".join(changed) + ".")
    elif not undecided:
        out.append(f"{head}: no other measure changed beyond noise.")
    if steady:
        out.append(f"{head}: within noise (interval holds 0): " + ", ".join(steady) + ".")
    if undecided:
        out.append(f"{head}: undecided or not compared: " + "; ".join(undecided) + ".")
    curvature = [lab for _, m, lab in diffs if m.split("/")[0] in CURVATURE]
    if unequal and curvature:
        out.append(f"{head}: the curvature and sharpness comparisons ({', '.join(curvature)}) are at unequal "
                   f"train loss ({differ}): a sharper or flatter minimum may only reflect where training stopped.")
    return out


def correlation_findings(correlations: Sequence[Correlation], labels: Mapping[str, str],
                         target_label: str, pct: str) -> list[str]:
    """The sentence on the rank correlations with the target."""
    decided = [c for c in correlations if math.isfinite(c.rho)]
    if not decided:
        return [f"Rank correlations with {target_label} need at least 3 runs with varying values; "
                "none could be computed."] if correlations else []
    parts = []
    for c in decided:
        label = labels.get(c.metric, c.metric)
        if c.tracks is None:
            parts.append(f"{label} rho {c.rho:+.2f} (too few runs for an interval)")
        else:
            parts.append(f"{label} rho {c.rho:+.2f} ({pct} interval {c.low:+.2f} to {c.high:+.2f}, "
                         f"{'tracks it' if c.tracks else 'no clear link'})")
    return [f"Across all {max(c.n for c in decided)} runs, Spearman rank correlation with {target_label}: "
            + "; ".join(parts) + "."]


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
        The sentences, in order: the answer (test accuracy per group against the baseline, with
        its interval and one verdict: improved / worsened / no change beyond noise), the
        generalization gap, noise caveats, per group what else changed beyond noise and what
        did not, then the rank correlations.
    """
    out = [answer(comparison, "test_acc", "Test accuracy", "points", "improved", "worsened"),
           answer(comparison, "gap", "Generalization gap (train - test accuracy)", "points",
                  "larger gap", "smaller gap")]
    out = [s for s in out if s] or [group_means(comparison, "test_acc", "Test accuracy", "%")]
    single = comparison.single_run_groups
    if single:
        it = "it" if len(single) == 1 else "them"
        out.append(f"{', '.join(single)} {'has' if len(single) == 1 else 'have'} a single run: no "
                   f"conclusion about noise can be drawn for {it}; differences involving {it} are shown "
                   "without an interval. Train more seeds to decide.")
    rest = {m: label for m, label in labels.items() if m not in ("test_acc", "gap")}
    for group in comparison.groups:
        if group != comparison.baseline:
            out += group_findings(comparison, group, rest)
    return out + correlation_findings(correlations, correlation_labels or labels, target_label,
                                      f"{100 * comparison.confidence:g}%")
