"""Issue 17: `--directions hessian` takes its eigenvectors from the data the surface uses."""
import h5py
import numpy as np
import pytest
import torch

import user_models
from analysis.curvature import top_eigenvalues
from landscape.cli import main


def test_hessian_directions_default_to_every_training_example(tmp_path):
    torch.set_num_threads(1)
    x, y = user_models.raw_data(n=600)          # more than the former 512-example subset
    torch.manual_seed(0)
    model = user_models.train_plain(user_models.smooth(), x, y)
    torch.save(model.state_dict(), tmp_path / "ckpt.pt")
    np.savez(tmp_path / "data.npz", x=x.numpy(), y=y.numpy())
    h = 0.01
    assert main(["surface", "--model", "user_models:smooth", "--checkpoint", str(tmp_path / "ckpt.pt"),
                 "--data", str(tmp_path / "data.npz"), "--quiet", "--directions", "hessian", f"--x={-h}:{h}:3",
                 "--dir_file", str(tmp_path / "hess.h5"), "--surf_file", str(tmp_path / "surf.h5")]) == 0
    with h5py.File(tmp_path / "hess.h5", "r") as f:
        stored = float(np.atleast_1d(f.attrs["xeigenvalue"])[0])
        assert int(f.attrs["xexamples"]) == 600
    full = top_eigenvalues(model, (x, y), k=1, tol=1e-8).values[0]     # independent, on all 600 examples
    assert stored == pytest.approx(full, rel=1e-4)
    with h5py.File(tmp_path / "surf.h5", "r") as f:
        loss = f["train_loss"][()]
    assert (loss[0] - 2 * loss[1] + loss[2]) / h ** 2 == pytest.approx(stored, rel=2e-2)  # the drawn curvature
