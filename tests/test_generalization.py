"""Histories, generalization gap, LinR sweet point and the plots of learning curves and scatters."""
import json

import matplotlib.pyplot as plt
import numpy as np
import pytest

from analysis.generalization import (RefineSweep, accuracy_points, generalization_gap,
                                     load_history, plot_accuracy_scatter, plot_gap,
                                     plot_learning_curves, plot_refine_sweep, sweet_point)

HISTORY = {"epoch": [1, 2, 3], "train_loss": [2.0, 1.0, 0.5], "train_acc": [40.0, 70.0, 95.0],
           "test_loss": [2.1, 1.3, 1.1], "test_acc": [38.0, 62.0, 80.0], "lr": [0.1, 0.1, 0.01]}


def test_load_history_from_dict_folder_and_file(tmp_path):
    (tmp_path / "history.json").write_text(json.dumps(HISTORY))
    for source in (HISTORY, tmp_path, tmp_path / "history.json", str(tmp_path)):
        history = load_history(source)
        assert history["test_acc"].tolist() == [38.0, 62.0, 80.0]
        assert history["lr"].tolist() == [0.1, 0.1, 0.01]
    with pytest.raises(FileNotFoundError):
        load_history(tmp_path / "missing")
    with pytest.raises(ValueError, match="test_loss"):
        load_history({k: v for k, v in HISTORY.items() if k != "test_loss"})
    with pytest.raises(ValueError, match="lengths"):
        load_history({**HISTORY, "train_acc": [1.0]})


def test_gap_arithmetic():
    gap = generalization_gap(HISTORY)
    assert gap.epoch.tolist() == [1, 2, 3]
    assert gap.accuracy == pytest.approx([2.0, 8.0, 15.0])
    assert gap.loss == pytest.approx([0.1, 0.3, 0.6])
    assert accuracy_points(HISTORY).tolist() == [[40.0, 38.0], [70.0, 62.0], [95.0, 80.0]]


def sweep(baseline_test, refined_test):
    """A sweep whose train accuracy is irrelevant (fixed at 90 %)."""
    return RefineSweep(np.arange(1, len(baseline_test) + 1),
                       np.array([[90.0, t] for t in baseline_test]),
                       [np.array([[90.0, t] for t in ts]) for ts in refined_test])


def test_sweet_point_is_first_epoch_after_which_all_refinements_win():
    base = [50, 60, 70, 75, 80, 82]
    refined = [[49, 55], [61, 62], [69, 72], [76, 77], [81], [83, 85]]
    assert sweet_point(sweep(base, refined)) == 4  # epoch 3 has a loser (69 < 70)
    # a tie does not surpass the baseline
    assert sweet_point(sweep(base, refined[:3] + [[75, 77], [81], [83]])) == 5
    assert sweet_point(sweep(base, [[51], [61], [71], [76], [81], [83]])) == 1
    assert sweet_point(sweep(base, refined[:5] + [[90, 81]])) is None
    with pytest.raises(ValueError):
        sweet_point(sweep([50], [[]]))


def test_refine_sweep_from_histories():
    refined = {2: {**HISTORY, "test_acc": [63.0, 64.0, 65.0]},
               3: {**HISTORY, "test_acc": [81.0, 79.0, 85.0]}}
    result = RefineSweep.from_histories(HISTORY, refined)
    assert result.epochs.tolist() == [2, 3]
    assert result.baseline.tolist() == [[70.0, 62.0], [95.0, 80.0]]
    assert result.refined[1][:, 1].tolist() == [81.0, 79.0, 85.0]
    assert sweet_point(result) is None
    refined[3]["test_acc"] = [81.0, 82.0, 85.0]
    assert sweet_point(RefineSweep.from_histories(HISTORY, refined)) == 2
    with pytest.raises(ValueError, match="epoch 9"):
        RefineSweep.from_histories(HISTORY, {9: HISTORY})


def test_curve_and_gap_plots_overlay_runs():
    runs = {"sgd": HISTORY, "smooth": {**HISTORY, "test_acc": [40.0, 66.0, 84.0]}}
    fig = plot_learning_curves(runs)
    assert len(fig.axes) == 3
    assert all(len(ax.get_lines()) == 2 for ax in fig.axes)
    assert fig.axes[2].get_lines()[1].get_ydata().tolist() == [40.0, 66.0, 84.0]
    fig = plot_gap(runs)
    assert [len(ax.get_lines()) for ax in fig.axes] == [3, 3]  # two runs and the zero line
    plt.close("all")


def test_scatters_have_points_and_diagonal():
    fig = plot_accuracy_scatter({"fine tune": [[95.0, 88.0], [97.0, 89.0]],
                                 "refined": np.array([[94.0, 90.0]])})
    ax = fig.axes[0]
    assert [len(c.get_offsets()) for c in ax.collections] == [2, 1]
    diagonal = ax.get_lines()[0]
    assert diagonal.get_xdata() == pytest.approx(diagonal.get_ydata())
    result = sweep([50, 60, 70, 75, 80], [[49], [61], [71], [76], [81, 82]])
    fig = plot_refine_sweep(result, columns=3)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 5 and len(fig.axes) == 6
    assert shown[1].get_title() == "epoch 2 (sweet point)"
    assert len(plot_refine_sweep(result, epochs=[1, 5]).axes) == 4
    plt.close("all")
