"""Hessian directions on linear least squares, whose loss is exactly quadratic:
L(theta + D) = L(theta) + g.D + D^T H D / 2 with H = 2 A^T A / n, A = [x, 1]."""
import numpy as np
import pytest
import torch
from torch import nn

from analysis.hessian_directions import hessian_directions
from landscape.store import load_directions, read_attrs, save_directions
from landscape.surface import compute_surface


def regression(seed=0, n=40, d=6):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, dtype=torch.float64, generator=g) * torch.linspace(0.5, 2.0, d, dtype=torch.float64)
    y = torch.randn(n, dtype=torch.float64, generator=g)
    torch.manual_seed(seed)
    model = nn.Linear(d, 1).double()  # parameters: weight (1, d), then bias (1,)
    return model, x, y


def closed_form(model, x, y):
    """Loss, gradient and Hessian of mean((A theta - y)^2) over theta = (weight, bias)."""
    a = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1).numpy()
    theta = torch.cat([model.weight.detach().reshape(-1), model.bias.detach()]).numpy()
    r = a @ theta - y.numpy()
    return np.mean(r ** 2), 2 * a.T @ r / len(x), 2 * a.T @ a / len(x)


def flat(direction):
    return torch.cat([t.reshape(-1) for t in direction]).numpy()


def test_top_eigenvectors_and_2d_surface_match_the_quadratic():
    model, x, y = regression()
    loss0, grad, hess = closed_form(model, x, y)
    lam, vecs = np.linalg.eigh(hess)
    dirs = hessian_directions(model, (x, y), k=2, loss="mse", tol=1e-12)
    assert dirs.ndim == 2 and dirs.dir_type == "weights"
    assert [info["kind"] for info in dirs.info] == ["hessian", "hessian"]
    np.testing.assert_allclose(dirs.meta["eigenvalues"], lam[::-1][:2], rtol=1e-9)
    d1, d2 = flat(dirs.axes[0]), flat(dirs.axes[1])
    for d, v in ((d1, vecs[:, -1]), (d2, vecs[:, -2])):
        assert np.linalg.norm(d) == pytest.approx(1.0, abs=1e-9)
        assert abs(d @ v) == pytest.approx(1.0, abs=1e-9)  # the eigenvector, up to sign
        assert d[np.argmax(np.abs(d))] > 0  # the sign convention
    a = np.linspace(-1.0, 1.0, 5)
    b = np.linspace(-0.5, 0.5, 3)
    surface = compute_surface(model, (x, y), directions=dirs, x=a, y=b, loss="mse", progress=False)
    aa, bb = np.meshgrid(a, b)  # Z[i, j] at (x[j], y[i])
    lam1, lam2 = dirs.meta["eigenvalues"]
    expected = loss0 + aa * (grad @ d1) + bb * (grad @ d2) + (lam1 * aa ** 2 + lam2 * bb ** 2) / 2
    np.testing.assert_allclose(surface["train_loss"], expected, atol=1e-6, rtol=0)


def test_1d_surface_at_the_minimum_is_the_sharpest_parabola():
    model, x, y = regression(seed=1)
    a_mat = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    theta = torch.linalg.lstsq(a_mat, y[:, None]).solution.reshape(-1)  # the least-squares minimum
    with torch.no_grad():
        model.weight.copy_(theta[:-1].reshape(1, -1))
        model.bias.copy_(theta[-1:])
    loss0, grad, hess = closed_form(model, x, y)
    assert np.abs(grad).max() < 1e-12
    dirs = hessian_directions(model, (x, y), k=1, loss="mse", tol=1e-12)
    lam1 = np.linalg.eigvalsh(hess)[-1]
    a = np.linspace(-2.0, 2.0, 9)
    line = compute_surface(model, (x, y), directions=dirs, x=a, loss="mse", progress=False)
    np.testing.assert_allclose(line["train_loss"], loss0 + lam1 * a ** 2 / 2, atol=1e-6, rtol=0)


def test_weights_only_directions_leave_the_bias_still_and_round_trip(tmp_path):
    model, x, y = regression(seed=2)
    _, _, hess = closed_form(model, x, y)
    d = x.shape[1]
    dirs = hessian_directions(model, (x, y), k=3, loss="mse", params="weights", tol=1e-12)
    np.testing.assert_allclose(dirs.meta["eigenvalues"], np.linalg.eigvalsh(hess[:d, :d])[::-1][:3], rtol=1e-9)
    for axis in dirs.axes:
        assert axis[0].shape == (1, d) and torch.count_nonzero(axis[1]) == 0  # bias untouched
    path = save_directions(tmp_path / "hessian.h5", dirs)
    assert read_attrs(path)["xkind"] == "hessian" and read_attrs(path)["zkind"] == "hessian"
    loaded = load_directions(path, model=model)
    np.testing.assert_allclose(loaded.meta["eigenvalues"], dirs.meta["eigenvalues"], rtol=0, atol=0)
    for axis, again in zip(dirs.axes, loaded.axes):
        for t, u in zip(axis, again):
            torch.testing.assert_close(t, u, rtol=0, atol=0)


@pytest.mark.parametrize("k", [0, 4, 1.5])
def test_bad_direction_counts(k):
    model, x, y = regression()
    with pytest.raises(ValueError, match="k must be"):
        hessian_directions(model, (x, y), k=k, loss="mse")


def test_hessian_axis_recipe_in_compute_surface(tmp_path):
    from landscape.recipes import AxisRecipe, build_directions

    model, x, y = regression()
    loss0, grad, hess = closed_form(model, x, y)
    lam = np.linalg.eigvalsh(hess)[::-1]
    recipes = [AxisRecipe("hessian", data=(x, y), loss="mse", seed=3) for _ in range(2)]
    surface = compute_surface(model, (x, y), directions=recipes, x=np.linspace(-1, 1, 3), y=np.linspace(-1, 1, 3),
                              loss="mse", dir_file=str(tmp_path / "h.h5"), surf_file=str(tmp_path / "s.h5"),
                              progress=False)
    attrs = read_attrs(tmp_path / "h.h5")
    assert attrs["xkind"] == attrs["ykind"] == "hessian" and attrs["xsamples"] == "all"
    np.testing.assert_allclose([attrs["xeigenvalue"], attrs["yeigenvalue"]], lam[:2], rtol=1e-6)
    z = surface["train_loss"]  # quadratic: the second differences are the eigenvalues
    np.testing.assert_allclose([z[1, 0] - 2 * z[1, 1] + z[1, 2], z[0, 1] - 2 * z[1, 1] + z[2, 1]], lam[:2], rtol=1e-5)
    # a subset keeps the whole split's curvature beside its own eigenvalue
    sub = build_directions(model, [AxisRecipe("hessian", data=(x, y), loss="mse", samples=12)])
    d = flat(sub.axes[0])
    assert sub.info[0]["examples"] == 12
    assert sub.info[0]["curvature_all"] == pytest.approx(d @ hess @ d, rel=1e-9)
    with pytest.raises(ValueError, match="mixed"):
        build_directions(model, [AxisRecipe("hessian", data=(x, y)), AxisRecipe("random")])
    with pytest.raises(ValueError, match="needs the data"):
        AxisRecipe("hessian")
