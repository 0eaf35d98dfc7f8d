"""Grids of coordinates along 1, 2 or 3 directions, and the flat point order the engine uses.

An axis is written ``"start:stop:num"`` (as in tomgoldstein/loss-landscape): ``num`` evenly
spaced values from ``start`` to ``stop`` inclusive (``np.linspace``). Rules: ``num`` is an
integer >= 1; ``stop > start`` when ``num > 1``; ``num == 1`` needs ``stop == start`` (one
coordinate). Descending axes are refused, so every stored axis increases.

Points are numbered in meshgrid-'xy' order, the order of ``np.meshgrid(x, y).ravel()``: the flat
index ``k`` of a 2D grid is ``(x[k % nx], y[k // nx])``, and value arrays have shape
``(nx,)``, ``(ny, nx)`` or ``(nz, ny, nx)`` so that ``Z[i, j]`` lies at ``(x[j], y[i])``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np

AxisSpec = Union[str, Sequence[float], np.ndarray]

_INT = re.compile(r"^[+]?\d+$")


def parse_axis(spec: AxisSpec, name: str = "x") -> np.ndarray:
    """``"start:stop:num"`` (or an increasing sequence of numbers) -> float64 array (num,)."""
    if not isinstance(spec, str):
        values = np.asarray(spec, dtype=np.float64).ravel()
        if values.size == 0 or not np.all(np.isfinite(values)) or np.any(np.diff(values) <= 0):
            raise ValueError(f"{name} coordinates must be finite, non-empty and increasing")
        return values
    parts = [p.strip() for p in spec.split(":")]
    if len(parts) != 3:
        raise ValueError(f"--{name} {spec!r}: expected start:stop:num, e.g. -1:1:51")
    try:
        start, stop = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"--{name} {spec!r}: start and stop must be numbers") from None
    if not _INT.match(parts[2]):
        raise ValueError(f"--{name} {spec!r}: num must be a positive integer, got {parts[2]!r}")
    num = int(parts[2])
    if not (np.isfinite(start) and np.isfinite(stop)):
        raise ValueError(f"--{name} {spec!r}: start and stop must be finite")
    if num < 1:
        raise ValueError(f"--{name} {spec!r}: num must be at least 1")
    if num == 1 and stop != start:
        raise ValueError(f"--{name} {spec!r}: one point (num=1) needs stop == start")
    if num > 1 and stop <= start:
        raise ValueError(f"--{name} {spec!r}: stop must be greater than start")
    return np.linspace(start, stop, num)


@dataclass(frozen=True)
class Grid:
    """Coordinates along each direction: ``axes`` is ``(x,)``, ``(x, y)`` or ``(x, y, z)``."""

    axes: Tuple[np.ndarray, ...]

    @property
    def ndim(self) -> int:
        return len(self.axes)

    @property
    def shape(self) -> Tuple[int, ...]:
        """Value-array shape: ``(nx,)``, ``(ny, nx)`` or ``(nz, ny, nx)``."""
        return tuple(len(a) for a in reversed(self.axes))

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def coords(self, indices) -> np.ndarray:
        """Flat point indices (k,) -> coordinates (k, ndim), columns x, y, z."""
        multi = np.unravel_index(np.asarray(indices, dtype=np.int64), self.shape)
        return np.stack([axis[i] for axis, i in zip(self.axes, reversed(multi))], axis=1)


def make_grid(x: AxisSpec, y: Optional[AxisSpec] = None, z: Optional[AxisSpec] = None) -> Grid:
    """A 1D (x), 2D (x, y) or 3D volume (x, y, z) grid from axis specs or coordinate arrays."""
    if z is not None and y is None:
        raise ValueError("a z axis needs a y axis")
    specs = [("x", x), ("y", y), ("z", z)]
    return Grid(tuple(parse_axis(s, n) for n, s in specs if s is not None))
