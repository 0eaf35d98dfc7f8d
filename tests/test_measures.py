"""Generalization measures against ground truth: the FFT spectral norm of a convolution against
the dense operator, power iteration against an SVD, the path norm against an enumeration of
paths, the margin against a loop, the PAC-Bayes sigma against the closed-form accuracy drop of
a linear model, and BN folding against the unfolded network."""
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import norm as normal
from torch import nn

from analysis.measures import (MEASURES, MeasureSettings, compute_measures, conv_spectral_norm, fold_batchnorm,
                               layer_norms, margins, pacbayes_sigma, path_norm, spectral_norm)


def dense_conv(weight, n, padding, mode):
    """The (out*n'*n', in*n*n) matrix of x -> conv2d(pad(x), weight), built column by column."""
    cin = weight.shape[1]

    def op(x):
        x = x.view(1, cin, n, n)
        x = F.pad(x, (padding,) * 4, mode=mode)
        return F.conv2d(x, weight).reshape(-1)

    return torch.autograd.functional.jacobian(op, torch.zeros(cin * n * n, dtype=torch.float64))


def test_conv_spectral_norm_equals_dense_operator():
    torch.manual_seed(0)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    dense = dense_conv(w, 6, 1, "circular")
    truth = torch.linalg.svdvals(dense)[0].item()
    assert conv_spectral_norm(w, (6, 6), padding=1, circular=True) == pytest.approx(truth, rel=1e-10)
    # zero padding: the circular operator on the padded grid bounds the zero-padded one from above
    zero = torch.linalg.svdvals(dense_conv(w, 6, 1, "constant"))[0].item()
    bound = conv_spectral_norm(w, (6, 6), padding=1)
    assert zero <= bound + 1e-10 and bound < 1.5 * zero


def test_layer_norms_of_a_circular_conv_layer():
    torch.manual_seed(1)
    conv = nn.Conv2d(2, 4, 3, padding=1, padding_mode="circular", bias=False).double()
    (name, frob, spec), = layer_norms(nn.Sequential(conv), torch.zeros(1, 2, 5, 5, dtype=torch.float64))
    dense = torch.autograd.functional.jacobian(lambda x: conv(x.view(1, 2, 5, 5)).reshape(-1),
                                               torch.zeros(50, dtype=torch.float64))
    assert spec == pytest.approx(torch.linalg.svdvals(dense)[0].item(), rel=1e-10)
    assert frob == pytest.approx(conv.weight.norm().item(), rel=1e-12)


def test_same_padding_uses_the_padded_grid():
    torch.manual_seed(7)
    conv = nn.Conv2d(2, 3, 3, padding="same", bias=False)
    (_, _, spec), = layer_norms(nn.Sequential(conv), torch.zeros(1, 2, 5, 5))
    assert spec == pytest.approx(conv_spectral_norm(conv.weight, (5, 5), padding=1), rel=1e-12)


def test_power_iteration_equals_svd():
    m = torch.randn(7, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert spectral_norm(m) == pytest.approx(torch.linalg.svdvals(m)[0].item(), rel=1e-8)


def test_path_norm_equals_enumerated_paths():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    w1, w2 = net[0].weight.detach(), net[2].weight.detach()
    total = sum((w1[j, i] * w2[k, j]).item() ** 2 for i, j, k in itertools.product(range(3), range(4), range(2)))
    assert path_norm(net, (3,)) == pytest.approx(total, rel=1e-12)
    with pytest.raises(ValueError, match="batch norm"):
        path_norm(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), (3,))


def test_margin_equals_loop():
    torch.manual_seed(4)
    net = nn.Linear(5, 4)
    inputs, targets = torch.randn(20, 5), torch.randint(0, 4, (20,))
    logits = net(inputs).detach().double().numpy()
    truth = [logits[i, t] - max(logits[i, j] for j in range(4) if j != t) for i, t in enumerate(targets.tolist())]
    assert np.allclose(margins(net, inputs, targets), truth, atol=1e-12)


def one_hot_linear(n: int, a: float):
    """n one-hot inputs e_i with target 0 and W with column i = (a, -a): every margin is 2a, and a
    noise draw perturbs each example's margin independently."""
    net = nn.Linear(n, 2, bias=False).double()
    with torch.no_grad():
        net.weight.copy_(torch.stack([torch.full((n,), a), torch.full((n,), -a)]).double())
    return net, torch.eye(n, dtype=torch.float64), torch.zeros(n, dtype=torch.long)


