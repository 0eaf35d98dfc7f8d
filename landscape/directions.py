"""Directions in weight space (Li et al. 2018): random and normalized, toward other models, or PCA.

A *direction* is a list of tensors with the shapes of the tensors it moves, in a fixed order:

- ``dir_type="weights"``: the model's parameters, in ``model.named_parameters()`` order;
- ``dir_type="states"``: every ``state_dict()`` entry, BN running statistics included.

Non-floating entries (BN ``num_batches_tracked``) always get a zero direction and never move.

Random directions are Gaussian, drawn on the CPU from an explicit seed (the same seed gives the
same directions on any device and dtype), then normalized entry by entry:

- ``filter``: each output filter / neuron row ``i`` of a tensor with dim > 1 is rescaled to the
  norm of the weights' row: ``d_i <- d_i * ||w_i|| / (||d_i|| + 1e-10)``;
- ``layer``: the whole tensor, ``d <- d * ||w|| / (||d|| + 1e-10)``;
- ``weight``: ``d <- d * w`` (elementwise);
- ``none``: kept as drawn.

1-D (and 0-D) entries -- biases, BN affine parameters and running statistics -- follow the
``ignore`` policy: ``"biasbn"`` (default) sets their direction to zero; ``"none"`` keeps their
random entries and normalizes each such tensor as a whole layer (``filter`` acts as ``layer``).
The de facto code's third behaviour, silently using ``d = w``, is not offered.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from regularizers import safe_io

DIR_TYPES = ("weights", "states")
NORMS = ("filter", "layer", "weight", "none")
IGNORES = ("biasbn", "none")
AXES = "xyz"

Source = Union[nn.Module, Mapping[str, torch.Tensor]]


@dataclass
class Directions:
    """One to three directions (``axes``: x, y, z), each a list of CPU tensors.

    ``info`` holds one dict per axis describing how it was made (``kind``: random / target /
    pca, and ``norm``, ``ignore``, ``seed`` for random ones); ``meta`` holds facts about the
    whole set (PCA explained variance).
    """

    axes: List[List[torch.Tensor]]
    dir_type: str = "weights"
    info: List[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        check_choice("dir_type", self.dir_type, DIR_TYPES)
        if not 1 <= len(self.axes) <= 3:
            raise ValueError(f"expected 1 to 3 directions, got {len(self.axes)}")
        if not self.info:
            self.info = [{} for _ in self.axes]

    @property
    def ndim(self) -> int:
        """The number of directions (1 to 3)."""
        return len(self.axes)

    def attrs(self) -> dict:
        """Flat provenance, e.g. ``{"dir_type": "weights", "xkind": "random", "xnorm": "filter"}``."""
        return settings_attrs(self.dir_type, self.info)


def settings_attrs(dir_type: str, info: Sequence[dict]) -> dict:
    """The flat provenance of directions of ``dir_type`` made as ``info`` says (one dict per axis)."""
    out = {"dir_type": dir_type}
    for axis, settings in zip(AXES, info):
        out.update({f"{axis}{key}": value for key, value in settings.items()})
    return out


def check_choice(what: str, value, choices) -> None:
    """One-line ValueError when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(map(str, choices))}; got {value!r}")


def _ignore_name(ignore) -> str:
    name = "none" if ignore is None else ignore
    check_choice("ignore", name, IGNORES)
    return name


def direction_names(model: nn.Module, dir_type: str = "weights") -> List[str]:
    """Names of the tensors a direction moves, in direction order."""
    check_choice("dir_type", dir_type, DIR_TYPES)
    if dir_type == "weights":
        return [name for name, _ in model.named_parameters()]
    return list(model.state_dict().keys())


def tensors_of(source: Source, names: Sequence[str]) -> List[torch.Tensor]:
    """The tensors ``names`` of a model or state dict, detached, on the CPU."""
    state = source.state_dict() if isinstance(source, nn.Module) else source
    missing = [n for n in names if n not in state]
    if missing:
        raise ValueError(f"the other model / checkpoint lacks {missing[0]!r} "
                         f"({len(missing)} tensors missing)")
    return [state[n].detach().cpu() for n in names]


def origin(model: nn.Module, dir_type: str = "weights") -> List[torch.Tensor]:
    """The model's tensors that a direction moves, detached on the CPU (for a CPU model they
    share its memory: read only)."""
    return tensors_of(model, direction_names(model, dir_type))


