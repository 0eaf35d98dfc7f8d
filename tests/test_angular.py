"""Angular losses: closed forms on orthonormal sets and the regular simplex, SRIP, gradients."""
import math

import pytest
import torch
from torch import nn

from regularizers import cosine_loss, mhe_loss, mma_loss, orthogonal_loss, srip_loss
from regularizers.angular import MHE, MMA, Orthogonal

# A regular simplex of 4 points in R^3: pairwise cosine -1/3, squared distance 8/3.
SIMPLEX = torch.tensor([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float64)


def orthonormal_rows(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, n, dtype=torch.float64, generator=g))
    return q.T  # (n, d) with orthonormal rows


def test_mma_closed_forms():
    assert mma_loss(3.0 * orthonormal_rows(5, 8)).item() == pytest.approx(-math.pi / 2, abs=1e-7)
    assert mma_loss(SIMPLEX).item() == pytest.approx(-1.910633, abs=1e-6)
    # a conv weight is read as (out, in * kh * kw) rows
    assert mma_loss(orthonormal_rows(4, 18).reshape(4, 2, 3, 3)).item() == pytest.approx(-math.pi / 2)


def test_mma_identical_rows_get_zero_gradient_not_nan():
    w = torch.tensor([[0.3, -1.2, 2.0]]).repeat(2, 1).requires_grad_()
    loss = mma_loss(w)
    loss.backward()
    assert loss.item() == pytest.approx(-math.acos(1 - 1e-5), rel=1e-3)
    assert torch.equal(w.grad, torch.zeros_like(w))


def test_mma_gradient_norm_is_one_over_row_norm():
    # eq. 8: |d theta_12 / d w_i| = 1 / ||w_i||; with two rows the loss is -theta_12
    w = torch.tensor([[2.0, 0.0], [1.0, math.sqrt(3)]], requires_grad=True)
    mma_loss(w).backward()
    assert w.grad.norm(dim=1).tolist() == pytest.approx([0.5, 0.5], abs=1e-6)


def test_mma_descent_solves_the_tammes_problem_for_4_points_in_3d():
    w = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=400)
    for _ in range(400):
        opt.zero_grad()
        mma_loss(w).backward()
        opt.step()
        schedule.step()
    min_angle = -mma_loss(w.detach()).item()
    assert math.degrees(min_angle) == pytest.approx(109.47, abs=0.1)  # Table 1, d=3, n=4


def test_cosine_loss():
    assert cosine_loss(SIMPLEX).item() == pytest.approx(-1 / 3)
    assert cosine_loss(orthonormal_rows(6, 6)).item() == pytest.approx(0.0, abs=1e-12)


def test_mhe_energies_on_the_simplex():
    assert mhe_loss(SIMPLEX, s=2).item() == pytest.approx(0.375)
    assert mhe_loss(SIMPLEX, s=1).item() == pytest.approx((8 / 3) ** -0.5)
    # eq. 11: -mean log ||w_i - w_j||, with distances sqrt(8/3) (and sqrt(4/3) to reflections)
    assert mhe_loss(SIMPLEX, s=0).item() == pytest.approx(-math.log(math.sqrt(8 / 3)))
    assert mhe_loss(SIMPLEX, s=0, half_space=True).item() == pytest.approx(
        -(math.log(8 / 3) + math.log(4 / 3)) / 4)
    # half space also counts the reflections: squared distances 8/3 and 2 - 2/3 = 4/3
    assert mhe_loss(SIMPLEX, s=2, half_space=True).item() == pytest.approx((3 / 8 + 3 / 4) / 2)
    with pytest.raises(ValueError):
        mhe_loss(SIMPLEX, s=-1)


def test_mhe_log_energy_is_eq_11_at_the_default_coefficient():
    """MHE with s=0 at its default coefficient 1.0 is the paper's eq. 11, computed here
    independently from the unordered pairwise distances of the normalized rows."""
    w = torch.randn(7, 2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    eq11 = -torch.log(torch.pdist(nn.functional.normalize(w.reshape(7, -1), dim=1))).mean()
    assert mhe_loss(w, s=0).item() == pytest.approx(eq11.item(), rel=1e-12)
    model = nn.Sequential(nn.Conv2d(2, 7, 3, bias=False))
    model[0].weight.data.copy_(w)
    assert MHE(s=0).penalty(model).item() == pytest.approx(eq11.item(), rel=1e-6)


def test_orthogonal_frobenius():
    q, _ = torch.linalg.qr(torch.randn(64, 27, dtype=torch.float64))  # orthonormal columns
    assert orthogonal_loss(q, normalize=False).item() == pytest.approx(37.0)
    # normalized simplex rows: 12 off-diagonal cosines of -1/3
    assert orthogonal_loss(5 * SIMPLEX).item() == pytest.approx(12 / 9)


def test_srip_is_the_squared_spectral_norm():
    for c in (0.5, 2.0, 3.0):
        assert srip_loss(c * torch.eye(6, dtype=torch.float64)).item() == pytest.approx((c * c - 1) ** 2)
    # singular values 2, 0.5, 1.5 on the smaller side (3 rows of dimension 5, or its transpose)
    w = torch.zeros(3, 5, dtype=torch.float64)
    w[0, 0], w[1, 1], w[2, 2] = 2.0, 0.5, 1.5
    assert srip_loss(w).item() == pytest.approx(9.0)
    assert srip_loss(w.T.contiguous()).item() == pytest.approx(9.0)


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(),
                         nn.Linear(6 * 36, 8), nn.ReLU(), nn.Linear(8, 4))


def test_classes_sum_over_layers_times_the_coefficient():
    model = net()
    conv, fc1, fc2 = model[0].weight, model[4].weight, model[6].weight
    total = sum(mma_loss(w) for w in (conv, fc1, fc2))
    assert MMA(0.5).penalty(model).item() == pytest.approx(0.5 * total.item())
    hidden = MMA(0.5, include_output=False).penalty(model)
    assert hidden.item() == pytest.approx(0.5 * (total - mma_loss(fc2)).item())
    # eq. 14 carries lambda / 2
    expected = 0.5 * 1e-4 * sum(orthogonal_loss(w) for w in (conv, fc1, fc2)).item()
    assert Orthogonal().penalty(model).item() == pytest.approx(expected)
