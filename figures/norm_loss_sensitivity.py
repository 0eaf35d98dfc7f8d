"""Norm loss Fig. 2 on 300 digits: test error against the regularization factor for norm loss
(eq. 7) and for weight decay, the same four factors for both methods (the paper trains four),
under the paper's training schedule, 5 seeds, with the unregularized baseline (same schedule) as
a reference. Writes ``norm_loss_sensitivity.png`` and ``norm_loss_sensitivity.json`` into
``--out``.

    python figures/norm_loss_sensitivity.py            # 4 factors x 2 methods x 5 seeds, 40 epochs
    python figures/norm_loss_sensitivity.py --quick    # 2 factors, 2 seeds, 2 epochs (tests)

Schedule (the paper's WRN-28-10 on CIFAR-100, Sec. IV): SGD with momentum 0.9, batch 64, learning
rate 0.1 divided by 5 at epochs 77, 153 and 307 of 448, i.e. at the same fractions (17%, 34%,
69%) of our run (epochs 7, 14 and 27 of 40). Every parameter is the same for both methods; only
the penalty differs (norm loss ``norm:F``, or weight decay ``F`` in the optimizer).

Regime (``figures/_runs.py``): 300 training digits, where the unregularized CNN overfits, so the
factor of either regularizer visibly moves the test error. The paper does not print its four
factors; we use 1e-4 ... 1e-1, a decade apart, which spans too little and too much weight decay.

Rule, fixed before the run: sensitivity is the spread of each seed's test error over the
factors (largest minus smallest; a spread below one test example, 100/450 points, counts as one
example, the resolution). The claim "weight decay's spread is larger" is decided on the per-seed
log-ratio log(spread_wd / spread_nl), paired by seed (the same seed initializes both methods), by
the rule of ``figures/_runs.py``: its 95% t-interval above 0, and the same verdict with each seed
left out. On the log scale one unstable seed or factor counts once, not by its size. The number
of seeds in which weight decay has the larger spread (a sign count) is reported beside it.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from figures import _runs  # noqa: E402

MEASURED = (326, "2026-12-05, 5 seeds, 2 cores shared with 8 agents")  # full run, `landscape figures norm_loss_sensitivity`

FACTORS, QUICK_FACTORS = (1e-4, 1e-3, 1e-2, 1e-1), (1e-3, 1e-1)
LR, MOMENTUM, BATCH, GAMMA = 0.1, 0.9, 64, 0.2
DROPS = (77 / 448, 153 / 448, 307 / 448)   # the paper's drop epochs as fractions of its 448
METHODS = ("weight decay", "norm loss")


def milestones(epochs: int) -> list:
    """The epochs after which the learning rate drops: the paper's fractions of the run, distinct, >= 1."""
    return sorted({max(1, round(f * epochs)) for f in DROPS})


def train_all(args, factors, data):
    """Test error (%) per method, ``(seeds, factors)``, and of the baseline per seed."""
    import numpy as np

    common = {"epochs": args.epochs, "data": data, "lr": LR, "batch_size": BATCH, "schedule": "multistep",
              "schedule_options": {"milestones": milestones(args.epochs), "gamma": GAMMA}}
    error = {m: np.zeros((len(args.seeds), len(factors))) for m in METHODS}
    baseline, step, total = [], 0, len(args.seeds) * (2 * len(factors) + 1)
    for s, seed in enumerate(args.seeds):
        step += 1
        print(f"[{step}/{total}] baseline, seed {seed}", flush=True)
        baseline.append(100 - _runs.history(_runs.train(args.out, "nls-baseline", seed=seed, **common))["test_acc"][-1])
        for f, factor in enumerate(factors):
            for method in METHODS:
                step += 1
                print(f"[{step}/{total}] {method} {factor:g}, seed {seed}", flush=True)
                reg, wd = ([f"norm:{factor}"], 0.0) if method == "norm loss" else ([], factor)
                name = f"nls-norm{factor:g}" if method == "norm loss" else f"nls-wd{factor:g}"
                folder = _runs.train(args.out, name, seed=seed, reg=reg, weight_decay=wd, **common)
                error[method][s, f] = 100 - _runs.history(folder)["test_acc"][-1]
    return error, baseline


def main(argv=None) -> int:
    """Run the figure (command line of ``figures/_runs.py``); 0 on success."""
    import matplotlib.pyplot as plt
    import numpy as np

    from analysis.findings import mean_interval

    p = _runs.parser(__doc__)
    p.add_argument("--factors", type=float, nargs="+", default=None,
                   help=f"factors to try (default {' '.join(map(str, FACTORS))})")
    args = _runs.parse(p, argv)
    factors = args.factors or (QUICK_FACTORS if args.quick else FACTORS)
    data = _runs.subset_data(args.out, args.quick)
    error, baseline = train_all(args, factors, data)

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for method, values in error.items():
        stats = [mean_interval(values[:, f]) for f in range(len(factors))]
        mean = np.array([st.mean for st in stats])
        ax.errorbar(factors, mean, yerr=np.nan_to_num([mean - [st.low for st in stats], [st.high for st in stats] - mean]),
                    marker="o", capsize=3, label=method)
        ax.plot(np.repeat(factors, len(args.seeds)), values.T.ravel(), ".", alpha=0.4, color=ax.lines[-1].get_color())
    base = mean_interval(baseline)
    ax.axhline(base.mean, color="k", ls=":", label=f"no regularization ({base.mean:.2f}%)")
    ax.set(xscale="log", xlabel="regularization factor", ylabel="test error (%)",
           title=f"Norm loss Fig. 2: CNN on {100 if args.quick else 300} digits, {args.epochs} epochs, lr {LR:g} "
                 f"/5 after epochs {milestones(args.epochs)}; mean, 95% interval and every seed ({len(args.seeds)})")
    ax.title.set_fontsize(8)
    ax.legend(fontsize=8)

    resolution = 100 / len(np.load(data)["y_test"])      # one test example, in points
    spread = {m: np.maximum(v.max(axis=1) - v.min(axis=1), resolution) for m, v in error.items()}   # per seed
    d = _runs.decide(spread["weight decay"], spread["norm loss"], +1, log=True)
    wins = int(np.sum(spread["weight decay"] > spread["norm loss"]))
    best = {m: float(v.mean(axis=0).min()) for m, v in error.items()}
    claims = [_runs.claim(
        "the test error depends much less on the factor with norm loss than with weight decay (Fig. 2)",
        "WRN-28-10 on CIFAR-100, four factors; values only in the plot",
        f"spread of the test error over factors {', '.join(f'{x:g}' for x in factors)}, per seed: weight decay "
        f"{np.round(spread['weight decay'], 2).tolist()}, norm loss {np.round(spread['norm loss'], 2).tolist()} points; "
        f"weight decay / norm loss {d.text()}; weight decay's spread larger in {wins} of {len(args.seeds)} seeds; "
        f"best mean error: norm loss {best['norm loss']:.2f}%, weight decay {best['weight decay']:.2f}%, "
        f"none {base.mean:.2f}%", d)]
    _runs.conclude([fig], args.out, "norm_loss_sensitivity", claims,
                   {"factors": list(factors), "seeds": args.seeds, "epochs": args.epochs, "lr": LR, "batch_size": BATCH,
                    "milestones": milestones(args.epochs), "gamma": GAMMA, "baseline_error": baseline,
                    "spread": {m: v.tolist() for m, v in spread.items()},
                    **{m: v.tolist() for m, v in error.items()}}, quick=args.quick)
    _runs.save(fig, args.out, "norm_loss_sensitivity.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
