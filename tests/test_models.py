"""Model registry, architectures (parameter counts, forward passes, options) and loading."""
import functools
import os
import sys

import numpy as np
import pytest
import torch
from torch import nn

from regularizers.models import (BasicBlock, StochasticDepth, count_parameters, create_model, list_models,
                                 load_model)


@functools.lru_cache(maxsize=None)
def built(name: str) -> nn.Module:
    """Each registry model with default options, built once, in eval mode."""
    torch.manual_seed(0)
    options = {"input_shape": (3, 32, 32)} if name == "mlp" else {}
    return create_model(name, num_classes=10, in_channels=3, **options).eval()


# Published sizes in millions, to the published precision (He et al. 2016 Table 6,
# Zagoruyko & Komodakis 2016, Huang et al. 2017 Table 2).
PUBLISHED = {"resnet20": "0.27", "resnet56": "0.85", "resnet110": "1.7", "wrn28_10": "36.5",
             "wrn16_4": "2.7", "densenet_bc100_12": "0.8"}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_counts_match_papers(name):
    published = PUBLISHED[name]
    digits = len(published.split(".")[1])
    count = count_parameters(built(name))
    assert round(count / 1e6, digits) == float(published)
    if name != "densenet_bc100_12":  # 0.769M, reported as 0.8M
        assert count == pytest.approx(float(published) * 1e6, rel=0.03)


def test_registry_names_and_generic_sizes():
    names = list_models()
    for required in ("vgg9", "vgg16", "vgg19", "resnet20", "resnet56", "resnet110", "wrn28_10", "wrn16_4",
                     "densenet_bc100_12", "alexnet", "cnn", "mlp"):
        assert required in names
    assert count_parameters(create_model("wrn", depth=16, widen=4)) == count_parameters(built("wrn16_4"))
    densenet = create_model("densenet_bc", depth=100, growth=12)
    assert count_parameters(densenet) == count_parameters(built("densenet_bc100_12"))
    assert count_parameters(create_model("resnet", depth=56)) == count_parameters(built("resnet56"))
    vgg9 = built("vgg9")
    convs = [m for m in vgg9.modules() if isinstance(m, nn.Conv2d)]
    fcs = [m for m in vgg9.modules() if isinstance(m, nn.Linear)]
    assert len(convs) == 7 and len(fcs) == 2 and fcs[0].in_features == 256 * 4 * 4


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown model 'resnet21'; available: .*resnet20"):
        create_model("resnet21")
    with pytest.raises(ValueError, match="model 'resnet20' has no option 'widen'; options: depth, skip"):
        create_model("resnet20", widen=2)
    with pytest.raises(ValueError, match="ResNet depth must be 2 \\+ 6n"):
        create_model("resnet", depth=21)


