"""Reduced-precision surfaces with a measured error.

``precision="bf16"`` (or ``"fp16"``) runs the forward passes of a surface under
``torch.autocast`` (the point's weights are built in float32; losses are computed and summed in
float32/float64). ``"fp32"`` -- the default, spelled ``"none"`` by older files and flags -- is
the exact path.

Where it pays: on CUDA GPUs with bf16/fp16 tensor cores (``torch.cuda.is_bf16_supported()``),
and on x86 CPUs with bf16 units (the ``avx512_bf16`` or ``amx_bf16`` flags: Intel Cooper Lake,
Sapphire Rapids and later, AMD Zen 4 and later), where oneDNN runs bf16 convolutions and matrix
products natively. Elsewhere the reduced types are emulated: values come out with the same kind
of error but usually slower than fp32 (:func:`hardware_note` says so). fp16 on CPUs needs
``avx512_fp16``/``amx_fp16``, which few CPUs have; prefer bf16 there.

The error is measured, not assumed: after the surface, :func:`precision_check` recomputes a
fixed set of its points (the point nearest the origin, the grid's corners and
:data:`RANDOM_POINTS` seeded random ones) on the exact path and stores the largest absolute error
of the losses and the largest error relative to the surface's range as file attributes
(``precision_error_abs``, ``precision_error_rel``); above :data:`ERROR_THRESHOLD` of the range it
warns loudly.
"""
from __future__ import annotations

import itertools
import sys
import warnings
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Sequence

import numpy as np
import torch

from .grid import Grid

PRECISIONS = ("fp32", "bf16", "fp16")
ALIASES = {None: "fp32", "none": "fp32"}  # older files and flags
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
ERROR_THRESHOLD = 0.01  # largest loss error, as a fraction of the surface's range, before a loud warning
RANDOM_POINTS = 4
CHECK_SEED = 0
CPU_UNITS = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("avx512_fp16", "amx_fp16")}


class PrecisionWarning(UserWarning):
    """A reduced-precision surface whose measured error exceeds the threshold."""


def precision_name(precision: Optional[str]) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"`` for a precision or its alias (None, ``"none"``)."""
    name = ALIASES.get(precision, precision)
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (or none = fp32); got {precision!r}")
    return name


def autocast_dtype(precision: Optional[str]) -> Optional[torch.dtype]:
    """The autocast dtype of a precision (None for fp32)."""
    return DTYPES[precision_name(precision)]


def cpu_flags() -> set:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; empty where unknown)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith(("flags", "Features"))), "")
    return set(line.partition(":")[2].split())


def hardware_note(precision: Optional[str], device) -> Optional[str]:
    """None when ``device`` runs ``precision`` natively (or it is fp32); else one sentence saying
    that the hardware has no units for it (or that this cannot be told)."""
    name = precision_name(precision)
    device = torch.device(device)
    if name == "fp32":
        return None
    if device.type == "cuda":
        if name == "bf16" and not torch.cuda.is_bf16_supported():
            return f"{torch.cuda.get_device_name(device)} has no bf16 units: bf16 is emulated, slower than fp32"
        return None
    if device.type != "cpu":
        return f"{name} support on {device.type} is not checked"
    flags = cpu_flags()
    if not flags:
        return f"cannot tell whether this CPU has {name} units (no /proc/cpuinfo)"
    if not flags & set(CPU_UNITS[name]):
        return (f"this CPU has no {name} units ({' or '.join(CPU_UNITS[name])}): {name} is emulated and "
                "usually slower than fp32")
    return None


def check_indices(grid: Grid, random_points: int = RANDOM_POINTS, seed: int = CHECK_SEED) -> np.ndarray:
    """Flat indices (sorted, unique) of the points checked: the one nearest the origin, every
    corner of the grid, and ``random_points`` others drawn with ``seed``."""
    shape = grid.shape
    corners = [np.ravel_multi_index(c, shape) for c in itertools.product(*[(0, n - 1) for n in shape])]
    centre = int(np.argmin(np.linalg.norm(grid.coords(np.arange(grid.size)), axis=1)))
    chosen = set(map(int, corners)) | {centre}
    others = np.setdiff1d(np.arange(grid.size), sorted(chosen))
    draw = np.random.default_rng(seed).choice(others, size=min(random_points, len(others)), replace=False)
    return np.array(sorted(chosen | set(map(int, draw))), dtype=np.int64)