@pytest.mark.parametrize("magnitude", [False, True])
def test_pacbayes_sigma_matches_the_closed_form_drop(magnitude):
    a, eps, drop, tol = 0.5, 1e-3, 0.1, 0.005
    net, inputs, targets = one_hot_linear(2000, a)
    sigma, measured = pacbayes_sigma(net, inputs, targets, magnitude=magnitude, drop=drop, drop_tol=tol,
                                     draws=5, eps=eps)
    # margin 2a gets noise u_0i - u_1i of variance 2 sigma^2 (plain) or 2 (sigma^2 a^2 + eps^2)
    std = math.sqrt(2 * (sigma ** 2 * a ** 2 + eps ** 2)) if magnitude else math.sqrt(2) * sigma
    assert abs(measured - drop) <= tol
    assert abs(normal.cdf(-2 * a / std) - drop) <= tol + 0.01    # + 3 Monte-Carlo standard errors
    z = normal.ppf(1 - drop)
    truth = math.sqrt((2 * a / z) ** 2 / 2 - eps ** 2) / a if magnitude else 2 * a / (z * math.sqrt(2))
    assert sigma == pytest.approx(truth, rel=0.06)


def test_fold_batchnorm_keeps_the_function():
    torch.manual_seed(5)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                        nn.Linear(48, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    net.train()
    for _ in range(3):
        net(torch.randn(8, 1, 4, 4))
    net.eval()
    folded = fold_batchnorm(net)
    x = torch.randn(5, 1, 4, 4)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert torch.allclose(folded(x), net(x), atol=1e-5)


def test_compute_measures_on_a_tiny_cnn():
    from regularizers.models import load_model

    torch.manual_seed(0)
    initial = load_model("cnn", num_classes=3, in_channels=1, channels=[4, 6])
    model = load_model("cnn", num_classes=3, in_channels=1, channels=[4, 6])
    inputs = torch.randn(40, 1, 6, 6)
    targets = model.eval()(inputs).argmax(1)          # train accuracy 100%: the PAC-Bayes drop exists
    m = compute_measures(model, inputs, targets, initial=initial,
                         settings=MeasureSettings(probes=3, points=9, noise_draws=2))
    assert list(m.values) == list(MEASURES)
    assert m.values["distance_from_init"] > 0 and m.values["pacbayes_sigma"] > 0
    assert m.values["margin"] == pytest.approx(np.percentile(margins(fold_batchnorm(model), inputs, targets), 10))
    same = compute_measures(model, inputs, targets, initial=model,
                            settings=MeasureSettings(probes=3, points=9, noise_draws=2, curvature=False))
    assert same.values["distance_from_init"] == 0.0 and math.isnan(same.values["lambda_max"])


def test_a_batch_norm_that_cannot_be_folded_leaves_path_norm_undefined_and_says_so():
    torch.manual_seed(6)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.Linear(8, 3)).eval()
    inputs = torch.randn(30, 1, 4, 4)
    targets = net(inputs).argmax(1)
    m = compute_measures(net, inputs, targets, settings=MeasureSettings(probes=2, points=5, noise_draws=2,
                                                                        curvature=False))
    assert math.isnan(m.values["path_norm"]) and "path_norm: a batch norm could not be folded" in m.notes
    assert "distance_from_init: no initial model" in m.notes and math.isfinite(m.values["log_prod_spectral"])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_measures_equal_cpu():
    from regularizers.models import load_model

    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    initial = load_model("cnn", num_classes=3, in_channels=1, channels=[4, 6])
    model = load_model("cnn", num_classes=3, in_channels=1, channels=[4, 6])
    inputs = torch.randn(40, 1, 6, 6)
    targets = model.eval()(inputs).argmax(1)
    settings = MeasureSettings(probes=3, points=9, noise_draws=2)
    cpu = compute_measures(model, inputs, targets, initial=initial, settings=settings).values
    gpu = compute_measures(model.cuda(), inputs.cuda(), targets.cuda(), initial=initial.cuda(), settings=settings).values
    for name in ("log_prod_frobenius", "log_prod_spectral", "distance_from_init", "path_norm", "margin",
                 "min_angle", "pairs_above"):
        assert gpu[name] == pytest.approx(cpu[name], rel=1e-4), name
    assert all(math.isfinite(gpu[k]) == math.isfinite(cpu[k]) for k in MEASURES)
