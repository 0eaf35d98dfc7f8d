"""Filter angles: closed forms on hand-made rows (degrees), histograms, per-layer tables, plots."""
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from analysis.angles import (angle_histogram, angle_values, min_angle_table,
                             minimal_angles, named_layers, pairwise_angles, plot_angle_histogram,
                             plot_min_angles)

SIMPLEX = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=float)
TETRAHEDRAL = math.degrees(math.acos(-1 / 3))  # 109.47


def plane_rows(*degrees):
    """Unit rows in the plane at the given polar angles (degrees)."""
    return np.array([[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in degrees])


def tiny_model(seed=0):
    """conv(1->3, 2x2) -> linear(12 -> 5) -> linear(5 -> 4): 3 + 5 + 4 filters."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 2), nn.ReLU(), nn.Flatten(), nn.Linear(12, 5), nn.ReLU(),
                         nn.Linear(5, 4))


def test_pairwise_angles_closed_forms():
    ortho = pairwise_angles(3.0 * np.eye(4))
    assert ortho[~np.eye(4, dtype=bool)] == pytest.approx(np.full(12, 90.0))
    assert np.diag(ortho) == pytest.approx(np.zeros(4))
    simplex = pairwise_angles(torch.tensor(SIMPLEX))
    assert simplex[~np.eye(4, dtype=bool)] == pytest.approx(np.full(12, TETRAHEDRAL))
    assert TETRAHEDRAL == pytest.approx(109.47, abs=0.01)
    same = pairwise_angles(np.array([[0.3, -1.0, 2.0], [0.6, -2.0, 4.0]]))  # scale does not matter
    assert same == pytest.approx(np.zeros((2, 2)), abs=1e-5)
    assert pairwise_angles(np.array([[1.0, 0.0], [-2.0, 0.0]]))[0, 1] == pytest.approx(180.0)


def test_conv_weight_is_read_as_rows():
    w = torch.eye(4, dtype=torch.float64).reshape(4, 1, 2, 2)  # four orthogonal 2x2 filters
    assert minimal_angles(w) == pytest.approx(np.full(4, 90.0))


def test_minimal_angles_of_planar_rows():
    assert minimal_angles(plane_rows(0, 30, 100)) == pytest.approx([30.0, 30.0, 70.0])


def test_named_layers_follow_weight_layers():
    model = tiny_model()
    assert [n for n, _ in named_layers(model)] == ["0.weight", "3.weight", "5.weight"]
    assert [n for n, _ in named_layers(model, include_output=False)] == ["0.weight", "3.weight"]


def test_histogram_counts_filters_and_pairs():
    models = {"a": tiny_model(0), "b": tiny_model(1)}
    minimal = angle_histogram(models, "minimal", bins=18)
    pairwise = angle_histogram(models, "pairwise", bins=18)
    assert minimal.edges[[0, -1]].tolist() == [0.0, 180.0] and len(minimal.edges) == 19
    for name in models:
        assert minimal.counts[name].sum() == 3 + 5 + 4
        assert pairwise.counts[name].sum() == 3 + 10 + 6
    assert angle_histogram(models, "pairwise", layer=1).counts["a"].sum() == 10
    # pairs are counted once: the pairwise values are the upper triangle of the angle matrix
    layer = named_layers(models["a"])[1][1]
    assert sorted(angle_values(models["a"], "pairwise", 1)) == pytest.approx(
        sorted(pairwise_angles(layer)[np.triu_indices(5, 1)]))
    with pytest.raises(ValueError):
        angle_values(models["a"], "nearest")


def test_min_angle_table_on_known_weights():
    model = nn.Sequential(nn.Linear(2, 3, bias=False), nn.Linear(3, 4, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(plane_rows(0, 30, 100)))
        model[1].weight.copy_(torch.tensor(SIMPLEX))
    table = min_angle_table({"hand": model, "copy": model})
    assert table.layers == ["0.weight", "1.weight"] and table.n_filters == [3, 4]
    assert table.min_angle["hand"] == pytest.approx([30.0, TETRAHEDRAL])
    assert table.mean_min_angle["hand"] == pytest.approx([130.0 / 3, TETRAHEDRAL])
    text = table.to_text()
    assert "| 0 | 0.weight | 3 | 30.0 / 43.3 | 30.0 / 43.3 |" in text
    assert len(text.splitlines()) == 2 + 2
    with pytest.raises(ValueError):
        min_angle_table({"hand": model, "other": tiny_model()})


def test_plots_draw_one_artist_per_model():
    models = {"a": tiny_model(0), "b": tiny_model(1), "c": tiny_model(2)}
    fig = plot_angle_histogram(angle_histogram(models, "minimal"))
    assert len(fig.axes[0].patches) == 3
    fig = plot_min_angles(min_angle_table(models))
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 * 3 and len(lines[0].get_xdata()) == 3
    plt.close("all")
