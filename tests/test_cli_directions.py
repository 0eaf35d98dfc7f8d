"""`landscape surface --directions hessian` and `--x auto` on a plain-PyTorch model."""
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import user_models  # noqa: E402

from landscape.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dirs")
    x, y = user_models.raw_data(n=80)
    torch.manual_seed(0)
    torch.save(user_models.train_plain(user_models.smooth(), x, y).state_dict(), folder / "ckpt.pt")
    np.savez(folder / "data.npz", x=x.numpy(), y=y.numpy())
    base = ["surface", "--model", "user_models:smooth", "--checkpoint", str(folder / "ckpt.pt"),
            "--data", str(folder / "data.npz"), "--quiet"]
    return folder, base


def test_hessian_directions_curvature_equals_the_top_eigenvalue(trained, capsys):
    folder, base = trained
    h = 0.01  # a smooth model: the central difference converges as h^2 (measured 0.8 % here)
    assert main(base + ["--directions", "hessian", f"--x={-h}:{h}:3", "--dir_file", str(folder / "hess.h5"),
                        "--surf_file", str(folder / "hess_surf.h5")]) == 0
    with h5py.File(folder / "hess.h5", "r") as f:
        eigenvalues = f["eigenvalues_"][()]
        assert f.attrs["xkind"] == "hessian" and f.attrs["xsamples"] == "all"
        assert float(f.attrs["xeigenvalue"]) == pytest.approx(eigenvalues[0])
        assert int(f.attrs["xexamples"]) == 80  # by default the whole training split: the surface's data
    with h5py.File(folder / "hess_surf.h5", "r") as f:
        loss = f["train_loss"][()]
    second_difference = (loss[0] - 2 * loss[1] + loss[2]) / h ** 2  # unit eigenvector: L'' = lambda_1
    assert eigenvalues[0] > 0
    assert second_difference == pytest.approx(eigenvalues[0], rel=2e-2)
    assert "not counted in the surface's points/s" in capsys.readouterr().out
    assert main(base + ["--directions", "hessian", f"--x={-h}:{h}:3", "--dir_file", str(folder / "hess.h5"),
                        "--surf_file", str(folder / "hess_surf.h5")]) == 0
    assert "eigenvalues" not in capsys.readouterr().out  # the direction file is reused, not recomputed


def test_hessian_subset_keeps_both_numbers(trained, capsys):
    folder, base = trained
    h = 0.01
    loud = [a for a in base if a != "--quiet"]
    assert main(loud + ["--directions", "hessian", "--hessian-samples", "30", f"--x={-h}:{h}:3",
                        "--dir_file", str(folder / "sub.h5"), "--surf_file", str(folder / "sub_surf.h5")]) == 0
    with h5py.File(folder / "sub.h5", "r") as f:
        subset, whole = float(f.attrs["xeigenvalue"]), float(f.attrs["xcurvature_all"])
        assert int(f.attrs["xexamples"]) == 30 and int(f.attrs["xsamples"]) == 30
    with h5py.File(folder / "sub_surf.h5", "r") as f:
        loss = f["train_loss"][()]
    assert (loss[0] - 2 * loss[1] + loss[2]) / h ** 2 == pytest.approx(whole, rel=2e-2)  # the drawn surface's
    assert abs(subset - whole) > 0.05 * whole  # a different number, which is why both are kept
    out, err = capsys.readouterr()
    assert f"{subset:.4g}" in out and f"{whole:.4g}" in out
    assert "Hessian directions (top 1 on the train split): 1 Hessian-vector products" in err  # progress line


def test_auto_axis_reaches_twice_the_center_loss(trained, capsys):
    folder, base = trained
    surf = folder / "auto.h5"
    loud = [a for a in base if a != "--quiet"]  # the chosen span is said on the progress output
    assert main(loud + ["--x=auto:5:2", "--surf_file", str(surf), "--dir_file", str(folder / "rand.h5")]) == 0
    with h5py.File(surf, "r") as f:
        span, loss, xs = f.attrs["xspan_auto"], f["train_loss"][()], f["xcoordinates"][()]
        assert f.attrs["xspan_factor"] == 2.0 and f.attrs["xspan_reached"] == "true"
    np.testing.assert_allclose(xs, np.linspace(-span, span, 5))
    ends = max(loss[0], loss[-1])
    assert 1.98 * loss[2] <= ends <= 2.2 * loss[2]  # the first crossing, to 1 % and 3 digits
    assert "x axis auto" in capsys.readouterr().err
    assert main(loud + ["--x=auto:5:2", "--surf_file", str(surf), "--dir_file", str(folder / "rand.h5")]) == 0
    assert "5/5 points (0 computed" in capsys.readouterr().out  # a rerun finds the same grid: nothing to do
    assert main(base + ["--x=auto:1"]) == 2
    assert "expected auto[:NUM[:FACTOR]]" in capsys.readouterr().err
