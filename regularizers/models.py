"""Classifiers used in the papers, a name registry, and loading from import paths and checkpoints.

Every model maps ``(b, in_channels, H, W)`` images (``(b, *input_shape)`` for ``mlp``) to
``(b, num_classes)`` logits. The CIFAR models are built for 32x32 inputs; their pooling uses
``ceil_mode`` and adaptive average pooling before the classifier so that they also run (with the
same parameter shapes) on smaller inputs such as the 8x8 digits.

Families (registry names in brackets; the generic name takes the size as an option):

- VGG with batch norm as in Li et al. 2018 ("Visualizing the loss landscape of neural nets"):
  conv stack, one hidden FC layer with batch norm, linear classifier [vgg9, vgg16, vgg19, vgg].
- ResNet, CIFAR variant of He et al. 2016: 3 stages of 16/32/64 channels, (depth - 2) / 6 basic
  blocks each [resnet20, resnet56, resnet110, resnet].
- Wide ResNet, Zagoruyko & Komodakis 2016: pre-activation blocks, widths 16k/32k/64k,
  (depth - 4) / 6 blocks per stage [wrn16_4, wrn28_10, wrn].
- DenseNet-BC, Huang et al. 2017: bottleneck layers, compression 0.5, 3 dense blocks of
  (depth - 4) / 6 layers [densenet_bc100_12, densenet_bc].
- AlexNet for CIFAR (five convs, as in the common pytorch-classification port) [alexnet].
- A small CNN and an MLP for quick experiments [cnn, mlp].
"""
from __future__ import annotations

import functools
import importlib
import inspect
import os
import pickle
import sys
from typing import Callable, Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .safe_io import check_finite


def _he_init(model: nn.Module) -> None:
    """He-normal (fan-out) convolutions, unit/zero batch norms, zero linear biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _stage_blocks(depth: int, offset: int, name: str) -> int:
    """Blocks per stage of a 3-stage network: ``(depth - offset) / 6``, which must be whole."""
    n, rest = divmod(depth - offset, 6)
    if rest or n < 1:
        raise ValueError(f"{name} depth must be {offset} + 6n with n >= 1, got {depth}")
    return n


# ---------------------------------------------------------------------------------------- VGG

VGG_CONFIGS = {
    9: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"),
}


class VGG(nn.Module):
    """VGG-``depth`` with batch norm (Li et al. 2018 layout): 3x3 conv+BN+ReLU layers and 2x2
    max pools, then ``Linear(C * s * s, C) + BN + ReLU`` and ``Linear(C, num_classes)``, where C
    is the last conv width and s the map size a 32x32 input reaches (4 for VGG-9, 1 for 16/19).
    VGG-9 has 7 conv layers and 2 FC layers. ``dropout`` acts before the classifier."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, depth: int = 9, dropout: float = 0.0):
        super().__init__()
        if depth not in VGG_CONFIGS:
            raise ValueError(f"VGG depth must be one of {sorted(VGG_CONFIGS)}, got {depth}")
        layers, c = [], in_channels
        for v in VGG_CONFIGS[depth]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c = v
        side = 32 >> VGG_CONFIGS[depth].count("M")
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(side), nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(c * side * side, c), nn.BatchNorm1d(c), nn.ReLU(inplace=True),
                                nn.Dropout(dropout))
        self.classifier = nn.Linear(c, num_classes)
        _he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, H, W)`` images -> ``(batch, num_classes)`` logits."""
        return self.classifier(self.fc(self.features(x)))


# ------------------------------------------------------------------------------------- ResNet


class StochasticDepth(nn.Module):
    """Randomly drop a residual branch (Huang et al. 2016, "Deep networks with stochastic depth").

    ``p`` is the drop probability. In training the input is multiplied by a Bernoulli(1 - p)
    draw: one per example (``mode="row"``) or one for the whole batch (``mode="batch"``, as in
    the paper). In evaluation it is multiplied by the survival probability ``1 - p``, its
    expected value. Shapes are unchanged.
    """

    def __init__(self, p: float, mode: str = "batch"):
        super().__init__()
        if not 0.0 <= p <= 1.0 or mode not in ("row", "batch"):
            raise ValueError(f"StochasticDepth needs 0 <= p <= 1 and mode 'row' or 'batch', got {p}, {mode!r}")
        self.p, self.mode = p, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Training: ``x`` zeroed with probability ``p`` per example (row) or batch (batch); eval: ``x * (1 - p)``."""
        if self.p == 0.0:
            return x
        if not self.training:
            return x * (1.0 - self.p)
        shape = (x.shape[0],) + (1,) * (x.dim() - 1) if self.mode == "row" else (1,) * x.dim()
        return x * torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(1.0 - self.p)

    def extra_repr(self) -> str:
        """The drop probability, shown by ``print(model)``."""
        return f"p={self.p}, mode={self.mode!r}"


