"""`landscape diagnose`: an HTML report comparing trained models across seeds (see :mod:`analysis.report`).

Models are run folders of ``landscape train`` and models trained anywhere, given as
``--model SPEC --checkpoint FILE --data SPEC [--name NAME] [--normalize ...]`` (repeat the
group of options for each model) or as lines of the same options in a ``--models-file``.
"""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from . import common

HELP = ("diagnose trained models: learning curves, filter angles, curvature and a small loss landscape "
        "in one HTML report, grouped by seed, with intervals, differences and Findings")


def add_arguments(p) -> None:
    """The flags of ``landscape diagnose``."""
    p.add_argument("runs", nargs="*", metavar="RUN_FOLDER", help="run folders written by `landscape train`")
    p.add_argument("--model", action="append", default=[], metavar="SPEC",
                   help="a model trained anywhere: registry name or package.module:factory (repeatable; "
                        "each needs its own --checkpoint)")
    p.add_argument("--checkpoint", action="append", default=[], metavar="FILE",
                   help="state-dict file of the --model at the same position")
    p.add_argument("--data", action="append", default=[], metavar="SPEC",
                   help="data of the models: one for all, or one per --model ('digits', .npz, folder); "
                        "used as stored unless --normalize says otherwise")
    p.add_argument("--normalize", action="append", default=[], metavar="none|standardize|MEAN,STD",
                   help="input transformation of the models' data: one for all, or one per --model "
                        "(default none; run folders use their recorded one)")
    p.add_argument("--name", action="append", default=[], help="report name of each --model (default: file stem)")
    p.add_argument("--model-seed", action="append", default=[], type=common.seed_int, metavar="N",
                   help="training seed of each --model (once per --model): groups holding the same seeds are "
                        "compared pairwise by seed; on --models-file lines write --seed N")
    p.add_argument("--reg", action="append", default=[], metavar="SPEC",
                   help="regularizers each --model was trained with, as `landscape train --reg` writes them "
                        "(repeatable, applies to every --model; default: unknown, shown as null)")
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword for every --model factory (repeatable), e.g. channels=[16,32]")
    p.add_argument("--models-file", type=Path, default=None,
                   help="text file, one model per line: --model SPEC --checkpoint FILE --data SPEC "
                        "[--name NAME] [--normalize N] [--model-option K=V ...] [--seed N] [--reg SPEC ...] "
                        "('#' starts a comment); --seed pairs runs of the same seed across groups, --reg says "
                        "which regularizers it was trained with (default: unknown)")
    p.add_argument("--group", action="append", default=[], metavar="NAME=RUN,RUN,...",
                   help="a group of runs (run folders or model names), e.g. several seeds of one "
                        "setting; run folders differing only in seed are grouped automatically")
    p.add_argument("--baseline", default=None, help="the group the others are compared with (default: the first)")
    p.add_argument("--out", default=None,
                   help="report folder (default: RUN/diagnosis for one run, diagnosis/ otherwise)")
    p.add_argument("--surface", action=argparse.BooleanOptionalAction, default=True,
                   help="compute the 1D and 2D loss landscapes (default: yes)")
    p.add_argument("--spectra", action=argparse.BooleanOptionalAction, default=True,
                   help="Hessian diagonal of every run and spectral density of each group's first run "
                        "(default: yes)")
    p.add_argument("--quick", action="store_true",
                   help="small settings: 128 curvature samples, 9-point line, 5x5 plane")
    p.add_argument("--samples", type=common.number(int, low=2), default=None,
                   help="training samples for the curvature numbers (default 512; all of them when fewer)")
    p.add_argument("--params", default=None, choices=("all", "weights"),
                   help="curvature over every parameter (all, default, as PyHessian) or conv/linear weights only")
    p.add_argument("--points-1d", type=common.number(int, low=2), default=None,
                   help="points of the 1D line (default 21)")
    p.add_argument("--points-2d", type=common.number(int, low=2), default=None,
                   help="points per side of the 2D plane (default 11)")
    p.add_argument("--basin-rise", type=common.positive_float, default=None,
                   help="rise of the train loss (nats) above the model's at which the 1D basin width "
                        "is measured (default 1.0); where it is not reached the line is widened, then the "
                        "width is reported as a lower bound (censored)")
    p.add_argument("--seed", type=common.seed_int, default=None,
                   help="seed of subsets, probes and directions (default 0)")
    p.add_argument("--precision", default=None, choices=("fp32", "bf16", "fp16"),
                   help="arithmetic of the loss-landscape surfaces (default fp32, exact); curvature stays fp32")
    common.add_output_argument(p)
    common.add_device_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def _per_model(values: list, count: int, flag: str, default=None) -> list:
    """One value per model: ``values`` of length ``count``, one value for all, or ``default``."""
    if len(values) == count:
        return values
    if len(values) == 1:
        return values * count
    if not values and default is not None:
        return [default] * count
    raise ValueError(f"give {flag} once for all models or once per --model ({count}), got {len(values)}")


