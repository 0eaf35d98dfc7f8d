import warnings

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from landscape import precision as prec
from landscape.directions import random_directions
from landscape.perturbed import Evaluator
from landscape.grid import make_grid
from landscape.precision import (PrecisionWarning, check_indices, hardware_note, precision_check, precision_name)
from landscape.store import read_attrs, read_surface
from landscape.surface import compute_surface


def conv_net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(64, 3, 12, 12))
    return net.eval()


def data(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"train": (torch.randn(n, 3, 12, 12, generator=g), torch.randint(0, 10, (n,), generator=g))}


def test_names_and_aliases():
    assert [precision_name(p) for p in (None, "none", "fp32", "bf16", "fp16")] == ["fp32", "fp32", "fp32", "bf16", "fp16"]
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        precision_name("fp64")
    net = conv_net()
    with pytest.raises(ValueError, match="precision must be one of"):
        Evaluator(net, data(), random_directions(net, ndim=1, seed=0), precision="half", device="cpu")


def test_check_points_are_centre_corners_and_seeded_others():
    grid = make_grid("-1:1:5", "-2:2:9")  # shape (9, 5)
    idx = check_indices(grid, random_points=4, seed=0)
    coords = grid.coords(idx)
    corners = {(x, y) for x in (-1.0, 1.0) for y in (-2.0, 2.0)}
    assert corners <= {tuple(c) for c in coords} and (0.0, 0.0) in {tuple(c) for c in coords}
    assert len(idx) == 9 and len(set(idx)) == 9
    np.testing.assert_array_equal(idx, check_indices(grid, random_points=4, seed=0))
    line = make_grid("-0.5:1.5:5")  # nearest the origin: 0.0 is on the axis
    assert sorted(line.coords(check_indices(line, random_points=0))[:, 0]) == [-0.5, 0.0, 1.5]