class PadShortcut(nn.Module):
    """He et al.'s option-A shortcut: subsample by ``stride``, then zero-pad the new channels."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.extra, self.stride = cout - cin, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, C, H, W)`` -> ``(batch, C_out, H/stride, W/stride)``: subsampled, channels zero-padded."""
        return F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, 0, self.extra))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-(dropout)-conv3x3-BN, (stochastic depth), + shortcut, ReLU.

    ``skip=False`` drops the shortcut (Li et al.'s "noshort" networks). ``shortcut`` "A"
    (parameter-free zero padding) or "B" (1x1 conv + BN) where the shape changes.
    """

    def __init__(self, cin: int, cout: int, stride: int, skip: bool = True, shortcut: str = "A",
                 drop_path: float = 0.0, dropout: float = 0.0):
        super().__init__()
        self.branch = nn.Sequential(
            _conv3x3(cin, cout, stride), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.Dropout(dropout),
            _conv3x3(cout, cout), nn.BatchNorm2d(cout), StochasticDepth(drop_path))
        if not skip:
            self.shortcut = None
        elif stride == 1 and cin == cout:
            self.shortcut = nn.Identity()
        elif shortcut == "A":
            self.shortcut = PadShortcut(cin, cout, stride)
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, C, H, W)`` -> block output (two 3x3 convs plus the shortcut), ``(batch, C_out, H/stride, W/stride)``."""
        out = self.branch(x)
        return F.relu(out if self.shortcut is None else out + self.shortcut(x))


class CifarResNet(nn.Module):
    """CIFAR ResNet-``depth`` (He et al. 2016, section 4.2): conv3x3(16), three stages of
    (depth - 2) / 6 basic blocks with 16, 32, 64 channels (stride 2 entering stages 2 and 3),
    global average pooling, linear classifier.

    Options: ``shortcut`` "A" (default; zero-padding, the published 0.27M/0.85M/1.7M parameter
    counts of ResNet-20/56/110) or "B" (1x1 projections, as in Li et al.'s loss-landscape code);
    ``skip=False`` removes every shortcut; ``stochastic_depth`` is the drop probability of the last
    block, decaying linearly so that block l of L is dropped with probability
    ``l / L * stochastic_depth`` (Huang et al. use 0.5); ``dropout`` acts between the two convs.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, depth: int = 20, skip: bool = True,
                 shortcut: str = "A", stochastic_depth: float = 0.0, dropout: float = 0.0):
        super().__init__()
        n = _stage_blocks(depth, 2, "ResNet")
        if shortcut not in ("A", "B"):
            raise ValueError(f"ResNet shortcut must be 'A' or 'B', got {shortcut!r}")
        if stochastic_depth and not skip:
            raise ValueError("stochastic depth needs skip connections (skip=True)")
        total, blocks, c = 3 * n, [], 16
        for stage, width in enumerate((16, 32, 64)):
            for i in range(n):
                index = stage * n + i + 1
                blocks.append(BasicBlock(c, width, 2 if stage and i == 0 else 1, skip, shortcut,
                                         index / total * stochastic_depth, dropout))
                c = width
        self.stem = nn.Sequential(_conv3x3(in_channels, 16), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(64, num_classes)
        _he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, 32, 32)`` images -> ``(batch, num_classes)`` logits."""
        return self.fc(self.pool(self.blocks(self.stem(x))))


# -------------------------------------------------------------------------------- Wide ResNet


class WideBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv3x3-BN-ReLU-dropout-conv3x3, plus the input (or a 1x1
    conv of the pre-activated input where the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float):
        super().__init__()
        self.pre = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True))
        self.branch = nn.Sequential(_conv3x3(cin, cout, stride), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                                    nn.Dropout(dropout), _conv3x3(cout, cout))
        self.project = None if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, C, H, W)`` -> pre-activation wide block output ``(batch, C_out, H/stride, W/stride)``."""
        act = self.pre(x)
        return self.branch(act) + (x if self.project is None else self.project(act))


class WideResNet(nn.Module):
    """WRN-``depth``-``widen`` (Zagoruyko & Komodakis 2016): conv3x3(16), three stages of
    (depth - 4) / 6 wide blocks with 16k, 32k, 64k channels, BN-ReLU, global average pooling,
    linear classifier; ``dropout`` between the convs of each block (0.3 in the paper)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, depth: int = 28, widen: int = 10,
                 dropout: float = 0.0):
        super().__init__()
        n = _stage_blocks(depth, 4, "WRN")
        blocks, c = [], 16
        for stage, width in enumerate((16 * widen, 32 * widen, 64 * widen)):
            for i in range(n):
                blocks.append(WideBlock(c, width, 2 if stage and i == 0 else 1, dropout))
                c = width
        self.stem = _conv3x3(in_channels, 16)
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(c, num_classes)
        _he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, 32, 32)`` images -> ``(batch, num_classes)`` logits."""
        return self.fc(self.pool(self.blocks(self.stem(x))))


# ------------------------------------------------------------------------------- DenseNet-BC


class DenseLayer(nn.Module):
    """Bottleneck layer BN-ReLU-conv1x1(4k)-BN-ReLU-conv3x3(k); returns ``cat(x, new)``
    (``cin + growth`` channels). ``dropout`` follows each conv."""

    def __init__(self, cin: int, growth: int, dropout: float):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, 4 * growth, 1, bias=False), nn.Dropout(dropout),
            nn.BatchNorm2d(4 * growth), nn.ReLU(inplace=True), _conv3x3(4 * growth, growth), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, C, H, W)`` -> ``(batch, C + growth, H, W)``: the input with the new features appended."""
        return torch.cat([x, self.body(x)], dim=1)


