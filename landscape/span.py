"""An axis range chosen for the user: the distance at which the loss has risen by a factor.

"What distance should I plot?" has no universal answer: filter-normalized directions make
distances comparable between models, but where the basin ends depends on the model. Here the
span of an axis is the smallest ``s > 0`` at which the loss at ``s`` (and, by default, at
``-s``) first reaches ``factor`` times the loss at the center -- so a surface over ``[-s, s]``
shows the basin up to its doubling (``factor=2``) and no further.

The search: from ``start``, double ``s`` until the loss reaches the target (or ``s`` passes
``max_span``); then bisect between the last span below the target and the first above it until
the bracket is narrower than ``rtol`` times its upper end. A non-finite loss (divergence) counts
as reaching the target. The answer is the upper end of the final bracket: the crossing lies in
``(lower, span]``. Doubling can step over a bump that rises above the target and falls back, so
"first" means first on the doubling grid, refined between its last two points.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
from torch import nn

from .directions import Directions
from .perturbed import Evaluator
from .grid import Axes

LossAt = Callable[[np.ndarray], np.ndarray]


@dataclass
class Span:
    """The span of one axis, in the direction's coordinate units.

    ``span`` is the smallest evaluated distance whose loss reached ``target_loss`` (``max_span``
    when ``reached`` is False); the crossing lies in ``(lower, span]``. ``loss_at_span`` is the
    loss there (the larger of the two sides when both are searched). ``num_points`` counts the
    points evaluated, the center included.
    """
    span: float
    reached: bool
    lower: float
    center_loss: float
    target_loss: float
    loss_at_span: float
    factor: float
    num_points: int

    def describe(self) -> str:
        """One line for a progress report, e.g. ``span 0.42 (loss 2.00x the center's 0.31)``."""
        if not self.reached:
            return (f"span {self.span:.3g}: the loss never reached {self.factor:g}x the center's "
                    f"{self.center_loss:.4g} (max_span; loss there {self.loss_at_span:.4g})")
        return f"span {self.span:.3g} (loss {self.loss_at_span:.4g}, {self.factor:g}x the center's {self.center_loss:.4g})"


def _column(loss_at, column) -> int:
    if isinstance(column, str):
        names = list(getattr(loss_at, "columns", ()))
        if column not in names:
            raise ValueError(f"no column {column!r}; the evaluator has {', '.join(names) or 'no named columns'}")
        return names.index(column)
    if column is not None:
        return int(column)
    names = list(getattr(loss_at, "columns", ()))
    return next((i for i, name in enumerate(names) if name.endswith("_loss")), 0)


def auto_span(loss_at: LossAt, *, factor: float = 2.0, target: Optional[float] = None,
              start: float = 0.01, max_span: float = 100.0, rtol: float = 0.01, both_sides: bool = True,
              column: Union[None, int, str] = None) -> Span:
    """The smallest span at which the loss first reaches ``factor`` x the center loss.

    Args:
        loss_at: coordinates (k, 1) along one direction -> losses (k,) or rows (k, ncols), e.g.
            a :class:`landscape.perturbed.Evaluator` with one direction.
        factor: the target is ``factor * loss(0)``; must exceed 1 (and the center loss be > 0).
        target: an absolute target loss instead (it must exceed the center loss).
        start: the first span tried (> 0); spans double from there.
        max_span: the largest span tried.
        rtol: the bisection stops when ``span - lower <= rtol * span``.
        both_sides: look at ``-s`` as well as ``s`` (the range a symmetric axis shows).
        column: which column of ``loss_at``'s rows is the loss: an index, a name of
            ``loss_at.columns``, or None (the first ``*_loss`` column, else 0).

    Returns:
        :class:`Span`.

    Raises:
        ValueError: bad settings, a non-finite center loss, or a target not above it.
    """
    if not start > 0 or not max_span >= start:
        raise ValueError(f"need 0 < start <= max_span, got start={start}, max_span={max_span}")
    if not 0 < rtol < 1:
        raise ValueError(f"rtol must lie in (0, 1), got {rtol}")
    index = _column(loss_at, column)
    count = 0

    def losses(spans) -> np.ndarray:
        nonlocal count
        coords = np.asarray(spans, dtype=np.float64).reshape(-1, 1)
        values = np.asarray(loss_at(coords), dtype=np.float64)
        count += len(coords)
        return values[:, index] if values.ndim == 2 else values.reshape(len(coords))

    def loss(s: float) -> float:
        values = losses([s, -s] if both_sides else [s])
        return math.inf if not np.all(np.isfinite(values)) else float(values.max())

    center = float(losses([0.0])[0])
    target = target_loss(center, factor, target)
    factor = target / center if center > 0 else math.inf
    lower, upper, at_upper, reached = bracket(loss, target, start=float(start), max_span=float(max_span), rtol=rtol)
    return Span(upper, reached, lower, center, target, at_upper, factor, count)


def target_loss(center: float, factor: float, target: Optional[float]) -> float:
    """The loss a span must reach: ``target``, else ``factor * center``; checked."""
    if not math.isfinite(center):
        raise ValueError(f"the loss at the center is {center}; no span can be chosen")
    if target is None:
        if not factor > 1:
            raise ValueError(f"factor must exceed 1, got {factor}")
        if center <= 0:
            raise ValueError(f"the center loss is {center:.4g}, so {factor:g}x it is no rise; give target=")
        return factor * center
    if not target > center:
        raise ValueError(f"target {target:.4g} must exceed the center loss {center:.4g}")
    return target


def bracket(loss: Callable[[float], float], target: float, *, start: float, max_span: float,
            rtol: float) -> tuple:
    """``(lower, span, loss at span, reached)``: spans double from ``start`` until ``loss``
    reaches ``target`` (or pass ``max_span``: ``(max_span, max_span, its loss, False)``), then
    the bracket is bisected until ``span - lower <= rtol * span``."""
    lower, s, upper, value = 0.0, start, None, math.nan
    while upper is None:
        value = loss(s)
        if value >= target:
            upper = s
        elif s >= max_span:
            return max_span, max_span, value, False
        else:
            lower, s = s, min(2 * s, max_span)
    at_upper = value
    while upper - lower > rtol * upper:
        mid = (lower + upper) / 2
        value = loss(mid)
        if value >= target:
            upper, at_upper = mid, value
        else:
            lower = mid
    return lower, upper, at_upper, True


def direction_spans(model: nn.Module, data, directions: Directions, *, split: str = "train",
                    loss="crossentropy", factor: float = 2.0, target: Optional[float] = None,
                    start: float = 0.01, max_span: float = 100.0, rtol: float = 0.01,
                    both_sides: bool = True, **evaluation) -> List[Span]:
    """:func:`auto_span` of every axis of ``directions`` on one split of ``data``.

    Each axis gets its own one-direction :class:`landscape.perturbed.Evaluator` (loss only);
    ``evaluation`` holds its options (``batch_size``, ``device``, ``output``, ...).

    Returns:
        One :class:`Span` per axis (x, y, z order).
    """
    spans = []
    for axis, info in zip(directions.axes, directions.info):
        one = Directions([axis], directions.dir_type, [info], directions.meta)
        evaluator = Evaluator(model, data, one, splits=(split,), loss=loss, accuracy=False, **evaluation)
        spans.append(auto_span(evaluator, factor=factor, target=target, start=start, max_span=max_span,
                               rtol=rtol, both_sides=both_sides, column=f"{split}_loss"))
    return spans


SPAN_BATCH_SIZE = 256  # the batch size of the span search when none is given: not timed, so reruns agree


def automatic_spans(model: nn.Module, data, directions: Directions, axes: Axes, *, split: str, loss,
                    evaluation: dict, progress: bool = True) -> Tuple[Dict[int, float], dict]:
    """The spans of the automatic axes of ``axes`` (:meth:`landscape.grid.Axes.grid` makes them
    ``-s:s:num``): where the ``split`` loss along each first reaches its factor times the center
    loss (:func:`direction_spans`), and the file attributes recording them."""
    options = {k: v for k, v in evaluation.items() if k in ("device", "output", "precision")}
    options["batch_size"] = evaluation.get("batch_size") or SPAN_BATCH_SIZE
    spans, attrs = {}, {}
    for i, (num, factor) in axes.automatic.items():
        one = Directions([directions.axes[i]], directions.dir_type, [directions.info[i]], directions.meta)
        span = direction_spans(model, data, one, split=split, loss=loss, factor=factor, **options)[0]
        # found to 1 % by bisection; 3 digits keep a resumed file's grid equal despite float noise
        axis, s = "xyz"[i], float(f"{span.span:.3g}")
        spans[i] = s
        attrs.update({f"{axis}span_auto": s, f"{axis}span_factor": factor, f"{axis}span_reached": bool(span.reached)})
        if progress:
            reached = "" if span.reached else f" (not reached by {s:g}: the span is capped)"
            print(f"{axis} axis auto: the {split} loss reaches {factor:g}x its center value "
                  f"{span.center_loss:.4g} at +-{s:g}{reached}; axis -{s:g}:{s:g}:{num}", file=sys.stderr, flush=True)
    return spans, attrs