def precision_check(exact: Callable[[np.ndarray], np.ndarray], grid: Grid, values: Mapping[str, np.ndarray],
                    keys: Sequence[str], *, threshold: float = ERROR_THRESHOLD,
                    random_points: int = RANDOM_POINTS, seed: int = CHECK_SEED) -> Dict[str, object]:
    """The error of a reduced-precision surface, measured at :func:`check_indices` points.

    Args:
        exact: ``exact(coords (k, ndim)) -> rows (k, len(keys))`` on the exact (fp32) path.
        grid: the surface's grid; ``values[key]`` its computed arrays (``grid.shape``).
        keys: the value names, in ``exact``'s column order (``*_loss``, ``*_acc``).
        threshold: the relative error above which a :class:`PrecisionWarning` is raised.

    Returns:
        file attributes: ``precision_error_abs`` (largest absolute loss error),
        ``precision_error_rel`` (largest loss error divided by that loss's range over the
        surface; by its largest magnitude when the surface is flat), ``precision_error_key``,
        ``precision_acc_error`` (largest accuracy difference, percentage points; NaN without
        accuracies), ``precision_check_points`` and ``precision_error_threshold``.
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold!r}")
    indices = check_indices(grid, random_points, seed)
    reference = np.asarray(exact(grid.coords(indices)), dtype=np.float64).reshape(len(indices), len(keys))
    worst_abs, worst_rel, worst_key, acc = 0.0, 0.0, "", []
    for j, key in enumerate(keys):
        computed = np.asarray(values[key], dtype=np.float64)
        error = point_errors(computed.reshape(-1)[indices], reference[:, j])
        if not key.endswith("_loss"):
            acc.append(float(np.nanmax(error, initial=0.0)))
            continue
        finite = computed[np.isfinite(computed)]
        scale = float(np.ptp(finite)) if finite.size else 0.0
        scale = scale if scale > 0 else float(np.max(np.abs(finite), initial=0.0)) or 1.0
        largest = float(np.max(error, initial=0.0))
        worst_abs = max(worst_abs, largest)
        if largest / scale >= worst_rel:
            worst_rel, worst_key = largest / scale, key
    attrs = {"precision_error_abs": worst_abs, "precision_error_rel": worst_rel, "precision_error_key": worst_key,
             "precision_acc_error": float(max(acc)) if acc else float("nan"),
             "precision_check_points": len(indices), "precision_error_threshold": float(threshold)}
    if not worst_rel <= threshold:
        warnings.warn(f"LARGE PRECISION ERROR: {check_summary(attrs)}; recompute with precision fp32",
                      PrecisionWarning, stacklevel=2)
    return attrs


def point_errors(computed: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """``|computed - exact|`` per point: 0 where both are equal (NaN included: diverged on both
    paths), infinite where only one is finite."""
    error = np.abs(computed - exact)
    error[(computed == exact) | (np.isnan(computed) & np.isnan(exact))] = 0.0
    error[np.isnan(error)] = np.inf
    return error


def check_summary(attrs: Mapping) -> str:
    """One line: the measured error of a reduced-precision surface (from its attributes)."""
    return (f"{attrs.get('precision', 'reduced')} error at {attrs['precision_check_points']} fp32 check points: "
            f"largest {attrs['precision_error_abs']:.3g} ({100 * attrs['precision_error_rel']:.3g}% of the "
            f"{attrs['precision_error_key'] or 'loss'} range; threshold "
            f"{100 * attrs['precision_error_threshold']:.3g}%)")


def check_reduced_precision(result, exact: Callable[[np.ndarray], np.ndarray], keys: Sequence[str], *,
                  surf_file=None, progress: bool = True, threshold: float = ERROR_THRESHOLD) -> None:
    """Measure a finished reduced-precision surface's error (:func:`precision_check`), add the
    attributes to ``result.attrs`` and to ``surf_file`` (when given), and print the summary to
    stderr (unless ``progress`` is False). Nothing is done for an fp32 surface."""
    name = precision_name(result.attrs.get("precision"))
    if name == "fp32" or "precision_error_abs" in result.attrs:  # exact, or measured already
        return
    attrs = precision_check(exact, result.grid, result.values, keys, threshold=threshold)
    result.attrs.update(attrs)
    if surf_file is not None:
        from .store import add_attrs

        add_attrs(surf_file, attrs)
    if progress:
        print(check_summary({**attrs, "precision": name}), file=sys.stderr, flush=True)


def plot_caption(attrs: Mapping) -> str:
    """A short caption of a surface's measured precision error for its plots ("" for fp32)."""
    if "precision_error_abs" not in attrs or precision_name(attrs.get("precision")) == "fp32":
        return ""
    return (f"{attrs['precision']}: loss error {attrs['precision_error_abs']:.2g} "
            f"({100 * attrs['precision_error_rel']:.2g}% of range, {attrs['precision_check_points']} fp32 checks)")
