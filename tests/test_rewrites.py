"""Every exact rewrite of the evaluator (BN folding, first-layer product, pooling reorder, windowed
max-pool) against the plain path (``--plain``) on the common shapes of real models.

Each model gets BN statistics and affine parameters far from their defaults, so a wrong fold
shows; directions move biases and BN parameters too (``ignore=None``). A rewrite that cannot
apply must be skipped, never wrong: the fast path must equal the plain one to 1e-5 relative,
and no model may fall back with the "disagrees with the plain path" warning.
"""
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from landscape.directions import random_directions
from landscape.perturbed import Evaluator, _Unfolded
from landscape.rewrites import compile_model
from regularizers.models import create_model

PLAIN = {"fold_bn": False, "first_layer": False, "reorder": False}
POINTS = np.array([[0.0, 0.0], [0.3, -0.2], [-0.5, 0.4]])


def _randomize_bn(net: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=g) * 2 + 0.2)
                if m.affine:
                    m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(c, generator=g) * 0.3)
    return net.eval()


class InplaceReluReuse(nn.Module):
    """``relu_`` changes ``h`` in place and ``h`` is read again after the pool: moving the ReLU
    behind the pool would change that later read, so the reorder must be skipped."""

    def __init__(self):
        super().__init__()
        self.conv, self.relu, self.pool = nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 16 + 4, 5)

    def forward(self, x):
        h = self.conv(x)
        pooled = self.pool(self.relu(h))
        return self.fc(torch.cat([pooled.flatten(1), h.mean((2, 3))], 1))


