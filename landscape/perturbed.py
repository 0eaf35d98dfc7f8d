"""Loss and accuracy of a model at points ``theta + sum_k c_k d_k`` of a direction space.

The :class:`Evaluator` works on private copies of the model in eval mode (BN uses its running
statistics), so the caller's model is never modified: afterwards it is bit-exactly as before,
its train/eval mode included. Each point's tensors are passed with
``torch.func.functional_call``.

Data, losses and outputs mean what they mean in :mod:`regularizers.evaluation`: any form
:func:`regularizers.evaluation.data_splits` accepts, a loss name or callable, an ``output=``
selector. Tensors (a ``Dataset``, ``(x, y)`` pairs, a ``TensorDataset``) are staged once on the
device and sliced into batches; anything else (a ``DataLoader``, any iterable of batches) is
streamed batch by batch at every point, so data larger than memory works.

Exact speed-ups, checked against the plain path once at start-up (a mismatch falls back to the
plain path with a warning):

- **Graph rewrites** (``fold_bn``, ``first_layer``, ``reorder``; only for models ``torch.fx``
  can trace): BN folded into the conv/linear layer before it, the first layer cut off,
  max-pooling moved before ReLU -- see :mod:`landscape.rewrites`.
- **First layer** (staged data only): the cut-off first layer is linear in its weight, which
  is ``W + sum_k c_k D_k`` at the point. A ``Conv2d`` (one group, zero padding) keeps its input
  unfolded into patches (``F.unfold``, (n, L, C_in*kh*kw), computed once) and is one matrix
  product with the point's weight (BN scale folded in) per batch: for the thin first convs of
  image models (1-3 input channels) this is 5-15x faster than the convolution on CPU (measured;
  oneDNN is slow there). Other layers cache their outputs ``C_0 = layer(X; W)``,
  ``C_k = layer(X; D_k)`` (no bias) and compose ``C_0 + sum_k c_k C_k`` (by default only when
  the layer does at least :data:`landscape.rewrites.FIRST_LAYER_MIN_MACS` multiply-adds per
  output value). Either cache must fit in ``cache_bytes``.
- **Channels-last images** (CPU): staged (n, C, H, W) inputs are kept channels-last, oneDNN's
  fast layout for convolutions and pooling (the first-layer product writes that layout
  directly), unless the rewritten program then fails or differs (a ``view()`` of an
  activation refuses those strides): it is then retried channels-first.
- **Batch size** (``batch_size=None``, the default): the candidates of
  :data:`BATCH_CANDIDATES` (capped by the split size) are timed on the device in use before the
  first point and the fastest is kept (it does not change the values: see below).
- **Many points per pass** (``points_per_pass > 1``): ``torch.func.vmap`` over points. It pays
  on GPUs; on CPUs one point at a time is usually faster (the default there).

Values are deterministic: the per-example losses of a split are summed exactly
(:func:`exact_sums`, correctly rounded) and the hits counted as integers, and a staged split's last
batch is widened back to :data:`MIN_BATCH` rows, so the same inputs give the same bits whatever
batch size the timing picks (checked on CPU for sizes 33 to 512; a handful of rows runs other
matrix kernels and may differ in the last bits, and so may another number of threads where MKL
splits a long product over them, unless ``MKL_CBWR=AUTO,STRICT`` is set). On CUDA the library's
kernel choice may depend on the batch size; give ``batch_size`` there for bitwise reruns.

Losses are per-example means over the whole split; accuracy is in percent (NaN for targets
that are not class indices, or with ``accuracy=False``).
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.func import functional_call, vmap

from regularizers.data import SPLITS
from regularizers.evaluation import (DEFAULT_HOOKS, BatchHooks, Output, Tensors, check_class_targets,
                                     correct_count, data_splits, resolve_device, resolve_loss,
                                     select_output)

from .directions import Directions, check_fits, direction_names
from .precision import autocast_dtype, hardware_note
from .rewrites import Fold, Program, compile_model, unfoldable

# Batch sizes timed when none is given (capped by the split size), per device type.
BATCH_CANDIDATES = {"cpu": (64, 128, 256, 512), "cuda": (256, 512, 1024, 2048, 4096)}
# A staged split's last batch is widened back to this many rows (see Evaluator._batches).
MIN_BATCH = 64


def value_keys(splits: Sequence[str]) -> List[str]:
    """Names of the values per point: ``train_loss``, ``train_acc``, ... for each split."""
    return [f"{s}_{k}" for s in splits for k in ("loss", "acc")]


@dataclass
class _Unfolded:
    """A split's input to a ``Conv2d`` first layer as patches ``cols`` (n, L, C_in*kh*kw) and
    the output's spatial shape ``(H_out, W_out)``."""

    cols: torch.Tensor
    spatial: tuple


