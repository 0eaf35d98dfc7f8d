"""Direction and surface files as a user keeps them: derived names, reuse, provenance.

A surface is made from *recipes*, one per axis (:class:`AxisRecipe`: a random direction from a
seed, or the line toward a target model). :func:`open_directions` turns recipes into
:class:`~landscape.directions.Directions` and keeps them in a direction file: an existing file
given by name is used as it is (ours or tomgoldstein/loss-landscape's); without a name, one is
derived from the settings (:func:`direction_file_name`) and reused only when it was made with the
same settings. :func:`surface_file_name` derives a surface file's name from its direction file,
grid, loss and splits -- the names ``landscape surface`` has always used.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Tuple

from torch import nn

from regularizers.data import SPLITS
from regularizers.evaluation import loss_name

from .directions import Directions, Source, origin, random_directions, settings_attrs, target_directions
from .store import file_sha256, load_directions, mismatch, read_attrs, save_directions, tensors_sha256


@dataclass(frozen=True)
class AxisRecipe:
    """How one axis is made.

    Attributes:
        kind: ``"random"`` (Gaussian, normalized per ``norm`` / ``ignore``, drawn from ``seed``),
            ``"target"`` (``target - model``) or ``"hessian"`` (a top Hessian eigenvector of the
            ``loss`` over the train split of ``data``, by Lanczos from ``seed``; see
            :func:`landscape.hessian.hessian_axes`).
        target: the model or state dict at coordinate 1 (``kind="target"``).
        target_sha256: what identifies the target in files (a checkpoint's hash).
        data, output, loss, samples, progress: of a Hessian axis: the data (any form of
            :func:`regularizers.evaluation.data_splits`), the model's prediction (``output=`` of
            :func:`regularizers.evaluation.select_output`), the loss name, a seeded subset of that
            many train examples (None: the whole split) and a progress line on stderr.
    """

    kind: str = "random"
    norm: str = "filter"
    ignore: str = "biasbn"
    seed: int = 0
    target: Optional[Source] = field(default=None, compare=False, repr=False)
    target_sha256: str = "none"
    data: Any = field(default=None, compare=False, repr=False)
    output: Any = field(default=None, compare=False, repr=False)
    loss: Any = "crossentropy"
    samples: Optional[int] = None
    progress: bool = field(default=False, compare=False, repr=False)

    def __post_init__(self):
        if self.kind not in ("random", "target", "hessian"):
            raise ValueError(f"axis kind must be 'random', 'target' or 'hessian', got {self.kind!r}")
        if self.kind == "target" and self.target is None:
            raise ValueError("a target axis needs the target model (target=...)")
        if self.kind == "hessian" and self.data is None:
            raise ValueError("a hessian axis needs the data its Hessian is taken on (data=...)")

    def info(self) -> dict:
        """The per-axis settings stored in direction files."""
        if self.kind == "target":
            return {"kind": "target", "sha256": self.target_sha256}
        if self.kind == "hessian":
            return {"kind": "hessian", "seed": self.seed, "loss": loss_name(self.loss),
                    "samples": "all" if self.samples is None else self.samples}
        return {"kind": "random", "norm": self.norm, "ignore": self.ignore, "seed": self.seed}


def build_directions(model: nn.Module, recipes: Sequence[AxisRecipe], dir_type: str = "weights") -> Directions:
    """Directions following ``recipes``; random axes are drawn together from the first random
    recipe's seed (so axis 2 of a 2D set differs from axis 1); Hessian axes are the top
    eigenvectors, found together (all of them, for now: no mixing with other kinds)."""
    if any(r.kind == "hessian" for r in recipes):
        from .hessian import hessian_axes

        if dir_type != "weights":
            raise ValueError("Hessian directions move the parameters: use dir_type 'weights'")
        return hessian_axes(model, recipes)
    random = [r for r in recipes if r.kind == "random"]
    drawn = random_directions(model, ndim=len(random), seed=random[0].seed, dir_type=dir_type,
                              norm=[r.norm for r in random], ignore=[r.ignore for r in random]).axes if random else []
    axes = []
    for recipe in recipes:
        if recipe.kind == "target":
            axes += target_directions(model, recipe.target, dir_type=dir_type).axes
        else:
            axes.append(drawn.pop(0))
    return Directions(axes, dir_type, [r.info() for r in recipes])


def direction_file_name(stem: str, recipes: Sequence[AxisRecipe], dir_type: str) -> str:
    """``<stem>_<dir_type>_x...`` naming every setting of the recipes (the de facto scheme)."""
    name = f"{stem}_{dir_type}"
    for axis, recipe in zip("xyz", recipes):
        if recipe.kind == "hessian":
            name += f"_{axis}=hessian"
        else:
            name += (f"_{axis}=target" if recipe.kind == "target"
                     else f"_{axis}ignore={recipe.ignore}_{axis}norm={recipe.norm}")
    if recipes[0].kind == "hessian" and recipes[0].samples is not None:
        name += f"_samples={recipes[0].samples}"
    seeds = [r.seed for r in recipes if r.kind != "target"]
    if seeds:
        name += f"_seed={seeds[0]}"
    return name + ".h5"


def surface_file_name(dir_file, axes: Sequence, loss: str, splits: Sequence[str]) -> str:
    """``<dir_file stem>_[x0,x1,nx]x[y0,y1,ny]...`` plus the loss and splits when not default."""
    dir_file = str(dir_file)
    stem = dir_file[:-3] if dir_file.endswith(".h5") else dir_file
    stem += "_" + "x".join(f"[{a[0]:g},{a[-1]:g},{len(a)}]" for a in axes)
    if loss != "crossentropy":
        stem += "_" + re.sub(r"[^\w.-]+", "_", loss)
    if tuple(splits) != SPLITS:
        stem += "_" + "+".join(splits)
    return stem + ".h5"


def weights_sha256(model: nn.Module) -> str:
    """The hash of ``model``'s whole state (parameters and buffers): what binds a direction
    file and a surface file to the weights they were made for."""
    return tensors_sha256(origin(model, "states"))


def provenance(model: nn.Module, *, model_spec: str = "", checkpoint=None, data_name: str = "",
               weights: Optional[str] = None) -> dict:
    """Settings that identify the model in direction and surface files: its spec, the hash of
    its checkpoint file (``"none"`` without one) and of its state (``weights``: already
    computed, else :func:`weights_sha256`), and the data's name."""
    return {"model": model_spec, "checkpoint_sha256": file_sha256(checkpoint) if checkpoint else "none",
            "data": data_name, "weights_sha256": weights or weights_sha256(model)}


