"""`landscape diagnose`: an HTML report on one or more trained runs (see :mod:`analysis.report`)."""
from __future__ import annotations

import argparse

from . import common

HELP = "diagnose trained runs: learning curves, filter angles, curvature and a small loss landscape in one HTML report"


def add_arguments(p) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_FOLDER", help="run folders written by `landscape train`")
    p.add_argument("--out", default=None,
                   help="report folder (default: RUN/diagnosis for one run, diagnosis/ for several)")
    p.add_argument("--surface", action=argparse.BooleanOptionalAction, default=True,
                   help="compute the 1D and 2D loss landscapes (default: yes)")
    p.add_argument("--quick", action="store_true",
                   help="small settings: 128 curvature samples, 9-point line, 5x5 plane")
    p.add_argument("--samples", type=int, default=None,
                   help="training samples for the curvature numbers (default 512)")
    p.add_argument("--points-1d", type=int, default=None, help="points of the 1D line (default 21)")
    p.add_argument("--points-2d", type=int, default=None, help="points per side of the 2D plane (default 11)")
    p.add_argument("--layer", type=int, default=None,
                   help="layer index of the cosine heat map (default -2, the last hidden layer)")
    p.add_argument("--seed", type=int, default=None, help="seed of subsets, probes and directions (default 0)")
    common.add_device_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args) -> int:
    from analysis.report import diagnose

    settings = {key: value for key, value in
                dict(samples=args.samples, points_1d=args.points_1d, points_2d=args.points_2d,
                     layer=args.layer, seed=args.seed).items() if value is not None}
    for key in ("samples", "points_1d", "points_2d"):
        if settings.get(key, 2) < 2:
            raise ValueError(f"--{key.replace('_', '-')} must be at least 2, got {settings[key]}")
    report = diagnose(args.runs, args.out, args.surface, quick=args.quick,
                      device=common.resolve_device(args.device), progress=not args.quiet, **settings)
    print(report)
    return 0