class _Stop(Exception):
    pass


def layer_input(model: nn.Module, name: str, x: torch.Tensor) -> torch.Tensor:
    """The input that submodule ``name`` receives when ``model(x)`` runs (the rest is skipped)."""
    captured = []

    def hook(_module, args):
        captured.append(args[0])
        raise _Stop

    handle = model.get_submodule(name).register_forward_pre_hook(hook)
    try:
        model(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured:
        raise ValueError(f"layer {name!r} did not run")
    return captured[0]


def example_losses(fn, outputs: torch.Tensor, targets: torch.Tensor, batch: int) -> torch.Tensor:
    """``fn``'s per-example losses (B,); a scalar batch mean becomes one entry ``mean * B``."""
    value = fn(outputs, targets)
    if value.dim() == 0:
        return (value * batch).reshape(1)
    if value.shape[0] != batch:
        raise ValueError(f"the loss returned shape {tuple(value.shape)}; expected ({batch},) per-example "
                         "losses or a scalar batch mean")
    return value.reshape(batch)


def exact_sums(values: torch.Tensor) -> torch.Tensor:
    """Row sums (P,) float64 of ``values`` (P, n), correctly rounded (``math.fsum`` of the exact
    float64 values): independent of the order of the entries, hence of batching, threads and
    devices."""
    rows = values.detach().double().cpu().numpy()
    return torch.tensor([_fsum(row) for row in rows], dtype=torch.float64)


def _fsum(row: np.ndarray) -> float:
    """``math.fsum`` of ``row``; where it refuses (``inf - inf``: NaN) or overflows (+-inf), the
    plain sum, which says the same."""
    try:
        return math.fsum(row.tolist())
    except (ValueError, OverflowError):
        with np.errstate(over="ignore", invalid="ignore"):
            return float(np.sum(row))


class Evaluator:
    """``evaluator(coords)``: losses and accuracies at points ``theta + sum_k c_k d_k``.

    ``coords`` is (P, ndim) (or (ndim,)); the result is a float64 array (P, len(columns)) with
    ``columns`` = ``[f"{split}_loss", f"{split}_acc" for split in splits]`` (loss: mean over
    the split's examples; accuracy in percent, NaN where it means nothing).

    Args:
        model: any ``nn.Module`` (never modified).
        data: any form of :func:`regularizers.evaluation.data_splits` (tensors are staged on
            ``device``; a DataLoader or other iterable of batches is streamed at every point).
        directions: the directions ``d_k``, fitting ``model``.
        splits: which splits of ``data`` to evaluate.
        loss: a name (``crossentropy``, ``nll``, ``mse``) or a callable ``loss(outputs, targets)``
            returning per-example losses (B,) or the batch mean.
        output: selector of the predictions when the model returns a dict/tuple (a key, an
            index, an attribute name or a callable).
        accuracy: False reports NaN accuracies.
        hooks: how streamed batches are split, counted, moved and fed to the model.
        batch_size: examples per forward pass of staged data; None times the candidates of
            :data:`BATCH_CANDIDATES` on the device (see :meth:`_tune_batch_size`).
        device: where the copies and staged data live (default cuda when available).
        precision: ``"fp32"`` (default; ``"none"`` and None too) or ``"bf16"``/``"fp16"``: forward
            passes under autocast (see :mod:`landscape.precision` for the hardware that has the units).
        points_per_pass: points per vmap pass (default 1 on CPU, 8 on CUDA).
        fold_bn, first_layer, reorder: the exact rewrites of :mod:`landscape.rewrites`
            (``first_layer=None``: when it pays); all False is the plain path.
        cache_bytes: the most memory the first-layer cache may take.
        compile: run the forward pass through ``torch.compile`` (one point per pass), the point's
            tensors as graph inputs. Opt-in: the compilation (about 10-110 s on a CPU) pays only
            on large grids; values agree with the eager path to float rounding, not bitwise.

    Attributes:
        batch_size: the batch size in use (None when every split is streamed).
        batch_size_note: how it was chosen, e.g. ``"auto: 128 of 64,128,256,512"``.
        program: the module in use (``_plain`` if no rewrite applies).
    """

    def __init__(self, model: nn.Module, data, directions: Directions, *,
                 splits: Sequence[str] = SPLITS, loss="crossentropy", output: Output = None,
                 accuracy: bool = True, hooks: BatchHooks = DEFAULT_HOOKS, batch_size: Optional[int] = None,
                 device=None, precision: Optional[str] = None, points_per_pass: Optional[int] = None,
                 fold_bn: bool = True, first_layer: Optional[bool] = None, reorder: bool = True,
                 cache_bytes: int = 2 ** 31, compile: bool = False):
        if compile and (points_per_pass or 1) != 1:
            raise ValueError("compile=True evaluates one point per pass: leave points_per_pass at 1")
        self._call = functional_call  # torch.compile'd once the program and batch size are chosen
        for name, value in (("batch_size", batch_size), ("points_per_pass", points_per_pass)):
            if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self._autocast = autocast_dtype(precision)  # a ValueError naming the choices first
        note = hardware_note(precision, resolve_device(device))
        if note:
            warnings.warn(note, stacklevel=2)
        check_fits(directions, model)
        self._loss_fn = resolve_loss(loss)
        self.loss, self.output, self.accuracy, self.hooks = loss, output, accuracy, hooks
        self.device = resolve_device(device)
        self.splits = tuple(splits)
        self.columns = value_keys(self.splits)
        self.points_per_pass = 1 if compile else int(points_per_pass or (8 if self.device.type == "cuda" else 1))
        sources = data_splits(data, hooks)
        missing = [s for s in self.splits if s not in sources]
        if missing:
            raise ValueError(f"the data has no {missing[0]!r} split (it has {', '.join(sources)})")
        with torch.inference_mode():
            self._setup(model, sources, directions)
            self.program = self._plain
            self._check_targets()  # on the plain path: user errors (output=, labels) surface here
            streamed = not all(isinstance(self._data[s], Tensors) for s in self.splits)
            options = dict(fold_bn=fold_bn, first_layer=False if streamed else first_layer, reorder=reorder)
            if fold_bn or options["first_layer"] is not False or reorder:
                self._try_fast(model, options, cache_bytes)
            if batch_size is not None:
                self.batch_size, self.batch_size_note = int(batch_size), f"{int(batch_size)} (given)"
            else:
                self.batch_size, self.batch_size_note = self._tune_batch_size()
        if compile:
            self._call = torch.compile(functional_call)

    # ------------------------------------------------------------------ set-up
    def _setup(self, model, sources: dict, directions):
        self._plain = compile_model(model, fold_bn=False, first_layer=False, reorder=False)
        self._plain.module.to(self.device)
        state = {n: t.to(self.device) for n, t in self._plain.module.state_dict().items()}
        names = direction_names(model, directions.dir_type)
        self._vary = [n for n in names if state[n].is_floating_point()]
        self.dtype = state[self._vary[0]].dtype
        self._shapes = [state[n].shape for n in self._vary]
        self._sizes = [state[n].numel() for n in self._vary]
        self._fixed = {n: t for n, t in state.items() if n not in set(self._vary)}
        self._theta = torch.cat([state[n].reshape(-1).to(self.dtype) for n in self._vary])
        index = {n: i for i, n in enumerate(names)}
        self._dirs = torch.stack([torch.cat([axis[index[n]].reshape(-1).to(self.dtype) for n in self._vary])
                                  for axis in directions.axes]).to(self.device)
        self._channels_last = False
        self._data = {}
        for split in self.splits:
            source = sources[split]
            if isinstance(source, Tensors):  # staged once on the device
                if len(source) == 0:
                    raise ValueError(f"the {split!r} split holds no examples")
                x, y = source.x, source.y
                x = x.to(device=self.device, dtype=self.dtype if x.is_floating_point() else None)
                source = Tensors(x, y.to(self.device))
                if self.loss in ("crossentropy", "nll") and source.y.is_floating_point():
                    raise ValueError(f"loss {self.loss!r} needs integer class targets; use loss='mse' "
                                     "or a callable for other targets")
            self._data[split] = source
        self._cache = {}

    def _sample(self):
        """A few inputs of the first split: ``(inputs, targets, rows)`` on the device (``rows``:
        the staged rows, None for a streamed split's first batch)."""
        source = self._data[self.splits[0]]
        if isinstance(source, Tensors):
            rows = slice(0, 16)
            return source.x[rows], source.y[rows], rows
        inputs, targets = next(iter(source.batches()), (None, None))
        if inputs is None:
            raise ValueError(f"the {self.splits[0]!r} split holds no batches")
        return self.hooks.to(inputs, self.device), self.hooks.to(targets, self.device), None

    def _check_targets(self) -> None:
        """The plain path runs on a sample and its outputs can be selected; class targets lie
        within the model's outputs."""
        inputs, targets, rows = self._sample()
        coords = torch.zeros(len(self._dirs), dtype=self.dtype, device=self.device)
        program = self.program
        outputs = self._logits(program, *self._state(program, coords), coords, inputs, self.splits[0], rows)
        for split in self.splits:
            source = self._data[split]
            check_class_targets(source.y if isinstance(source, Tensors) else targets, outputs, self.loss)

    def _layouts(self) -> List[bool]:
        """Channels-last choices to try, best first: (n, C, H, W) images on a CPU are tried
        channels-last first -- oneDNN's fast layout for convolutions and pooling -- when every
        split is staged."""
        staged = all(isinstance(s, Tensors) and s.x.dim() == 4 and s.x.is_floating_point()
                     for s in self._data.values())
        return [True, False] if self.device.type == "cpu" and staged else [False]

    def _set_layout(self, channels_last: bool) -> None:
        """Restage the images channels-last or channels-first."""
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last or self._channels_last:
            self._data = {s: Tensors(t.x.contiguous(memory_format=fmt), t.y) for s, t in self._data.items()}
        self._channels_last = channels_last

    def _try_fast(self, model, options: dict, cache_bytes: int):
        """Use the rewritten program in the first layout where it gives the plain path's outputs
        (a model that ``view()``s its activations refuses channels-last strides); else warn and
        keep the plain path, channels-first."""
        problem = None
        for channels_last in self._layouts():
            self._set_layout(channels_last)
            window_pools = self.device.type == "cpu" and not channels_last
            program = compile_model(model, **options, window_pools=window_pools)
            if not isinstance(program.module, fx.GraphModule):  # not traceable: nothing rewritten
                self._set_layout(False)
                return
            program.module.to(self.device)
            if program.first is not None:
                self._cache = self._first_layer_cache(program.first, cache_bytes)
                if self._cache is None:
                    program = compile_model(model, **{**options, "first_layer": False}, window_pools=window_pools)
                    program.module.to(self.device)
                    self._cache = {}
            problem = self._disagreement(program)
            if problem is None:
                self.program = program
                return
        self._cache = {}
        self._set_layout(False)
        warnings.warn(f"fast evaluation disagrees with the plain path ({problem}); using the plain path")

    def _disagreement(self, program: Program) -> Optional[str]:
        """None when ``program`` gives the plain path's outputs on a few samples at the origin
        and at (0.25, ...); else what went wrong."""
        inputs, _, rows = self._sample()
        for value in (0.0, 0.25):
            coords = torch.full((len(self._dirs),), value, dtype=self.dtype, device=self.device)
            try:
                fast, ref = (self._logits(p, *self._state(p, coords), coords, inputs, self.splits[0], rows,
                                          cast=False) for p in (program, self._plain))
            except Exception as err:  # a graph the rewrite does not handle
                return f"{type(err).__name__}: {err}"
            tol = 1e-4 * float(ref.nan_to_num(0.0, 0.0, 0.0).abs().max()) + 1e-12
            if fast.shape != ref.shape or not torch.allclose(fast, ref, rtol=1e-4, atol=tol, equal_nan=True):
                return f"outputs differ at {value}"
        return None

    def _first_layer_cache(self, name: str, cache_bytes: int):
        """{split: _Unfolded} for an unfoldable conv, else {split: [C_0, C_1, ..]}: the first
        layer's outputs (n, *out) without bias at theta and along each direction; None when
        the cache would take more than ``cache_bytes``."""
        layer = self._plain.module.get_submodule(name)
        weights = self._layer_weights(name)
        one = layer_input(self._plain.module, name, self._data[self.splits[0]].x[:1])
        unfold = unfoldable(layer)
        if unfold:
            per_sample = self._unfold(layer, one).cols.numel()
        else:
            per_sample = layer(one).numel() * len(weights)
        if sum(len(s) for s in self._data.values()) * per_sample * self._theta.element_size() > cache_bytes:
            return None
        if unfold:
            self._first_weights = torch.stack([w.reshape(len(w), -1) for w in weights])  # (1+ndim, C_out, K)
        zero_bias = {"bias": torch.zeros_like(layer.bias)} if layer.bias is not None else {}
        chunk = max(BATCH_CANDIDATES["cpu"])  # bounds the memory of the layer_input calls
        cache = {}
        for split, source in self._data.items():
            inputs = [layer_input(self._plain.module, name, x) for x, _ in source.batches(chunk)]
            if unfold:
                parts = [self._unfold(layer, inp) for inp in inputs]
                cache[split] = _Unfolded(torch.cat([p.cols for p in parts]), parts[0].spatial)
            else:
                cache[split] = [torch.cat([functional_call(layer, {"weight": w, **zero_bias}, (inp,))
                                           for inp in inputs]) for w in weights]
        return cache

    @staticmethod
    def _unfold(layer: nn.Conv2d, x: torch.Tensor) -> _Unfolded:
        """Patches of ``x`` (n, C_in, H, W) for ``layer`` as (n, L, C_in*kh*kw), L = H_out*W_out,
        and the output's (H_out, W_out)."""
        cols = F.unfold(x, layer.kernel_size, dilation=layer.dilation, padding=layer.padding,
                        stride=layer.stride).transpose(1, 2).contiguous()
        size = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, p, d, k, s in
                zip(x.shape[-2:], layer.padding, layer.dilation, layer.kernel_size, layer.stride)]
        return _Unfolded(cols, tuple(size))

    def _layer_weights(self, name: str) -> List[torch.Tensor]:
        """The first layer's weight at theta and along each direction."""
        i = self._vary.index(f"{name}.weight")
        start, shape = sum(self._sizes[:i]), self._shapes[i]
        rows = torch.cat([self._theta[None], self._dirs])
        return [r[start:start + self._sizes[i]].view(shape) for r in rows]

    def _tune_batch_size(self) -> Tuple[Optional[int], str]:
        """The fastest candidate batch size on this device, and a note saying so.

        Candidates (:data:`BATCH_CANDIDATES`, capped by the first staged split's size ``n``)
        are timed in increasing order, each on one warm-up batch of its size (kernel selection
        for the new shape) and one timed batch, at the origin (a pass of ``points_per_pass``
        points, the program in use), while the examples run stay within ``n`` (the smallest
        candidate always runs): tuning costs about one point's worth of that split. The kept
        size has the least time per example.
        """
        staged = [s for s in self.splits if isinstance(self._data[s], Tensors)]
        if not staged:
            return None, "the loader's batches"
        split = staged[0]
        n = len(self._data[split])
        sizes = sorted({min(b, n) for b in BATCH_CANDIDATES.get(self.device.type, BATCH_CANDIDATES["cpu"])})
        coords = torch.zeros(self.points_per_pass, len(self._dirs), dtype=self.dtype, device=self.device)
        logits_of = self._logits_of(self.program, coords)
        per_example, used = {}, 0
        for size in sizes:
            if per_example and used + 2 * size > n:
                break
            try:
                seconds = [self._timed_pass(logits_of, split, size) for _ in range(2)]
            except torch.cuda.OutOfMemoryError:  # larger sizes will not fit either
                torch.cuda.empty_cache()
                break
            per_example[size], used = seconds[1] / size, used + 2 * size
        best = min(per_example, key=per_example.get)
        return best, f"auto: {best} of {','.join(map(str, per_example))}"

    def _timed_pass(self, logits_of, split: str, size: int) -> float:
        """Seconds of one batch of ``size`` examples of ``split`` (results fetched, so timed
        to completion on any device)."""
        start = time.perf_counter()
        loss, _, _ = self._pass(logits_of, split, size, stop=size)
        loss.cpu()
        return time.perf_counter() - start

    # ------------------------------------------------------------------ one point
    def _full(self, coords: torch.Tensor) -> dict:
        """Every state entry at the point (varying ones as views of one vector)."""
        flat = self._theta + coords @ self._dirs
        full = dict(self._fixed)
        full.update({n: v.view(s) for n, v, s in zip(self._vary, torch.split(flat, self._sizes), self._shapes)})
        return full

    @staticmethod
    def _affine(fold: Fold, full: dict, bias: Optional[torch.Tensor]):
        """Per-channel ``(s, b')`` of a folded BN: output = s * layer(x; W, 0) + b'."""
        var, mean = full[f"{fold.bn}.running_var"], full[f"{fold.bn}.running_mean"]
        scale = torch.rsqrt(var + fold.eps)
        if fold.affine:
            scale = scale * full[f"{fold.bn}.weight"]
        shift = -mean * scale if bias is None else (bias - mean) * scale
        if fold.affine:
            shift = shift + full[f"{fold.bn}.bias"]
        return scale, shift

    def _state(self, program: Program, coords: torch.Tensor):
        """(tensors for ``program.module``, (scale, shift) of the cut-off first layer or ())."""
        full = self._full(coords)
        state = {n: full[n] for n in self._vary if n in program.names}
        for fold in program.folds:
            bias = full[f"{fold.conv}.bias"] if fold.conv_bias else None
            scale, shift = self._affine(fold, full, bias)
            weight = full[f"{fold.conv}.weight"]
            state[f"{fold.conv}.weight"] = weight * scale.view(-1, *[1] * (weight.dim() - 1))
            state[f"{fold.conv}.bias"] = shift
        if program.first is None:
            return state, ()
        bias = full[f"{program.first}.bias"] if program.first_bias else None
        if program.first_fold is not None:
            return state, self._affine(program.first_fold, full, bias)
        ones = full[f"{program.first}.weight"].new_ones(full[f"{program.first}.weight"].shape[0])
        return state, (ones, bias if bias is not None else torch.zeros_like(ones))

    def _logits(self, program: Program, state: dict, affine, coords, inputs, split: str,
                rows: Optional[slice], cast: bool = True) -> torch.Tensor:
        """Outputs (B, ...) of ``program`` at one point on ``inputs`` (``rows`` of a staged
        ``split``, for the first-layer cache); ``cast``: use the autocast precision."""
        autocast = (torch.autocast(self.device.type, dtype=self._autocast) if self._autocast and cast
                    else contextlib.nullcontext())
        if program.first is None:
            with autocast:  # only the forward pass: the point's tensors stay in full precision
                out = self.hooks.call(lambda *a, **k: self._call(program.module, state, a, k), inputs)
        else:
            scale, shift = affine
            cached = self._cache[split]
            if isinstance(cached, _Unfolded):  # (C_out, K) weight at the point, BN scale folded in
                w = self._first_weights[0] + (coords @ self._first_weights[1:].flatten(1)).view_as(self._first_weights[0])
                w, cols = w * scale[:, None], cached.cols[rows]
                if self._channels_last:  # (B, L, C_out) is the channels-last layout of (B, C_out, H, W)
                    first = torch.matmul(cols, w.t()).add_(shift)
                    first = first.view(len(cols), *cached.spatial, -1).permute(0, 3, 1, 2)
                else:
                    first = torch.matmul(w, cols.transpose(1, 2)).add_(shift[:, None])
                    first = first.view(len(cols), -1, *cached.spatial)
            else:
                first = cached[0][rows]
                for k in range(len(cached) - 1):  # one fused pass per direction
                    first = torch.addcmul(first, coords[k], cached[k + 1][rows])
                view = (-1,) if program.first_linear else (-1, *[1] * (first.dim() - 2))
                first = torch.addcmul(shift.view(view), first, scale.view(view))
            if self._autocast and cast:  # the rest of the net then runs in the reduced type throughout
                first = first.to(self._autocast)
            with autocast:
                out = self._call(program.module, state, (inputs, first))
        out = select_output(out, self.output)
        return out.to(torch.promote_types(out.dtype, torch.float32))

    def _logits_of(self, program: Program, coords: torch.Tensor):
        """``fn(inputs, split, rows) -> outputs (P, B, ...)`` at a pass of P points."""
        if len(coords) == 1:
            state, affine = self._state(program, coords[0])
            return lambda inputs, split, rows: self._logits(program, state, affine, coords[0], inputs, split,
                                                            rows)[None]
        state, affine = vmap(lambda c: self._state(program, c))(coords)
        return lambda inputs, split, rows: vmap(
            lambda s, a, c: self._logits(program, s, a, c, inputs, split, rows))(state, affine, coords)

    # ------------------------------------------------------------------ many points
    def _batches(self, split: str, batch_size: Optional[int], stop: Optional[int] = None) -> Iterator[tuple]:
        """``(inputs, targets, rows, new)`` on the device per batch of ``split``: slices of the
        staged tensors (the first ``stop`` examples), or the streamed batches. Only the last
        ``new`` examples of a batch are new: a staged split's last batch is widened back to
        :data:`MIN_BATCH` rows (matrix kernels take other code paths for a few rows, which
        changes the bits of the per-example values)."""
        source = self._data[split]
        if isinstance(source, Tensors):
            end = len(source) if stop is None else min(stop, len(source))
            for start in range(0, end, batch_size):
                last = min(start + batch_size, end)
                rows = slice(max(0, min(start, last - MIN_BATCH)), last)
                yield source.x[rows], source.y[rows], rows, last - start
            return
        for inputs, targets in source.batches():
            inputs = self.hooks.to(inputs, self.device)
            yield inputs, self.hooks.to(targets, self.device), None, self.hooks.size(inputs)

    def _pass(self, logits_of, split: str, batch_size: Optional[int], stop: Optional[int] = None):
        """Summed loss (P,) float64, correct count (P,) or None (no accuracy), and number of
        examples of one pass over ``split`` (its first ``stop`` staged examples).

        The per-example losses of the whole pass are summed exactly (:func:`exact_sums`) and the
        hits counted as integers, so the result does not depend on how the examples were cut
        into batches: the same bits for every batch size (a loss callable returning a batch
        mean has no per-example values; its means are summed as they come)."""
        losses, correct, count, counted = [], 0, 0, self.accuracy
        for inputs, targets, rows, n in self._batches(split, batch_size, stop):
            outputs = logits_of(inputs, split, rows)
            if rows is not None and rows.stop - rows.start > n:  # a widened last batch: keep the new rows
                outputs, targets = outputs[:, -n:], targets[-n:]
            losses.append(torch.stack([example_losses(self._loss_fn, out, targets, n) for out in outputs]))
            if counted:
                hits = [correct_count(out, targets) for out in outputs]
                counted = hits[0] is not None
                correct = correct + torch.stack(hits).long() if counted else None
            count += n
        if not losses:
            return None, None, 0
        return exact_sums(torch.cat(losses, dim=1)), correct.cpu().double() if counted else None, count

    def __call__(self, coords) -> np.ndarray:
        """Rows ``(k, len(columns))`` of losses and accuracies at coordinates ``(k, ndim)``."""
        coords = np.atleast_2d(np.asarray(coords, dtype=np.float64))
        if coords.shape[1] != len(self._dirs):
            raise ValueError(f"expected coordinates with {len(self._dirs)} columns, got {coords.shape[1]}")
        out = np.empty((len(coords), len(self.columns)))
        with torch.inference_mode():
            c = torch.as_tensor(coords, dtype=self.dtype, device=self.device)
            for start in range(0, len(c), self.points_per_pass):
                out[start:start + self.points_per_pass] = self._evaluate(c[start:start + self.points_per_pass])
        return out

    def _evaluate(self, coords: torch.Tensor) -> np.ndarray:
        """Losses and accuracies (P, len(columns)) at a pass of P points."""
        logits_of = self._logits_of(self.program, coords)
        columns = []
        for split in self.splits:
            loss, correct, count = self._pass(logits_of, split, self.batch_size)
            if count == 0:
                raise ValueError(f"the {split!r} split holds no examples")
            acc = 100.0 * correct / count if correct is not None else torch.full_like(loss, float("nan"))
            columns += [loss / count, acc]
        return torch.stack(columns, dim=1).cpu().numpy()
