"""`landscape interpolate`: loss and accuracy along the line between two checkpoints.

The 1D linear interpolation of Goodfellow et al. 2015 as in Li et al. 2018: ``w1 + a (w2 - w1)``
for ``a`` in ``--x`` (default -0.5..1.5; 0 is ``--checkpoint``, 1 is ``--model_file2``). It is
``landscape surface`` with a target x direction, ``--dir_type states`` by default (BN running
statistics are interpolated too) and the same files.
"""
from __future__ import annotations

from . import common
from .surface import add_evaluation_arguments, surface_from_args

HELP = "1D interpolation between two checkpoints (Goodfellow et al.): w1 + a (w2 - w1)"


def add_arguments(p) -> None:
    common.add_model_arguments(p)
    p.add_argument("--model_file2", "--checkpoint2", required=True, help="the second checkpoint (a = 1)")
    common.add_data_arguments(p)
    p.add_argument("--x", default="-0.5:1.5:41", help="interpolation coefficients start:stop:num")
    p.add_argument("--dir_type", choices=("weights", "states"), default="states",
                   help="interpolate the parameters only (weights) or the whole state (states)")
    p.add_argument("--dir_file", default=None, help="direction file to use (existing) or create")
    add_evaluation_arguments(p)
    p.set_defaults(model_file3=None, seed=0)


def run(args) -> int:
    if args.checkpoint is None:
        raise ValueError("--checkpoint (the model at a = 0) is required")
    model, data = common.model_and_data(args)
    return surface_from_args(args, model, data, (args.x,))
