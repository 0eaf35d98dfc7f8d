"""Classic regularizers: L1, label smoothing, mixup, CutMix, cutout, RandAugment ops."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from regularizers import l1_loss
from regularizers.classic import (RANDAUGMENT_OPS, L1, CutMix, Cutout, LabelSmoothing, Mixup,
                                  RandAugment, randaugment)


def test_l1_penalty_covers_weights_not_biases():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    expected = 1e-3 * (model[0].weight.abs().sum() + model[2].weight.abs().sum())
    assert L1(1e-3).penalty(model).item() == pytest.approx(expected.item())
    assert l1_loss(torch.tensor([-1.0, 2.0, -3.0])).item() == 6.0


def test_label_smoothing_is_cross_entropy_with_a_soft_target():
    torch.manual_seed(0)
    logits, y, eps, k = torch.randn(7, 5), torch.randint(5, (7,)), 0.2, 5
    soft = (1 - eps) * F.one_hot(y, k) + eps / k
    expected = -(soft * logits.log_softmax(1)).sum(1).mean()
    criterion = LabelSmoothing(eps).criterion(F.cross_entropy)
    assert criterion(logits, y).item() == pytest.approx(expected.item())
    with pytest.raises(ValueError):
        LabelSmoothing(1.5)


class Recorder(nn.Module):
    """Returns a fixed logit per sample and keeps the input it saw."""

    def forward(self, x):
        self.seen = x
        return torch.zeros(len(x), 3)


def ordered(logits, target):
    """A criterion that depends on the order of the targets, so the mixing weight can be read."""
    return (target.float() * torch.arange(1.0, len(target) + 1)).sum()


def test_mixup_mixes_inputs_and_targets_with_one_beta_draw():
    x, y = torch.randn(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    torch.manual_seed(1)
    model = Recorder()
    loss = Mixup(0.4).loss(model, x, y, ordered)
    torch.manual_seed(1)
    lam = torch.distributions.Beta(0.4, 0.4).sample().item()
    perm = torch.randperm(6)
    assert torch.allclose(model.seen, lam * x + (1 - lam) * x[perm])
    expected = lam * ordered(None, y) + (1 - lam) * ordered(None, y[perm])
    assert loss.item() == pytest.approx(expected.item())


def test_cutmix_target_weight_is_the_unpasted_area():
    torch.manual_seed(2)
    x, y = torch.rand(8, 2, 10, 10) + 1, torch.arange(8) % 3
    for seed in range(5):
        torch.manual_seed(seed)
        model = Recorder()
        loss = CutMix(1.0).loss(model, x, y, ordered)
        torch.manual_seed(seed)
        torch.distributions.Beta(1.0, 1.0).sample()
        torch.randint(10, ()), torch.randint(10, ())
        perm = torch.randperm(8)
        pasted = (model.seen != x).any(dim=1)  # (b, H, W)
        inside = pasted.unsqueeze(1).expand_as(x)
        assert torch.equal(model.seen[inside], x[perm][inside])
        moved = (perm != torch.arange(8))
        area = pasted[moved][0].float().mean().item()  # the box, seen on an image that changed
        expected = (1 - area) * ordered(None, y) + area * ordered(None, y[perm])
        assert loss.item() == pytest.approx(expected.item(), abs=1e-4)


def test_cutout_zeroes_one_clipped_square_per_image():
    torch.manual_seed(3)
    x = torch.rand(64, 3, 8, 8) + 1
    out, _ = Cutout(0.5).transform(x, None)
    holes = out[:, 0] == 0
    assert torch.equal(holes.unsqueeze(1).expand_as(x), out == 0)  # same hole in every channel
    rows, cols = holes.any(2), holes.any(1)
    assert torch.equal(holes, rows.unsqueeze(2) & cols.unsqueeze(1))  # a rectangle
    sizes = holes.sum(dim=(1, 2))
    assert sizes.max().item() == 16 and sizes.min().item() >= 4  # 4 x 4, clipped to >= 2 x 2
    assert torch.equal(out[~holes.unsqueeze(1).expand_as(x)], x[~holes.unsqueeze(1).expand_as(x)])
    with pytest.raises(ValueError):
        Cutout().transform(torch.randn(4, 10), None)


def test_randaugment_ops_in_closed_form():
    x = torch.randn(2, 3, 20, 20)
    level = torch.ones(2)
    shifted = RANDAUGMENT_OPS["translate_x"](x, level)  # 0.45 * 20 = 9 pixels
    assert torch.allclose(shifted[..., :11], x[..., 9:], atol=1e-5)
    assert torch.equal(shifted[..., 11:], torch.zeros_like(shifted[..., 11:]))
    for name, op in RANDAUGMENT_OPS.items():  # strength 0 is the identity for every op
        assert torch.allclose(op(x, torch.zeros(2)), x, atol=1e-5), name
    contrast = RANDAUGMENT_OPS["contrast"](x, -level)
    assert torch.allclose(contrast.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-6)
    assert torch.allclose(contrast - contrast.mean(dim=(1, 2, 3), keepdim=True),
                          0.1 * (x - x.mean(dim=(1, 2, 3), keepdim=True)), atol=1e-6)
    gray = torch.randn(2, 1, 20, 20)
    assert torch.equal(RANDAUGMENT_OPS["color"](gray, level), gray)


def test_randaugment_transform():
    torch.manual_seed(4)
    x = torch.randn(16, 3, 12, 12)
    out, y = RandAugment(9, n=2).transform(x, "labels")
    assert out.shape == x.shape and torch.isfinite(out).all() and y == "labels"
    assert not torch.allclose(out, x)
    assert torch.allclose(randaugment(x, n=3, magnitude=0), x, atol=1e-5)
