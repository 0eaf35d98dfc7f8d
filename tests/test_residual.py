"""Residual smoothing: kappa = 0 is squared error, eq. 22 rows sum to 1, the annealing peak."""
import math

import pytest
import torch
import torch.nn.functional as F

from regularizers import residual_smoothing_loss
from regularizers.residual import ResidualSmoothing, annealing, diffusivity, smoothing_matrix


def batch(seed=0, b=6, m=5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, m, generator=g, dtype=torch.float64), torch.randint(m, (b,), generator=g)


def test_zero_diffusivity_is_the_squared_error_on_one_hot_targets():
    logits, y = batch()
    expected = F.mse_loss(logits.softmax(1), F.one_hot(y, 5).double(), reduction="sum") / len(y)
    assert residual_smoothing_loss(logits, y, s=0.0).item() == pytest.approx(expected.item())


def test_smoothing_matrix_is_eq_22():
    kappa = torch.tensor([[0.0, 0.4, 1.0], [0.2, 0.2, 0.9]], dtype=torch.float64)
    w = smoothing_matrix(kappa)
    assert torch.allclose(w.sum(dim=2), torch.ones(2, 3, dtype=torch.float64))
    expected = torch.tensor([[1, 0, 0], [0.2, 0.6, 0.2], [0.5, 0.5, 0]], dtype=torch.float64)
    assert torch.allclose(w[0], expected)
    assert torch.equal(w[1].diagonal(), 1 - kappa[1])


def test_global_scheme_smooths_uniformly_with_half_the_scale():
    logits, y = batch(1)
    d = (logits.softmax(1) - F.one_hot(y, 5)).abs()
    kappa = diffusivity(d, s=0.8, alpha=0.0)
    assert torch.allclose(kappa, torch.full_like(d, 0.4))  # sigmoid(0) = 1/2
    smoothed = 0.6 * d + 0.4 / 4 * (d.sum(1, keepdim=True) - d)
    expected = smoothed.pow(2).sum(1).mean()
    assert residual_smoothing_loss(logits, y, s=0.8, alpha=0.0).item() == pytest.approx(expected.item())


def test_local_scheme_uses_the_standardized_residual():
    d = torch.tensor([[0.1, 0.2, 0.6]], dtype=torch.float64)
    z = (d - 0.3) / d.std(correction=0)
    assert torch.allclose(diffusivity(d, s=2.0, alpha=1.5), 2.0 / (1 + torch.exp(-1.5 * z)))


def test_no_gradient_flows_into_the_diffusivity():
    logits, y = batch(2)
    logits.requires_grad_()
    grad = torch.autograd.grad(residual_smoothing_loss(logits, y, s=1.0, alpha=2.0), logits)[0]
    d = (logits.softmax(1) - F.one_hot(y, 5)).abs()
    w = smoothing_matrix(diffusivity(d.detach(), 1.0, 2.0))
    manual = torch.einsum("bjk,bk->bj", w, d).pow(2).sum(1).mean()
    assert torch.allclose(grad, torch.autograd.grad(manual, logits)[0])


def test_annealing_peaks_at_one_at_mu():
    for schedule in ("laplace", "logistic"):
        assert annealing(0.75, schedule=schedule) == 1.0
        assert annealing(0.6, schedule=schedule) == pytest.approx(annealing(0.9, schedule=schedule))
        assert annealing(0.2, schedule=schedule) < annealing(0.7, schedule=schedule) < 1.0
    assert annealing(0.75 + 0.2, b=0.2) == pytest.approx(math.exp(-1))  # Laplace at mu + b
    assert annealing(0.75 + 0.5, b=0.25, schedule="logistic") == pytest.approx(1 / math.cosh(1) ** 2)
    assert annealing(0.1, schedule="none") == 1.0
    with pytest.raises(ValueError):
        annealing(0.5, schedule="gauss")


def test_hook_sets_the_scale_per_epoch():
    reg = ResidualSmoothing(0.5, schedule="laplace", b=0.1)
    reg.start_epoch(75, 100)
    assert reg.s == pytest.approx(0.5)
    reg.start_epoch(65, 100)
    assert reg.s == pytest.approx(0.5 * math.exp(-1))
    logits, y = batch(3)
    model = torch.nn.Identity()
    assert reg.loss(model, logits, y, None).item() == pytest.approx(
        residual_smoothing_loss(logits, y, reg.s, 1.0).item())
