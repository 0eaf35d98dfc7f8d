"""Angular diversity of filters: MMA, cosine, MHE (Riesz-Fisher / log), orthogonal and SRIP losses.

Every loss takes one layer's weight ``w`` (``(out, ...)``, read as ``n = out`` rows of dimension
``d = fan_in``; see :func:`regularizers.norms.filter_rows`) and returns a differentiable scalar.
Angles are in radians. The classes sum a loss over the covered layers (conv and linear weights,
the classifier included, as in the MMA paper's best "hidden+output" setting, Table 2) and
multiply by the coefficient.

Source: Wang et al., "MMA Regularization" (seed 004): eqs. 5, 6, 9, 11, 13, 14 and Table 3.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .norms import WeightPenalty, filter_rows

CLAMP = 1e-5  # the max cosine is clamped to [-1 + CLAMP, 1 - CLAMP] before arccos


def cosine_matrix(w: torch.Tensor) -> torch.Tensor:
    """``(n, n)`` cosine similarities between the normalized rows of ``w``."""
    rows = F.normalize(filter_rows(w), dim=1)
    return rows @ rows.T


def _max_cosine(w: torch.Tensor) -> torch.Tensor:
    """``(n,)`` each row's largest cosine to another row (the diagonal is masked out)."""
    cos = cosine_matrix(w)
    return (cos - 2 * torch.eye(len(cos), dtype=cos.dtype, device=cos.device)).amax(dim=1)


def mma_loss(w: torch.Tensor) -> torch.Tensor:
    """MMA loss (eq. 6): minus the mean over rows of the angle to the nearest other row.

    The max cosine is clamped to ``[-1 + 1e-5, 1 - 1e-5]`` so identical rows get a zero (not
    NaN) gradient. Orthonormal rows give ``-pi/2``; a layer with one row gives 0.
    """
    if filter_rows(w).shape[0] < 2:
        return w.sum() * 0
    return -torch.acos(_max_cosine(w).clamp(-1 + CLAMP, 1 - CLAMP)).mean()


def cosine_loss(w: torch.Tensor) -> torch.Tensor:
    """Cosine loss (eq. 5): the mean over rows of the largest cosine to another row."""
    if filter_rows(w).shape[0] < 2:
        return w.sum() * 0
    return _max_cosine(w).mean()


def mhe_loss(w: torch.Tensor, s: float = 2, half_space: bool = False, eps: float = 1e-6) -> torch.Tensor:
    """Hyperspherical energy of the normalized rows, averaged over the ordered pairs ``i != j``.

    With squared distances ``D_ij = ||w_i - w_j||^2 = 2 - 2 cos_ij``: ``s > 0`` is the
    Riesz-Fisher energy ``mean D_ij^(-s/2)`` (eq. 9; ``s = 2`` gives 0.375 on a regular
    4-point simplex), ``s = 0`` the log energy of eq. 11, ``mean -log ||w_i - w_j||`` =
    ``mean -log(D_ij) / 2`` (``-log(8/3) / 2`` on the simplex), so the default coefficient 1.0
    gives the paper's strength for both energies. ``half_space`` also counts the distances to
    the reflected rows ``-w_j`` (``2 + 2 cos_ij``), averaging over the ``2 n (n - 1)`` pairs.
    ``D`` is clamped below at ``eps``.
    """
    if s < 0:
        raise ValueError(f"mhe: s must be >= 0, got {s}")
    cos = cosine_matrix(w)
    n = len(cos)
    if n < 2:
        return w.sum() * 0
    off = cos[~torch.eye(n, dtype=torch.bool, device=cos.device)]
    sq = torch.cat([2 - 2 * off, 2 + 2 * off]) if half_space else 2 - 2 * off
    sq = sq.clamp_min(eps)
    return (-0.5 * torch.log(sq) if s == 0 else sq.pow(-s / 2)).mean()


