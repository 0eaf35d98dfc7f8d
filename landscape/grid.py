"""Grids of coordinates along 1, 2 or 3 directions, and the flat point order the engine uses.

An axis is written ``"start:stop:num"`` (as in tomgoldstein/loss-landscape): ``num`` evenly
spaced values from ``start`` to ``stop`` inclusive (``np.linspace``). Rules: ``num`` is an
integer >= 1; ``stop > start`` when ``num > 1``; ``num == 1`` needs ``stop == start`` (one
coordinate). Descending axes are refused, so every stored axis increases.

Points are numbered in meshgrid-'xy' order, the order of ``np.meshgrid(x, y).ravel()``: the flat
index ``k`` of a 2D grid is ``(x[k % nx], y[k // nx])``, and value arrays have shape
``(nx,)``, ``(ny, nx)`` or ``(nz, ny, nx)`` so that ``Z[i, j]`` lies at ``(x[j], y[i])``.

:func:`make_grid` checks a grid's size against the memory available before it allocates
anything: a surface holds its values in memory (:data:`BYTES_PER_VALUE` per value and point, plus
:data:`BYTES_PER_POINT` for the done mark and the point index), so a mistyped ``num`` is a
one-line error with the estimated size instead of a huge allocation.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

AxisSpec = Union[str, Sequence[float], np.ndarray]

_INT = re.compile(r"^[+]?\d+$")
BYTES_PER_VALUE = 8   # one float64 value (a loss or an accuracy) of one point
BYTES_PER_POINT = 9   # the done mark (1) and the point's flat index (8)


def _parse_spec(spec: str, name: str) -> Tuple[float, float, int]:
    """``"start:stop:num"`` -> ``(start, stop, num)``, checked; nothing is allocated."""
    where = f"{name} axis {spec!r}"
    parts = [p.strip() for p in spec.split(":")]
    if len(parts) != 3:
        raise ValueError(f"{where}: expected start:stop:num, e.g. -1:1:51")
    try:
        start, stop = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"{where}: start and stop must be numbers") from None
    if not _INT.match(parts[2]):
        raise ValueError(f"{where}: num must be a positive integer, got {parts[2]!r}")
    num = int(parts[2])
    if not (np.isfinite(start) and np.isfinite(stop) and np.isfinite(stop - start)):
        raise ValueError(f"{where}: start and stop must be finite (and so must stop - start)")
    if num < 1:
        raise ValueError(f"{where}: num must be at least 1")
    if num == 1 and stop != start:
        raise ValueError(f"{where}: one point (num=1) needs stop == start")
    if num > 1 and stop <= start:
        raise ValueError(f"{where}: stop must be greater than start")
    return start, stop, num


def parse_axis(spec: AxisSpec, name: str = "x") -> np.ndarray:
    """An axis spec as coordinates.

    Args:
        spec: ``"start:stop:num"`` (``num`` values from ``start`` to ``stop`` inclusive), or an
            increasing sequence of finite numbers.
        name: the axis's name in error messages (``x``, ``y`` or ``z``).

    Returns:
        float64 array (num,), increasing.

    Raises:
        ValueError: a malformed spec, or one whose 1D surface alone would not fit in memory
            (:func:`check_size`, before anything is allocated).
    """
    if not isinstance(spec, str):
        values = np.asarray(spec, dtype=np.float64).ravel()
        if values.size == 0 or not np.all(np.isfinite(values)) or np.any(np.diff(values) <= 0):
            raise ValueError(f"{name} coordinates must be finite, non-empty and increasing")
        return values
    start, stop, num = _parse_spec(spec, name)
    check_size([num])
    return np.linspace(start, stop, num)


def available_memory() -> int:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``, else the free
    physical pages, else the physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    pages = os.sysconf("SC_AVPHYS_PAGES") if "SC_AVPHYS_PAGES" in os.sysconf_names else os.sysconf("SC_PHYS_PAGES")
    return int(pages) * int(os.sysconf("SC_PAGE_SIZE"))


def free_memory(device) -> int:
    """Bytes free on ``device``: CUDA's free memory on a GPU, else :func:`available_memory`."""
    import torch  # here, so that parsing axes does not load torch

    device = torch.device(device)
    return int(torch.cuda.mem_get_info(device)[0]) if device.type == "cuda" else available_memory()


