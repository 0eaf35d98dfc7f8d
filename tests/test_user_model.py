"""A model trained outside the toolkit, on data as the user stores it: the toolkit must evaluate
exactly those inputs (no silent normalization, no silent split) and accept the forms PyTorch
users have (pairs, DataLoaders with dict inputs, callable losses, dict outputs)."""
import math
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

sys.path.insert(0, str(Path(__file__).resolve().parent))
import user_models  # noqa: E402

from landscape.cli import main  # noqa: E402
from regularizers.data import Dataset  # noqa: E402
from regularizers.evaluation import data_splits, evaluate  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A Conv-BN CNN trained in plain PyTorch on raw float images, its checkpoint and an x, y file."""
    folder = tmp_path_factory.mktemp("user")
    x, y = user_models.raw_data()
    torch.manual_seed(0)
    model = user_models.train_plain(user_models.cnn(), x, y)
    torch.save(model.state_dict(), folder / "ckpt.pt")
    np.savez(folder / "data.npz", x=x.numpy(), y=y.numpy())
    return folder, model, x, y


def write_direction_file(path, model, seed=0):
    """Two random directions in tomgoldstein/loss-landscape's layout, biases and BN included."""
    gen = torch.Generator().manual_seed(seed)
    dirs = []
    with h5py.File(path, "w") as f:
        for axis in "xy":
            group = f.create_group(f"{axis}direction")
            tensors = [0.3 * torch.randn(p.shape, generator=gen) for p in model.parameters()]
            for i, t in enumerate(tensors):
                group.create_dataset(str(i), data=t.numpy())
            dirs.append(tensors)
    return dirs


def independent_values(model, dirs, x, y, xs, ys):
    """theta + a d1 + b d2 loaded into the model; loss and accuracy over every example as given."""
    names = [n for n, _ in model.named_parameters()]
    theta = [p.detach() for p in model.parameters()]
    loss, acc = np.empty((len(ys), len(xs))), np.empty((len(ys), len(xs)))
    model.eval()
    with torch.no_grad():
        for i, b in enumerate(ys):
            for j, a in enumerate(xs):
                params = {n: t + float(a) * d1 + float(b) * d2 for n, t, d1, d2 in zip(names, theta, *dirs)}
                out = functional_call(model, params, (x,))
                loss[i, j] = F.cross_entropy(out.double(), y).item()
                acc[i, j] = 100.0 * (out.argmax(1) == y).double().mean().item()
    return loss, acc


