import math

import numpy as np
import pytest
from scipy import stats

from analysis.findings import (
    compare_groups,
    difference_interval,
    findings_text,
    mean_interval,
    rank_correlations,
    spearman_interval,
)


def test_mean_interval_closed_form():
    s = mean_interval([1.0, 2.0, 3.0])
    # sd 1, t(0.975, 2) = 4.302652729749464
    assert s.mean == 2.0 and s.n == 3
    assert s.half_width == pytest.approx(4.302652729749464 / math.sqrt(3), rel=1e-12)
    one = mean_interval([5.0, float("nan")])
    assert one.mean == 5.0 and one.n == 1 and math.isnan(one.low) and math.isnan(one.high)
    with pytest.raises(ValueError, match="confidence"):
        mean_interval([1, 2], confidence=95)


def test_welch_difference_matches_scipy():
    a, b = [0.9, 1.4, 1.1, 1.3], [0.2, 0.5, 0.1]
    d = difference_interval(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert d.mean == pytest.approx(np.mean(a) - np.mean(b), rel=1e-12)
    assert (d.low, d.high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert math.isnan(difference_interval([1.0], b).low)


def test_spearman_interval_fisher_bonett_wright():
    x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    y = [2.0, 1.0, 4.0, 3.0, 6.0, 5.0]
    c = spearman_interval(x, y)
    rho = stats.spearmanr(x, y).statistic
    assert c.rho == pytest.approx(rho) and c.n == 6
    half = 1.959963984540054 * math.sqrt((1 + rho ** 2 / 2) / 3)
    assert (c.low, c.high) == pytest.approx((math.tanh(math.atanh(rho) - half),
                                            math.tanh(math.atanh(rho) + half)), rel=1e-9)
    assert c.tracks is (c.low > 0)
    short = spearman_interval([1, 2, 3], [3, 2, 1])
    assert short.rho == pytest.approx(-1) and math.isnan(short.low) and short.tracks is None
    assert math.isnan(spearman_interval([1, 1, 1, 1], [1, 2, 3, 4]).rho)
    with pytest.raises(ValueError, match="pair up"):
        spearman_interval([1, 2], [1])


def synthetic():
    """Three seeds per group; test accuracy moves by 3 points (noise ~0.3), the trace by 0.1
    (noise ~2), the first layer's minimal angle by 20 degrees (noise ~1)."""
    base = [{"test_acc": 90.0 + e, "hessian_trace": 50 + t, "min_angle/conv1": 30 + a}
            for e, t, a in ((0.1, -2, 0.5), (-0.3, 1.5, -1), (0.2, 0.5, 0.6))]
    reg = [{"test_acc": 93.0 + e, "hessian_trace": 50.1 + t, "min_angle/conv1": 50 + a}
           for e, t, a in ((-0.2, 2, 0.3), (0.3, -1.5, -0.4), (0.0, -0.2, 0.9))]
    return {"baseline": base, "mma": reg}


LABELS = {"test_acc": "test accuracy (%)", "hessian_trace": "Hessian trace",
          "min_angle/conv1": "minimal angle conv1 (deg)"}


def test_findings_flag_a_change_beyond_its_interval_only():
    groups = synthetic()
    comp = compare_groups(groups)
    acc, trace = comp.differences["test_acc"]["mma"], comp.differences["hessian_trace"]["mma"]
    assert acc.changed is True and acc.stat.low > 0
    assert trace.changed is False and trace.stat.low < 0 < trace.stat.high
    # group stats equal a direct computation from each run's numbers
    direct = [r["test_acc"] for r in groups["mma"]]
    assert comp.stats["test_acc"]["mma"].mean == pytest.approx(np.mean(direct))
    text = findings_text(comp, LABELS)
    changed = next(s for s in text if "changed beyond noise" in s)
    steady = next(s for s in text if "within noise" in s)
    assert "test accuracy (%) +3" in changed and "minimal angle conv1 (deg) +20" in changed
    assert "Hessian trace" not in changed and "Hessian trace" in steady
    assert not any("single run" in s for s in text)


def test_findings_with_one_seed_say_no_conclusion_about_noise():
    groups = {"baseline": synthetic()["baseline"][:1], "mma": synthetic()["mma"]}
    comp = compare_groups(groups, baseline="baseline")
    text = findings_text(comp, LABELS)
    assert text[0].startswith("baseline has a single run: no conclusion about noise can be drawn")
    assert all(d.changed is None for m in comp.differences.values() for d in m.values())
    assert any("undecided" in s and "test accuracy (%) +2.93 (no interval)" in s for s in text)
    with pytest.raises(ValueError, match="baseline 'x' is not a group"):
        compare_groups(groups, baseline="x")


def test_rank_correlations_across_runs_in_the_findings():
    groups = synthetic()
    runs = groups["baseline"] + groups["mma"]
    corr = rank_correlations(runs, ["min_angle/conv1", "hessian_trace"])
    angle = corr[0]
    assert angle.n == 6 and angle.rho == pytest.approx(
        stats.spearmanr([r["min_angle/conv1"] for r in runs], [r["test_acc"] for r in runs]).statistic)
    text = findings_text(compare_groups(groups), LABELS, corr)
    assert text[-1].startswith("Across all 6 runs, Spearman rank correlation with test accuracy: "
                               f"minimal angle conv1 (deg) rho {angle.rho:+.2f}")
