"""Loss landscapes of neural networks: directions, grids, evaluation, HDF5 store and plots.

The public names below are imported on first use (so ``landscape --help`` does not load torch):

>>> from landscape import compute_surface, AxisRecipe
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_HOMES = {
    "compute_surface": "surface", "interpolate": "surface", "SurfaceResult": "store",
    "AxisRecipe": "recipes", "open_directions": "recipes", "provenance": "recipes", "weights_sha256": "recipes",
    "Directions": "directions", "random_directions": "directions", "target_directions": "directions",
    "pca_directions": "directions", "Grid": "grid", "make_grid": "grid", "resolve_axes": "grid",
    "Evaluator": "perturbed", "read_surface": "store", "load_directions": "store", "save_directions": "store",
    "direction_spans": "span", "runner": "sharding",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    """The public names of :data:`__all__`, imported from their modules on first use."""
    if name in _HOMES:
        value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