def models_file_specs(path: Path, line_options=None) -> list:
    """``[dict(model, checkpoint, data, name, normalize, model_option, seed, reg)]``, one per line
    of the models file ``path`` ('#' starts a comment); ``line_options(parser)`` adds the words a
    command accepts beyond diagnose's (e.g. sweep's ``--hparam``). A bad line is a one-line ValueError."""
    if not path.is_file():
        raise FileNotFoundError(f"--models-file {path} does not exist")
    line_parser = argparse.ArgumentParser(prog="models-file line", add_help=False, exit_on_error=False)
    for flag in ("--model", "--checkpoint", "--data"):
        line_parser.add_argument(flag)
    line_parser.add_argument("--name", default=None)
    line_parser.add_argument("--normalize", default="none")
    line_parser.add_argument("--model-option", action="append", default=[])
    line_parser.add_argument("--seed", type=common.seed_int, default=None)
    line_parser.add_argument("--reg", action="append", default=None)
    if line_options is not None:
        line_options(line_parser)
    specs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        words = shlex.split(line, comments=True)
        if not words:
            continue
        try:
            parsed, extra = line_parser.parse_known_args(words)
        except (argparse.ArgumentError, argparse.ArgumentTypeError) as error:
            raise ValueError(f"{path} line {number}: {error}") from None
        if extra:
            raise ValueError(f"{path} line {number}: unknown words {' '.join(extra)}")
        missing = [f"--{k}" for k in ("model", "checkpoint", "data") if getattr(parsed, k) is None]
        if missing:
            raise ValueError(f"{path} line {number}: {', '.join(missing)} missing")
        specs.append(vars(parsed))
    return specs


def model_specs(args) -> list:
    """``[dict(model, checkpoint, data, name, normalize, model_option, seed, reg)]`` from the
    ``--models-file`` lines (:func:`models_file_specs`), then the ``--model`` flags."""
    specs = models_file_specs(args.models_file) if args.models_file is not None else []
    n = len(args.model)
    if n:
        if len(args.checkpoint) != n:
            raise ValueError(f"every --model needs its --checkpoint: got {n} models and "
                             f"{len(args.checkpoint)} checkpoints")
        if not args.data:
            raise ValueError("--model needs --data (the data it is evaluated on)")
        data = _per_model(args.data, n, "--data")
        normalize = _per_model(args.normalize, n, "--normalize", "none")
        if args.name and len(args.name) != n:
            raise ValueError(f"give --name once per --model ({n}), got {len(args.name)}")
        names = args.name or [None] * n
        if args.model_seed and len(args.model_seed) != n:
            raise ValueError(f"give --model-seed once per --model ({n}), got {len(args.model_seed)}")
        seeds = args.model_seed or [None] * n
        specs += [dict(model=m, checkpoint=c, data=d, name=nm, normalize=z, model_option=args.model_option,
                       seed=sd, reg=args.reg or None)
                  for m, c, d, nm, z, sd in zip(args.model, args.checkpoint, data, names, normalize, seeds)]
    elif args.checkpoint or args.name or args.model_option or args.model_seed or args.reg:
        raise ValueError("--checkpoint, --name, --model-option, --model-seed and --reg belong to a --model")
    return specs


def parse_groups(values) -> dict:
    """``["base=runs/a,runs/b"]`` -> ``{"base": ["runs/a", "runs/b"]}``."""
    groups = {}
    for value in values:
        name, sep, members = value.partition("=")
        runs = [m.strip() for m in members.split(",") if m.strip()]
        if not sep or not name or not runs:
            raise ValueError(f"--group {value!r}: expected NAME=RUN,RUN,...")
        groups[name] = [str(Path(r)) for r in runs]
    return groups


def group_folders(groups: dict, runs, specs) -> list:
    """Run folders named only in ``--group`` (not given positionally, not a model's name), in order."""
    given = {str(Path(r)) for r in runs} | {s["name"] for s in specs if s["name"]}
    extra = []
    for members in groups.values():
        for member in members:
            if str(Path(member)) not in given and member not in extra and Path(member).is_dir():
                extra.append(member)
    return extra


def run(args) -> int:
    """Load the models, diagnose them (:func:`analysis.report.diagnose`) and print the report's path."""
    from analysis.report import diagnose
    from analysis.summary import from_checkpoint
    from regularizers.evaluation import resolve_device

    settings = {key: value for key, value in
                dict(samples=args.samples, points_1d=args.points_1d, points_2d=args.points_2d,
                     seed=args.seed, params=args.params, basin_rise=args.basin_rise,
                     spectra=args.spectra, precision=args.precision,
                     output=common.output_selector(args.output)).items()
                if value is not None}
    device = resolve_device(args.device)
    groups = parse_groups(args.group)
    specs = model_specs(args)
    args.runs = list(args.runs) + group_folders(groups, args.runs, specs)
    if not args.runs and not specs:
        raise ValueError("nothing to diagnose: give run folders or --model/--checkpoint/--data")
    models = [from_checkpoint(s["model"], s["checkpoint"], s["data"], name=s["name"] or None,
                              normalize=s["normalize"], options=common.parse_options(s["model_option"]),
                              seed=s.get("seed"), regularizers=s.get("reg"),
                              output=common.output_selector(args.output))
              for s in specs]
    report = diagnose(args.runs, args.out, args.surface, models=models, groups=groups or None,
                      baseline=args.baseline, quick=args.quick, device=device, progress=not args.quiet,
                      **settings)
    print(report)
    return 0
