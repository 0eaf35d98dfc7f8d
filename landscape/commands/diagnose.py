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
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword for every --model factory (repeatable), e.g. channels=[16,32]")
    p.add_argument("--models-file", type=Path, default=None,
                   help="text file, one model per line: --model SPEC --checkpoint FILE --data SPEC "
                        "[--name NAME] [--normalize N] [--model-option K=V ...] ('#' starts a comment)")
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
    p.add_argument("--samples", type=int, default=None,
                   help="training samples for the curvature numbers (default 512)")
    p.add_argument("--params", default=None, choices=("all", "weights"),
                   help="curvature over every parameter (all, default, as PyHessian) or conv/linear weights only")
    p.add_argument("--points-1d", type=int, default=None, help="points of the 1D line (default 21)")
    p.add_argument("--points-2d", type=int, default=None, help="points per side of the 2D plane (default 11)")
    p.add_argument("--basin-rise", type=float, default=None,
                   help="rise of the train loss (nats) above the model's at which the 1D basin width "
                        "is measured (default 1.0)")
    p.add_argument("--seed", type=int, default=None, help="seed of subsets, probes and directions (default 0)")
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


def model_specs(args) -> list:
    """``[dict(model, checkpoint, data, name, normalize)]`` from the flags and ``--models-file``."""
    specs = []
    if args.models_file is not None:
        if not args.models_file.is_file():
            raise FileNotFoundError(f"--models-file {args.models_file} does not exist")
        line_parser = argparse.ArgumentParser(prog="models-file line", add_help=False, exit_on_error=False)
        for flag in ("--model", "--checkpoint", "--data"):
            line_parser.add_argument(flag)
        line_parser.add_argument("--name", default=None)
        line_parser.add_argument("--normalize", default="none")
        line_parser.add_argument("--model-option", action="append", default=[])
        for number, line in enumerate(args.models_file.read_text().splitlines(), 1):
            words = shlex.split(line, comments=True)
            if not words:
                continue
            try:
                parsed, extra = line_parser.parse_known_args(words)
            except argparse.ArgumentError as error:
                raise ValueError(f"{args.models_file} line {number}: {error}") from None
            if extra:
                raise ValueError(f"{args.models_file} line {number}: unknown words {' '.join(extra)}")
            missing = [f"--{k}" for k in ("model", "checkpoint", "data") if getattr(parsed, k) is None]
            if missing:
                raise ValueError(f"{args.models_file} line {number}: {', '.join(missing)} missing")
            specs.append(vars(parsed))
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
        specs += [dict(model=m, checkpoint=c, data=d, name=nm, normalize=z, model_option=args.model_option)
                  for m, c, d, nm, z in zip(args.model, args.checkpoint, data, names, normalize)]
    elif args.checkpoint or args.name or args.model_option:
        raise ValueError("--checkpoint, --name and --model-option belong to a --model")
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


def run(args) -> int:
    from analysis.report import diagnose
    from analysis.summary import from_checkpoint
    from regularizers.evaluation import resolve_device

    settings = {key: value for key, value in
                dict(samples=args.samples, points_1d=args.points_1d, points_2d=args.points_2d,
                     seed=args.seed, params=args.params, basin_rise=args.basin_rise,
                     spectra=args.spectra).items()
                if value is not None}
    for key in ("samples", "points_1d", "points_2d"):
        if settings.get(key, 2) < 2:
            raise ValueError(f"--{key.replace('_', '-')} must be at least 2, got {settings[key]}")
    device = resolve_device(args.device)
    groups = parse_groups(args.group)
    specs = model_specs(args)
    runs = args.runs or list(dict.fromkeys(r for members in groups.values() for r in members))  # --group alone
    if not runs and not specs:
        raise ValueError("nothing to diagnose: give run folders or --model/--checkpoint/--data")
    models = [from_checkpoint(s["model"], s["checkpoint"], s["data"], name=s["name"] or None,
                              normalize=s["normalize"], options=common.parse_options(s["model_option"]))
              for s in specs]
    report = diagnose(runs, args.out, args.surface, models=models, groups=groups or None,
                      baseline=args.baseline, quick=args.quick, device=device, progress=not args.quiet,
                      **settings)
    print(report)
    return 0
