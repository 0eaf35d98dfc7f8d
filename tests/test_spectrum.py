"""Spectral density (stochastic Lanczos quadrature) and Hessian diagonal (Hutchinson) against
the dense Hessian of small float64 models, computed independently with torch.func."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.utils.data import DataLoader, TensorDataset

from analysis.spectrum import hessian_diagonal, plot_spectral_density, spectral_density


def mlp_and_data(seed=0, n=24):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x = torch.randn(n, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return model, x, y


def dense_hessian(model, x, y, loss=F.cross_entropy):
    """The (P, P) Hessian of the mean loss over every parameter, by torch.autograd.functional."""
    names, params = zip(*model.named_parameters())
    sizes = [p.numel() for p in params]

    def f(flat):
        tensors = [c.view_as(p) for c, p in zip(flat.split(sizes), params)]
        return loss(functional_call(model, dict(zip(names, tensors)), (x,)), y)

    flat = torch.cat([p.detach().reshape(-1) for p in params])
    h = torch.autograd.functional.hessian(f, flat).numpy()
    return (h + h.T) / 2


def test_density_mass_moments_and_nodes_match_the_dense_hessian():
    model, x, y = mlp_and_data()
    h = dense_hessian(model, x, y)
    n = len(h)
    lam = np.linalg.eigvalsh(h)
    probes = 40
    sd = spectral_density(model, (x, y), num_probes=probes, lanczos_steps=8, seed=1)
    assert sd.num_params == n and sd.num_hvp == probes * 8
    assert sd.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert sd.mass == pytest.approx(1.0, abs=1e-6)  # the default grid covers the nodes +- 5 sigma
    # Per probe v = z / sqrt(n), the quadrature's moments 1 and 2 are exactly z^T H z / n and
    # z^T H^2 z / n (Gauss quadrature is exact below degree 2m), so over the probes they are
    # Hutchinson estimates of tr(H)/n and ||H||_F^2/n, with Rademacher variance
    # 2 (||A||_F^2 - sum_i A_ii^2) / n^2 per probe for A = H, H^2. Tolerance: 4 standard errors.
    for k, a in ((1, h), (2, h @ h)):
        stderr = np.sqrt(2 * (np.sum(a ** 2) - np.sum(np.diag(a) ** 2)) / probes) / n
        assert abs(sd.moment(k) - np.trace(a) / n) < 4 * stderr
    # the smoothed density has the quadrature's mean and second moment + sigma^2 (Gaussian kernel)
    mean = np.trapezoid(sd.grid * sd.density, sd.grid)
    assert mean == pytest.approx(sd.moment(1), abs=1e-6 * np.abs(lam).max())
    second = np.trapezoid(sd.grid ** 2 * sd.density, sd.grid)
    assert second == pytest.approx(sd.moment(2) + sd.sigma ** 2, rel=1e-5)
    # Ritz values lie in [lambda_min, lambda_max] (interlacing) and approach both ends
    spread = lam[-1] - lam[0]
    assert sd.nodes.min() >= lam[0] - 1e-9 * spread and sd.nodes.max() <= lam[-1] + 1e-9 * spread
    assert sd.nodes.min() == pytest.approx(lam[0], abs=0.02 * spread)
    assert sd.nodes.max() == pytest.approx(lam[-1], abs=0.02 * spread)


def test_full_lanczos_finds_the_exact_extreme_eigenvalues_and_streams_agree():
    model, x, y = mlp_and_data(seed=2)
    lam = np.linalg.eigvalsh(dense_hessian(model, x, y))
    spread = lam[-1] - lam[0]
    sd = spectral_density(model, (x, y), num_probes=2, lanczos_steps=1000, probe="gaussian", seed=3)
    assert sd.lanczos_steps == len(lam)  # capped at num_params
    assert sd.nodes.min() == pytest.approx(lam[0], abs=1e-8 * spread)
    assert sd.nodes.max() == pytest.approx(lam[-1], abs=1e-8 * spread)
    # a DataLoader (streamed data) gives the same quadrature as the (x, y) pair
    loader = DataLoader(TensorDataset(x, y), batch_size=10)
    streamed = spectral_density(model, loader, num_probes=2, lanczos_steps=1000, probe="gaussian", seed=3)
    np.testing.assert_allclose(streamed.nodes, sd.nodes, atol=1e-9 * spread)


def test_plot_uses_a_log_density_axis():
    model, x, y = mlp_and_data()
    sd = spectral_density(model, (x, y), num_probes=2, lanczos_steps=5, grid=np.linspace(-1, 2, 300),
                          sigma=0.05)
    assert sd.grid.shape == sd.density.shape == (300,)
    fig = plot_spectral_density(sd)
    assert fig.axes[0].get_yscale() == "log"


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_probes=0), "num_probes"), (dict(lanczos_steps=0), "lanczos_steps"),
    (dict(probe="uniform"), "probe"), (dict(sigma=0.0), "sigma"), (dict(grid=[1.0, 0.0]), "grid")])
def test_density_rejects_bad_settings(kwargs, match):
    model, x, y = mlp_and_data()
    with pytest.raises(ValueError, match=match):
        spectral_density(model, (x, y), **kwargs)


def test_hutchinson_diagonal_converges_to_the_dense_diagonal():
    model, x, y = mlp_and_data(seed=4)
    h = dense_hessian(model, x, y)
    diag = np.diag(h)
    # error variance of entry i with P Rademacher probes: sum_{j != i} H_ij^2 / P
    off = np.sqrt(np.sum(h ** 2, axis=1) - diag ** 2)
    rms = {}
    for probes in (25, 400):
        est = hessian_diagonal(model, (x, y), num_probes=probes, seed=5)
        assert est.values.shape == est.stderr.shape == (len(h),) and est.num_hvp == probes
        expected_sd = off / np.sqrt(probes)
        assert np.all(np.abs(est.values - diag) <= 4.5 * expected_sd + 1e-12)
        rms[probes] = np.sqrt(np.mean((est.values - diag) ** 2))
    assert rms[400] < rms[25] / 2.5  # 1/sqrt(P): a factor 4 expected
    # the reported standard error estimates the true spread
    assert np.median(est.stderr / expected_sd) == pytest.approx(1.0, abs=0.25)
    shapes = {name: p.shape for name, p in model.named_parameters()}
    assert {k: v.shape for k, v in est.per_parameter().items()} == shapes


def test_hutchinson_is_exact_for_a_diagonal_hessian():
    # linear least squares with orthogonal design columns: H = 2 X^T X / n = 2 diag(s^2) / n
    q, _ = torch.linalg.qr(torch.randn(30, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    s = torch.tensor([1.0, 2.0, 3.0, 5.0], dtype=torch.float64)
    x, y = q * s, torch.randn(30, dtype=torch.float64)
    model = nn.Linear(4, 1, bias=False).double()
    est = hessian_diagonal(model, (x, y), num_probes=3, loss="mse")
    np.testing.assert_allclose(est.values, 2 * s.numpy() ** 2 / 30, rtol=1e-12)
    np.testing.assert_allclose(est.stderr, 0.0, atol=1e-12)
    assert est.names == ["weight"] and est.shapes == [(1, 4)]
    with pytest.raises(ValueError, match="num_probes"):
        hessian_diagonal(model, (x, y), num_probes=1)


def test_default_diagonal_stops_at_the_stated_precision():
    model, x, y = mlp_and_data(seed=4)
    diag = np.diag(dense_hessian(model, x, y))
    est = hessian_diagonal(model, (x, y), rtol=0.3, seed=1)
    rel = np.median(est.stderr / np.abs(est.values))
    assert est.rtol == 0.3 and est.converged and est.rel_stderr == pytest.approx(rel)
    assert rel <= 0.3 and est.num_probes >= 10 and est.num_hvp == est.num_probes
    # one probe fewer had not reached it (the stop is the first probe that does)
    fewer = hessian_diagonal(model, (x, y), num_probes=est.num_probes - 1, seed=1)
    assert fewer.rel_stderr > 0.3 and fewer.rtol is None and fewer.converged is None
    # the values are as precise as stated: the median error within ~ the median stderr
    assert np.median(np.abs(est.values - diag) / np.abs(diag)) < 2 * 0.3
    with pytest.warns(UserWarning, match="median relative standard error"):
        capped = hessian_diagonal(model, (x, y), rtol=1e-4, max_probes=12, seed=1)
    assert capped.num_probes == 12 and not capped.converged and capped.rel_stderr > 1e-4


def test_density_and_diagonal_take_hf_dict_batches():
    from regularizers.evaluation import BatchHooks

    model, x, y = mlp_and_data(seed=2)

    class Keyword(nn.Module):  # a HuggingFace-style model: keyword inputs, a dict of outputs
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, features):
            return {"logits": self.inner(features)}

    rows = [{"features": a, "labels": b} for a, b in zip(x, y)]
    loader = DataLoader(rows, batch_size=5)
    hooks = BatchHooks(split=lambda b: ({"features": b["features"]}, b["labels"]))
    wrapped = Keyword(model)
    dense = spectral_density(model, (x, y), num_probes=2, lanczos_steps=6, seed=1)
    dicts = spectral_density(wrapped, loader, num_probes=2, lanczos_steps=6, seed=1, output="logits", hooks=hooks)
    np.testing.assert_allclose(dicts.nodes, dense.nodes, rtol=1e-8, atol=1e-10)
    diag = hessian_diagonal(model, (x, y), num_probes=4, seed=1)
    got = hessian_diagonal(wrapped, loader, num_probes=4, seed=1, output="logits", hooks=hooks)
    np.testing.assert_allclose(got.values, diag.values, rtol=1e-8, atol=1e-12)
    assert got.names == ["inner." + n for n in diag.names]
