"""LinR: the divergence written out, the LinRC mask, the stop-gradient, LinRNM, refine()."""
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from regularizers import linr_loss, refine
from regularizers.linear import LinR, linr_divergence, log_probs


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float64)
    y = torch.tensor(y)
    return SimpleNamespace(x_train=x[:400], y_train=y[:400], x_test=x[400:600], y_test=y[400:600],
                           num_classes=10)


@pytest.fixture(scope="module")
def trained(digits):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(model(digits.x_train), digits.y_train).backward()
        opt.step()
    return model.eval()


def test_kl_is_p1_against_p2():
    p1 = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    p2 = torch.tensor([[0.25, 0.75]], dtype=torch.float64)
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # KL(P1 || P2)
    assert linr_divergence(p1.log(), p2).item() == pytest.approx(expected)
    reverse = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert expected != pytest.approx(reverse)
    assert linr_divergence(p1.log(), p2, distance="mse").item() == pytest.approx(2 * 0.25 ** 2)
    with pytest.raises(ValueError):
        linr_divergence(p1.log(), p2, distance="l1")


def test_linrc_mask_drops_exactly_the_entries_at_or_below_one_over_nc():
    p1 = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]], dtype=torch.float64)
    p2 = torch.tensor([[0.25, 0.5, 0.2, 0.05], [0.3, 0.25, 0.25, 0.2]], dtype=torch.float64)
    terms = p1 * (p1.log() - p2.log())
    kept = terms[0, 1] + terms[1, 0]  # the only entries with P2 > 1/4
    assert linr_divergence(p1.log(), p2, confidence=True).item() == pytest.approx(kept.item() / 2)


def test_linr_is_zero_on_identical_pairs_and_positive_otherwise(trained, digits):
    x = digits.x_test[:64]
    same = linr_loss(trained, x, a=0.3, perm=torch.arange(64))
    assert abs(same.item()) < 1e-12
    mixed = linr_loss(trained, x, a=0.3, perm=torch.roll(torch.arange(64), 1))
    assert mixed.item() > 1e-3


def test_p2_is_detached(digits):
    torch.manual_seed(1)
    model = nn.Linear(64, 10).double()
    x, a, perm = digits.x_train[:16], 0.4, torch.randperm(16)
    grad = torch.autograd.grad(linr_loss(model, x, a=a, perm=perm), model.weight)[0]
    with torch.no_grad():
        p = model(x).softmax(1)
        p2 = a * p + (1 - a) * p[perm]
    log_p1 = model(a * x + (1 - a) * x[perm]).log_softmax(1)
    manual = (log_p1.exp() * (log_p1 - p2.log())).sum(1).mean()
    assert torch.allclose(grad, torch.autograd.grad(manual, model.weight)[0])
    through = torch.autograd.grad(linr_loss(model, x, a=a, perm=perm, detach=False), model.weight)[0]
    assert not torch.allclose(grad, through)


def test_linrnm_compares_f_of_ax_with_a_f_of_x(trained, digits):
    x, a = digits.x_test[:32], 0.6
    log_p1 = log_probs(trained(a * x))
    expected = (log_p1.exp() * (log_p1 - trained(x).log_softmax(1))).sum(1).mean() - math.log(a)
    assert linr_loss(trained, x, a=a, mix=False).item() == pytest.approx(expected.item())


def test_multilabel_uses_bernoulli_kl(digits):
    torch.manual_seed(2)
    model = nn.Linear(64, 5).double()
    x, a, perm = digits.x_train[:8], 0.7, torch.randperm(8)
    q1 = torch.sigmoid(model(a * x + (1 - a) * x[perm]))
    q = torch.sigmoid(model(x))
    q2 = a * q + (1 - a) * q[perm]
    kl = q1 * (q1 / q2).log() + (1 - q1) * ((1 - q1) / (1 - q2)).log()
    value = linr_loss(model, x, a=a, perm=perm, multilabel=True)
    assert value.item() == pytest.approx(kl.sum(1).mean().item())


def test_linr_hook_adds_the_classification_loss(trained, digits):
    x, y = digits.x_test[:32], digits.y_test[:32]
    torch.manual_seed(3)
    joint = LinR(0.5).loss(trained, x, y, F.cross_entropy)
    torch.manual_seed(3)
    a = torch.distributions.Beta(0.75, 0.75).sample().item()
    perm = torch.randperm(32)
    expected = F.cross_entropy(trained(x), y) + 0.5 * linr_loss(trained, x, a=a, perm=perm)
    assert joint.item() == pytest.approx(expected.item())
    torch.manual_seed(3)
    no_label = LinR(0.5, labels=False).loss(trained, x, y, F.cross_entropy)
    assert no_label.item() == pytest.approx((expected - F.cross_entropy(trained(x), y)).item())
    with pytest.raises(ValueError):
        LinR(foo=1)


def test_refine_records_accuracy_per_round(trained, digits):
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).double()
    model.load_state_dict(trained.state_dict())
    history = refine(model, digits, rounds=3, n_cls=2, n_linr=2, batch_cls=64, batch_linr=64)
    assert len(history.train_acc) == len(history.test_acc) == 3
    assert all(0 <= acc <= 100 for acc in history.train_acc + history.test_acc)
    assert history.initial_train_acc > 80  # the starting model is trained
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), trained.parameters()))
    unchanged = refine(model, digits, rounds=0)
    assert unchanged.train_acc == [] and unchanged.initial_test_acc == pytest.approx(history.test_acc[-1])


def test_linrnl_refine_uses_no_labels(trained, digits):
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).double()
    model.load_state_dict(trained.state_dict())
    shuffled = SimpleNamespace(**vars(digits))
    shuffled.y_train = digits.y_train[torch.randperm(len(digits.y_train))]
    copy = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).double()
    copy.load_state_dict(trained.state_dict())
    torch.manual_seed(4)
    refine(model, digits, rounds=2, n_linr=3, labels=False, batch_linr=64, confidence=True)
    torch.manual_seed(4)
    refine(copy, shuffled, rounds=2, n_linr=3, labels=False, batch_linr=64, confidence=True)
    for p, q in zip(model.parameters(), copy.parameters()):
        assert torch.equal(p, q)  # labels never enter LinRNL