def _bound_path(path: str, weights: str) -> str:
    """A derived direction file name, or -- when a file of that name holds directions made for
    other weights -- the name with the weights' hash, ``..._w=<12 hex>.h5`` (never a reuse)."""
    if not Path(path).exists() or read_attrs(path).get("weights_sha256") == weights:
        return path
    return f"{path[:-3] if path.endswith('.h5') else path}_w={weights[:12]}.h5"


def keep_directions(path, model: nn.Module, ndim: int, make: Callable[[], Directions], *,
                    dir_type: Optional[str] = None, wanted: Optional[dict] = None,
                    attrs: Optional[dict] = None, weights: Optional[str] = None) -> Tuple[Directions, str]:
    """The first ``ndim`` directions of the direction file ``path`` when it exists, else
    ``make()`` saved there. Direction files are bound to the weights they were normalized to:
    a new file stores ``weights_sha256``, and a file made for other weights is never used.

    Args:
        make: ``() -> Directions`` with ``ndim`` axes, called only when there is no file.
        dir_type: what an existing file must hold (None: any).
        wanted: settings an existing file must have been made with; given for a derived name
            (reused only then; one holding other weights' directions gives way to a name with
            the weights' hash); None: a name the user gave, an existing file is used as it is
            unless it records other weights (refused).
        attrs: provenance stored in a new file.
        weights: :func:`weights_sha256` of ``model`` when already computed.

    Returns:
        ``(directions, path)``.

    Raises:
        ValueError: a file with too few directions, of another dir_type, not fitting the model,
            made for other weights, or made with other settings than ``wanted``.
    """
    weights = weights or weights_sha256(model)
    path = _bound_path(str(path), weights) if wanted is not None else str(path)
    if not Path(path).exists():
        directions = make()
        save_directions(path, directions, {**(attrs or {}), "weights_sha256": weights})
        return directions, path
    stored = read_attrs(path)
    if stored.get("weights_sha256", weights) != weights:
        raise ValueError(f"{path} holds directions normalized to other weights (weights_sha256 "
                         f"{str(stored['weights_sha256'])[:12]}..., the model's is {weights[:12]}...); "
                         "name another direction file")
    found = load_directions(path, model=model, dir_type=dir_type)
    if found.ndim < ndim:
        raise ValueError(f"{path} holds {found.ndim} direction(s); the grid needs {ndim}")
    differs = mismatch(stored, wanted) if wanted is not None else None
    if differs:
        raise ValueError(f"{path} was {differs}; delete it or name another direction file")
    return Directions(found.axes[:ndim], found.dir_type, found.info[:ndim], found.meta), path


def open_directions(model: nn.Module, recipes: Sequence[AxisRecipe], *, dir_type: Optional[str] = None,
                    dir_file=None, stem: str = "model", attrs: Optional[dict] = None,
                    weights: Optional[str] = None) -> Tuple[Directions, Optional[str]]:
    """The directions of ``recipes`` and the file that holds them (:func:`keep_directions`).

    Args:
        recipes: one per axis of the grid.
        dir_type: ``"weights"`` or ``"states"``; None: the file's, else weights.
        dir_file: None: the directions are made in memory and no file is written; ``"auto"``:
            :func:`direction_file_name` of ``stem``, reused only when made with the same
            settings for the same weights; a path: used as it is when it exists (its first
            ``len(recipes)`` axes; refused when it records other weights), else created.
        attrs: provenance stored in a new file and compared with a reused derived one.
        weights: :func:`weights_sha256` of ``model`` when already computed.

    Returns:
        ``(directions, dir_file)`` (``dir_file`` None when kept in memory).
    """
    chosen = dir_type or "weights"
    if dir_file is None:
        return build_directions(model, recipes, chosen), None
    info = [r.info() for r in recipes]
    derived = str(dir_file) == "auto"
    wanted = {**settings_attrs(chosen, info), **(attrs or {})} if derived else None
    path = direction_file_name(stem, recipes, chosen) if derived else dir_file
    return keep_directions(path, model, len(recipes), lambda: build_directions(model, recipes, chosen),
                           dir_type=dir_type, wanted=wanted, attrs=attrs, weights=weights)
