"""`landscape interpolate`: loss and accuracy along the line between two checkpoints.

The 1D linear interpolation of Goodfellow et al. 2015 as in Li et al. 2018: ``w1 + a (w2 - w1)``
for ``a`` in ``--x`` (default -0.5..1.5; 0 is ``--checkpoint``, 1 is ``--model_file2``). It is
``landscape surface`` with a target x direction, ``--dir_type states`` by default (BN running
statistics are interpolated too) and the same files.
"""
from __future__ import annotations

from . import common
from .surface import add_evaluation_arguments, compute_and_report, file_stem, provenance_of, surface_options, target_recipe

HELP = "1D interpolation between two checkpoints (Goodfellow et al.): w1 + a (w2 - w1)"


def add_arguments(p) -> None:
    """The flags of `landscape interpolate`."""
    common.add_model_arguments(p)
    p.add_argument("--model_file2", "--checkpoint2", required=True, help="the second checkpoint (a = 1)")
    common.add_data_arguments(p)
    p.add_argument("--x", default="-0.5:1.5:41", help="interpolation coefficients start:stop:num")
    p.add_argument("--dir_type", choices=("weights", "states"), default="states",
                   help="interpolate the parameters only (weights) or the whole state (states)")
    p.add_argument("--dir_file", default=None, help="direction file to use (existing) or create; none given: a derived name")
    add_evaluation_arguments(p)


def run(args) -> int:
    """`landscape interpolate`: the surface of one target axis, --checkpoint at 0, --model_file2 at 1."""
    if args.checkpoint is None:
        raise ValueError("--checkpoint (the model at a = 0) is required")
    model, data = common.model_and_data(args)
    compute_and_report(model, data, directions=[target_recipe(args, args.model_file2)], axes=(args.x,),
                       options=surface_options(args), dir_file=args.dir_file or "auto", dir_type=args.dir_type,
                       attrs=provenance_of(model, data, args.model, args.checkpoint),
                       stem=file_stem(args.model, args.checkpoint, (args.model_file2,)))
    return 0