class ViewFlatten(nn.Module):
    """``view()`` of a pooled activation: fails on channels-last strides, so the evaluator must
    stay channels-first (where max-pools are windowed)."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.pool, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.MaxPool2d(2), \
            nn.Linear(4 * 16, 5)

    def forward(self, x):
        h = self.pool(torch.relu(self.bn(self.conv(x))))
        return self.fc(h.view(h.size(0), -1))


def _seq(*layers):
    return lambda: nn.Sequential(*layers)


MODELS = {
    # conv with bias, BN, pooling after the second block only, adaptive average pooling
    "conv_bias_pool_block2": _seq(
        nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)),
    # bias-free convs, max-pool after every block (the engine benchmark's first model)
    "conv_nobias_pool_every_block": _seq(
        nn.Conv2d(1, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 4, 5)),
    # BN after ReLU (not foldable into the conv), average pooling after a ReLU (never reordered)
    "bn_after_relu_avgpool": _seq(
        nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(6), nn.AvgPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(8), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(8 * 4, 5)),
    # overlapping / padded / ceil-mode max-pools (reordered, not windowed), max-pool first
    "odd_max_pools": _seq(
        nn.MaxPool2d(2, stride=1), nn.Conv2d(1, 6, 3), nn.BatchNorm2d(6), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1), nn.Conv2d(6, 8, 2), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
        nn.Flatten(), nn.LazyLinear(5)),
    "inplace_relu_reuse": InplaceReluReuse,
    "view_flatten": ViewFlatten,
    "resnet20": lambda: create_model("resnet20", num_classes=5, in_channels=1),
    "resnet8_shortcut_b": lambda: create_model("resnet", num_classes=5, in_channels=1, depth=8, shortcut="B"),
    "wrn10_2": lambda: create_model("wrn", num_classes=5, in_channels=1, depth=10, widen=2),
    "vgg9_bn": lambda: create_model("vgg9", num_classes=5, in_channels=1),
    "densenet_bc10": lambda: create_model("densenet_bc", num_classes=5, in_channels=1, depth=10, growth=4),
    "cnn": lambda: create_model("cnn", num_classes=5, in_channels=1, channels=(6, 8)),
    "mlp": lambda: create_model("mlp", num_classes=5, in_channels=1, hidden=(16, 12)),
    "mlp_bn": _seq(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(),
                   nn.Linear(16, 12, bias=False), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 5)),
}


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"train": (torch.randn(40, 1, 8, 8, generator=g) * 1.5 + 0.3, torch.randint(0, 5, (40,), generator=g)),
            "test": (torch.randn(24, 1, 8, 8, generator=g), torch.randint(0, 5, (24,), generator=g))}


def _model(name):
    torch.manual_seed(0)
    net = MODELS[name]()
    net(torch.zeros(2, 1, 8, 8))  # materialize lazy layers
    return _randomize_bn(net, seed=1)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_rewrites_equal_the_plain_path(name):
    net, data = _model(name), _data()
    d = random_directions(net, ndim=2, seed=3, ignore=None)
    plain = Evaluator(net, data, d, batch_size=16, device="cpu", **PLAIN)
    expected = plain(POINTS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback to the plain path fails the test
        fast = Evaluator(net, data, d, batch_size=16, device="cpu")
        vmapped = Evaluator(net, data, d, batch_size=16, device="cpu", points_per_pass=3)
        # streamed batches: channels-first, no first-layer cache, max-pools windowed
        streamed = Evaluator(net, {s: [(x[:16], y[:16]), (x[16:], y[16:])] for s, (x, y) in data.items()}, d,
                             device="cpu")
    assert fast.program is not fast._plain and streamed.program is not streamed._plain
    np.testing.assert_allclose(fast(POINTS), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(vmapped(POINTS), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(streamed(POINTS), expected, rtol=1e-5, atol=1e-7)


def _code(name, **kwargs):
    return Evaluator(_model(name), _data(), random_directions(_model(name), ndim=2, seed=3), batch_size=16,
                     device="cpu", **kwargs).program


def test_which_rewrites_apply():
    """The rewrites do fire where they are exact, and only there."""
    program = _code("conv_bias_pool_block2")
    assert program.first == "0" and program.first_fold is not None and program.first_bias  # conv bias kept
    assert [f.conv for f in program.folds] == ["3", "7"]
    assert "_max_pool_windows" in compile_model(_model("conv_bias_pool_block2")).module.code
    program = _code("bn_after_relu_avgpool")
    assert program.folds == [] and program.first_fold is None  # a BN after a ReLU is not folded
    assert "_max_pool_windows" not in compile_model(_model("bn_after_relu_avgpool")).module.code
    code = compile_model(_model("inplace_relu_reuse")).module.code
    assert code.index("relu") < code.index("_max_pool_windows")  # reorder skipped: ReLU still first
    code = compile_model(_model("odd_max_pools")).module.code
    assert code.count("_max_pool_windows(") == 1  # only the ceil-mode 2x2 pool is windowed
    net = _model("view_flatten")
    ev = Evaluator(net, _data(), random_directions(net, ndim=2, seed=3), batch_size=16, device="cpu")
    assert not ev._channels_last and "_max_pool_windows" in ev.program.module.code
    assert _code("conv_bias_pool_block2") is not None
    for name in ("resnet20", "wrn10_2", "vgg9_bn", "densenet_bc10"):
        program = _code(name)
        assert isinstance(program.module, torch.fx.GraphModule), name
    assert len(_code("resnet20").folds) == 18  # every conv of every block (the stem conv is cut off)
    assert len(_code("vgg9_bn").folds) == 7  # 6 convs + the hidden linear layer with its BatchNorm1d


def test_states_directions_fold_moving_running_statistics():
    net, data = _model("resnet8_shortcut_b"), _data()
    d = random_directions(net, ndim=2, seed=4, dir_type="states", ignore=None)
    points = POINTS * 0.2  # keep running variances positive
    expected = Evaluator(net, data, d, batch_size=16, device="cpu", **PLAIN)(points)
    ev = Evaluator(net, data, d, batch_size=16, device="cpu")
    assert isinstance(ev._cache["train"], _Unfolded) and ev.program.folds
    np.testing.assert_allclose(ev(points), expected, rtol=1e-5, atol=1e-7)
