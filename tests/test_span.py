"""auto_span: the distance at which the loss first reaches a multiple of the center loss."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from landscape.directions import Directions
from landscape.span import auto_span, direction_spans


def parabola(c, a, a_negative=None):
    """Losses c + a s^2 (a_negative s^2 for s < 0) at coordinates (k, 1)."""
    def loss_at(coords):
        s = coords[:, 0]
        return c + np.where(s < 0, a if a_negative is None else a_negative, a) * s ** 2
    return loss_at


def test_quadratic_doubling_distance():
    c, a = 0.3, 2.5
    exact = math.sqrt(c / a)  # c + a s^2 = 2 c
    span = auto_span(parabola(c, a), rtol=1e-4)
    assert span.reached and span.center_loss == pytest.approx(c) and span.target_loss == pytest.approx(2 * c)
    assert span.lower < exact <= span.span <= exact * (1 + 1e-4)
    assert span.loss_at_span >= 2 * c
    # factor 5 and an absolute target give sqrt((f - 1) c / a)
    assert auto_span(parabola(c, a), factor=5.0, rtol=1e-6).span == pytest.approx(2 * exact, rel=1e-6)
    assert auto_span(parabola(c, a), target=0.3 + 2.5 * 4.0, rtol=1e-6).span == pytest.approx(2.0, rel=1e-6)
    assert "span" in span.describe()


def test_both_sides_take_the_steeper_one_and_rows_pick_the_loss_column():
    c, a = 1.0, 1.0
    steep = parabola(c, a, a_negative=4 * a)
    assert auto_span(steep, rtol=1e-6).span == pytest.approx(0.5, rel=1e-6)  # 1 + 4 s^2 = 2
    assert auto_span(steep, rtol=1e-6, both_sides=False).span == pytest.approx(1.0, rel=1e-6)

    def rows(coords):  # (k, 2): an accuracy column first, the loss second
        return np.stack([np.full(len(coords), 50.0), steep(coords)], axis=1)
    assert auto_span(rows, column=1, rtol=1e-6).span == pytest.approx(0.5, rel=1e-6)


def test_never_reached_and_divergence():
    bounded = lambda coords: 1.0 + 0.5 * np.tanh(coords[:, 0] ** 2)  # noqa: E731 -- at most 1.5
    span = auto_span(bounded, max_span=10.0)
    assert not span.reached and span.span == 10.0 and "never reached" in span.describe()
    # a NaN loss (divergence) beyond |s| = 0.3 counts as reaching the target
    diverging = lambda coords: np.where(np.abs(coords[:, 0]) < 0.3, 1.0, np.nan)  # noqa: E731
    span = auto_span(diverging, rtol=1e-3)
    assert span.reached and 0.3 <= span.span <= 0.3 * (1 + 1e-3) and span.loss_at_span == math.inf


@pytest.mark.parametrize("kwargs, match", [
    (dict(factor=1.0), "factor"), (dict(start=0.0), "start"), (dict(start=2.0, max_span=1.0), "start"),
    (dict(rtol=0.0), "rtol"), (dict(target=0.1), "target")])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        auto_span(parabola(0.3, 1.0), **kwargs)


def test_zero_center_loss_needs_an_absolute_target():
    with pytest.raises(ValueError, match="give target"):
        auto_span(parabola(0.0, 1.0))
    assert auto_span(parabola(0.0, 1.0), target=4.0, rtol=1e-6).span == pytest.approx(2.0, rel=1e-6)


def test_direction_spans_of_least_squares_match_the_closed_form():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 4, dtype=torch.float64, generator=g)
    noise = 0.3 * torch.randn(50, dtype=torch.float64, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64) + noise
    model = nn.Linear(4, 1, bias=False).double()
    w = torch.linalg.lstsq(x, y[:, None]).solution.T
    with torch.no_grad():
        model.weight.copy_(w)  # at the minimum: L(a) = L0 + a^2 d^T H d / 2, H = 2 X^T X / n
    loss0 = torch.mean((x @ w.T - y[:, None]) ** 2).item()
    hess = (2 * x.T @ x / 50).numpy()
    d1 = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    d2 = torch.tensor([[0.3, 0.1, -0.5, 2.0]], dtype=torch.float64)
    dirs = Directions([[d1], [d2]])
    spans = direction_spans(model, (x, y), dirs, loss="mse", rtol=1e-5, start=1e-3)
    for span, d in zip(spans, (d1, d2)):
        curvature = (d.numpy() @ hess @ d.numpy().T).item()
        exact = math.sqrt(2 * loss0 / curvature)  # L0 + curvature s^2 / 2 = 2 L0
        assert span.reached and span.center_loss == pytest.approx(loss0, rel=1e-9)
        assert exact <= span.span * (1 + 1e-9) and span.span <= exact * (1 + 1e-5)
