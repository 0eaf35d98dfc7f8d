import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape.directions import random_directions
from landscape.sharding import SerialRunner
from landscape.store import read_surface
from landscape.surface import compute_surface, interpolate


def regression_problem(seed=0, n=60, features=4):
    """nn.Linear in float64 with float targets: the MSE is a quadratic in the coordinates."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(features, 1).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, features, generator=g, dtype=torch.float64))
        model.bias.fill_(0.3)
    split = lambda m: (torch.randn(m, features, generator=g, dtype=torch.float64),
                       torch.randn(m, generator=g, dtype=torch.float64))
    return model, {"train": split(n), "test": split(n // 2)}


def quadratic(model, directions, x, t):
    """loss(c) = F + 2 h.c + c^T G c with r0 = X w + b - t and a_k = X dw_k + db_k (numpy)."""
    w, b = model.weight.detach().numpy()[0], model.bias.item()
    x, t = x.numpy(), t.numpy()
    r0 = x @ w + b - t
    a = np.stack([x @ d[0].numpy()[0] + d[1].item() for d in directions.axes], axis=1)
    n = len(t)
    gram, h, f = a.T @ a / n, a.T @ r0 / n, r0 @ r0 / n
    return lambda c: f + 2 * h @ c + c @ gram @ c


def test_linear_regression_surface_is_the_known_quadratic_on_a_non_square_grid():
    model, data = regression_problem()
    d = random_directions(model, ndim=2, seed=1, ignore=None)  # the bias moves too
    result = compute_surface(model, data, directions=d, x="-1:1:5", y="-2:1:4", loss="mse", progress=False)
    assert result["train_loss"].shape == (4, 5) and result.done.all()
    for split in ("train", "test"):
        q = quadratic(model, d, *data[split])
        expected = np.array([[q(np.array([xj, yi])) for xj in result.x] for yi in result.y])
        np.testing.assert_allclose(result[f"{split}_loss"], expected, rtol=1e-6, atol=1e-9)  # Z[i, j] at (x[j], y[i])
        assert np.isnan(result[f"{split}_acc"]).all()  # no accuracy for regression targets
    own = F.mse_loss(model(data["train"][0]).squeeze(1), data["train"][1]).item()
    assert result["train_loss"][2, 2] == pytest.approx(own, rel=1e-12)  # the origin is (x[2], y[2])


def test_1d_and_3d_surfaces_follow_the_quadratic():
    model, data = regression_problem(seed=2)
    d3 = random_directions(model, ndim=3, seed=3, ignore=None)
    vol = compute_surface(model, data, directions=d3, x="-1:1:3", y="0:1:2", z="-0.5:0.5:3", loss="mse",
                          splits=("train",), progress=False)
    q = quadratic(model, d3, *data["train"])
    assert vol["train_loss"].shape == (3, 2, 3)
    for l, zl in enumerate(vol.z):
        for i, yi in enumerate(vol.y):
            for j, xj in enumerate(vol.x):
                assert vol["train_loss"][l, i, j] == pytest.approx(q(np.array([xj, yi, zl])), rel=1e-6)
    d1 = random_directions(model, ndim=1, seed=3, ignore=None)
    line = compute_surface(model, data, directions=d1, x="-1:1:7", loss="mse", splits=("train",), progress=False)
    q1 = quadratic(model, d1, *data["train"])
    np.testing.assert_allclose(line["train_loss"], [q1(np.array([c])) for c in line.x], rtol=1e-6)
    with pytest.raises(ValueError, match="a 2D grid needs 2 directions, got 1"):
        compute_surface(model, data, directions=d1, x="-1:1:3", y="-1:1:3", loss="mse", progress=False)


def cnn_problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))
    g = torch.Generator().manual_seed(1)
    data = {s: (torch.randn(m, 1, 8, 8, generator=g), torch.randint(0, 3, (m,), generator=g))
            for s, m in (("train", 80), ("test", 40))}
    return model, data


class Stop(Exception):
    pass


class Recording(SerialRunner):
    """A one-process runner that records the points written (and stops after ``stop`` of them)."""

    def __init__(self, stop=None):
        self.seen, self.stop = [], stop

    def evaluate(self, evaluate, grid, indices, *, write, **options):
        def recorded(part, rows):
            write(part, rows)
            self.seen.extend(part.tolist())
            if self.stop is not None and len(self.seen) >= self.stop:
                raise Stop
        super().evaluate(evaluate, grid, indices, write=recorded, **options)


def test_interrupted_surface_resumes_to_the_one_go_result(tmp_path):
    model, data = cnn_problem()
    d = random_directions(model, ndim=2, seed=4)
    grid = dict(x="-1:1:4", y="-1:1:3")
    whole = compute_surface(model, data, directions=d, progress=False, **grid)
    path, first = tmp_path / "s.h5", Recording(stop=5)
    with pytest.raises(Stop):
        compute_surface(model, data, directions=d, surf_file=path, progress=False, comm=first, **grid)
    half = read_surface(path)
    assert half.done.sum() == 5 and np.isnan(half["train_loss"]).sum() == 7
    rest = Recording()
    resumed = compute_surface(model, data, directions=d, surf_file=path, progress=False, comm=rest, **grid)
    assert sorted(rest.seen) == sorted(set(range(12)) - set(first.seen)) and resumed.computed == 7
    for key in whole.values:
        np.testing.assert_allclose(resumed[key], whole[key], rtol=1e-12)
        np.testing.assert_allclose(read_surface(path)[key], whole[key], rtol=1e-12)
    again = compute_surface(model, data, directions=d, surf_file=path, progress=False, **grid)
    assert again.computed == 0 and again.done.all()


def test_de_facto_file_with_minus_one_entries_resumes_only_those(tmp_path):
    model, data = cnn_problem()
    d = random_directions(model, ndim=2, seed=5)
    x, y = np.linspace(-1, 1, 4), np.linspace(-0.5, 0.5, 3)
    whole = compute_surface(model, data, directions=d, x=x, y=y, progress=False)
    path = tmp_path / "facto.h5"
    missing = [1, 6, 10]
    with h5py.File(path, "w") as f:  # (nx, ny) arrays in flat meshgrid-'xy' order, -1 = unfinished
        f["dir_file"], f["xcoordinates"], f["ycoordinates"] = "dirs.h5", x, y
        for key, values in whole.values.items():
            flat = values.reshape(-1).copy()
            flat[missing] = -1
            f[key] = flat.reshape(len(x), len(y))
    recording = Recording()
    result = compute_surface(model, data, directions=d, x=x, y=y, surf_file=path, progress=False, comm=recording)
    assert sorted(recording.seen) == missing
    for key in whole.values:
        np.testing.assert_allclose(result[key], whole[key], rtol=1e-12)
        np.testing.assert_allclose(read_surface(path)[key], whole[key], rtol=1e-12)


def test_surface_file_of_other_settings_is_refused(tmp_path):
    model, data = cnn_problem()
    d = random_directions(model, ndim=2, seed=6)
    path = tmp_path / "s.h5"
    compute_surface(model, data, directions=d, x="-1:1:2", y="-1:1:2", surf_file=path, progress=False,
                    attrs={"data": "tiny"})
    with pytest.raises(ValueError, match="made with loss='crossentropy', not 'mse'"):
        compute_surface(model, data, directions=d, x="-1:1:2", y="-1:1:2", surf_file=path, loss="mse", progress=False)
    with pytest.raises(ValueError, match="made with xseed=6, not 7"):
        compute_surface(model, data, directions=random_directions(model, ndim=2, seed=7), x="-1:1:2",
                        y="-1:1:2", surf_file=path, progress=False)
    with pytest.raises(ValueError, match="made with data='tiny', not 'other'"):
        compute_surface(model, data, directions=d, x="-1:1:2", y="-1:1:2", surf_file=path, progress=False,
                        attrs={"data": "other"})
    with torch.no_grad():
        model[4].bias.add_(1.0)
    with pytest.raises(ValueError, match="made with weights_sha256="):
        compute_surface(model, data, directions=d, x="-1:1:2", y="-1:1:2", surf_file=path, progress=False,
                        attrs={"data": "tiny"})


def test_interpolation_ends_at_both_models():
    m1, data = cnn_problem()
    torch.manual_seed(9)
    m2 = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))
    with torch.no_grad():
        m2[1].running_mean.fill_(0.2)
        m2[1].running_var.fill_(1.7)
    line = interpolate(m1, m2, data, "-0.5:1.5:5", progress=False)
    np.testing.assert_allclose(line.x, [-0.5, 0.0, 0.5, 1.0, 1.5])
    for model, at in ((m1, 1), (m2, 3)):
        x, y = data["test"]
        expected = F.cross_entropy(model.eval()(x), y).item()
        assert line["test_loss"][at] == pytest.approx(expected, rel=1e-5)


def test_a_notebook_loop_over_models_equals_fresh_computations_and_writes_nothing(tmp_path, monkeypatch):
    """The same default recipes for model A then model B (filter-normalized to each): every
    surface equals one computed from that model's own directions; the current folder stays empty;
    derived direction files are bound to the weights they were normalized to."""
    from landscape.recipes import AxisRecipe

    monkeypatch.chdir(tmp_path)
    (model_a, data), (model_b, _) = cnn_problem(), cnn_problem()
    with torch.no_grad():  # model B: model A's weights scaled, so filter-normalized directions differ
        for p in model_b.parameters():
            p.mul_(3.0)
    for model in (model_a, model_b, model_a):
        got = compute_surface(model, data, directions=[AxisRecipe(seed=0)], x="-1:1:3", progress=False)
        fresh = compute_surface(model, data, directions=random_directions(model, ndim=1, seed=0), x="-1:1:3",
                                progress=False)
        for key in fresh.values:
            np.testing.assert_array_equal(got[key], fresh[key])
    assert list(tmp_path.iterdir()) == []
    # with derived files: model B never reuses model A's direction file
    files = tmp_path / "files"
    files.mkdir()
    monkeypatch.chdir(files)
    for model in (model_a, model_b):
        got = compute_surface(model, data, directions=[AxisRecipe(seed=0)], x="-1:1:3", progress=False,
                              surf_file="auto")  # the direction file's name is derived too
        fresh = compute_surface(model, data, directions=random_directions(model, ndim=1, seed=0), x="-1:1:3",
                                progress=False)
        np.testing.assert_array_equal(got["train_loss"], fresh["train_loss"])
    assert len(list(files.glob("model_weights_*_seed=0*.h5"))) == 4  # two direction files, two surfaces
    assert not np.allclose(got["train_loss"], compute_surface(model_a, data, directions=[AxisRecipe(seed=0)],
                                                              x="-1:1:3", progress=False)["train_loss"])


SURFACE_MODULES = ["landscape/surface.py", "landscape/sharding.py", "landscape/grid.py", "landscape/span.py",
                   "landscape/directions.py", "landscape/recipes.py", "landscape/store.py", "landscape/trajectory.py",
                   "landscape/__init__.py", "landscape/commands/surface.py", "landscape/commands/interpolate.py",
                   "landscape/commands/trajectory.py"]


def test_surface_modules_have_short_functions_and_no_private_imports():
    """(ast) Every function of the surface modules is at most 60 lines, docstring included, and
    none imports a private name from another module."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    long, private = [], []
    for name in SURFACE_MODULES:
        tree = ast.parse((root / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
            if isinstance(node, ast.ImportFrom):
                private += [f"{name}: {alias.name} from {node.module}" for alias in node.names
                            if alias.name.startswith("_") and alias.name != "__future__"]
    assert long == [] and private == []


def test_landscape_exports_its_public_names():
    import landscape

    assert {"compute_surface", "AxisRecipe", "random_directions", "read_surface", "Grid"} <= set(landscape.__all__)
    for name in landscape.__all__:
        assert getattr(landscape, name).__module__.startswith("landscape.")


def test_a_model_with_non_finite_weights_is_refused_in_one_line():
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight[0, :2] = float("nan")
    inputs, targets = torch.randn(8, 3), torch.randint(0, 2, (8,))
    with pytest.raises(ValueError, match=r"^the model: weight holds 2 non-finite values \(NaN or inf\) of 6; "
                                         r"refusing a diverged or damaged model"):
        compute_surface(model, (inputs, targets), directions=random_directions(model, ndim=1), x="-1:1:3",
                        progress=False)
