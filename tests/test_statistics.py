import math

import numpy as np
import pytest
from scipy import stats

from analysis.statistics import (bootstrap_interval, log_t_interval, paired_interval, t_interval,
                                 welch_interval)


def test_t_paired_and_welch_equal_scipy():
    a, b = [1.2, 2.5, 2.9, 4.1], [1.0, 2.0, 3.1, 3.0]
    t = t_interval(a)
    ci = stats.ttest_1samp(a, 0).confidence_interval(0.9 + 0.05)
    assert (t.low, t.high) == pytest.approx((ci.low, ci.high), rel=1e-12) and t.method == "t"
    p = paired_interval(a, b)
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (p.mean, p.low, p.high) == pytest.approx((np.mean(a) - np.mean(b), ci.low, ci.high), rel=1e-12)
    w = welch_interval(a, b[:3])
    ci = stats.ttest_ind(a, b[:3], equal_var=False).confidence_interval(0.95)
    assert (w.low, w.high) == pytest.approx((ci.low, ci.high), rel=1e-12) and w.method == "welch"
    assert p.n == 4 and paired_interval([1.0, None, 3.0], [0.0, 1.0, float("nan")]).n == 1
    with pytest.raises(ValueError, match="pair up"):
        paired_interval([1.0], [1.0, 2.0])


def test_log_t_interval_is_bounded_and_closed_form():
    v = [0.0, 0.1, 9.0]
    got = log_t_interval(v)
    spread = stats.t.ppf(0.975, 2) * np.std(v, ddof=1) / math.sqrt(3) / np.mean(v)
    assert got.mean == pytest.approx(3.0333333333333)
    assert (got.low, got.high) == pytest.approx((3.0333333333333 * math.exp(-spread), 3.0333333333333 * math.exp(spread)))
    assert got.low > 0 and t_interval(v).low < 0
    assert (log_t_interval([0, 0]).low, log_t_interval([0, 0]).high) == (0.0, 0.0)
    with pytest.raises(ValueError, match="non-negative"):
        log_t_interval([-1.0, 2.0])


def test_bootstrap_percentile_of_three_runs_is_their_range():
    # every resample of 3 runs repeats one run with probability 1/27 > 2.5%: the 95% percentile
    # interval of the mean is exactly [min, max]
    got = bootstrap_interval([[1.0, 4.0, 2.5]], np.mean)
    assert (got.mean, got.low, got.high) == (2.5, 1.0, 4.0) and got.method == "bootstrap-percentile"
    # runs resampled together: a statistic of two per-run numbers
    x = np.arange(20.0)
    corr = bootstrap_interval([x, 2 * x + 1], lambda a, b: stats.kendalltau(a, b).statistic)
    assert corr.mean == 1.0 and corr.low == pytest.approx(1.0)
    assert math.isnan(bootstrap_interval([[1.0]], np.mean).low)