class DenseNetBC(nn.Module):
    """DenseNet-BC-``depth`` with growth rate ``growth`` (Huang et al. 2017): conv3x3(2k), three
    dense blocks of (depth - 4) / 6 bottleneck layers, transitions BN-ReLU-conv1x1 (channels x
    ``compression``)-avgpool2 between them, BN-ReLU, global average pooling, linear classifier."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, depth: int = 100, growth: int = 12,
                 compression: float = 0.5, dropout: float = 0.0):
        super().__init__()
        n = _stage_blocks(depth, 4, "DenseNet-BC")
        c = 2 * growth
        layers = [_conv3x3(in_channels, c)]
        for block in range(3):
            for _ in range(n):
                layers.append(DenseLayer(c, growth, dropout))
                c += growth
            if block < 2:
                out = int(c * compression)
                layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.Conv2d(c, out, 1, bias=False),
                           nn.AvgPool2d(2, ceil_mode=True)]
                c = out
        self.features = nn.Sequential(*layers, nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(c, num_classes)
        _he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, 32, 32)`` images -> ``(batch, num_classes)`` logits."""
        return self.fc(self.features(x))


# ------------------------------------------------------------------------- AlexNet, CNN, MLP


class AlexNet(nn.Module):
    """AlexNet for 32x32 inputs: conv11/4(64)-pool-conv5(192)-pool-conv3(384)-conv3(256)-conv3(256)
    -pool, ReLUs after each conv, then (dropout) and ``Linear(256, num_classes)``."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, dropout: float = 0.0):
        super().__init__()
        relu = functools.partial(nn.ReLU, inplace=True)
        pool = functools.partial(nn.MaxPool2d, 2, ceil_mode=True)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 11, stride=4, padding=5), relu(), pool(),
            nn.Conv2d(64, 192, 5, padding=2), relu(), pool(),
            nn.Conv2d(192, 384, 3, padding=1), relu(),
            nn.Conv2d(384, 256, 3, padding=1), relu(),
            nn.Conv2d(256, 256, 3, padding=1), relu(), pool(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout))
        self.classifier = nn.Linear(256, num_classes)
        _he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, 32, 32)`` images -> ``(batch, num_classes)`` logits."""
        return self.classifier(self.features(x))


