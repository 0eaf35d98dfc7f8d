"""Residual smoothing Figs. 5-6 on 300 digits: learning curves (test accuracy, train loss, test
loss) of a CNN trained on the plain squared error (SGD) and with adaptive residual smoothing under
the Laplace and the Logistic annealing (global + local scheme), the paper's protocol: SGD,
momentum 0.9, weight decay 1e-4, learning rate 0.1 dropped to 0.001 at 75% of the epochs (where
the annealing peaks, mu = 0.75); 5 seeds each, the same seeds for every variant, so the
comparisons are paired by seed (rule in ``figures/_runs.py``, printed before the run). Writes ``residual_curves.png`` and
``residual_curves.json`` into ``--out``.

    python figures/residual_curves.py            # 3 variants x 5 seeds x 40 epochs
    python figures/residual_curves.py --quick    # 2 seeds, 2 epochs (tests)

Regime (``figures/_runs.py``): 300 training digits, where the CNN overfits and the final test
accuracy leaves room for a regularizer. Curves are the mean over seeds with a 95% t-band; the
dotted line marks the learning-rate drop. The losses drawn are the cross-entropy of the evaluated
model (the trainer's common yardstick), not the training objective.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from figures import _runs  # noqa: E402

MEASURED = (143, "2026-12-05, 5 seeds, 2 cores shared with 8 agents")  # full run, `landscape figures residual_curves`

# name -> regularizer spec; "residual:0" has zero diffusivity: the plain squared error (the SGD baseline)
RUNS = {"SGD (squared error)": "residual:0", "Laplace": "residual:1:schedule=laplace,b=0.2",
        "Logistic": "residual:1:schedule=logistic,b=0.25"}
LR, DROP, WEIGHT_DECAY = 0.1, 0.01, 1e-4
PAPER = "ResNet56 CIFAR-10 mean 92.54 (SGD) / 92.78 (Laplace) / 92.74 (Logistic); DenseNet-BC 94.32 / 94.53 / 94.66"


def main(argv=None) -> int:
    """Run the figure (command line of ``figures/_runs.py``); 0 on success."""
    import matplotlib.pyplot as plt
    import numpy as np

    from analysis.findings import mean_interval

    args = _runs.parse(_runs.parser(__doc__), argv)
    data = _runs.subset_data(args.out, args.quick)
    drop = max(1, round(0.75 * args.epochs))
    histories = {name: [] for name in RUNS}
    for i, (name, spec) in enumerate(RUNS.items()):
        for j, seed in enumerate(args.seeds):
            print(f"[{i * len(args.seeds) + j + 1}/{len(RUNS) * len(args.seeds)}] {name}, seed {seed}", flush=True)
            folder = _runs.train(args.out, f"residual-{name.split()[0].lower()}", seed=seed, epochs=args.epochs,
                                 data=data, reg=[spec], lr=LR, weight_decay=WEIGHT_DECAY, schedule="multistep",
                                 schedule_options={"milestones": [drop], "gamma": DROP})
            histories[name].append(_runs.history(folder))

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    panels = (("test_acc", "test accuracy (%)", False), ("train_loss", "train loss (log)", True),
              ("test_loss", "test loss (log)", True))
    for name, runs in histories.items():
        epochs = np.array(runs[0]["epoch"])
        for ax, (key, label, log) in zip(axes, panels):
            values = np.array([h[key] for h in runs])                    # (seeds, epochs)
            stats = [mean_interval(values[:, e]) for e in range(values.shape[1])]
            mean = np.array([s.mean for s in stats])
            ax.plot(epochs, mean, label=name)
            ax.fill_between(epochs, [s.low for s in stats], [s.high for s in stats], alpha=0.2)
            ax.set(xlabel="epoch", ylabel=label, yscale="log" if log else "linear")
    for ax in axes:
        ax.axvline(drop + 0.5, color="k", ls=":", lw=0.8)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Residual smoothing, CNN on {300 if not args.quick else 100} digits, SGD lr {LR:g} -> "
                 f"{LR * DROP:g} after epoch {drop} (dotted), mean and 95% band over {len(args.seeds)} seeds",
                 y=1.03, fontsize=9)

    final = {name: [h["test_acc"][-1] for h in runs] for name, runs in histories.items()}
    base_name = next(iter(RUNS))
    claims, numbers = [], {"epochs": args.epochs, "drop_after_epoch": drop, "seeds": args.seeds}
    for name in list(RUNS)[1:]:
        e = _runs.decide(final[name], final[base_name], +1)
        claims.append(_runs.claim(f"residual smoothing with {name} annealing generalizes better than SGD on the "
                                  "squared error: higher final validation accuracy (Table 3, Figs. 5-6)", PAPER,
                                  f"final test acc {_runs.mean_text(final[base_name], '%')} (SGD) -> "
                                  f"{_runs.mean_text(final[name], '%')} ({name}); difference "
                                  f"{e.text(' points')}", e))
    for name, runs in histories.items():
        numbers[name] = {key: [h[key][-1] for h in runs] for key in ("train_loss", "test_loss", "test_acc")}
        numbers[name]["test_loss_before_drop"] = [h["test_loss"][drop - 1] for h in runs]
        numbers[name]["objective"] = [h["objective"][-1] for h in runs]
    _runs.conclude([fig], args.out, "residual_curves", claims, numbers, quick=args.quick)
    _runs.save(fig, args.out, "residual_curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
