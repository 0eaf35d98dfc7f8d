"""The one evaluator of loss and accuracy, and the data, loss and device forms the toolkit accepts.

Every part of the toolkit that measures a model on data -- the trainer, the surface engine's
plain path, curvature, the diagnose report -- goes through this module, so "data", "loss" and
"device" mean the same thing everywhere.

**Data** (:func:`data_splits`) is any of:

- a :class:`regularizers.data.Dataset` -- splits ``train`` and, when it has one, ``test``;
- a mapping ``{split: source}``;
- one source, which is the split ``train``:

  - an ``(x, y)`` pair of tensors or arrays (staged: sliced into batches, moved to the device once),
  - a ``torch.utils.data.TensorDataset`` (staged likewise),
  - any other ``torch.utils.data.Dataset`` or iterable of batches, e.g. a ``DataLoader``
    (streamed: read batch by batch on every pass, so data larger than memory works).

A batch is ``(inputs, targets)``. ``inputs`` may be a tensor (``model(inputs)``), a tuple or list
(``model(*inputs)``) or a dict (``model(**inputs)``). :class:`BatchHooks` says how to split a
batch, count its examples, move it to a device and call the model; pass your own for other
layouts (as curvlinops does).

**Loss** (:func:`resolve_loss`) is a name -- ``crossentropy`` (logits vs class indices),
``nll`` (log-probabilities vs class indices), ``mse`` (tomgoldstein/loss-landscape's: mean over
classes of ``(softmax(f(x)) - onehot(y))^2``; plain ``(f(x) - y)^2`` averaged per example for
floating targets) -- or any callable ``loss(outputs, targets)`` returning per-example losses
``(B,)`` or the batch mean (a scalar). Reported losses are means over all examples of a split.

**Accuracy** is the percentage of examples whose arg-max output equals an integer target; it is
NaN when targets are not class indices (regression) or when ``accuracy=False``.

**Outputs**: a model returning a dict, tuple or object is reduced to its prediction tensor by
``output=`` (a key, an index, an attribute name, or a callable).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LOSS_NAMES = ("crossentropy", "nll", "mse")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Output = Union[None, str, int, Callable[[Any], torch.Tensor]]
DATA_FORMS = ("a regularizers.data.Dataset, a {split: source} dict, an (x, y) pair, a torch "
              "Dataset, or an iterable of (inputs, targets) batches such as a DataLoader")


# ----------------------------------------------------------------------------- device
def resolve_device(name="auto") -> torch.device:
    """``"auto"``/None -> cuda when available, else cpu; otherwise the named device.

    Raises:
        ValueError: an unknown device name, or a CUDA device on a machine without one.
    """
    if isinstance(name, torch.device):
        device = name
    elif name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(name)
        except (RuntimeError, TypeError):
            raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type not in ("cpu", "mps"):
        raise ValueError(f"device {name}: unsupported device type {device.type!r}")
    return device


# ----------------------------------------------------------------------------- subsets
def seeded_subset(x: torch.Tensor, y: torch.Tensor, n: Optional[int], seed: int = 0):
    """A seeded random subset of at most ``n`` examples of ``(x, y)`` (all of them, in a
    seeded order, when ``n`` is None or at least ``len(x)``).

    Returns:
        ``(x[keep], y[keep])`` with ``keep`` the first ``n`` entries of a permutation drawn
        from ``seed``.
    """
    keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    return x[keep[:n]], y[keep[:n]]


# ----------------------------------------------------------------------------- batches
def _move(obj, device):
    if torch.is_tensor(obj):
        return obj.to(device)
    if isinstance(obj, Mapping):
        return {k: _move(v, device) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(_move(v, device) for v in obj)
    return obj


def _first_tensor(obj) -> Optional[torch.Tensor]:
    if torch.is_tensor(obj):
        return obj
    values = obj.values() if isinstance(obj, Mapping) else obj if isinstance(obj, (tuple, list)) else ()
    for value in values:
        found = _first_tensor(value)
        if found is not None:
            return found
    return None


def _call(model: nn.Module, inputs):
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def _split_batch(batch) -> Tuple[Any, Any]:
    if isinstance(batch, Mapping) or not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError(f"a batch must be an (inputs, targets) pair, got {type(batch).__name__}; "
                        "pass BatchHooks(split=...) for other layouts")
    return batch[0], batch[1]


def _size(inputs) -> int:
    first = _first_tensor(inputs)
    if first is None or first.dim() == 0:
        raise TypeError("cannot count the examples of a batch (no tensor with a batch dimension in "
                        "its inputs); pass BatchHooks(size=...)")
    return int(first.shape[0])


@dataclass(frozen=True)
class BatchHooks:
    """How a streamed batch is read.

    Attributes:
        split: ``batch -> (inputs, targets)``; default: a 2-tuple or 2-list.
        size: ``inputs -> number of examples``; default: leading dim of the first tensor found.
        to: ``(obj, device) -> obj`` on the device; default: tensors moved inside dicts/tuples.
        call: ``(model, inputs) -> outputs``; default ``model(x)``, ``model(*x)``, ``model(**x)``.
    """

    split: Callable[[Any], Tuple[Any, Any]] = _split_batch
    size: Callable[[Any], int] = _size
    to: Callable[[Any, torch.device], Any] = _move
    call: Callable[[nn.Module, Any], Any] = _call


DEFAULT_HOOKS = BatchHooks()


@dataclass
class Tensors:
    """A staged split: inputs ``x`` (n, ...) and targets ``y`` (n, ...), sliced into batches."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self):
        self.x, self.y = torch.as_tensor(self.x), torch.as_tensor(self.y)
        if self.x.dim() == 0 or self.y.dim() == 0 or len(self.x) != len(self.y):
            raise ValueError(f"inputs {tuple(self.x.shape)} and targets {tuple(self.y.shape)} need the "
                             "same number of examples (dim 0)")

    def __len__(self) -> int:
        return len(self.x)

    def batches(self, batch_size: int) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """``(inputs, targets)`` slices of at most ``batch_size`` examples, in order."""
        for start in range(0, len(self.x), batch_size):
            yield self.x[start:start + batch_size], self.y[start:start + batch_size]


