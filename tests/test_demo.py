"""`landscape demo` end to end on a tiny setting, checked against independent computations.

The surfaces' centres and the interpolation's end points are the trained models themselves, so
they must equal a plain forward pass of each model on its training data (cross-entropy of the
full split, eval mode); the figures must decode to images of the size of their matplotlib figure
at the 150 dpi they are saved at, showing more than a blank canvas.
"""
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.image import imread

from landscape.cli import main
from landscape.store import read_surface
from regularizers.train import load_run

DPI = 150  # landscape.plot saves every figure at 150 dpi, bbox_inches="tight"


@torch.no_grad()
def _plain_loss_and_accuracy(model, inputs, targets):
    """Mean cross-entropy and accuracy (%) of ``model`` in eval mode, one forward pass."""
    model.eval()
    logits = model(inputs)
    return F.cross_entropy(logits, targets).item(), 100.0 * (logits.argmax(1) == targets).double().mean().item()


def _check_png(path, width_in, height_in):
    """The PNG decodes to RGBA pixels of the figure's size: ``bbox_inches="tight"`` trims white margins
    and pads 0.1 inch on each side, so each side lies within 85% of the figure's and the figure's + 0.2 in."""
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.shape[2] == 4, (path.name, pixels.shape)
    height, width = pixels.shape[:2]
    assert 0.85 * width_in * DPI <= width <= (width_in + 0.2) * DPI, (path.name, width)
    assert 0.85 * height_in * DPI <= height <= (height_in + 0.2) * DPI, (path.name, height)
    colours = np.unique(pixels.reshape(-1, 4).round(2), axis=0)
    assert len(colours) > 20, f"{path.name} is nearly blank ({len(colours)} colours)"


def test_demo_surfaces_equal_the_trained_models_and_runs_are_reused(tmp_path, capsys):
    args = ["demo", "--out", str(tmp_path), "--epochs", "2", "--points", "5", "--device", "cpu"]
    assert main(args) == 0
    assert "figures:" in capsys.readouterr().out
    truth = {}
    for name in ("baseline", "mma"):
        model, data, _ = load_run(tmp_path / name)
        truth[name] = _plain_loss_and_accuracy(model, data.x_train, data.y_train)
        test_loss, test_acc = _plain_loss_and_accuracy(model, data.x_test, data.y_test)
        plane = read_surface(tmp_path / "surfaces" / "2d" / f"{name}.h5")
        line = read_surface(tmp_path / "surfaces" / "1d" / f"{name}.h5")
        assert plane.shape == (5, 5) and plane.done.all() and line.shape == (9,)
        assert plane.x[2] == 0 and plane.y[2] == 0 and line.x[4] == 0
        # the centre of the line and of the plane is the trained model: its plain forward pass
        np.testing.assert_allclose([line["train_loss"][4], plane["train_loss"][2, 2]], truth[name][0], rtol=1e-5)
        np.testing.assert_allclose([line["train_acc"][4], plane["train_acc"][2, 2]], truth[name][1], atol=1e-9)
        np.testing.assert_allclose(plane["test_loss"][2, 2], test_loss, rtol=1e-5)
        np.testing.assert_allclose(plane["test_acc"][2, 2], test_acc, atol=1e-9)
        assert np.ptp(plane["train_loss"]) > 0  # the directions move the weights
    assert truth["baseline"][0] != truth["mma"][0]  # two different models, or the check above proves little

    between = read_surface(tmp_path / "surfaces" / "interpolation_baseline_to_mma.h5")
    np.testing.assert_allclose(between.x, np.linspace(-0.5, 1.5, 41))
    # alpha = 0 is the baseline, alpha = 1 the MMA model
    np.testing.assert_allclose(between["train_loss"][[10, 30]], [truth["baseline"][0], truth["mma"][0]], rtol=1e-5)

    figures = tmp_path / "figures"
    _check_png(figures / "compare_1d.png", 6.4, 4.2)  # plot_1d's figure
    _check_png(figures / "compare_train_loss_filled.png", 3.6 * 2 + 1.0, 3.6)  # two grids side by side
    _check_png(figures / "mma_train_loss_surface3d.png", 6.4, 4.8)  # matplotlib's default figure

    assert main(args) == 0  # second time: the trained runs are reused, not retrained
    out = capsys.readouterr().out
    assert out.count("reusing the trained run") == 2 and "epoch   1/2" not in out
