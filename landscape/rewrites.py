"""Exact rewrites of a model's graph with ``torch.fx``, for :class:`landscape.perturbed.Evaluator`.

:func:`compile_model` turns a private eval-mode copy of a model into a :class:`Program`: the
module evaluated per point and how to build its tensors from the model's. Only models fx can
trace are rewritten (any other gives the plain copy); the Evaluator checks the program against
the plain path once at start-up (a mismatch falls back to the plain path with a warning).

- **BN folding**: an eval-mode BatchNorm right after a conv/linear layer (whose output nothing
  else reads) is folded into it per point: ``W' = W * s``, ``b' = (b - mean) * s + beta`` with
  ``s = gamma / sqrt(var + eps)``. A BN anywhere else (after a ReLU, pre-activation, after a
  concatenation) is left as it is.
- **First layer**: when the model's first layer with parameters is a conv/linear layer fed by
  parameter-free ops, it is linear in its weight, which is ``W + sum_k c_k D_k`` at the point:
  it is cut off, and the program takes its output as a second input ``first_out`` (the
  Evaluator computes it from a cache, BN scale folded in). With ``first_layer=None`` (the
  default) that happens for a ``Conv2d`` that is one matrix product with its unfolded input
  (:func:`unfoldable`), and for other layers only when they do at least
  ``FIRST_LAYER_MIN_MACS`` multiply-adds per output value (linear layers on images): the
  composition of their cached outputs is bound by memory traffic.
- **Pooling** (``reorder``): ``maxpool(relu(x)) == relu(maxpool(x))``, so the ReLU runs on
  the pooled tensor. On channels-first CPU tensors, max-pooling over non-overlapping windows is
  an elementwise maximum of strided views (``window_pools``; no indices; 4-10x faster than
  ``max_pool2d`` there; on channels-last tensors ``max_pool2d`` is faster and is kept). Average
  pooling is never reordered (it does not commute with ReLU).
"""
from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.utils import _pair

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
FIRST_LAYER_MIN_MACS = 32  # below this the cached composition is slower than the layer on CPUs


@dataclass
class Fold:
    """A conv/linear layer ``conv`` followed by an eval-mode BatchNorm ``bn``."""

    conv: str
    bn: str
    eps: float
    conv_bias: bool
    affine: bool


@dataclass
class Program:
    """The module evaluated per point and how to build its tensors from the model's."""

    module: nn.Module
    folds: List[Fold]
    first: Optional[str] = None          # first layer, replaced by the input ``first_out``
    first_fold: Optional[Fold] = None   # the BN folded into the first layer
    first_bias: bool = False
    first_linear: bool = False           # output channels last (linear) or at dim 1 (conv)

    def __post_init__(self):
        self.names = frozenset(self.module.state_dict(keep_vars=True))  # parameters and buffers


def _has_state(module: nn.Module) -> bool:
    return any(True for _ in module.parameters()) or any(True for _ in module.buffers())


def _fold_pairs(gm: fx.GraphModule) -> List[Fold]:
    """Remove foldable BN nodes from ``gm``'s graph; give their layers a bias parameter."""
    graph, mods = gm.graph, dict(gm.named_modules())
    calls = Counter(n.target for n in graph.nodes if n.op == "call_module")
    attrs = [n.target for n in graph.nodes if n.op == "get_attr"]
    folds = []
    for node in list(graph.nodes):
        bn = mods.get(node.target) if node.op == "call_module" else None
        if not isinstance(bn, _BatchNorm) or bn.running_mean is None or calls[node.target] != 1:
            continue
        prev = node.args[0] if node.args else None
        layer = mods.get(prev.target) if isinstance(prev, fx.Node) and prev.op == "call_module" else None
        if (not isinstance(layer, _LAYERS) or len(prev.users) != 1 or calls[prev.target] != 1
                or any(a.startswith(prev.target + ".") for a in attrs)
                or layer.weight.shape[0] != bn.num_features
                or (isinstance(layer, nn.Linear) and not isinstance(bn, nn.BatchNorm1d))):
            continue
        node.replace_all_uses_with(prev)
        graph.erase_node(node)
        folds.append(Fold(prev.target, node.target, bn.eps, layer.bias is not None, bn.affine))
        if layer.bias is None:
            layer.bias = nn.Parameter(layer.weight.new_zeros(layer.weight.shape[0]))
    return folds


def _first_layer(gm: fx.GraphModule) -> Optional[fx.Node]:
    """The first node using parameters, if it is a conv/linear layer called once on the input."""
    mods = dict(gm.named_modules())
    if sum(n.op == "placeholder" for n in gm.graph.nodes) != 1:
        return None
    calls = Counter(n.target for n in gm.graph.nodes if n.op == "call_module")
    for node in gm.graph.nodes:
        if node.op == "get_attr":
            return None
        if node.op == "call_module" and _has_state(mods[node.target]):
            ok = isinstance(mods[node.target], _LAYERS) and calls[node.target] == 1
            return node if ok else None
    return None


def _is_relu(node: fx.Node, mods: dict) -> bool:
    if node.op == "call_module":
        return isinstance(mods[node.target], nn.ReLU)
    return (node.op == "call_function" and node.target in (F.relu, torch.relu)) or \
        (node.op == "call_method" and node.target == "relu")


