"""Norm loss Fig. 2 style on the digits: test accuracy against the regularization factor for
norm loss and for weight decay, with the unregularized baseline as a reference. Writes
``norm_loss_sensitivity.png`` and ``norm_loss_sensitivity.json`` into ``--out`` (default
figures/out).

    python figures/norm_loss_sensitivity.py            # 5 factors x 2 methods, 20 epochs (~1 min)
    python figures/norm_loss_sensitivity.py --quick    # 2 factors, 3 epochs
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from figures import _runs  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402

from analysis.generalization import load_history  # noqa: E402

FACTORS, QUICK_FACTORS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0), (1e-3, 1e-1)


def final_test_acc(folder: Path) -> float:
    return float(load_history(folder)["test_acc"][-1])


def plot_sensitivity(factors, curves: dict, baseline: float):
    """Test accuracy (%) against the factor on a log axis, one line per method."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, accs in curves.items():
        ax.plot(factors, accs, marker="o", label=name)
    ax.axhline(baseline, color="k", ls=":", label="no regularization")
    ax.set(xscale="log", xlabel="regularization factor", ylabel="test accuracy (%)")
    ax.legend()
    return fig


def main(argv=None) -> int:
    p = _runs.parser(__doc__)
    p.add_argument("--factors", type=float, nargs="+", default=None,
                   help=f"factors to try (default {' '.join(map(str, FACTORS))})")
    args = _runs.parse(p, argv)
    factors = args.factors or (QUICK_FACTORS if args.quick else FACTORS)
    baseline = final_test_acc(_runs.train(args.out, "baseline", args.epochs, seed=args.seed))
    curves = {"norm loss": [], "weight decay": []}
    for f in factors:
        norm = _runs.train(args.out, f"norm{f:g}", args.epochs, [f"norm:{f}"], seed=args.seed)
        decay = _runs.train(args.out, f"wd{f:g}", args.epochs, weight_decay=f, seed=args.seed)
        curves["norm loss"].append(final_test_acc(norm))
        curves["weight decay"].append(final_test_acc(decay))
        print(f"factor {f:g}: test acc norm loss {curves['norm loss'][-1]:5.1f}%  "
              f"weight decay {curves['weight decay'][-1]:5.1f}%  (baseline {baseline:.1f}%)")
    fig = plot_sensitivity(factors, curves, baseline)
    fig.axes[0].set_title(f"digits CNN, {args.epochs} epochs")
    _runs.save(fig, args.out, "norm_loss_sensitivity.png")
    _runs.write_json(args.out, "norm_loss_sensitivity.json",
                     {"factors": list(factors), "baseline": baseline, **curves})
    return 0


if __name__ == "__main__":
    sys.exit(main())
