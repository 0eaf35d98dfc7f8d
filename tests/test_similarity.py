"""Cosine matrices and counts above a threshold, filter norms, stable rank, plots."""
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from analysis.angles import cosine_array
from analysis.similarity import (count_above, filter_norms, plot_cosine_matrices,
                                 plot_filter_norms, plot_stable_ranks, stable_rank, stable_ranks)


def known_model():
    """Two bias-free linear layers with hand-set weights."""
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 3, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 4.0]]))
        model[1].weight.copy_(torch.tensor([[1.0, 2.0], [2.0, 4.0], [-3.0, -6.0]]))  # rank 1
    return model


def test_count_above_is_signed_and_counts_each_pair_once():
    cos = np.array([[1.0, 0.5, 0.1, 0.3],
                    [0.5, 1.0, -0.9, 0.2],
                    [0.1, -0.9, 1.0, 0.25],
                    [0.3, 0.2, 0.25, 1.0]])
    assert count_above(cos) == 3  # 0.5, 0.3, 0.25; 0.2 is not above 0.2, -0.9 is negative
    assert count_above(cos, threshold=0.0) == 5
    assert count_above(cos, threshold=-1.0) == 6
    assert count_above(np.eye(5)) == 0


def test_cosine_matrix_of_rows():
    w = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-2.0, 0.0]])
    expected = np.array([[1, 2 ** -0.5, -1], [2 ** -0.5, 1, -(2 ** -0.5)], [-1, -(2 ** -0.5), 1]])
    assert cosine_array(w) == pytest.approx(expected)


def test_stable_rank_closed_forms():
    assert stable_rank(np.diag([3.0, 4.0])) == pytest.approx(25 / 16)
    assert stable_rank(np.outer([1.0, 2.0, 3.0], [4.0, 5.0])) == pytest.approx(1.0)
    assert stable_rank(torch.eye(6).reshape(6, 1, 2, 3)) == pytest.approx(6.0)
    assert stable_ranks(known_model()) == pytest.approx([25 / 16, 1.0])


def test_filter_norms_per_layer():
    norms = filter_norms(known_model())
    assert norms[0] == pytest.approx([3.0, 4.0])
    assert norms[1] == pytest.approx(np.sqrt([5.0, 20.0, 45.0]))


def test_cosine_panels_show_counts():
    weights = {"rows": torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]]), "model": known_model()}
    fig = plot_cosine_matrices(weights, layer=1)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 2
    assert panels[0].get_title() == "rows: 1 pairs > 0.2"
    assert panels[1].get_title() == "model: 1 pairs > 0.2"  # rows 0 and 1 of layer 1 are parallel
    assert panels[1].images[0].get_array().shape == (3, 3)
    plt.close("all")


def test_norm_and_rank_plots_draw_every_model():
    models = {"a": known_model(), "b": known_model()}
    fig = plot_filter_norms(models)
    assert len(fig.axes[0].patches) == 2 * 2  # one box per layer per model
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["a", "b"]
    fig = plot_stable_ranks(models)
    assert len(fig.axes[0].get_lines()) == 2
    assert fig.axes[0].get_lines()[0].get_ydata() == pytest.approx([25 / 16, 1.0])
    plt.close("all")
