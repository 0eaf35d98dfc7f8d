"""Regularization methods as training hooks (see :mod:`regularizers.base`) and functional losses.

The functional losses take one layer's weight tensor and return a differentiable scalar; the
hook classes sum them over a model's layers (:mod:`regularizers.registry` builds them by name).
"""
from .angular import cosine_loss, mhe_loss, mma_loss, orthogonal_loss, srip_loss
from .classic import l1_loss
from .linear import linr_loss, refine
from .norms import apply_weight_norm, norm_loss
from .registry import make_regularizer, names
from .residual import residual_smoothing_loss

__all__ = [
    "mma_loss", "cosine_loss", "mhe_loss", "orthogonal_loss", "srip_loss", "norm_loss", "l1_loss",
    "linr_loss", "residual_smoothing_loss", "refine", "apply_weight_norm", "make_regularizer", "names",
]