@pytest.mark.parametrize("name", list_models())
def test_forward_every_model(name):
    model = built(name)
    batch = 1 if name in ("wrn", "wrn28_10") else 2
    with torch.no_grad():
        out = model(torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
    assert out.shape == (batch, 10) and torch.isfinite(out).all() and out.std() > 0


@pytest.mark.parametrize("name, options", [("cnn", {}), ("mlp", {}), ("resnet20", {}), ("vgg9", {}), ("alexnet", {}),
                                           ("wrn", {"depth": 10, "widen": 1}),
                                           ("densenet_bc", {"depth": 16, "growth": 4})])
def test_small_inputs_digits(name, options):
    model = create_model(name, num_classes=3, in_channels=1, **options)
    out = model(torch.randn(4, 1, 8, 8))
    assert out.shape == (4, 3)
    out.sum().backward()  # trains, too


def test_mlp_input_shape():
    model = create_model("mlp", num_classes=4, in_channels=2, hidden=(5,), input_shape=(6,))
    assert model(torch.randn(3, 6)).shape == (3, 4)
    assert count_parameters(model) == 6 * 5 + 5 + 5 * 4 + 4
    assert create_model("mlp", in_channels=2, hidden=(5,)).body[1].in_features == 2 * 8 * 8  # default (C, 8, 8)


def test_skip_false_changes_output_not_parameters():
    with_skip = built("resnet20")
    no_skip = create_model("resnet20", skip=False).eval()
    assert count_parameters(no_skip) == count_parameters(with_skip)
    no_skip.load_state_dict(with_skip.state_dict())  # the same weights fit
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(with_skip(x), no_skip(x), atol=1e-3)
    option_b = create_model("resnet20", shortcut="B")
    assert count_parameters(option_b) == count_parameters(with_skip) + (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)


def test_stochastic_depth_module():
    x = torch.randn(1000, 4)
    for mode in ("row", "batch"):
        drop = StochasticDepth(0.3, mode).eval()
        assert torch.equal(drop(x), x * 0.7)
    drop = StochasticDepth(0.3, "row").train()
    torch.manual_seed(0)
    out = drop(x)
    kept = (out == x).all(dim=1)
    assert ((out == 0).all(dim=1) | kept).all()  # whole rows kept or dropped, never scaled
    assert kept.float().mean().item() == pytest.approx(0.7, abs=0.05)
    drop.mode = "batch"
    outcomes = [bool(torch.equal(drop(x), x)) for _ in range(300)]
    zeros = sum(not o for o in outcomes)
    assert zeros == pytest.approx(90, abs=25)  # all-or-nothing per batch, about 30% dropped


def test_resnet_stochastic_depth_schedule_and_modes():
    model = create_model("resnet20", stochastic_depth=0.5)
    probs = [m.p for m in model.modules() if isinstance(m, StochasticDepth)]
    assert probs == pytest.approx([0.5 * l / 9 for l in range(1, 10)])
    x = torch.randn(4, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        outs = [model(x) for _ in range(4)]
    assert any(not torch.allclose(outs[0], o) for o in outs[1:])
    with pytest.raises(ValueError, match="stochastic depth needs skip connections"):
        create_model("resnet20", stochastic_depth=0.5, skip=False)


def test_block_eval_scales_branch_by_survival():
    torch.manual_seed(0)
    block = BasicBlock(8, 8, 1, drop_path=0.4).eval()
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        branch = block.branch[:-1](x)  # everything before the stochastic-depth op
        assert torch.allclose(block(x), torch.relu(0.6 * branch + x), atol=1e-6)


def test_dropout_option_random_in_train_only():
    model = create_model("wrn", depth=10, widen=1, dropout=0.5)
    assert any(isinstance(m, nn.Dropout) and m.p == 0.5 for m in model.modules())
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert not torch.allclose(model.train()(x), model(x))
        assert torch.equal(model.eval()(x), model(x))


# ------------------------------------------------------------------------------------ loading

FACTORIES = """
from torch import nn

def make(num_classes, in_channels=3):
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 4, num_classes))

def bare():
    return nn.Linear(4, 2)

def anything(**kwargs):
    return nn.Linear(kwargs["in_channels"], kwargs["num_classes"], bias=kwargs.get("bias", True))

def not_a_model():
    return 3
"""


def test_load_model_from_import_path(tmp_path, monkeypatch):
    (tmp_path / "tiny_factories_x.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    model = load_model("tiny_factories_x:make", num_classes=5, in_channels=2)
    assert model(torch.randn(3, 2, 2, 2)).shape == (3, 5)
    assert load_model("tiny_factories_x:bare", num_classes=7).out_features == 2
    linear = load_model("tiny_factories_x:anything", num_classes=6, in_channels=3, bias=False)
    assert (linear.in_features, linear.out_features, linear.bias) == (3, 6, None)
    with pytest.raises(ValueError, match="returned a int, not a torch.nn.Module"):
        load_model("tiny_factories_x:not_a_model")
    with pytest.raises(ValueError, match="tiny_factories_x has no callable 'missing'"):
        load_model("tiny_factories_x:missing")
    with pytest.raises(ValueError, match="cannot import no_such_module_x"):
        load_model("no_such_module_x:make")


def test_load_model_from_checkpoints(tmp_path):
    torch.manual_seed(3)
    source = create_model("cnn", num_classes=4, in_channels=1)
    state = source.state_dict()
    torch.save(state, tmp_path / "plain.pt")
    torch.save({"model": state, "optimizer": {"state": {}}, "epoch": 3, "history": {"train_loss": [1.0]}},
               tmp_path / "trainer.pt")
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "parallel.pt")
    x = torch.randn(2, 1, 8, 8)
    want = source.eval()(x)
    for name in ("plain.pt", "trainer.pt", "parallel.pt"):
        model = load_model("cnn", num_classes=4, in_channels=1, checkpoint=str(tmp_path / name)).eval()
        assert torch.equal(model(x), want)


def test_mismatched_checkpoint_names_the_key(tmp_path):
    state = create_model("cnn", num_classes=4, in_channels=1).state_dict()
    torch.save(state, tmp_path / "ok.pt")
    with pytest.raises(ValueError) as err:
        load_model("cnn", num_classes=5, in_channels=1, checkpoint=str(tmp_path / "ok.pt"))
    msg = str(err.value)
    assert "shape mismatch for 'classifier.weight': checkpoint (4, 256), model (5, 256)" in msg and "\n" not in msg
    del state["features.1.running_var"]
    torch.save(state, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="does not fit the model: missing key 'features.1.running_var'$"):
        load_model("cnn", num_classes=4, in_channels=1, checkpoint=str(tmp_path / "missing.pt"))
    state["features.1.running_var"] = torch.ones(32)
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "extra.pt")
    with pytest.raises(ValueError, match="unexpected key 'extra.weight'"):
        load_model("cnn", num_classes=4, in_channels=1, checkpoint=str(tmp_path / "extra.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt: not a torch checkpoint"):
        load_model("cnn", checkpoint=str(tmp_path / "junk.pt"))
    with pytest.raises(FileNotFoundError, match="nope.pt: no such checkpoint file"):
        load_model("cnn", checkpoint=str(tmp_path / "nope.pt"))


RAISING = """
def boom(num_classes, in_channels):
    raise RuntimeError("CUDA is not available\\nsecond line")

def missing_key(**kwargs):
    return {}["depth"]
"""


def test_a_failing_factory_or_module_is_one_line_naming_the_factory(tmp_path, monkeypatch):
    (tmp_path / "raising_factories_x.py").write_text(RAISING)
    (tmp_path / "broken_module_x.py").write_text("raise OSError('no GPU driver')\n")
    (tmp_path / "syntax_module_x.py").write_text("def f(:\n")
    (tmp_path / "value_module_x.py").write_text("raise ValueError('bad setting')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=r"^raising_factories_x:boom: the model factory boom\(\) raised "
                                         r"RuntimeError: CUDA is not available$"):
        load_model("raising_factories_x:boom")
    with pytest.raises(ValueError, match=r"the model factory missing_key\(\) raised KeyError: 'depth'$"):
        load_model("raising_factories_x:missing_key")
    with pytest.raises(ValueError, match=r"^broken_module_x:f: cannot import broken_module_x \(OSError: no GPU driver\)$"):
        load_model("broken_module_x:f")
    with pytest.raises(ValueError, match=r"cannot import syntax_module_x \(SyntaxError: "):
        load_model("syntax_module_x:f")
    with pytest.raises(ValueError, match=r"^value_module_x:f: cannot import value_module_x \(ValueError: bad setting\)$"):
        load_model("value_module_x:f")


def test_factory_module_in_the_current_folder_is_found_as_with_python_m(tmp_path, monkeypatch):
    """``--model mymods:f`` from the folder holding mymods.py works without PYTHONPATH."""
    (tmp_path / "cwd_factories_x.py").write_text(FACTORIES)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", os.getcwd())])
    monkeypatch.delitem(sys.modules, "cwd_factories_x", raising=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(ValueError, match=r"no module 'cwd_factories_x' in the current folder .*elsewhere "
                                         r"or on sys.path \(set PYTHONPATH"):
        load_model("cwd_factories_x:make")
    monkeypatch.chdir(tmp_path)
    model = load_model("cwd_factories_x:make", num_classes=5, in_channels=2)
    assert model(torch.randn(3, 2, 2, 2)).shape == (3, 5)
    assert sys.modules["cwd_factories_x"].__file__ == str(tmp_path / "cwd_factories_x.py")


@pytest.mark.parametrize("name", ["cnn", "resnet20", "vgg9"])
def test_conv_models_refuse_flat_inputs_naming_both_shapes(name):
    with pytest.raises(ValueError, match=rf"^model '{name}' takes images of shape \(n, C, H, W\); the data's inputs "
                                         r"have shape \(n, 64\): store them as images or use --model mlp$"):
        load_model(name, num_classes=10, in_channels=64, input_shape=(64,))
    assert load_model(name, num_classes=10, in_channels=1, input_shape=(1, 8, 8))(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_mlp_takes_the_shape_of_the_data():
    flat = load_model("mlp", num_classes=10, in_channels=64, input_shape=(64,), hidden=(16,))
    assert flat(torch.randn(5, 64)).shape == (5, 10) and flat.body[1].in_features == 64
    cifar = load_model("mlp", num_classes=10, in_channels=3, input_shape=(3, 32, 32), hidden=(16,))
    assert cifar.body[1].in_features == 3 * 32 * 32
    torch.manual_seed(0)
    digits = load_model("mlp", num_classes=10, in_channels=1, input_shape=(1, 8, 8))
    torch.manual_seed(0)
    old = create_model("mlp", num_classes=10, in_channels=1)   # the digits default: the same parameters
    assert all(torch.equal(a, b) for a, b in zip(digits.state_dict().values(), old.state_dict().values()))


def test_sparse_tensor_in_a_checkpoint_is_one_line(tmp_path):
    state = create_model("cnn", num_classes=4, in_channels=1).state_dict()
    state["classifier.weight"] = state["classifier.weight"].to_sparse()
    torch.save(state, tmp_path / "sparse.pt")
    with pytest.raises(ValueError, match=r"sparse.pt: entry 'classifier.weight' is a torch.sparse_coo tensor; "
                                         r"a state dict holds dense tensors \(save tensor.to_dense\(\)\)$"):
        load_model("cnn", num_classes=4, in_channels=1, checkpoint=str(tmp_path / "sparse.pt"))


def test_train_cnn_on_flat_inputs_is_one_line_naming_both_shapes(tmp_path, capsys):
    from landscape.cli import main

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "flat.npz", x=rng.normal(size=(20, 64)).astype(np.float32), y=np.arange(20) % 4)
    assert main(["train", "--model", "cnn", "--data", str(tmp_path / "flat.npz"), "--epochs", "1",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("landscape train: error: model 'cnn' takes images of shape (n, C, H, W); the data's inputs have "
                   "shape (n, 64): store them as images or use --model mlp")
    assert main(["train", "--model", "mlp", "--model-option", "hidden=[8]", "--data", str(tmp_path / "flat.npz"),
                 "--epochs", "1", "--out", str(tmp_path / "mlp"), "--quiet"]) == 0


def test_a_class_count_mismatch_names_the_labels_not_only_the_checkpoint(tmp_path):
    """Labels 1..10 make 11 classes: the checkpoint of a 10-class model then mismatches only in
    the output layer, and the message says to check the labels."""
    torch.save(create_model("cnn", num_classes=10, in_channels=1).state_dict(), tmp_path / "ten.pt")
    with pytest.raises(ValueError) as err:
        load_model("cnn", num_classes=11, in_channels=1, checkpoint=str(tmp_path / "ten.pt"))
    assert str(err.value).endswith("the data have 11 classes (the largest label + 1, or the .npz num_classes) but "
                                   "the checkpoint's output layer has 10: check the labels (0-based class indices?)")
    assert "shape mismatch for 'classifier.weight': checkpoint (10, 256), model (11, 256)" in str(err.value)
    with pytest.raises(ValueError) as err:   # another kind of mismatch: no hint about labels
        load_model("cnn", num_classes=10, in_channels=3, checkpoint=str(tmp_path / "ten.pt"))
    assert "labels" not in str(err.value)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_registry_models_refuse_integer_ids_in_one_line(name):
    with pytest.raises(ValueError, match=rf"^model '{name}' takes real-valued inputs; the data hold integer ids "
                                         r"\(torch.int64\): use your own model with an nn.Embedding"):
        load_model(name, num_classes=3, in_channels=6, input_shape=(6,), input_dtype=torch.int64)
    assert load_model(name, num_classes=3, in_channels=1, input_shape=(1, 8, 8), input_dtype=torch.float32)
