"""Weight spectra: constructed W^T W eigenvalues and power-law tails with a known exponent."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from analysis.weight_spectra import esd, fit_power_law, plot_weight_spectra, weight_spectra


def pareto(alpha, n, xmin=1.0, seed=0):
    """Samples with density (alpha - 1) / xmin (x / xmin)^-alpha on x >= xmin (inverse CDF)."""
    u = np.random.default_rng(seed).random(n)
    return xmin * (1 - u) ** (-1 / (alpha - 1))


def test_mle_formula_at_a_forced_xmin():
    x = pareto(2.5, 50, seed=1)
    fit = fit_power_law(x, min_tail=50)  # only xmin = min(x) leaves 50 points
    assert fit.xmin == x.min() and fit.num_tail == 50
    assert fit.alpha == pytest.approx(1 + 50 / np.sum(np.log(x / x.min())), rel=1e-12)
    assert fit.alpha_stderr == pytest.approx((fit.alpha - 1) / math.sqrt(50))


@pytest.mark.parametrize("alpha", [2.0, 3.0, 4.5])
def test_recovers_a_known_tail_exponent_above_a_body(alpha):
    # a uniform body on (0.05, 1) below a Pareto tail from xmin = 1
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.uniform(0.05, 1.0, 1500), pareto(alpha, 2000, seed=3)])
    fit = fit_power_law(x)
    # The MLE's standard error is (alpha - 1) / sqrt(n); 4 of them (with n the tail kept) is a
    # tolerance a correct fit misses with probability < 1e-4.
    assert abs(fit.alpha - alpha) < 4 * fit.alpha_stderr
    assert fit.alpha_stderr < 0.1 * (alpha - 1)  # the tail kept most of the 2000 Pareto points
    assert 0.9 <= fit.xmin <= 1.6 and fit.ks_distance < 0.05


def test_too_few_samples_give_no_fit():
    fit = fit_power_law([1.0, 2.0, 3.0, 0.0, -1.0], min_tail=4)  # 3 positive values
    assert fit.num_tail == 0 and math.isnan(fit.alpha)
    assert math.isnan(fit_power_law(np.ones(20)).alpha)  # one repeated value: no tail shape
    with pytest.raises(ValueError, match="min_tail"):
        fit_power_law([1.0, 2.0], min_tail=1)


def matrix_with_singular_values(s, rows, cols, seed=0):
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(rows, len(s), dtype=torch.float64, generator=g))
    v, _ = torch.linalg.qr(torch.randn(cols, len(s), dtype=torch.float64, generator=g))
    return u @ torch.diag(torch.tensor(np.array(s), dtype=torch.float64)) @ v.T


def test_layer_eigenvalues_are_the_constructed_ones():
    s = np.linspace(0.5, 3.0, 12)
    conv = nn.Conv2d(2, 12, 5).double()  # weight (12, 2, 5, 5) read as (12, 50)
    with torch.no_grad():
        conv.weight.copy_(matrix_with_singular_values(s, 12, 50).reshape(12, 2, 5, 5))
    lin = nn.Linear(12, 30).double()  # weight (30, 12): N = 30, M = 12
    with torch.no_grad():
        lin.weight.copy_(matrix_with_singular_values(s[::-1], 30, 12, seed=1))
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), lin)
    results = weight_spectra(model, min_tail=5)
    assert [r.name for r in results] == ["0", "3"]
    assert [r.shape for r in results] == [(12, 50), (30, 12)]
    np.testing.assert_allclose(results[0].eigenvalues, s ** 2 / 50, rtol=1e-10)
    np.testing.assert_allclose(results[1].eigenvalues, s ** 2 / 30, rtol=1e-10)
    # the eigenvalues are those of W^T W / N, computed here densely
    w = conv.weight.detach().reshape(12, -1)
    dense = np.linalg.eigvalsh((w.T @ w).numpy() / 50)[-12:]
    np.testing.assert_allclose(results[0].eigenvalues, dense, rtol=1e-9)


def test_layer_with_a_power_law_spectrum():
    rows, cols, alpha = 300, 600, 3.0
    lam = pareto(alpha, rows, xmin=0.01, seed=4)
    lin = nn.Linear(cols, rows, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(matrix_with_singular_values(np.sqrt(lam * cols), rows, cols, seed=5))
    (result,) = weight_spectra(nn.Sequential(lin, nn.ReLU()))
    np.testing.assert_allclose(result.eigenvalues, np.sort(lam), rtol=1e-9)
    direct = fit_power_law(lam)  # the layer's fit is the fit of the constructed spectrum
    assert (result.fit.alpha, result.fit.num_tail) == (pytest.approx(direct.alpha, rel=1e-9), direct.num_tail)
    assert abs(result.alpha - alpha) < 4 * result.fit.alpha_stderr
    fig = plot_weight_spectra([result, result])
    assert len(fig.axes) == 2 and fig.axes[0].get_xscale() == "log" and "alpha" in fig.axes[0].get_title()


def test_esd_of_float32_conv_and_errors():
    torch.manual_seed(0)
    conv = nn.Conv1d(3, 4, 2)
    assert esd(conv.weight).shape == (4,)  # (4, 6): M = 4
    with pytest.raises(ValueError, match="no Conv"):
        weight_spectra(nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match="no weight spectra"):
        plot_weight_spectra([])


def test_alpha_only_for_50_eigenvalues_and_a_real_tail():
    torch.manual_seed(0)
    small = nn.Linear(32, 10)                    # 10 eigenvalues: the whole spectrum would be "tail"
    gauss = nn.Linear(300, 128, bias=False)      # a Gaussian matrix: Marchenko-Pastur, no power law
    with torch.no_grad():
        gauss.weight.normal_()
    small_r, gauss_r = weight_spectra(nn.Sequential(small, nn.ReLU(), nn.Linear(10, 300), gauss))[::2]
    assert math.isnan(small_r.alpha) and "10 eigenvalues, fewer than 50" in small_r.note
    assert math.isfinite(gauss_r.fit.alpha) and math.isnan(gauss_r.alpha)   # fitted, but flagged
    assert gauss_r.note.startswith("no power-law tail")
    # the Marchenko-Pastur edge the flag uses, computed directly
    lam = np.linalg.eigvalsh(gauss.weight.detach().double().numpy().T @ gauss.weight.detach().double().numpy() / 300)
    edge = lam[-128:].mean() * (1 + math.sqrt(128 / 300)) ** 2
    assert lam.max() <= 1.1 * edge