def _inplace(node: fx.Node, mods: dict) -> bool:
    if node.op == "call_module":
        return bool(getattr(mods[node.target], "inplace", False))
    return bool(node.kwargs.get("inplace", False))


def _pool_before_relu(gm: fx.GraphModule) -> None:
    """Rewrite ``maxpool(relu(x))`` as ``relu(maxpool(x))`` (equal: both are monotone), so the
    ReLU touches only the pooled values."""
    mods = dict(gm.named_modules())
    for pool in list(gm.graph.nodes):
        module = mods.get(pool.target) if pool.op == "call_module" else None
        if not isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)) or module.return_indices:
            continue
        relu = pool.args[0]
        if not (isinstance(relu, fx.Node) and _is_relu(relu, mods) and len(relu.users) == 1):
            continue
        x = relu.args[0]
        if _inplace(relu, mods) and len(x.users) > 1:  # others read x after relu_ changed it
            continue
        pool.replace_input_with(relu, x)
        pool.replace_all_uses_with(relu)
        relu.replace_input_with(x, pool)
        pool.append(relu)


def _max_pool_windows(x: torch.Tensor, kh: int, kw: int, ceil_mode: bool) -> torch.Tensor:
    """``F.max_pool2d(x, (kh, kw), ceil_mode=ceil_mode)`` as an elementwise maximum of the
    ``kh * kw`` strided views (fast in any memory format; no indices)."""
    h, w = x.shape[-2:]
    if ceil_mode and (h % kh or w % kw):
        return F.max_pool2d(x, (kh, kw), ceil_mode=True)
    x = x[..., : h - h % kh, : w - w % kw]
    out = x[..., 0::kh, 0::kw]
    for i in range(kh):
        for j in range(kw):
            if i or j:
                out = torch.maximum(out, x[..., i::kh, j::kw])
    return out.contiguous()  # a no-op on one point; under vmap a layout that view() accepts


def _windowed_max_pools(gm: fx.GraphModule) -> None:
    """Replace MaxPool2d layers with non-overlapping windows by :func:`_max_pool_windows`."""
    mods = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        pool = mods.get(node.target) if node.op == "call_module" else None
        if not isinstance(pool, nn.MaxPool2d) or pool.return_indices:
            continue
        kernel, stride = _pair(pool.kernel_size), _pair(pool.stride or pool.kernel_size)
        if kernel != stride or _pair(pool.padding) != (0, 0) or _pair(pool.dilation) != (1, 1):
            continue
        with gm.graph.inserting_after(node):
            new = gm.graph.call_function(_max_pool_windows, (node.args[0], *kernel, pool.ceil_mode))
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)


def unfoldable(layer: nn.Module) -> bool:
    """A ``Conv2d`` that is one matrix product with its unfolded input (``F.unfold``)."""
    return (isinstance(layer, nn.Conv2d) and layer.groups == 1 and layer.padding_mode == "zeros"
            and not isinstance(layer.padding, str))


def compile_model(model: nn.Module, *, fold_bn: bool = True, first_layer: Optional[bool] = None,
                  reorder: bool = True, window_pools: bool = True) -> Program:
    """A private eval-mode copy of ``model``, rewritten with ``torch.fx`` (see the module
    docstring): BN folded (``fold_bn``), max-pooling moved before ReLU (``reorder``) and, with
    ``window_pools`` too, computed from strided views (faster than ``max_pool2d`` on
    channels-first CPU tensors, slower on channels-last ones), the first layer cut off
    (``first_layer=None``: only when it does at least ``FIRST_LAYER_MIN_MACS`` multiply-adds per
    output value). The plain copy when nothing is asked or fx cannot trace the model."""
    work = copy.deepcopy(model).eval()
    if not (fold_bn or first_layer is not False or reorder):
        return Program(work, [])
    try:
        gm = fx.symbolic_trace(work)
    except Exception:  # untraceable forward (data-dependent control flow, ...): plain path
        return Program(work, [])
    folds = _fold_pairs(gm) if fold_bn else []
    if reorder:
        _pool_before_relu(gm)
        if window_pools:
            _windowed_max_pools(gm)
    node = _first_layer(gm) if first_layer is not False else None
    if (node is not None and first_layer is None and not unfoldable(gm.get_submodule(node.target))
            and gm.get_submodule(node.target).weight[0].numel() < FIRST_LAYER_MIN_MACS):
        node = None
    first = {}
    if node is not None:
        placeholder = next(n for n in gm.graph.nodes if n.op == "placeholder")
        with gm.graph.inserting_after(placeholder):
            out = gm.graph.placeholder("first_out")
        node.replace_all_uses_with(out)
        gm.graph.erase_node(node)
        fold = next((f for f in folds if f.conv == node.target), None)
        layer = gm.get_submodule(node.target)
        folds = [f for f in folds if f is not fold]
        first = dict(first=node.target, first_fold=fold, first_linear=isinstance(layer, nn.Linear),
                     first_bias=fold.conv_bias if fold else layer.bias is not None)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    gm.delete_all_unused_submodules()
    return Program(gm, folds, **first)