def movable(w: torch.Tensor, ignore="biasbn") -> bool:
    """Whether a direction may move ``w``: floating, and not 1-D under ``ignore="biasbn"``."""
    return w.is_floating_point() and not (w.dim() <= 1 and _ignore_name(ignore) == "biasbn")


def normalize(d: torch.Tensor, w: torch.Tensor, *, norm: str = "filter", ignore="biasbn") -> torch.Tensor:
    """Return ``d`` rescaled to the scale of ``w`` (see the module docstring); ``d`` is unchanged."""
    check_choice("norm", norm, NORMS)
    if not movable(w, _ignore_name(ignore)):
        return torch.zeros(w.shape, dtype=w.dtype if w.is_floating_point() else torch.float32)
    d = d.to(w.dtype)
    if norm == "filter" and w.dim() <= 1:
        norm = "layer"
    if norm == "filter":
        scale = w.reshape(len(w), -1).norm(dim=1) / (d.reshape(len(d), -1).norm(dim=1) + 1e-10)
        return d * scale.view(-1, *[1] * (d.dim() - 1))
    if norm == "layer":
        return d * (w.norm() / (d.norm() + 1e-10))
    if norm == "weight":
        return d * w
    return d.clone()


def random_direction(model: nn.Module, generator: torch.Generator, *, dir_type: str = "weights",
                     norm: str = "filter", ignore="biasbn") -> List[torch.Tensor]:
    """One normalized Gaussian direction; draws ``randn`` for every entry from ``generator``."""
    out = []
    for w in origin(model, dir_type):
        d = torch.randn(w.shape, generator=generator, dtype=torch.float32)
        out.append(normalize(d, w, norm=norm, ignore=ignore))
    return out


def _per_axis(value, ndim: int, what: str) -> list:
    values = [value] * ndim if isinstance(value, str) or value is None else list(value)
    if len(values) != ndim:
        raise ValueError(f"{what}: expected one value or {ndim}, got {len(values)}")
    return values


def random_directions(model: nn.Module, *, ndim: int = 2, seed: int = 0, dir_type: str = "weights",
                      norm: Union[str, Sequence[str]] = "filter",
                      ignore: Union[Optional[str], Sequence[Optional[str]]] = "biasbn") -> Directions:
    """``ndim`` random Gaussian directions drawn from ``seed`` (x first), normalized (module docstring).

    Args:
        model: the model the directions move (its parameters, or its whole state for ``states``).
        ndim: 1 to 3 directions.
        seed: the same seed gives the same directions on any device.
        dir_type: ``"weights"`` or ``"states"``.
        norm, ignore: one value for every axis, or one per axis.

    Returns:
        :class:`Directions`: per axis one tensor per moved entry, on the CPU.

    Each filter (output row) of a direction has the norm of the weight's filter; biases get zero:

    >>> import torch
    >>> model = torch.nn.Conv2d(1, 3, 2)
    >>> (d,) = random_directions(model, ndim=1, seed=0).axes
    >>> torch.allclose(d[0].flatten(1).norm(dim=1), model.weight.detach().flatten(1).norm(dim=1), rtol=1e-5)
    True
    >>> d[1].abs().sum().item()
    0.0
    """
    generator = torch.Generator().manual_seed(int(seed))
    norms, ignores = _per_axis(norm, ndim, "norm"), [_ignore_name(i) for i in _per_axis(ignore, ndim, "ignore")]
    axes = [random_direction(model, generator, dir_type=dir_type, norm=n, ignore=i)
            for n, i in zip(norms, ignores)]
    info = [{"kind": "random", "norm": n, "ignore": i, "seed": int(seed)} for n, i in zip(norms, ignores)]
    return Directions(axes, dir_type, info)


def target_directions(model: nn.Module, *targets: Source, dir_type: str = "weights") -> Directions:
    """``w_k - w`` toward each target model / state dict: one target gives the 1D interpolation
    line (Goodfellow et al. 2015, model at x=0, target at x=1); two give the plane through three
    models (model at (0, 0), targets at (1, 0) and (0, 1))."""
    names = direction_names(model, dir_type)
    base = tensors_of(model, names)
    axes = []
    for target in targets:
        other = tensors_of(target, names)
        for name, w, t in zip(names, base, other):
            if tuple(t.shape) != tuple(w.shape):
                raise ValueError(f"the other model / checkpoint's {name!r} has shape {tuple(t.shape)}, the model's "
                                 f"is {tuple(w.shape)}: interpolation needs two models of one architecture")
        axes.append([(t.to(w.dtype) - w) if w.is_floating_point() else torch.zeros(w.shape)
                     for w, t in zip(base, other)])
    return Directions(axes, dir_type, [{"kind": "target"} for _ in axes])


