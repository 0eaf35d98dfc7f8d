"""LinR Fig. 6 on 300 digits: filter-normalized loss landscapes (Li et al.) of a trained baseline
CNN and of the same model refined by Algorithm 1 with LinRNL (:func:`regularizers.linear.refine`,
T rounds, lr 1e-3), 3 seeds. Writes ``landscape_comparison_2d.png`` (2D train-loss contours of the
first seed, log-spaced shared levels), ``landscape_comparison_1d.png``, the surfaces under
``landscape_comparison/`` and ``landscape_comparison.json`` into ``--out``.

    python figures/landscape_comparison.py            # 3 seeds, 40 epochs, T = 30, 21x21 plane
    python figures/landscape_comparison.py --quick    # 2 seeds, 2 epochs, T = 2, 5x5 plane (tests)

Regime (``figures/_runs.py``): 300 training digits, where the CNN overfits. The refined model
starts from the baseline's weights (the paper refines its VGG-9), so every comparison is paired
by seed. Flatness is read off the 1D line through each model along the same seeded
filter-normalized direction: the width of the basin where the train loss stays within 1 nat of
its value at the model (:func:`analysis.summary.basin_width`), and the mean train loss over the
2D plane.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from figures import _runs  # noqa: E402

MEASURED = (99, "2026-12-02, 2 cores shared with 4 other agents")  # full run, `landscape figures landscape_comparison`

POINTS, QUICK_POINTS = 21, 5
RISE = 1.0  # nats: the 1D basin is where the train loss stays within RISE of the model's


def main(argv=None) -> int:
    import numpy as np

    from analysis.summary import basin_width
    from figures.linr_scatter import QUICK_ROUNDS, ROUNDS, refine_from
    from landscape.plot import plot_1d, plot_comparison
    from landscape.store import read_surface
    from landscape.surface import landscape_files
    from regularizers.train import load_run

    p = _runs.parser(__doc__, steps=f"refine rounds T (default {ROUNDS})")
    p.add_argument("--points", type=int, default=None, help=f"2D points per side (default {POINTS})")
    args = _runs.parse(p, argv)
    rounds = args.steps or (QUICK_ROUNDS if args.quick else ROUNDS)
    points = args.points or (QUICK_POINTS if args.quick else POINTS)
    data_file = _runs.subset_data(args.out, args.quick)
    folder = args.out / "landscape_comparison"
    numbers = {"baseline": {}, "LinRNL refined": {}}
    planes, lines = {}, {}
    for k, seed in enumerate(args.seeds):
        print(f"[{k + 1}/{len(args.seeds)}] seed {seed}: baseline, LinRNL refinement ({rounds} rounds), "
              f"1D ({2 * points - 1} points) and 2D ({points}x{points}) landscapes of both", flush=True)
        run = _runs.train(args.out, "baseline", seed=seed, epochs=args.epochs, data=data_file)
        model, data, hist = load_run(run)
        models = {"baseline": model}
        refined, _, _ = load_run(run)
        result = refine_from(refined, data, rounds=rounds, seed=seed, finetune=False)
        models["LinRNL refined"] = refined
        for name, net in models.items():
            stem = f"{name.split()[0].lower()}-s{seed}"
            one, two = landscape_files(net, data, folder, stem, points_1d=2 * points - 1, points_2d=points,
                                       samples=None, seed=seed, device="cpu", progress=False)
            line, plane = read_surface(one), read_surface(two)
            centre = int(np.argmin(np.abs(line.x)))
            values = numbers[name]
            values.setdefault("basin_width", []).append(
                basin_width(line.x, line["train_loss"], line["train_loss"][centre] + RISE))
            values.setdefault("plane_mean_train_loss", []).append(float(np.mean(plane["train_loss"])))
            values.setdefault("train_loss", []).append(float(line["train_loss"][centre]))
            values.setdefault("test_acc", []).append(float(line["test_acc"][centre]))
            if seed == args.seeds[0]:
                planes[name] = (plane.x, plane.y, plane["train_loss"])
                lines[name] = {key: line[key] for key in ("train_loss", "test_loss", "train_acc", "test_acc")}
                x_line = line.x
        print(f"  test acc {hist['test_acc'][-1]:.1f}% -> {result.test_acc[-1]:.1f}%; basin width "
              f"{numbers['baseline']['basin_width'][-1]:.3f} -> {numbers['LinRNL refined']['basin_width'][-1]:.3f}",
              flush=True)
    base, ref = numbers["baseline"], numbers["LinRNL refined"]
    width = _runs.effect(ref["basin_width"], base["basin_width"], paired=True)
    plane_loss = _runs.effect(ref["plane_mean_train_loss"], base["plane_mean_train_loss"], paired=True)
    acc = _runs.effect(ref["test_acc"], base["test_acc"], paired=True)

    fig2d = plot_comparison(planes, kind="contour", log=True, label="train loss")
    fig2d.suptitle(f"LinR Fig. 6, seed {args.seeds[0]}: train loss on one filter-normalized random plane "
                   "(log-spaced levels shared)", y=1.03, fontsize=9)
    fig1d = plot_1d(x_line, lines, log=True, title=f"seed {args.seeds[0]}: one filter-normalized random direction")
    claims = [
        _runs.claim("LinR refinement makes the landscape smoother around the minimum: a wider, rounder basin "
                    "(Fig. 6)", "VGG-9 on CIFAR-10; qualitative contours, no numbers",
                    f"1D basin width at +{RISE:g} nat: {_runs.mean_text(base['basin_width'])} -> "
                    f"{_runs.mean_text(ref['basin_width'])}, difference {_runs.fmt(width)}; mean train loss "
                    f"over the plane {_runs.mean_text(base['plane_mean_train_loss'])} -> "
                    f"{_runs.mean_text(ref['plane_mean_train_loss'])}, difference {_runs.fmt(plane_loss)} "
                    "(paired by seed)", _runs.verdict(width.low, width.high, +1)),
        _runs.claim("the refined model has higher test accuracy (Sec. 4.9)", "88.93% -> 90.48%",
                    f"{_runs.mean_text(base['test_acc'], '%')} -> {_runs.mean_text(ref['test_acc'], '%')}, "
                    f"difference {_runs.fmt(acc, ' points')} (paired by seed)",
                    _runs.verdict(acc.low, acc.high, +1)),
    ]
    _runs.conclude([fig2d], args.out, "landscape_comparison", claims,
                   {"points": points, "rounds": rounds, "seeds": args.seeds, "rise": RISE, **numbers},
                   quick=args.quick)
    _runs.save(fig2d, args.out, "landscape_comparison_2d.png")
    _runs.save(fig1d, args.out, "landscape_comparison_1d.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
