"""`landscape sweep`: which generalization measure tracks the gap over a sweep of trained models
(see :mod:`analysis.sweep` and :mod:`analysis.measures`).

Models are run folders of ``landscape train`` (hyperparameters: the config settings that differ
among them) and/or lines of a ``--models-file`` in diagnose's format, each with its own
``--hparam KEY=VALUE`` (repeatable), ``--seed N`` and optionally ``--init FILE`` (the model's
state dict at initialization, for the distance from init).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from . import common

HELP = ("rank generalization measures (norms, margins, PAC-Bayes flatness, sharpness, curvature, "
        "filter geometry) by Kendall's tau and its granulated Psi with the gap over a sweep of runs")
number_at_least_2 = common.number(int, low=2)


def odd_points(text: str) -> int:
    """An argparse ``type``: an odd integer >= 3."""
    value = common.number(int, low=3)(text)
    if value % 2 == 0:
        raise argparse.ArgumentTypeError(f"{text} is not odd")
    return value


def add_arguments(p) -> None:
    """Add the flags of ``landscape sweep`` to the argparse parser ``p``."""
    p.add_argument("runs", nargs="*", metavar="RUN_FOLDER", help="run folders written by `landscape train`")
    p.add_argument("--models-file", type=Path, default=None,
                   help="text file, one model per line: --model SPEC --checkpoint FILE --data SPEC "
                        "--hparam KEY=VALUE [--hparam ...] [--seed N] [--init FILE] [--name NAME] "
                        "[--normalize N] [--model-option K=V ...] ('#' starts a comment)")
    p.add_argument("--out", type=Path, default=Path("sweep"), help="folder of sweep.json, sweep.html, sweep_tau.png")
    p.add_argument("--samples", type=common.positive_int, default=512,
                   help="training examples (seeded subset) the measures are computed on")
    p.add_argument("--probes", type=number_at_least_2, default=10, help="Hutchinson probes of the Hessian trace")
    p.add_argument("--noise-draws", type=common.positive_int, default=5,
                   help="noise draws per sigma of the PAC-Bayes bisection")
    p.add_argument("--drop", type=common.fraction, default=0.1,
                   help="training-accuracy drop (fraction) that defines the PAC-Bayes sigma")
    p.add_argument("--points", type=odd_points, default=21,
                   help="points of the 1D line of the basin width (odd: the model is the middle one)")
    p.add_argument("--span", type=common.positive_float, default=1.0,
                   help="the 1D line spans [-SPAN, SPAN] in filter-normalized direction units")
    p.add_argument("--basin-rise", type=common.positive_float, default=1.0,
                   help="rise of the train loss (nats) at which the basin width is measured")
    p.add_argument("--curvature", action=argparse.BooleanOptionalAction, default=True,
                   help="compute the Hessian lambda_max and trace")
    p.add_argument("--resamples", type=common.positive_int, default=1000, help="bootstrap resamples of tau")
    p.add_argument("--confidence", type=common.fraction, default=0.95, help="coverage of the bootstrap interval")
    p.add_argument("--seed", type=common.seed_int, default=0, help="seed of subsets, noise, probes and directions")
    common.add_device_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def line_options(parser) -> None:
    """The models-file words sweep adds to diagnose's (``--seed``, ``--reg``): ``--hparam``, ``--init``."""
    parser.add_argument("--hparam", action="append", default=[])
    parser.add_argument("--init", default=None)


def hparams(pairs) -> dict:
    """``["lr=0.1", "reg=mma"]`` -> ``{"lr": 0.1, "reg": "mma"}``."""
    return common.parse_options(pairs, "--hparam")


def file_entries(path: Path) -> list:
    """A :class:`analysis.sweep.SweepEntry` per line of the models file ``path``."""
    from analysis.summary import from_checkpoint
    from analysis.sweep import SweepEntry
    from landscape.commands.diagnose import models_file_specs
    from regularizers.models import load_model

    entries = []
    for spec in models_file_specs(path, line_options):
        if spec.get("reg"):  # diagnose's word; here it would be silently left out of the ranking
            raise ValueError(f"{path}: sweep takes a line's settings as --hparam KEY=VALUE (e.g. --hparam "
                             f"regularizer={spec['reg'][0]}), not --reg")
        options = common.parse_options(spec["model_option"])
        source = from_checkpoint(spec["model"], spec["checkpoint"], spec["data"], name=spec["name"] or None,
                                 normalize=spec["normalize"], options=options)
        initial = None
        if spec["init"] is not None:
            if not Path(spec["init"]).is_file():
                raise FileNotFoundError(f"--init {spec['init']} does not exist")
            initial = load_model(spec["model"], num_classes=source.data.num_classes,
                                 in_channels=source.data.in_channels, checkpoint=spec["init"],
                                 input_shape=source.data.x_train.shape[1:], input_dtype=source.data.x_train.dtype,
                                 **options)
        entries.append(SweepEntry(source, hparams(spec["hparam"]), spec["seed"], initial))
    return entries


def run(args) -> int:
    """Run ``landscape sweep`` with the parsed flags ``args``; returns the exit status (0: done)."""
    from analysis.measures import MeasureSettings
    from analysis.sweep import entries_from_runs, sweep, table_text
    from regularizers.evaluation import resolve_device

    entries = entries_from_runs(args.runs) + (file_entries(args.models_file) if args.models_file else [])
    if not entries:
        raise ValueError("nothing to sweep: give run folders or --models-file")
    settings = MeasureSettings(samples=args.samples, seed=args.seed, drop=args.drop, noise_draws=args.noise_draws,
                               probes=args.probes, points=args.points, span=args.span, basin_rise=args.basin_rise,
                               curvature=args.curvature)
    result = sweep(entries, args.out, settings=settings, confidence=args.confidence, resamples=args.resamples,
                   device=resolve_device(args.device), progress=not args.quiet)
    print(table_text(result.ranking))
    print(f"wrote {', '.join(result.files)}")
    print(result.conclusion)
    return 0