@dataclass
class Stream:
    """A streamed split: an iterable of batches (re-iterated on every pass) read with ``hooks``."""

    batches_of: Iterable
    hooks: BatchHooks = DEFAULT_HOOKS

    def batches(self, batch_size: Optional[int] = None) -> Iterator[Tuple[Any, Any]]:
        """The stream's batches as ``(inputs, targets)`` (``batch_size`` is ignored: the stream's own)."""
        for batch in self.batches_of:
            yield self.hooks.split(batch)


DataSource = Union[Tensors, Stream]  # in-memory (inputs, targets) tensors, or a stream of batches


def _is_pair(obj) -> bool:
    return (isinstance(obj, (tuple, list)) and len(obj) == 2
            and all(torch.is_tensor(v) or isinstance(v, np.ndarray) for v in obj))


def as_source(obj, hooks: BatchHooks = DEFAULT_HOOKS) -> DataSource:
    """One split's data as a staged :class:`Tensors` or a streamed :class:`Stream`.

    Raises:
        TypeError: ``obj`` is none of the accepted forms (see :data:`DATA_FORMS`).
    """
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data import Dataset as TorchDataset

    if isinstance(obj, (Tensors, Stream)):
        return obj
    if _is_pair(obj):
        return Tensors(*obj)
    if isinstance(obj, TensorDataset) and len(obj.tensors) == 2:
        return Tensors(*obj.tensors)
    if isinstance(obj, TorchDataset) and hasattr(obj, "__len__"):
        return Stream(DataLoader(obj, batch_size=256), hooks)
    if isinstance(obj, Iterable) and not isinstance(obj, (str, bytes, Mapping, torch.Tensor, np.ndarray)):
        if iter(obj) is obj:  # a generator or iterator: empty after its first pass
            raise TypeError(f"a one-shot {type(obj).__name__} cannot be read again on every pass; pass a "
                            "DataLoader, a list of batches or another re-iterable")
        return Stream(obj, hooks)
    raise TypeError(f"unsupported data of type {type(obj).__name__}; expected {DATA_FORMS}")


