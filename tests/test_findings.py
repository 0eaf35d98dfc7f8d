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
    # the answer first: the test-accuracy difference with its interval and one verdict
    ci = stats.ttest_ind([r["test_acc"] for r in groups["mma"]], [r["test_acc"] for r in groups["baseline"]],
                         equal_var=False).confidence_interval(0.95)
    assert text[0] == (f"Test accuracy: mma vs baseline: {acc.stat.mean:+.2f} points (95% Welch t-interval "
                       f"[{ci.low:+.2f}, {ci.high:+.2f}], n=3): improved.")
    changed = next(s for s in text if "changed beyond noise" in s)
    steady = next(s for s in text if "within noise" in s)
    assert "minimal angle conv1 (deg) +20" in changed and "test accuracy" not in changed
    assert "Hessian trace" not in changed and "Hessian trace" in steady
    assert not any("single run" in s for s in text)


def test_findings_with_one_seed_say_no_conclusion_about_noise():
    groups = {"baseline": synthetic()["baseline"][:1], "mma": synthetic()["mma"]}
    comp = compare_groups(groups, baseline="baseline")
    text = findings_text(comp, LABELS)
    assert text[0] == ("Test accuracy: mma vs baseline: +2.93 points (Welch t-interval: no interval, n=3): "
                       "undecided (fewer than two runs or pairs on a side).")
    assert text[1].startswith("baseline has a single run: no conclusion about noise can be drawn")
    assert all(d.changed is None for m in comp.differences.values() for d in m.values())
    assert any("undecided" in s and "minimal angle conv1 (deg) +19.8 (no interval)" in s for s in text)
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


def test_shared_seeds_are_paired_and_match_scipy_ttest_rel():
    groups = synthetic()
    seeds = {"baseline": [0, 1, 2], "mma": [2, 0, 1]}  # the same seeds in another order
    comp = compare_groups(groups, seeds=seeds)
    d = comp.differences["hessian_trace"]["mma"]
    base = [groups["baseline"][s]["hessian_trace"] for s in seeds["mma"]]
    mma = [r["hessian_trace"] for r in groups["mma"]]
    ci = stats.ttest_rel(mma, base).confidence_interval(0.95)
    assert d.paired and d.stat.method == "paired-t" and d.stat.n == 3
    assert (d.stat.low, d.stat.high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    text = findings_text(comp, LABELS)
    assert "95% paired t-interval of per-seed differences" in text[0]
    # other seeds, or a seed missing: Welch
    assert not compare_groups(groups, seeds={"baseline": [0, 1, 2], "mma": [3, 4, 5]}).differences[
        "hessian_trace"]["mma"].paired
    assert not compare_groups(groups, seeds={"baseline": [0, 1, None], "mma": [0, 1, 2]}).differences[
        "hessian_trace"]["mma"].paired


def test_censored_values_are_never_a_change_nor_a_correlation():
    groups = {"baseline": [{"test_acc": 90 + i, "basin_width": 1.0 + 0.01 * i} for i in range(3)],
              "wide": [{"test_acc": 91 + i, "basin_width": 2.0 + 0.01 * i} for i in range(3)]}
    censored = {"baseline": [(), (), ()], "wide": [("basin_width",), (), ()]}
    comp = compare_groups(groups, censored=censored)
    d = comp.differences["basin_width"]["wide"]
    assert d.censored and d.changed is None and comp.censored_runs("basin_width", "wide") == 1
    assert math.isnan(comp.stats["basin_width"]["wide"].low)
    assert comp.differences["test_acc"]["wide"].changed is not None
    text = findings_text(comp, {"basin_width": "1D basin width"})
    assert any("1D basin width not compared (a value is only a lower bound" in s for s in text)
    assert not any("changed beyond noise" in s and "basin" in s for s in text)
    runs = groups["baseline"] + groups["wide"]
    cut = censored["baseline"] + censored["wide"]
    corr = rank_correlations(runs, ["basin_width"], censored=cut)[0]
    assert corr.n == 5


def test_unequal_train_loss_is_said_on_curvature_findings():
    base = [{"train_loss": 0.10 + 0.001 * i, "top_eigenvalue": 5.0 + 0.1 * i, "min_angle": 30.0 + i}
            for i in range(3)]
    reg = [{"train_loss": 0.40 + 0.001 * i, "top_eigenvalue": 9.0 + 0.1 * i, "min_angle": 50.0 + i}
           for i in range(3)]
    text = findings_text(compare_groups({"baseline": base, "reg": reg}),
                         {"top_eigenvalue": "top Hessian eigenvalue", "min_angle": "minimal angle"})
    changed = next(s for s in text if "changed beyond noise" in s)
    eig = changed.split(";")[0]
    assert "top Hessian eigenvalue +4" in eig and "at unequal train loss: train loss differs beyond noise" in eig
    assert "unequal" not in changed.split(";")[1]  # the angle is not a curvature measure
    assert text[-1] == ("reg vs baseline: the curvature and sharpness comparisons (top Hessian eigenvalue) are at "
                        "unequal train loss (train loss differs beyond noise): a sharper or flatter minimum may "
                        "only reflect where training stopped.")


def test_nonnegative_group_intervals_stay_above_zero():
    values = [0.5, 80.0, 3.0]  # a t-interval would reach far below 0
    assert mean_interval(values).low < 0
    comp = compare_groups({"a": [{"min_angle/conv1": v, "test_acc": v} for v in values]})
    angle = comp.stats["min_angle/conv1"]["a"]
    se = np.std(values, ddof=1) / math.sqrt(3) / np.mean(values) * stats.t.ppf(0.975, 2)
    assert angle.method == "log-t" and angle.low > 0
    assert (angle.low, angle.high) == pytest.approx((np.mean(values) * math.exp(-se), np.mean(values) * math.exp(se)))
    assert comp.stats["test_acc"]["a"].method == "t"
