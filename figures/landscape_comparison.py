"""LinR Fig. 6 on 300 digits: filter-normalized loss landscapes (Li et al.) of a trained baseline
CNN and of the same model refined by Algorithm 1 with LinRNL (:func:`regularizers.linear.refine`,
T rounds, lr 1e-3), 3 seeds. Writes ``landscape_comparison_2d.png`` (2D train-loss contours of the
first seed, log-spaced shared levels), ``landscape_comparison_1d.png``, the surfaces under
``landscape_comparison/`` and ``landscape_comparison.json`` into ``--out``.

    python figures/landscape_comparison.py            # 3 seeds, 40 epochs, T = 30, 21x21 plane
    python figures/landscape_comparison.py --quick    # 2 seeds, 2 epochs, T = 2, 5x5 plane (tests)

Regime (``figures/_runs.py``): 300 training digits, where the CNN overfits. The refined model
starts from the baseline's weights (the paper refines its VGG-9), so every comparison is paired
by seed.

Measures (fixed before the run). The paper's Fig. 6 claim is about the plane's SURROUNDING area
("similar in the middle where the loss is minimal, ... different on the surrounding area ... The
refined landscape is smooth and looks like a circle"). On the 2D plane (coordinates in
[-1, 1]^2) the middle is the disc of radius 0.5 and the surrounding area the rest. Roughness of
a region is the mean absolute 5-point Laplacian of the log train loss over the region's interior
grid points (lower: smoother); the mean log train loss of a region says how high it rises.
Rule (``figures/_runs.py``): the per-seed log-ratio refined / baseline of the surrounding area's
roughness must lie below 0 (paired by seed, the leave-one-seed-out check). The middle's ratio is
reported beside it. The 1D basin width (where the train loss stays within 1 nat of its value at
the model, :func:`analysis.summary.basin_width`) is censored when the loss never rises that much
within the line's span on a side: then it is a lower bound, shown as ">= w", and its comparison
is never called a change.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from figures import _runs  # noqa: E402

MEASURED = (163, "2026-12-05, 5 seeds, 2 cores shared with 8 agents")  # full run, `landscape figures landscape_comparison`

POINTS, QUICK_POINTS = 21, 5
RISE = 1.0  # nats: the 1D basin is where the train loss stays within RISE of the model's


MIDDLE = 0.5  # radius of the plane's middle disc, in direction units


def censored(x, loss, threshold: float) -> bool:
    """Whether the 1D basin's width is a lower bound: on some side of ``x = 0`` the loss stays at or
    below ``threshold`` up to the line's end."""
    import numpy as np

    x, loss = np.asarray(x, float), np.asarray(loss, float)
    centre = int(np.argmin(np.abs(x)))
    return bool(np.all(loss[centre:] <= threshold) or np.all(loss[:centre + 1] <= threshold))


def regions(x, y, loss) -> dict:
    """Roughness (mean absolute 5-point Laplacian of log loss, per squared direction unit) and
    mean log loss of the plane's middle (radius <= :data:`MIDDLE`) and surrounding area, over the
    interior grid points. ``loss`` is ``(len(y), len(x))``."""
    import numpy as np

    z = np.log(np.asarray(loss, float))
    hx, hy = x[1] - x[0], y[1] - y[0]
    lap = ((z[1:-1, 2:] - 2 * z[1:-1, 1:-1] + z[1:-1, :-2]) / hx ** 2
           + (z[2:, 1:-1] - 2 * z[1:-1, 1:-1] + z[:-2, 1:-1]) / hy ** 2)
    gx, gy = np.meshgrid(x[1:-1], y[1:-1])
    middle = np.hypot(gx, gy) <= MIDDLE
    return {f"{name}_{kind}": float(np.mean(values[mask]))
            for name, mask in (("middle", middle), ("surrounding", ~middle))
            for kind, values in (("roughness", np.abs(lap)), ("log_loss", z[1:-1, 1:-1]))}


def measure_seed(args, seed, rounds, points, data_file, numbers, shown):
    """Train (or reuse) the baseline of ``seed``, refine a copy, compute both models' line and plane,
    and append their measures to ``numbers``; the first seed's surfaces go into ``shown``."""
    import numpy as np

    from analysis.summary import basin_width
    from figures.linr_scatter import refine_from
    from landscape.store import read_surface
    from landscape.surface import landscape_files
    from regularizers.train import load_run

    run = _runs.train(args.out, "baseline", seed=seed, epochs=args.epochs, data=data_file)
    model, data, hist = load_run(run)
    refined, _, _ = load_run(run)
    result = refine_from(refined, data, rounds=rounds, seed=seed, finetune=False)
    for name, net in {"baseline": model, "LinRNL refined": refined}.items():
        one, two = landscape_files(net, data, args.out / "landscape_comparison", f"{name.split()[0].lower()}-s{seed}",
                                   points_1d=2 * points - 1, points_2d=points, samples=None, seed=seed,
                                   device="cpu", progress=False)
        line, plane = read_surface(one), read_surface(two)
        centre = int(np.argmin(np.abs(line.x)))
        level = line["train_loss"][centre] + RISE
        measures = {"basin_width": basin_width(line.x, line["train_loss"], level),
                    "width_censored": censored(line.x, line["train_loss"], level),
                    "plane_mean_train_loss": float(np.mean(plane["train_loss"])),
                    "train_loss": float(line["train_loss"][centre]), "test_acc": float(line["test_acc"][centre]),
                    **regions(plane.x, plane.y, plane["train_loss"])}
        for key, value in measures.items():
            numbers[name].setdefault(key, []).append(value)
        if seed == args.seeds[0]:
            shown["planes"][name] = (plane.x, plane.y, plane["train_loss"])
            shown["lines"][name] = {k: line[k] for k in ("train_loss", "test_loss", "train_acc", "test_acc")}
            shown["x"] = line.x
    print(f"  test acc {hist['test_acc'][-1]:.1f}% -> {result.test_acc[-1]:.1f}%; surrounding roughness "
          f"{numbers['baseline']['surrounding_roughness'][-1]:.3g} -> "
          f"{numbers['LinRNL refined']['surrounding_roughness'][-1]:.3g}", flush=True)