class SmallCNN(nn.Module):
    """conv3x3+BN+ReLU for each width in ``channels`` (a 2x2 max pool between them), adaptive
    average pooling to ``pool x pool``, linear classifier. Any input of at least 2x2 pixels."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, channels: Sequence[int] = (32, 64),
                 pool: int = 2):
        super().__init__()
        layers, c = [], in_channels
        for i, width in enumerate(channels):
            if i:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            layers += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            c = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(pool), nn.Flatten())
        self.classifier = nn.Linear(c * pool * pool, num_classes)
        _he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, C, H, W)`` images -> ``(batch, num_classes)`` logits."""
        return self.classifier(self.features(x))


class MLP(nn.Module):
    """Flatten, then Linear+ReLU(+dropout) for each width in ``hidden``, then a linear classifier.

    ``input_shape`` is the shape of one example (default ``(in_channels, 8, 8)``, the digits);
    pass e.g. ``(3, 32, 32)`` for CIFAR or ``(F,)`` for feature vectors.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, hidden: Sequence[int] = (256, 256),
                 input_shape: Optional[Sequence[int]] = None, dropout: float = 0.0):
        super().__init__()
        shape = tuple(input_shape) if input_shape is not None else (in_channels, 8, 8)
        c = 1
        for s in shape:
            c *= int(s)
        layers = [nn.Flatten()]
        for width in hidden:
            layers += [nn.Linear(c, width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            c = width
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, ...)`` inputs, flattened -> ``(batch, num_classes)`` logits."""
        return self.classifier(self.body(x))


# ---------------------------------------------------------------------------------- registry

MODELS: Dict[str, Callable[..., nn.Module]] = {
    "vgg": VGG,
    "vgg9": functools.partial(VGG, depth=9),
    "vgg16": functools.partial(VGG, depth=16),
    "vgg19": functools.partial(VGG, depth=19),
    "resnet": CifarResNet,
    "resnet20": functools.partial(CifarResNet, depth=20),
    "resnet56": functools.partial(CifarResNet, depth=56),
    "resnet110": functools.partial(CifarResNet, depth=110),
    "wrn": WideResNet,
    "wrn16_4": functools.partial(WideResNet, depth=16, widen=4),
    "wrn28_10": functools.partial(WideResNet, depth=28, widen=10),
    "densenet_bc": DenseNetBC,
    "densenet_bc100_12": functools.partial(DenseNetBC, depth=100, growth=12),
    "alexnet": AlexNet,
    "cnn": SmallCNN,
    "mlp": MLP,
}


def list_models() -> list:
    """Registry names, sorted."""
    return sorted(MODELS)


def model_options(name: str) -> Dict[str, object]:
    """The options of registry model ``name`` and their defaults (num_classes/in_channels excluded)."""
    return {k: p.default for k, p in inspect.signature(_factory(name)).parameters.items()
            if k not in ("num_classes", "in_channels")}