def test_surface_of_a_plain_pytorch_model_on_raw_data(trained, capsys):
    folder, model, x, y = trained
    dirs = write_direction_file(folder / "dirs.h5", model)
    surf = folder / "surf.h5"
    code = main(["surface", "--model", "user_models:cnn", "--checkpoint", str(folder / "ckpt.pt"),
                 "--data", str(folder / "data.npz"), "--dir_file", str(folder / "dirs.h5"),
                 "--x=-1:1:5", "--y=-0.5:0.5:3", "--surf_file", str(surf), "--quiet"])
    assert code == 0, capsys.readouterr().err
    with h5py.File(surf, "r") as f:
        assert "test_loss" not in f  # one split: the file's examples, all of them, as stored
        loss, acc = f["train_loss"][()], f["train_acc"][()]
        xs, ys = f["xcoordinates"][()], f["ycoordinates"][()]
        assert f.attrs["data_transforms"] == "none"
    want_loss, want_acc = independent_values(model, dirs, x, y, xs, ys)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    np.testing.assert_allclose(acc, want_acc, atol=1e-9)
    assert want_loss.max() > 2 * want_loss.min()  # the grid leaves the minimum: a real test

    code = main(["surface", "--model", "user_models:cnn", "--checkpoint", str(folder / "ckpt.pt"),
                 "--data", str(folder / "data.npz"), "--splits", "test", "--x=-1:1:3", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "no 'test' split" in err


def test_standardizing_is_asked_for_and_refused_on_resume(trained, capsys):
    folder, *_ = trained
    args = ["surface", "--model", "user_models:cnn", "--checkpoint", str(folder / "ckpt.pt"),
            "--data", str(folder / "data.npz"), "--x=-1:1:3", "--surf_file", str(folder / "s.h5"), "--quiet",
            "--dir_file", str(folder / "d.h5")]
    assert main(args) == 0
    assert main(args + ["--normalize", "standardize"]) == 2
    err = capsys.readouterr().err
    assert "data_" in err and "s.h5" in err  # the file was made with other data; refused


def test_evaluate_accepts_the_forms_pytorch_users_have(trained):
    _, model, x, y = trained
    want = evaluate(model, (x, y))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=17)
    assert evaluate(model, loader) == pytest.approx(want, rel=1e-6)
    assert evaluate(model, {"train": (x, y)}, batch_size=7) == pytest.approx(want, rel=1e-6)
    assert evaluate(model, Dataset("d", x, y, None, None, 3)) == pytest.approx(want, rel=1e-6)
    as_list = [(x[i:i + 10], y[i:i + 10]) for i in range(0, len(x), 10)]
    assert evaluate(model, as_list) == pytest.approx(want, rel=1e-6)

    class DictModel(nn.Module):  # keyword inputs, dict outputs
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, pixels):
            return {"logits": self.inner(pixels), "aux": pixels.mean()}

    dict_loader = torch.utils.data.DataLoader([({"pixels": a}, b) for a, b in zip(x, y)], batch_size=32)
    got = evaluate(DictModel(model), dict_loader, output="logits")
    assert got == pytest.approx(want, rel=1e-6)
    per_example = evaluate(model, (x, y), loss=lambda o, t: F.cross_entropy(o, t, reduction="none"))
    batch_mean = evaluate(model, (x, y), batch_size=13, loss=lambda o, t: F.cross_entropy(o, t))
    assert per_example == pytest.approx(want, rel=1e-6) and batch_mean == pytest.approx(want, rel=1e-6)
    regression = evaluate(model, (x, torch.zeros(len(x), 3)), loss="mse")
    assert math.isnan(regression[1]) and regression[0] > 0
    with pytest.raises(TypeError, match="unsupported data of type int; expected a regularizers.data.Dataset"):
        data_splits(5)
    with pytest.raises(TypeError, match="a one-shot generator cannot be read again on every pass"):
        data_splits(batch for batch in as_list)
    with pytest.raises(TypeError, match=r"returned a dict \(keys 'logits', 'aux'\); say which part holds the "
                                        r"predictions with output= \(a key, an index or a callable; --output"):
        evaluate(DictModel(model), dict_loader)
    with pytest.raises(ValueError, match=r"^output='scores': the model's output has no such part "
                                         r"\(it has keys 'logits', 'aux'\)$"):
        evaluate(DictModel(model), dict_loader, output="scores")
    tuple_model = torch.nn.Sequential(model, torch.nn.Identity())
    tuple_model.forward = lambda inputs: (model(inputs), None)
    with pytest.raises(ValueError, match=r"^output=2: the model's output has no such part \(it has 2 items\)$"):
        evaluate(tuple_model, (x, y), output=2)
    assert evaluate(tuple_model, (x, y), output=0) == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match=r"class labels range over \[0, 7\] but the model has 3 outputs"):
        evaluate(model, (x[:2], torch.tensor([0, 7])))
    with pytest.raises(ValueError, match="the data has no 'test' split"):
        evaluate(model, (x, y), split="test")


def test_fit_from_python_writes_what_load_run_needs(tmp_path):
    from regularizers.train import fit, load_run

    x, y = user_models.raw_data(n=60)
    data = Dataset("mine", x, y, x[:20], y[:20], 3)
    model = user_models.ConvBN(1, 3)
    fit(model, data, epochs=1, lr=0.01, out=tmp_path / "run", progress=False, device="cpu")
    again, data2, history = load_run(tmp_path / "run")
    assert type(again).__name__ == "ConvBN" and len(history["epoch"]) == 1
    for (k, v), w in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(v, w), k
    assert torch.equal(data2.x_train, x) and torch.equal(data2.y_test, y[:20])
