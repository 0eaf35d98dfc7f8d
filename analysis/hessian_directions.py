"""Loss-landscape directions along the Hessian's top eigenvectors.

Random directions show a slice of the landscape chosen by chance; the top-k eigenvectors of the
Hessian at the model show the directions of strongest curvature. Near a minimum the loss along
the unit eigenvector ``v_k`` is ``L(w + a v_k) = L(w) + a g.v_k + lambda_k a^2 / 2 + O(a^3)``,
so a 1D surface along ``v_1`` is the sharpest parabola through the model and a 2D surface along
``(v_1, v_2)`` the sharpest plane.

The directions are made by the landscape layer (:func:`landscape.hessian.hessian_directions`,
also the ``kind="hessian"`` axis of :class:`landscape.recipes.AxisRecipe`); this module keeps
their analysis-side name.
"""
from landscape.hessian import curvature_along, hessian_directions

__all__ = ["curvature_along", "hessian_directions"]