def _size(nbytes: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if nbytes < 1024 or unit == "PiB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return ""


def check_size(nums: Sequence[int], values_per_point: int = 4, available: Optional[int] = None) -> int:
    """Refuse a grid whose surface would not fit in memory.

    Args:
        nums: the number of coordinates along each axis.
        values_per_point: values stored per point (train/test loss and accuracy: 4).
        available: bytes available (default: :func:`available_memory`).

    Returns:
        The estimated bytes: ``points * (values_per_point * BYTES_PER_VALUE + BYTES_PER_POINT)``
        plus the coordinates.

    Raises:
        ValueError: the estimate exceeds ``available``; the message gives both sizes.
    """
    points = int(np.prod([int(n) for n in nums], dtype=object))
    need = points * (values_per_point * BYTES_PER_VALUE + BYTES_PER_POINT) + 8 * sum(int(n) for n in nums)
    available = available_memory() if available is None else available
    if need > available:
        shape = " x ".join(str(int(n)) for n in nums) + " = " if len(nums) > 1 else ""
        raise ValueError(f"a grid of {shape}{points:,} points needs about {_size(need)} of memory "
                         f"for its values, more than the {_size(available)} available; use fewer points")
    return need


@dataclass(frozen=True)
class Grid:
    """Coordinates along each direction: ``coordinates`` is ``(x,)``, ``(x, y)`` or ``(x, y, z)``
    (the name :class:`landscape.store.SurfaceResult` uses too)."""

    coordinates: Tuple[np.ndarray, ...]

    @property
    def ndim(self) -> int:
        """1, 2 or 3."""
        return len(self.coordinates)

    @property
    def shape(self) -> Tuple[int, ...]:
        """Value-array shape: ``(nx,)``, ``(ny, nx)`` or ``(nz, ny, nx)``."""
        return tuple(len(a) for a in reversed(self.coordinates))

    @property
    def size(self) -> int:
        """The number of points."""
        return int(np.prod(self.shape))

    def coords(self, indices) -> np.ndarray:
        """Flat point indices (k,) -> coordinates (k, ndim), columns x, y, z."""
        multi = np.unravel_index(np.asarray(indices, dtype=np.int64), self.shape)
        return np.stack([axis[i] for axis, i in zip(self.coordinates, reversed(multi))], axis=1)


AUTO_POINTS = 51     # points of an automatic axis ("auto")
AUTO_FACTOR = 2.0    # the loss factor an automatic axis reaches at its ends


def is_auto(spec) -> bool:
    """Whether an axis spec is ``"auto[:NUM[:FACTOR]]"``."""
    return isinstance(spec, str) and spec.split(":")[0].strip() == "auto"


def parse_auto(spec: str) -> Tuple[int, float]:
    """``"auto[:NUM[:FACTOR]]"`` -> ``(num, factor)`` (defaults 51 points, factor 2)."""
    parts = [p.strip() for p in spec.split(":")][1:]
    try:
        num = int(parts[0]) if parts and parts[0] else AUTO_POINTS
        factor = float(parts[1]) if len(parts) > 1 else AUTO_FACTOR
    except ValueError:
        num, factor = 0, 0.0
    if len(parts) > 2 or num < 2 or not factor > 1 or not np.isfinite(factor):
        raise ValueError(f"axis {spec!r}: expected auto[:NUM[:FACTOR]] with NUM >= 2 and FACTOR > 1, "
                         "e.g. auto:51:2")
    return num, factor


@dataclass(frozen=True)
class Axes:
    """The axes of a grid as asked for, checked: ``specs`` (x, y, z order) and, for automatic
    axes, ``automatic[i] = (num, factor)`` (their span is found later, :mod:`landscape.span`)."""

    specs: Tuple[AxisSpec, ...]
    automatic: Dict[int, Tuple[int, float]]

    @property
    def ndim(self) -> int:
        """1, 2 or 3."""
        return len(self.specs)

    def grid(self, spans: Optional[Mapping[int, float]] = None) -> Grid:
        """The :class:`Grid`; automatic axis ``i`` spans ``[-spans[i], spans[i]]``."""
        spans = spans or {}
        missing = [AXES_NAMES[i] for i in self.automatic if i not in spans]
        if missing:
            raise ValueError(f"the automatic {missing[0]} axis needs its span (landscape.span)")
        return Grid(tuple(np.linspace(-spans[i], spans[i], self.automatic[i][0]) if i in self.automatic
                          else parse_axis(spec, AXES_NAMES[i]) for i, spec in enumerate(self.specs)))


AXES_NAMES = "xyz"


def resolve_axes(x: AxisSpec, y: Optional[AxisSpec] = None, z: Optional[AxisSpec] = None, *,
                 values_per_point: int = 4) -> Axes:
    """The one place the axis rules are checked: ``z`` needs ``y``; every spec is
    ``"start:stop:num"``, an increasing array or ``"auto[:NUM[:FACTOR]]"``; the grid fits in
    memory (:func:`check_size`, an automatic axis counting its ``NUM`` points). Nothing large
    is allocated.

    Returns:
        The :class:`Axes`.
    """
    if z is not None and y is None:
        raise ValueError("a z axis needs a y axis (a 3D volume is x, y, z)")
    specs = tuple(s for s in (x, y, z) if s is not None)
    automatic = {i: parse_auto(s) for i, s in enumerate(specs) if is_auto(s)}
    nums = [automatic[i][0] if i in automatic else _parse_spec(s, AXES_NAMES[i])[2] if isinstance(s, str)
            else parse_axis(s, AXES_NAMES[i]).size for i, s in enumerate(specs)]
    check_size(nums, values_per_point)
    return Axes(specs, automatic)


def make_grid(x: AxisSpec, y: Optional[AxisSpec] = None, z: Optional[AxisSpec] = None, *,
              values_per_point: int = 4) -> Grid:
    """A 1D (x), 2D (x, y) or 3D volume (x, y, z) grid, checked by :func:`resolve_axes`.

    Args:
        x, y, z: axis specs ``"start:stop:num"`` or coordinate arrays; ``z`` needs ``y``.
        values_per_point: values a surface stores per point, for the memory check
            (:func:`check_size`).

    Returns:
        The :class:`Grid`.
    """
    axes = resolve_axes(x, y, z, values_per_point=values_per_point)
    if axes.automatic:
        raise ValueError("an automatic axis (auto[:NUM[:FACTOR]]) needs a model: use compute_surface")
    return axes.grid()
