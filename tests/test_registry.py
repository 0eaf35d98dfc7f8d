"""Registry: spec parsing, errors, and every method training a tiny model (hook loop and CLI)."""
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape.cli import main
from regularizers.base import check_regularizers, defines
from regularizers.registry import make_regularizer, names

REQUIRED = ("mma cosine mhe orthogonal srip norm pbwn l1 label_smoothing mixup cutmix cutout "
            "randaugment linr linrc linrnl linrnm residual").split()


def test_names_and_defaults():
    assert set(REQUIRED) <= set(names())
    assert make_regularizer("mma").coefficient == 0.07
    assert make_regularizer("norm").coefficient == 0.01
    assert make_regularizer("mma:0.03").coefficient == 0.03
    reg = make_regularizer("mhe:2:s=0,half_space=true")
    assert (reg.coefficient, reg.options) == (2.0, {"s": 0, "half_space": True})
    assert make_regularizer("mma::include_output=false").include_output is False
    assert make_regularizer("linrc").options == {"confidence": True}
    assert make_regularizer("linrnl").labels is False
    assert make_regularizer("linrnm:0.5").name == "linrnm"
    assert make_regularizer("residual:1:schedule=logistic,b=0.25,alpha=0").b == 0.25


@pytest.mark.parametrize("spec, message", [
    ("nope", "choose one of mma, cosine"),
    ("mma:abc", "not a number"),
    ("mma:-1", "finite number >= 0, got -1"),
    ("norm:nan", "finite number >= 0, got nan"),
    ("l1:inf", "finite number >= 0, got inf"),
    ("mma:1:zz=1", "accepts"),
    ("mma:1:s", "KEY=VALUE"),
    ("linr:1:distance=l1", "distance"),
    ("residual::schedule=gauss", "schedule"),
])
def test_bad_specs_raise_value_error(spec, message):
    with pytest.raises(ValueError, match=message):
        make_regularizer(spec)


def tiny_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 4))


@pytest.mark.parametrize("name", REQUIRED)
def test_every_method_trains_a_tiny_model_without_nan(name):
    """The hook loop of regularizers/base.py, five SGD steps."""
    reg = make_regularizer(name)
    check_regularizers([reg])
    model = tiny_cnn()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    criterion = reg.criterion(F.cross_entropy) if defines(reg, "criterion") else F.cross_entropy
    g = torch.Generator().manual_seed(1)
    x_all, y_all = torch.randn(32, 1, 8, 8, generator=g), torch.randint(4, (32,), generator=g)
    for epoch in range(5):
        if defines(reg, "start_epoch"):
            reg.start_epoch(epoch, 5)
        x, y = x_all, y_all
        if defines(reg, "transform"):
            x, y = reg.transform(x, y)
        loss = reg.loss(model, x, y, criterion) if defines(reg, "loss") else criterion(model(x), y)
        if defines(reg, "penalty"):
            loss = loss + reg.penalty(model)
        assert math.isfinite(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if defines(reg, "after_step"):
            reg.after_step(model)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), before))


def test_every_method_runs_through_landscape_train(tmp_path):
    for name in REQUIRED:
        out = tmp_path / name
        code = main(["train", "--model", "cnn", "--model-option", "channels=[4,8]", "--data", "digits",
                     "--epochs", "1", "--batch-size", "256", "--reg", name, "--out", str(out),
                     "--device", "cpu", "--quiet"])
        assert code == 0, name
        history = json.loads((out / "history.json").read_text())
        assert all(math.isfinite(history[key][0]) for key in ("objective", "train_loss", "test_loss")), name
        assert json.loads((out / "config.json").read_text())["regularizers"] == [name]


def test_weight_norm_trains_reparametrized_and_saves_plain_weights(tmp_path):
    from regularizers.models import load_model

    out = tmp_path / "wn"
    code = main(["train", "--model", "cnn", "--data", "digits", "--epochs", "1", "--reg", "weight_norm",
                 "--out", str(out), "--device", "cpu", "--quiet"])
    assert code == 0
    checkpoint = torch.load(out / "checkpoints" / "epoch_001.pt", weights_only=True)
    assert any("parametrizations" in key for key in checkpoint["model"])
    plain = load_model("cnn", num_classes=10, in_channels=1, checkpoint=out / "model.pt")
    assert not any("parametrizations" in key for key in plain.state_dict())
