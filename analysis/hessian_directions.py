"""Loss-landscape directions along the Hessian's top eigenvectors.

Random directions show a slice of the landscape chosen by chance; the top-k eigenvectors of the
Hessian at the model show the directions of strongest curvature. Near a minimum the loss along
the unit eigenvector ``v_k`` is ``L(w + a v_k) = L(w) + a g.v_k + lambda_k a^2 / 2 + O(a^3)``,
so a 1D surface along ``v_1`` is the sharpest parabola through the model and a 2D surface along
``(v_1, v_2)`` the sharpest plane.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from analysis.curvature import Params, select_params, top_eigenvalues
from landscape.directions import Directions
from regularizers.evaluation import loss_name, split_source


def hessian_directions(model: nn.Module, data, k: int = 2, *, split: str = "train", loss="crossentropy",
                       output=None, params: Params = "all", batch_size: Optional[int] = None,
                       seed: int = 0, tol: float = 1e-6, maxiter: Optional[int] = None) -> Directions:
    """The ``k`` (1 to 3) top Hessian eigenvectors as landscape :class:`Directions`.

    The eigenpairs come from :func:`analysis.curvature.top_eigenvalues` (Lanczos, the ``k``
    largest algebraic eigenvalues, descending: x is the sharpest direction). Each direction is
    the unit eigenvector in the direction-file layout: one tensor per
    ``model.named_parameters()`` entry (``dir_type="weights"``), zeros for parameters outside
    ``params``; its sign makes its largest-magnitude entry positive. Coordinates along them are
    therefore Euclidean distances in parameter space (no filter normalization).

    Args:
        model: any ``nn.Module``; left unchanged.
        data: any form of :func:`regularizers.evaluation.data_splits`; ``split`` picks the split.
        k: number of directions, 1 to 3.
        loss, output, batch_size: as in :mod:`analysis.curvature`.
        params: ``"all"`` (default), ``"weights"`` (tensors with dim > 1) or a list of parameters.
        seed, tol, maxiter: of the Lanczos solver.

    Returns:
        :class:`Directions` with ``info`` per axis ``{"kind": "hessian", "seed": seed}`` and
        ``meta``: ``eigenvalues`` (k,) descending, ``params``, ``loss``, ``split``, ``num_hvp``.

    Raises:
        ValueError: ``k`` outside 1..3, or more directions than chosen parameter entries.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 3:
        raise ValueError(f"k must be 1, 2 or 3 directions, got {k!r}")
    chosen = {id(p) for p in select_params(model, params)}
    named = list(model.named_parameters())
    if k > sum(p.numel() for _, p in named if id(p) in chosen):
        raise ValueError(f"{k} Hessian directions need at least {k} chosen parameter entries")
    result = top_eigenvalues(model, {"train": split_source(data, split)}, int(k), loss=loss, output=output,
                             batch_size=batch_size, params=params, seed=seed, tol=tol, maxiter=maxiter)
    axes = []
    for vector in result.vectors.T:
        vector = vector * np.sign(vector[np.argmax(np.abs(vector))])
        pieces, start = [], 0
        for _, p in named:
            if id(p) in chosen:
                piece = torch.from_numpy(vector[start:start + p.numel()].copy()).reshape(p.shape)
                start += p.numel()
            else:
                piece = torch.zeros(p.shape, dtype=torch.float64)
            pieces.append(piece.to(p.dtype))
        axes.append(pieces)
    meta = {"eigenvalues": result.values.tolist(),
            "params": params if isinstance(params, str) else "list", "loss": loss_name(loss),
            "split": split, "num_hvp": result.num_hvp}
    return Directions(axes, "weights", [{"kind": "hessian", "seed": int(seed)} for _ in axes], meta)