def _factory(name: str) -> Callable[..., nn.Module]:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return MODELS[name]


def create_model(name: str, num_classes: int = 10, in_channels: int = 3, **options) -> nn.Module:
    """Build registry model ``name`` (see ``list_models``); unknown names or options -> ValueError."""
    factory = _factory(name)
    known = model_options(name)
    unknown = [k for k in options if k not in known]
    if unknown:
        raise ValueError(f"model {name!r} has no option {unknown[0]!r}; options: {', '.join(known) or 'none'}")
    return factory(num_classes=num_classes, in_channels=in_channels, **options)


def first_line(err: BaseException) -> str:
    """``Type: first line of the message`` of an exception."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def import_module(module_name: str):
    """Import ``module_name`` as ``python -m`` would: the current folder is importable (put first
    on ``sys.path`` only when the module is not found without it). Any failure, the module's own
    code included, is a one-line ValueError."""
    top = module_name.split(".")[0]
    for retry in (False, True):
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != top:
                raise ValueError(f"cannot import {module_name} ({first_line(err)})") from None
            if retry or os.getcwd() in sys.path:
                raise ValueError(f"cannot import {module_name}: no module {top!r} in the current folder "
                                 f"{os.getcwd()} or on sys.path (set PYTHONPATH to the folder holding it)") from None
            sys.path.insert(0, os.getcwd())
        except Exception as err:  # the module's own code failed: SyntaxError, a failing top-level line
            raise ValueError(f"cannot import {module_name} ({first_line(err)})") from None


def _import_model(spec: str, num_classes: int, in_channels: int, options: dict) -> nn.Module:
    """Call ``factory`` of ``"package.module:factory"``, passing num_classes/in_channels if it
    takes them, and ``options``. Whatever the import or the factory raises is one ValueError line."""
    module_name, _, attr = spec.partition(":")
    try:
        module = import_module(module_name)
    except ValueError as err:
        raise ValueError(f"{spec}: {err}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"{spec}: {module_name} has no callable {attr!r}")
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        params = {}
    any_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    sizes = {"num_classes": num_classes, "in_channels": in_channels}
    try:
        model = factory(**{k: v for k, v in sizes.items() if any_keyword or k in params}, **options)
    except Exception as err:
        raise ValueError(f"{spec}: the model factory {attr}() raised {first_line(err)}") from None
    if not isinstance(model, nn.Module):
        raise ValueError(f"{spec}: returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def check_state_dict(model: nn.Module, state: Dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise a one-line ValueError naming the first missing key, unexpected key, or shape mismatch."""
    expected = model.state_dict()
    problems = ([f"missing key {k!r}" for k in expected if k not in state]
                + [f"unexpected key {k!r}" for k in state if k not in expected]
                + [f"shape mismatch for {k!r}: checkpoint {tuple(state[k].shape)}, model {tuple(v.shape)}"
                   for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)])
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise ValueError(f"{source} does not fit the model: {problems[0]}{more}")