def orthogonal_loss(w: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Frobenius orthogonality ``||W W^T - I||_F^2`` with ``W`` the ``(n, d)`` rows of ``w``.

    ``normalize=True`` uses the l2-normalized rows as in eq. 14 (then only the off-diagonal
    cosines count). The ``n x n`` Gram is used whatever the shape, so rows outnumbering their
    dimension are penalized (a 64 x 27 matrix with orthonormal columns gives 64 - 27 = 37).
    """
    rows = filter_rows(w)
    if normalize:
        rows = F.normalize(rows, dim=1)
    gram = rows @ rows.T
    return (gram - torch.eye(len(gram), dtype=gram.dtype, device=gram.device)).pow(2).sum()


def srip_loss(w: torch.Tensor) -> torch.Tensor:
    """SRIP (Bansal et al. 2018): the squared spectral norm ``sigma_max(G - I)^2`` of the Gram
    ``G`` of the raw rows, taken on the smaller side (``W W^T`` when ``n <= d``, else
    ``W^T W``) so that full orthogonality is reachable. Computed exactly with
    ``torch.linalg.matrix_norm(ord=2)`` rather than SRIP's power iteration;
    ``srip_loss(c I) = (c^2 - 1)^2``."""
    rows = filter_rows(w)
    gram = rows @ rows.T if rows.shape[0] <= rows.shape[1] else rows.T @ rows
    eye = torch.eye(len(gram), dtype=gram.dtype, device=gram.device)
    return torch.linalg.matrix_norm(gram - eye, ord=2).pow(2)


class MMA(WeightPenalty):
    """MMA regularization (eq. 13): ``lambda * sum over layers of l_MMA``. Default
    ``lambda = 0.07`` (the paper's VGG setting; it uses 0.03 for networks with skip connections)."""

    name = "mma"
    coefficient = 0.07
    loss_fn = staticmethod(mma_loss)


class Cosine(WeightPenalty):
    """Cosine-loss regularization (eq. 5 summed over layers); the paper gives no coefficient
    for it, so MMA's 0.07 is the default."""

    name = "cosine"
    coefficient = 0.07
    loss_fn = staticmethod(cosine_loss)


class MHE(WeightPenalty):
    """Minimum hyperspherical energy: ``lambda * sum over layers of mhe_loss(w, s, half_space)``.
    Default ``lambda = 1.0`` and ``s = 2`` (Table 3); ``s = 0`` is eq. 11 itself, so the same
    default gives the paper's log-energy strength. Full (not mini-batch) pairs."""

    name = "mhe"
    coefficient = 1.0
    loss_fn = staticmethod(mhe_loss)

    def __init__(self, coefficient=None, include_output=None, s: float = 2, half_space: bool = False):
        super().__init__(coefficient, include_output)
        self.options = {"s": s, "half_space": bool(half_space)}


class Orthogonal(WeightPenalty):
    """Orthogonal regularization (eq. 14): ``lambda / 2 * sum ||W^ W^T - I||_F^2`` on normalized
    rows; default ``lambda = 1e-4`` (Table 3). ``normalize=False`` uses the raw rows."""

    name = "orthogonal"
    coefficient = 1e-4
    loss_fn = staticmethod(orthogonal_loss)

    def __init__(self, coefficient=None, include_output=None, normalize: bool = True):
        super().__init__(coefficient, include_output)
        self.options = {"normalize": bool(normalize)}

    def penalty(self, model):
        """The orthogonality penalty summed over the model's layers (a scalar tensor)."""
        return 0.5 * super().penalty(model)


class SRIP(WeightPenalty):
    """SRIP: ``lambda * sum over layers of srip_loss``. The seeds give no coefficient; 1e-4 (the
    orthogonal one of Table 3) is the default (SRIP itself anneals lambda from 0.1)."""

    name = "srip"
    coefficient = 1e-4
    loss_fn = staticmethod(srip_loss)