def data_splits(data, hooks: BatchHooks = DEFAULT_HOOKS) -> dict:
    """``{split: Tensors | Stream}`` of any accepted data form (see the module docstring).

    Raises:
        TypeError: an unsupported form.
    """
    if hasattr(data, "x_train") and hasattr(data, "y_train"):
        splits = {"train": Tensors(data.x_train, data.y_train)}
        if getattr(data, "x_test", None) is not None:
            splits["test"] = Tensors(data.x_test, data.y_test)
        return splits
    if isinstance(data, Mapping):
        if not data:
            raise ValueError("the data mapping holds no split")
        return {str(k): as_source(v, hooks) for k, v in data.items()}
    return {"train": as_source(data, hooks)}


def split_source(data, split: str, hooks: BatchHooks = DEFAULT_HOOKS) -> DataSource:
    """The source of one split; a one-line ValueError naming the splits there are."""
    splits = data_splits(data, hooks)
    if split not in splits:
        raise ValueError(f"the data has no {split!r} split (it has {', '.join(splits)})")
    return splits[split]


# ----------------------------------------------------------------------------- losses
def _crossentropy(outputs, targets):
    return F.cross_entropy(outputs, targets, reduction="none")


def _nll(outputs, targets):
    return F.nll_loss(outputs, targets, reduction="none")


def _mse(outputs, targets):
    if targets.is_floating_point():
        err = (outputs - targets.reshape(outputs.shape).to(outputs.dtype)) ** 2
    else:
        onehot = F.one_hot(targets, outputs.shape[-1]).to(outputs.dtype)
        err = (torch.softmax(outputs, dim=-1) - onehot) ** 2
    return err.reshape(len(err), -1).mean(-1)


_LOSSES = {"crossentropy": _crossentropy, "nll": _nll, "mse": _mse}


def resolve_loss(loss) -> LossFn:
    """A loss name (:data:`LOSS_NAMES`) or callable -> ``fn(outputs, targets)`` returning
    per-example losses ``(B,)`` (a callable's scalar batch mean is kept as a scalar; see
    :func:`summed_loss`).

    Raises:
        ValueError: an unknown name.  TypeError: neither a name nor a callable.
    """
    if isinstance(loss, str):
        if loss not in _LOSSES:
            raise ValueError(f"unknown loss {loss!r}; use one of {', '.join(LOSS_NAMES)} or a callable")
        return _LOSSES[loss]
    if callable(loss):
        return loss
    raise TypeError(f"loss must be a name ({', '.join(LOSS_NAMES)}) or a callable, got {type(loss).__name__}")


def loss_name(loss) -> str:
    """How a loss is recorded in files: its name, or ``callable:<qualified name>``."""
    if isinstance(loss, str):
        return loss
    return f"callable:{getattr(loss, '__module__', '?')}.{getattr(loss, '__qualname__', type(loss).__name__)}"


def summed_loss(fn: LossFn, outputs: torch.Tensor, targets: torch.Tensor, batch: int) -> torch.Tensor:
    """Sum over the batch of ``fn``'s per-example losses (a scalar mean counts ``batch`` times)."""
    value = fn(outputs, targets)
    if value.dim() == 0:
        return value * batch
    if value.shape[0] != batch:
        raise ValueError(f"the loss returned shape {tuple(value.shape)}; expected ({batch},) per-example "
                         "losses or a scalar batch mean")
    return value.sum()


def correct_count(outputs: torch.Tensor, targets: torch.Tensor) -> Optional[torch.Tensor]:
    """Number of arg-max hits, or None when accuracy means nothing here (non-integer targets,
    or outputs without a class dimension matching the targets)."""
    if targets.is_floating_point() or outputs.dim() != targets.dim() + 1 or outputs.shape[-1] < 2:
        return None
    return (outputs.argmax(-1) == targets).sum()