def read_state_dict(path) -> dict:
    """The state dict in a checkpoint file: the file's dict of tensors, or the one under
    ``"model"`` (trainer checkpoints) or ``"state_dict"``; a ``"module."`` prefix on every key
    (DataParallel) is removed. An unreadable file or one without a state dict: ValueError."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such checkpoint file") from None
    except pickle.UnpicklingError as err:
        if "global" not in str(err).lower():  # not a pickle of Python objects at all
            raise ValueError(f"{path}: not a torch checkpoint (not a readable checkpoint file)") from None
        raise ValueError(f"{path}: refused: it holds pickled Python objects besides tensors and plain data, "
                         "which could run code when loaded") from None
    except Exception as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ValueError(f"{path}: not a torch checkpoint (not a readable checkpoint file; "
                         f"{type(err).__name__}: {first_line})") from None
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: holds no state dict (a dict of tensors, or one under 'model')")
    sparse = [k for k, v in state.items() if v.layout != torch.strided]
    if sparse:
        raise ValueError(f"{path}: entry {sparse[0]!r} is a {state[sparse[0]].layout} tensor; a state dict holds "
                         "dense tensors (save tensor.to_dense())")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    check_finite(state, path)
    return state


def load_checkpoint(model: nn.Module, path: str, num_classes: Optional[int] = None) -> nn.Module:
    """Load the state dict of a checkpoint file (:func:`read_state_dict`) into ``model`` (in
    place; returns it); a state dict that does not fit is a ValueError naming the key (and, given
    the data's ``num_classes``, saying when the class count is the likely cause)."""
    state = read_state_dict(path)
    try:
        check_state_dict(model, state, source=str(path))
    except ValueError as err:
        hint = class_count_hint(model, state, num_classes) if num_classes is not None else ""
        raise ValueError(f"{err}{hint}") from None
    model.load_state_dict(state)
    return model


def fit_inputs(name: str, input_shape: Optional[Sequence[int]], options: dict,
               input_dtype: Optional[torch.dtype] = None) -> dict:
    """``options`` for registry model ``name`` on examples of shape ``input_shape`` (one example,
    no batch dim): ``mlp`` gets it as its ``input_shape`` unless given; the convolutional models
    need ``(C, H, W)`` images, and other shapes are a ValueError naming both. Every registry model
    takes real values: integer inputs (token ids) are a ValueError."""
    if name in MODELS and input_dtype is not None and not input_dtype.is_floating_point:
        raise ValueError(f"model {name!r} takes real-valued inputs; the data hold integer ids ({input_dtype}): "
                         "use your own model with an nn.Embedding (--model package.module:factory)")
    if input_shape is None or name not in MODELS:
        return options
    shape = tuple(int(s) for s in input_shape)
    if name == "mlp":
        return options if "input_shape" in options else {**options, "input_shape": shape}
    if len(shape) != 3:
        raise ValueError(f"model {name!r} takes images of shape (n, C, H, W); the data's inputs have shape "
                         f"(n, {', '.join(map(str, shape))}): store them as images or use --model mlp")
    return options


def load_model(spec: str, num_classes: int = 10, in_channels: int = 3, checkpoint: Optional[str] = None,
               input_shape: Optional[Sequence[int]] = None, input_dtype: Optional[torch.dtype] = None,
               **options) -> nn.Module:
    """Build a model from a registry name or ``"package.module:factory"``; then load
    ``checkpoint`` into it if given (see ``load_checkpoint``). ``input_shape`` and
    ``input_dtype``, those of one example, let a registry model refuse data it cannot take
    (:func:`fit_inputs`)."""
    if spec in MODELS or ":" not in spec:
        model = create_model(spec, num_classes, in_channels, **fit_inputs(spec, input_shape, options, input_dtype))
    else:
        model = _import_model(spec, num_classes, in_channels, options)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, num_classes)
    return model


def class_count_hint(model: nn.Module, state: Dict[str, torch.Tensor], num_classes: int) -> str:
    """When the checkpoint differs from ``model`` only in the output layer's ``num_classes`` rows,
    the data's class count is the likely culprit (e.g. labels 1..10): a sentence saying so, else ""."""
    expected = model.state_dict()
    mismatched = [k for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if not mismatched or set(expected) != set(state):
        return ""
    rows = {int(state[k].shape[0]) for k in mismatched if state[k].dim() and state[k].shape[1:] == expected[k].shape[1:]}
    if len(rows) != 1 or any(int(expected[k].shape[0]) != num_classes for k in mismatched):
        return ""
    return (f"; the data have {num_classes} classes (the largest label + 1, or the .npz num_classes) but the "
            f"checkpoint's output layer has {rows.pop()}: check the labels (0-based class indices?)")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (batch-norm scales and shifts included)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

