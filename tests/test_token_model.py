"""Token models from an ``.npz`` of int64 ids, end to end on the command line: Embedding +
``F.scaled_dot_product_attention`` (and an Embedding + LSTM classifier) trained, the surface's
centre against a plain loop, the top Hessian eigenvalue against a dense Hessian, and ``diagnose``."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent))
import token_models  # noqa: E402

from landscape.cli import main  # noqa: E402
from landscape.store import read_surface  # noqa: E402
from regularizers.train import load_run  # noqa: E402


@pytest.fixture(scope="module", params=["attention", "lstm"])
def run(request, tmp_path_factory):
    """``landscape train`` of a token model (``token_models:attention`` or ``:lstm``) on an .npz
    of int64 ids (train and test splits)."""
    folder = tmp_path_factory.mktemp(request.param)
    ids, labels = token_models.token_data(64)
    np.savez(folder / "ids.npz", x_train=ids[:48], y_train=labels[:48], x_test=ids[48:], y_test=labels[48:])
    code = main(["train", "--model", f"token_models:{request.param}", "--data", str(folder / "ids.npz"),
                 "--epochs", "2", "--batch-size", "16", "--out", str(folder / "run"), "--quiet"])
    assert code == 0
    return folder


def plain_loss(model, ids, labels):
    """Mean cross-entropy and accuracy (percent) over every example, one plain forward pass."""
    model.eval()
    with torch.no_grad():
        logits = model(torch.as_tensor(ids))
    targets = torch.as_tensor(labels)
    return F.cross_entropy(logits, targets).item(), 100.0 * int((logits.argmax(1) == targets).sum()) / len(targets)


def test_ids_reach_the_model_as_int64(run):
    model, data, _ = load_run(run / "run")
    assert data.x_train.dtype == torch.int64 and data.x_train.shape == (48, token_models.LENGTH)
    assert isinstance(model, (token_models.TinyAttention, token_models.LSTMClassifier))


def test_cli_surface_centre_equals_a_plain_loop(run):
    surf = run / "surface.h5"
    assert main(["surface", "--checkpoint", str(run / "run"), "--x=-1:1:3", "--surf_file", str(surf), "--quiet"]) == 0
    surface = read_surface(surf)
    assert np.allclose(surface.x, [-1, 0, 1])
    model, _, _ = load_run(run / "run")
    ids, labels = token_models.token_data(64)
    for split, rows in (("train", slice(0, 48)), ("test", slice(48, 64))):
        loss, acc = plain_loss(model, ids[rows], labels[rows])
        assert surface[f"{split}_loss"][1] == pytest.approx(loss, rel=1e-6, abs=1e-7)
        assert surface[f"{split}_acc"][1] == pytest.approx(acc, abs=1e-9)
        assert surface[f"{split}_loss"][0] != pytest.approx(loss)   # the ends moved off the model


def dense_top_eigenvalue(model, ids, labels) -> float:
    """The largest eigenvalue of the exact (float64) Hessian of the mean train loss, every parameter,
    computed through the math attention kernel (the one that is twice differentiable on CPU)."""
    model = model.double().eval()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(theta):
        params, start = {}, 0
        for name, shape in zip(names, shapes):
            params[name] = theta[start:start + shape.numel()].reshape(shape)
            start += shape.numel()
        logits = torch.func.functional_call(model, params, (torch.as_tensor(ids),))
        return F.cross_entropy(logits, torch.as_tensor(labels))

    with sdpa_kernel(SDPBackend.MATH):
        hessian = torch.autograd.functional.hessian(loss, flat)
    return float(np.linalg.eigvalsh(hessian.numpy())[-1])


@pytest.mark.parametrize("run", ["attention"], indirect=True)
def test_top_hessian_eigenvalue_through_attention_equals_a_dense_hessian(run):
    from analysis.curvature import top_eigenvalues

    model, data, _ = load_run(run / "run")
    ids, labels = token_models.token_data(64)
    want = dense_top_eigenvalue(load_run(run / "run")[0], ids[:48], labels[:48])
    got = top_eigenvalues(model, data, k=1).values[0]   # the default attention kernel: must not fail
    assert got == pytest.approx(want, rel=1e-4)


def test_diagnose_of_the_token_run(run):
    """Every section that applies is measured: train loss and, for the attention model, the top
    eigenvalue against independent computations."""
    out = run / "report"
    assert main(["diagnose", str(run / "run"), "--quick", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    runs = summary["runs"]
    (measured,) = runs.values() if isinstance(runs, dict) else runs
    ids, labels = token_models.token_data(64)
    loss, acc = plain_loss(load_run(run / "run")[0], ids[:48], labels[:48])
    assert measured["train_loss"] == pytest.approx(loss, rel=1e-5) and measured["train_acc"] == pytest.approx(acc)
    assert np.isfinite(measured["top_eigenvalue"])
    if isinstance(load_run(run / "run")[0], token_models.TinyAttention):
        want = dense_top_eigenvalue(load_run(run / "run")[0], ids[:48], labels[:48])
        assert measured["top_eigenvalue"] == pytest.approx(want, rel=1e-3)