def check_class_targets(targets: torch.Tensor, outputs: torch.Tensor, loss) -> None:
    """A one-line ValueError when integer targets fall outside the model's ``K`` outputs."""
    if isinstance(loss, str) and loss in ("crossentropy", "nll") and not targets.is_floating_point() \
            and targets.numel() and outputs.dim() >= 2:
        low, high, k = int(targets.min()), int(targets.max()), outputs.shape[-1]
        if low < 0 or high >= k:
            raise ValueError(f"class labels range over [{low}, {high}] but the model has {k} outputs")


def _parts(outputs) -> str:
    """What a dict or tuple output holds, for messages: ``keys 'loss', 'logits'`` or ``3 items``."""
    if isinstance(outputs, Mapping):
        return "keys " + ", ".join(repr(k) for k in outputs)
    if isinstance(outputs, (tuple, list)):
        return f"{len(outputs)} items"
    return f"a {type(outputs).__name__}"


def select_output(outputs, output: Output = None) -> torch.Tensor:
    """The prediction tensor of a model's ``outputs``: ``output`` is None (outputs are a
    tensor), a dict key, a sequence index, an attribute name, or a callable. A part that is not
    there is a one-line ValueError naming the parts that are."""
    if output is None:
        if torch.is_tensor(outputs):
            return outputs
        raise TypeError(f"the model returned a {type(outputs).__name__} ({_parts(outputs)}); say which part holds "
                        "the predictions with output= (a key, an index or a callable; --output NAME|INDEX on "
                        "the command line)")
    if callable(output):
        return output(outputs)
    try:
        if isinstance(outputs, Mapping):
            return outputs[output]
        if isinstance(output, int):
            return outputs[output]
        return getattr(outputs, output)
    except (KeyError, IndexError, AttributeError, TypeError):
        raise ValueError(f"output={output!r}: the model's output has no such part (it has {_parts(outputs)})") from None


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(model: nn.Module, data, *, split: str = "train", loss="crossentropy", output: Output = None,
             batch_size: int = 1000, device=None, accuracy: bool = True,
             hooks: BatchHooks = DEFAULT_HOOKS) -> Tuple[float, float]:
    """Mean loss and accuracy of ``model`` in eval mode on one split of ``data``.

    Args:
        model: any ``nn.Module``; its train/eval flags are restored afterwards.
        data: any accepted form (module docstring).
        split: which of its splits (``"train"`` or ``"test"``).
        loss: a name or callable (:func:`resolve_loss`).
        output: selector of the predictions when the model returns a dict/tuple.
        batch_size: examples per forward pass for staged tensors (a stream keeps its batches).
        device: where to run (default: the model's device).
        accuracy: count correct predictions (False: accuracy is NaN, for non-class targets).
        hooks: how a batch splits into model inputs and targets (:class:`BatchHooks`).

    Returns:
        ``(mean loss over all examples, accuracy in percent)``; accuracy is NaN when it means
        nothing (non-class targets) or ``accuracy=False``.

    >>> import torch
    >>> model = torch.nn.Linear(2, 2, bias=False)
    >>> _ = model.weight.data.copy_(torch.eye(2))
    >>> x, y = torch.tensor([[2.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 0])
    >>> loss, acc = evaluate(model, (x, y))
    >>> round(loss, 4), acc   # (log(1 + e^-2) + log(1 + e^2)) / 2
    (1.1269, 50.0)
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    fn = resolve_loss(loss)
    source = split_source(data, split, hooks)
    if device is None:
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
    device = resolve_device(device)
    was_training = model.training
    model.eval()
    total, correct, count, counted = 0.0, 0, 0, accuracy
    try:
        for inputs, targets in source.batches(batch_size):
            inputs, targets = hooks.to(inputs, device), hooks.to(targets, device)
            outputs = select_output(hooks.call(model, inputs), output)
            check_class_targets(targets, outputs, loss)
            n = hooks.size(inputs)
            total += float(summed_loss(fn, outputs, targets, n))
            hits = correct_count(outputs, targets) if counted else None
            counted = hits is not None
            correct += int(hits) if counted else 0
            count += n
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError(f"the {split!r} split holds no examples")
    return total / count, (100.0 * correct / count) if counted else math.nan
