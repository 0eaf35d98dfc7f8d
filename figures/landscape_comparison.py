"""LinR Fig. 6 / Li et al. on the digits: 2D filter-normalized train-loss contours of a baseline
and a regularized CNN side by side on one scale, and their 1D curves overlaid. Writes
``landscape_comparison_2d.png``, ``landscape_comparison_1d.png``, the surfaces under
``landscape_comparison/`` and ``landscape_comparison.json`` into ``--out`` (default figures/out).

    python figures/landscape_comparison.py                     # baseline vs LinR, 31x31 plane
    python figures/landscape_comparison.py --reg mma:0.07      # any regularizer
    python figures/landscape_comparison.py --quick             # 3 epochs, 5x5 plane
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from figures import _runs  # noqa: E402

from analysis.report import landscape_files  # noqa: E402
from landscape.plot import plot_1d, plot_comparison  # noqa: E402
from landscape.store import read_surface  # noqa: E402
from regularizers.train import load_run  # noqa: E402


def main(argv=None) -> int:
    p = _runs.parser(__doc__)
    p.add_argument("--reg", default="linr", help="regularizer of the second model (default linr)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="weight decay of the second model")
    p.add_argument("--points", type=int, default=None, help="2D points per side (default 31, 5 with --quick)")
    args = _runs.parse(p, argv)
    points = args.points or (5 if args.quick else 31)
    regs = [args.reg] if args.reg else []
    label = "+".join(regs + [f"wd{args.weight_decay:g}"] * bool(args.weight_decay))
    if not label:
        raise ValueError("give the second model a --reg or a --weight-decay")
    runs = {"baseline": _runs.train(args.out, "baseline", args.epochs, seed=args.seed),
            label: _runs.train(args.out, label.replace(":", ""), args.epochs, regs,
                               weight_decay=args.weight_decay, seed=args.seed)}
    folder = args.out / "landscape_comparison"
    lines, planes, numbers = {}, {}, {}
    for name, run in runs.items():
        model, data, _ = load_run(run)
        one, two = landscape_files(model, data, folder, name.replace(":", ""), points_1d=2 * points - 1,
                                   points_2d=points, seed=args.seed, device="cpu", progress=False)
        line, plane = read_surface(one), read_surface(two)
        lines[name] = {k: line[k] for k in ("train_loss", "test_loss", "train_acc", "test_acc")}
        planes[name] = (plane.x, plane.y, plane["train_loss"])
        centre = plane["train_loss"][points // 2, points // 2]
        numbers[name] = {"centre_train_loss": float(centre), "mean_train_loss": float(plane["train_loss"].mean()),
                         "line_end_train_loss": float((line["train_loss"][0] + line["train_loss"][-1]) / 2),
                         "centre_test_acc": float(line["test_acc"][points - 1])}
        print(f"{name:12s} train loss at the centre {centre:.4f}, mean over the {points}x{points} plane "
              f"{numbers[name]['mean_train_loss']:.3f}, at the line's ends {numbers[name]['line_end_train_loss']:.3f}; "
              f"test acc {numbers[name]['centre_test_acc']:.1f}%")
    _runs.save(plot_comparison(planes, kind="contour", log=True, label="train loss"), args.out,
               "landscape_comparison_2d.png")
    _runs.save(plot_1d(line.x, lines, log=True, title="filter-normalized random direction"), args.out,
               "landscape_comparison_1d.png")
    _runs.write_json(args.out, "landscape_comparison.json", {"points": points, **numbers})
    return 0


if __name__ == "__main__":
    sys.exit(main())