def test_precision_check_measures_the_errors_it_is_given():
    grid = make_grid("0:1:11")
    x = grid.coordinates[0]
    exact = lambda coords: np.stack([10 * coords[:, 0] ** 2, 50 + 0 * coords[:, 0]], axis=1)  # noqa: E731
    computed = {"train_loss": 10 * x ** 2 + 0.02 * np.sin(7 * x), "train_acc": np.full_like(x, 52.0)}
    attrs = precision_check(exact, grid, computed, ["train_loss", "train_acc"], random_points=3)
    idx = check_indices(grid, random_points=3)
    expected = np.max(np.abs(0.02 * np.sin(7 * x[idx])))
    assert attrs["precision_error_abs"] == pytest.approx(expected, rel=1e-12)
    range_ = np.ptp(computed["train_loss"])
    assert attrs["precision_error_rel"] == pytest.approx(expected / range_, rel=1e-12)
    assert attrs["precision_acc_error"] == 2.0 and attrs["precision_check_points"] == len(idx)
    # above the threshold: a loud warning
    computed["train_loss"] = 10 * x ** 2 + 0.5
    with pytest.warns(PrecisionWarning, match="LARGE PRECISION ERROR"):
        attrs = precision_check(exact, grid, computed, ["train_loss", "train_acc"])
    assert attrs["precision_error_abs"] == pytest.approx(0.5) and attrs["precision_error_rel"] == pytest.approx(0.05)
    # NaN on both paths is agreement; on one path it is an infinite error
    computed["train_loss"] = np.where(x > 0.95, np.nan, 10 * x ** 2)
    exact_nan = lambda coords: np.stack([np.where(coords[:, 0] > 0.95, np.nan, 10 * coords[:, 0] ** 2),  # noqa: E731
                                         50 + 0 * coords[:, 0]], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        assert precision_check(exact_nan, grid, computed, ["train_loss", "train_acc"])["precision_error_abs"] == 0
    with pytest.warns(PrecisionWarning):
        assert precision_check(exact, grid, computed, ["train_loss", "train_acc"])["precision_error_abs"] == np.inf


def test_bf16_surface_lies_within_its_stated_error_of_the_fp32_one(tmp_path, capsys):
    """The stored error equals an independent fp32 surface's difference at the check points, and
    the whole bf16 surface lies within a small multiple of it (bf16 keeps 8 bits of mantissa)."""
    net = conv_net()
    d = random_directions(net, ndim=2, seed=3)
    grid = dict(x="-1:1:5", y="-1:1:5")
    exact = compute_surface(net, data(), directions=d, device="cpu", progress=False, batch_size=64, **grid)
    assert "precision_error_abs" not in exact.attrs  # nothing to check on the exact path
    half = compute_surface(net, data(), directions=d, device="cpu", precision="bf16", batch_size=64,
                           surf_file=tmp_path / "bf16.h5", **grid)
    assert "bf16 error at 9 fp32 check points" in capsys.readouterr().err
    stored = read_attrs(tmp_path / "bf16.h5")
    assert stored["precision"] == "bf16" and stored["precision_check_points"] == 9
    idx = check_indices(make_grid(**grid))
    at_checks = np.abs(half["train_loss"].reshape(-1)[idx] - exact["train_loss"].reshape(-1)[idx])
    assert stored["precision_error_abs"] == pytest.approx(at_checks.max(), rel=1e-9)
    assert stored["precision_error_rel"] == pytest.approx(at_checks.max() / np.ptp(half["train_loss"]), rel=1e-9)
    assert 0 < stored["precision_error_abs"] and stored["precision_error_rel"] < 0.01
    everywhere = np.abs(half["train_loss"] - exact["train_loss"]).max()
    assert everywhere <= 3 * stored["precision_error_abs"]
    assert read_surface(tmp_path / "bf16.h5").attrs["precision_error_rel"] == stored["precision_error_rel"]


def test_old_files_with_precision_none_resume_as_fp32(tmp_path):
    net = conv_net()
    d = random_directions(net, ndim=1, seed=4)
    path = tmp_path / "s.h5"
    compute_surface(net, data(60), directions=d, x="-1:1:3", device="cpu", progress=False, surf_file=path)
    with h5py.File(path, "r+") as f:  # as written before fp32 had its name; one point left to do
        f.attrs["precision"] = "none"
        f["done"][1] = 0
    again = compute_surface(net, data(60), directions=d, x="-1:1:3", device="cpu", progress=False,
                            surf_file=path, precision="none")
    assert np.isfinite(again["train_loss"]).all()
    with pytest.raises(ValueError, match="made with precision='none', not 'bf16'"):
        compute_surface(net, data(60), directions=d, x="-1:1:3", device="cpu", progress=False, surf_file=path,
                        precision="bf16")


def test_hardware_note(monkeypatch):
    assert hardware_note("fp32", "cpu") is None
    monkeypatch.setattr(prec, "cpu_flags", lambda: {"avx2", "avx512f"})
    assert "this CPU has no bf16 units (avx512_bf16 or amx_bf16)" in hardware_note("bf16", "cpu")
    monkeypatch.setattr(prec, "cpu_flags", lambda: {"avx512f", "amx_bf16"})
    assert hardware_note("bf16", "cpu") is None
    assert "no fp16 units" in hardware_note("fp16", "cpu")
    monkeypatch.setattr(prec, "cpu_flags", set)
    assert "cannot tell" in hardware_note("bf16", "cpu")


def test_plots_carry_the_measured_error(tmp_path, monkeypatch):
    from landscape import plot

    net = conv_net()
    d = random_directions(net, ndim=1, seed=5)
    path = tmp_path / "line.h5"
    compute_surface(net, data(80), directions=d, x="-1:1:5", device="cpu", precision="bf16", progress=False,
                    surf_file=path)
    attrs = read_attrs(path)
    titles = []
    monkeypatch.setattr(plot, "_save", lambda fig, *a: titles.append([ax.get_title() for ax in fig.axes]) or [])
    plot.plot_surface_file(path, out_dir=tmp_path)
    caption = f"bf16: loss error {attrs['precision_error_abs']:.2g} ("
    assert any(caption in t for t in titles[0]), titles
    assert prec.plot_caption({"precision": "fp32"}) == ""


def test_compile_is_opt_in_and_agrees_with_the_eager_path():
    net = conv_net()
    d = random_directions(net, ndim=2, seed=6)
    points = np.array([[0.0, 0.0], [0.3, -0.4]])
    eager = Evaluator(net, data(100), d, splits=("train",), device="cpu", batch_size=64)
    compiled = Evaluator(net, data(100), d, splits=("train",), device="cpu", batch_size=64, compile=True)
    assert compiled.points_per_pass == 1 and eager._call is not compiled._call
    np.testing.assert_allclose(compiled(points), eager(points), rtol=1e-6)
    with pytest.raises(ValueError, match="compile=True evaluates one point per pass"):
        Evaluator(net, data(100), d, splits=("train",), device="cpu", compile=True, points_per_pass=4)


def test_command_line_precision_flag(tmp_path, monkeypatch, capsys):
    from landscape.cli import main

    monkeypatch.chdir(tmp_path)
    model = ["--model", "cnn", "--model-option", "channels=[4,8]", "--data", "digits", "--splits", "test"]
    assert main(["surface", *model, "--x=-1:1:3", "--precision", "bf16", "--surf_file", "b.h5"]) == 0
    printed = capsys.readouterr()
    assert "bf16 error at 3 fp32 check points" in printed.err
    stored = read_attrs("b.h5")
    assert f"largest {stored['precision_error_abs']:.3g}" in printed.out  # the report states the stored error
    assert stored["precision"] == "bf16" and np.isfinite(stored["precision_error_rel"])
    assert main(["surface", *model, "--x=-1:1:3", "--precision", "none", "--surf_file", "n.h5", "--quiet"]) == 0
    assert read_attrs("n.h5")["precision"] == "fp32" and "precision_error_abs" not in read_attrs("n.h5")
    assert main(["surface", *model, "--x=-1:1:3", "--precision", "bf16", "--surf_file", "n.h5", "--quiet"]) == 2
    assert "made with precision='fp32', not 'bf16'" in capsys.readouterr().err
