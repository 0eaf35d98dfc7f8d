"""Norm loss Fig. 2 on 300 digits: test error against the regularization factor for norm loss
(eq. 7) and for weight decay, four factors each (the paper trains four), 3 seeds, with the
unregularized baseline as a reference. Writes ``norm_loss_sensitivity.png`` and
``norm_loss_sensitivity.json`` into ``--out``.

    python figures/norm_loss_sensitivity.py            # 4 factors x 2 methods x 3 seeds, 40 epochs
    python figures/norm_loss_sensitivity.py --quick    # 2 factors, 2 seeds, 2 epochs (tests)

Regime (``figures/_runs.py``): 300 training digits, where the unregularized CNN overfits, so the
factor of either regularizer visibly moves the test error. The paper does not print its four
factors; we use 1e-4 ... 1e-1, a decade apart, which spans too little and too much weight decay.
Sensitivity is the spread (largest minus smallest test error over the factors) of each seed;
the claim is checked on the per-seed difference of the spreads (weight decay minus norm loss,
paired by seed: the same seed initializes both methods).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from figures import _runs  # noqa: E402

MEASURED = (104, "2026-12-02, 2 cores shared with 4 other agents")  # full run, `landscape figures norm_loss_sensitivity`

FACTORS, QUICK_FACTORS = (1e-4, 1e-3, 1e-2, 1e-1), (1e-3, 1e-1)


def main(argv=None) -> int:
    import matplotlib.pyplot as plt
    import numpy as np

    from analysis.findings import mean_interval

    p = _runs.parser(__doc__)
    p.add_argument("--factors", type=float, nargs="+", default=None,
                   help=f"factors to try (default {' '.join(map(str, FACTORS))})")
    args = _runs.parse(p, argv)
    factors = args.factors or (QUICK_FACTORS if args.quick else FACTORS)
    data = _runs.subset_data(args.out, args.quick)
    error = {"norm loss": np.zeros((len(args.seeds), len(factors))),
             "weight decay": np.zeros((len(args.seeds), len(factors)))}
    baseline = []
    total = len(args.seeds) * (2 * len(factors) + 1)
    step = 0
    for s, seed in enumerate(args.seeds):
        step += 1
        print(f"[{step}/{total}] baseline, seed {seed}", flush=True)
        baseline.append(100 - _runs.history(_runs.train(args.out, "baseline", seed=seed, epochs=args.epochs,
                                                        data=data))["test_acc"][-1])
        for f, factor in enumerate(factors):
            for method in error:
                step += 1
                print(f"[{step}/{total}] {method} {factor:g}, seed {seed}", flush=True)
                reg, wd = ([f"norm:{factor}"], 0.0) if method == "norm loss" else ([], factor)
                name = f"norm{factor:g}" if method == "norm loss" else f"wd{factor:g}"
                folder = _runs.train(args.out, name, seed=seed, epochs=args.epochs, data=data, reg=reg,
                                     weight_decay=wd)
                error[method][s, f] = 100 - _runs.history(folder)["test_acc"][-1]

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for method, values in error.items():
        stats = [mean_interval(values[:, f]) for f in range(len(factors))]
        mean = np.array([st.mean for st in stats])
        ax.errorbar(factors, mean, yerr=np.array([mean - [st.low for st in stats], [st.high for st in stats] - mean]),
                    marker="o", capsize=3, label=method)
    base = mean_interval(baseline)
    ax.axhline(base.mean, color="k", ls=":", label=f"no regularization ({base.mean:.2f}%)")
    ax.set(xscale="log", xlabel="regularization factor", ylabel="test error (%)",
           title=f"Norm loss Fig. 2: CNN on {100 if args.quick else 300} digits, {args.epochs} epochs, "
                 f"mean and 95% interval over {len(args.seeds)} seeds")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)

    spread = {m: v.max(axis=1) - v.min(axis=1) for m, v in error.items()}      # per seed
    e = _runs.effect(spread["weight decay"], spread["norm loss"], paired=True)
    best = {m: float(v.mean(axis=0).min()) for m, v in error.items()}
    claims = [_runs.claim("the test error depends much less on the factor with norm loss than with weight decay "
                          "(Fig. 2)", "WRN-28-10 on CIFAR-100, four factors; values only in the plot",
                          f"spread of the test error over factors {', '.join(f'{x:g}' for x in factors)}: "
                          f"weight decay {_runs.mean_text(spread['weight decay'], ' points')}, norm loss "
                          f"{_runs.mean_text(spread['norm loss'], ' points')}; difference {_runs.fmt(e, ' points')} "
                          f"(paired by seed); best mean error: norm loss {best['norm loss']:.2f}%, weight decay "
                          f"{best['weight decay']:.2f}%, none {base.mean:.2f}%",
                          _runs.verdict(e.low, e.high, +1))]
    _runs.conclude([fig], args.out, "norm_loss_sensitivity", claims,
                   {"factors": list(factors), "seeds": args.seeds, "baseline_error": baseline,
                    **{m: v.tolist() for m, v in error.items()}}, quick=args.quick)
    _runs.save(fig, args.out, "norm_loss_sensitivity.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
