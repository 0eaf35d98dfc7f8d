"""Norm loss (eqs. 7, 11), projection-based and reparametrized weight normalization."""
import pytest
import torch
from torch import nn

from regularizers import apply_weight_norm, norm_loss
from regularizers.norms import NormLoss, ProjectionWeightNorm, filter_rows


def test_norm_loss_at_3_4():
    w = torch.tensor([[3.0, 4.0]], requires_grad=True)
    loss = norm_loss(w)
    loss.backward()
    assert loss.item() == pytest.approx(16.0)
    assert w.grad.tolist()[0] == pytest.approx([4.8, 6.4])


def test_norm_loss_gradient_is_eq_11_on_a_conv_weight():
    w = torch.randn(5, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    loss = norm_loss(w)
    loss.backward()
    norms = filter_rows(w.detach()).norm(dim=1)
    assert loss.item() == pytest.approx(((1 - norms) ** 2).sum().item())
    expected = 2 * w.detach() * (1 - 1 / norms).view(-1, 1, 1, 1)
    assert torch.allclose(w.grad, expected)
    unit = nn.functional.normalize(w.detach().flatten(1), dim=1)
    assert norm_loss(unit).item() == pytest.approx(0, abs=1e-12)


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))


def test_norm_loss_class_covers_weights_only():
    model = net()
    expected = 0.01 * (norm_loss(model[0].weight) + norm_loss(model[3].weight))
    assert NormLoss().penalty(model).item() == pytest.approx(expected.item())


def test_pbwn_projects_hidden_filters_every_t_steps():
    model = net()
    classifier = model[3].weight.detach().clone()
    reg = ProjectionWeightNorm(2)
    reg.after_step(model)
    assert not torch.allclose(filter_rows(model[0].weight).norm(dim=1), torch.ones(4))
    reg.after_step(model)
    assert torch.allclose(filter_rows(model[0].weight).norm(dim=1), torch.ones(4))
    assert torch.equal(model[3].weight, classifier)  # the classifier is left out by default
    ProjectionWeightNorm(include_output=True).after_step(model)
    assert torch.allclose(model[3].weight.norm(dim=1), torch.ones(3))
    with pytest.raises(ValueError):
        ProjectionWeightNorm(0.5)


def test_weight_norm_reparametrizes_without_changing_the_function():
    model = net()
    x = torch.randn(2, 1, 8, 8)
    before = model(x)
    norms = filter_rows(model[0].weight).norm(dim=1).detach()
    apply_weight_norm(model, include_output=False)
    assert torch.allclose(model(x), before, atol=1e-6)
    g = model[0].parametrizations.weight.original0
    assert torch.allclose(g.flatten(), norms)
    assert not hasattr(model[3], "parametrizations")
    names = {name for name, _ in model.named_parameters()}
    assert "0.parametrizations.weight.original1" in names and "0.weight" not in names