def as_vector(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors into one float64 vector (N,)."""
    return torch.cat([t.detach().reshape(-1).to(torch.float64).cpu() for t in tensors])


def from_vector(vector, like: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """Split a vector (N,) into tensors shaped (and typed, floating ones) like ``like``."""
    vector = torch.as_tensor(vector)
    out, start = [], 0
    for w in like:
        piece = vector[start:start + w.numel()].reshape(w.shape)
        out.append(piece.to(w.dtype if w.is_floating_point() else torch.float32))
        start += w.numel()
    return out


def pca_directions(model: nn.Module, states: Sequence[Source], *, dir_type: str = "weights",
                   ignore="biasbn", ndim: int = 2) -> Directions:
    """The top ``ndim`` principal components of ``w_t - w_final`` over ``states`` (checkpoints of
    an optimizer path; ``model`` holds ``w_final``). Components are unit vectors over the moved
    entries (zero elsewhere); ``meta`` keeps ``explained_variance_ratio``, ``explained_variance``
    and ``singular_values`` (PCA with centering, as scikit-learn's)."""
    names = direction_names(model, dir_type)
    final = tensors_of(model, names)
    if len(states) < ndim + 1:
        raise ValueError(f"PCA with {ndim} components needs at least {ndim + 1} checkpoints, got {len(states)}")
    mask = torch.cat([torch.full((w.numel(),), movable(w, ignore)) for w in final])
    rows = torch.stack([as_vector(tensors_of(s, names)) for s in states]) - as_vector(final)
    rows = rows[:, mask].numpy()
    _, sv, vt = np.linalg.svd(rows - rows.mean(axis=0), full_matrices=False)
    if sv.size < ndim or sv[ndim - 1] <= 0:
        raise ValueError(f"the checkpoints span fewer than {ndim} dimensions; PCA is undefined")
    axes = []
    for component in vt[:ndim]:
        component = component * np.sign(component[np.argmax(np.abs(component))])
        full = torch.zeros(mask.numel(), dtype=torch.float64)
        full[mask] = torch.from_numpy(np.ascontiguousarray(component))
        axes.append(from_vector(full, final))
    meta = {"explained_variance_ratio": (sv[:ndim] ** 2 / np.sum(sv ** 2)).tolist(),
            "explained_variance": (sv[:ndim] ** 2 / (len(states) - 1)).tolist(),
            "singular_values": sv[:ndim].tolist()}
    info = [{"kind": "pca", "ignore": _ignore_name(ignore)} for _ in axes]
    return Directions(axes, dir_type, info, meta)


def check_fits(directions: Directions, model: nn.Module, where: str = "directions") -> None:
    """One-line ``ValueError`` when the directions' count or shapes do not fit ``model``."""
    names = direction_names(model, directions.dir_type)
    for axis, d in zip(AXES, directions.axes):
        if len(d) != len(names):
            raise ValueError(f"{where}: {axis}direction has {len(d)} tensors but the model has "
                             f"{len(names)} {directions.dir_type}")
        for name, t, w in zip(names, d, tensors_of(model, names)):
            if tuple(t.shape) != tuple(w.shape):
                raise ValueError(f"{where}: {axis}direction entry {name!r} has shape {tuple(t.shape)}, "
                                 f"the model's is {tuple(w.shape)}")


def check_finite(directions: Directions, where: str = "directions") -> None:
    """One-line ``ValueError`` naming the first direction entry holding NaN or infinity."""
    safe_io.check_finite({f"{axis}direction entry {i}": t for axis, d in zip(AXES, directions.axes)
                          for i, t in enumerate(d)}, where, "damaged directions")


def check_finite_weights(model: nn.Module) -> None:
    """One-line ``ValueError`` naming the first state entry of ``model`` holding NaN or infinity."""
    safe_io.check_finite(model.state_dict(), "the model", "a diverged or damaged model (its surface would be "
                                                          "meaningless)")