def width_claim(base, ref):
    """The 1D basin-width comparison, never decided when any width is censored."""
    def shown(values, flags):
        return ", ".join(f"{'>= ' if c else ''}{v:.3g}" for v, c in zip(values, flags))

    text = (f"1D basin width at +{RISE:g} nat per seed: baseline {shown(base['basin_width'], base['width_censored'])}"
            f" -> refined {shown(ref['basin_width'], ref['width_censored'])}")
    if any(base["width_censored"]) or any(ref["width_censored"]):
        return text + " (censored widths are lower bounds: not compared)", _runs.VERDICTS[2]
    d = _runs.decide(ref["basin_width"], base["basin_width"], +1, log=True)
    return f"{text}; refined / baseline {d.text()}", d


def main(argv=None) -> int:
    """Run the figure (command line of ``figures/_runs.py``); 0 on success."""
    from figures.linr_scatter import QUICK_ROUNDS, ROUNDS
    from landscape.plot import plot_1d, plot_comparison

    p = _runs.parser(__doc__, steps=f"refine rounds T (default {ROUNDS})")
    p.add_argument("--points", type=int, default=None, help=f"2D points per side, at least 5 (default {POINTS})")
    args = _runs.parse(p, argv)
    rounds = args.steps or (QUICK_ROUNDS if args.quick else ROUNDS)
    points = args.points if args.points is not None else (QUICK_POINTS if args.quick else POINTS)
    if points < 5:
        raise ValueError(f"--points must be at least 5 (the plane needs an interior and a surrounding area), got {points}")
    data_file = _runs.subset_data(args.out, args.quick)
    numbers = {"baseline": {}, "LinRNL refined": {}}
    shown = {"planes": {}, "lines": {}}
    for k, seed in enumerate(args.seeds):
        print(f"[{k + 1}/{len(args.seeds)}] seed {seed}: baseline, LinRNL refinement ({rounds} rounds), "
              f"1D ({2 * points - 1} points) and 2D ({points}x{points}) landscapes of both", flush=True)
        measure_seed(args, seed, rounds, points, data_file, numbers, shown)
    base, ref = numbers["baseline"], numbers["LinRNL refined"]
    rough = {where: _runs.decide(ref[f"{where}_roughness"], base[f"{where}_roughness"], -1, log=True)
             for where in ("surrounding", "middle")}
    height = _runs.decide(ref["surrounding_log_loss"], base["surrounding_log_loss"], -1)
    width_text, width_verdict = width_claim(base, ref)
    acc = _runs.decide(ref["test_acc"], base["test_acc"], +1)

    fig2d = plot_comparison(shown["planes"], kind="contour", log=True, label="train loss")
    fig2d.suptitle(f"LinR Fig. 6, seed {args.seeds[0]}: train loss on one filter-normalized random plane "
                   f"(log-spaced levels shared); middle = radius <= {MIDDLE:g}", y=1.03, fontsize=9)
    fig1d = plot_1d(shown["x"], shown["lines"], log=True,
                    title=f"seed {args.seeds[0]}: one filter-normalized random direction")
    claims = [
        _runs.claim("LinR refinement makes the landscape smoother on the surrounding area, similar in the middle "
                    "(Fig. 6)", "VGG-9 on CIFAR-10; qualitative contours, no numbers",
                    f"roughness (mean |Laplacian of log train loss|) of the surrounding area (radius > {MIDDLE:g}): "
                    f"{_runs.mean_text(base['surrounding_roughness'])} -> {_runs.mean_text(ref['surrounding_roughness'])}, "
                    f"refined / baseline {rough['surrounding'].text()}; of the middle: "
                    f"{_runs.mean_text(base['middle_roughness'])} -> {_runs.mean_text(ref['middle_roughness'])}, "
                    f"{rough['middle'].text()}; mean log train loss of the surrounding area, refined - baseline "
                    f"{height.text()}", rough["surrounding"]),
        _runs.claim("LinR refinement makes the basin wider (Fig. 6)", "qualitative contours, no numbers",
                    width_text, width_verdict),
        _runs.claim("the refined model has higher test accuracy (Sec. 4.9)", "88.93% -> 90.48%",
                    f"{_runs.mean_text(base['test_acc'], '%')} -> {_runs.mean_text(ref['test_acc'], '%')}, "
                    f"difference {acc.text(' points')}", acc),
    ]
    _runs.conclude([fig2d], args.out, "landscape_comparison", claims,
                   {"points": points, "rounds": rounds, "seeds": args.seeds, "rise": RISE, "middle_radius": MIDDLE,
                    **numbers}, quick=args.quick)
    _runs.save(fig2d, args.out, "landscape_comparison_2d.png")
    _runs.save(fig1d, args.out, "landscape_comparison_1d.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
