"""LinR Figs. 3-4 on 300 digits: train vs test accuracy of models refined by Algorithm 1
(:func:`regularizers.linear.refine`, LinRNL: LinR iterations without labels, lr 1e-3, T rounds)
from a trained baseline, against the paper's control of Fig. 3 (fine-tuning the same model with
labels, SGD lr 1e-3, momentum 0.9, weight decay 5e-4, for as many passes), and refinement from
every 5th checkpoint for the "sweet point" of Fig. 4; 3 seeds. Writes ``linr_scatter.png``
(Fig. 3), ``linr_sweep.png`` (Fig. 4, first seed) and ``linr_scatter.json`` into ``--out``.

    python figures/linr_scatter.py            # 3 seeds, 40 epochs, T = 30 rounds (the paper's Fig. 4)
    python figures/linr_scatter.py --steps 10 # T = 10 rounds
    python figures/linr_scatter.py --quick    # 2 seeds, 2 epochs, 2 rounds (tests)

Regime (``figures/_runs.py``): the CNN on a 300-digit training subset fits it exactly while test
accuracy stays a few points lower -- the overfitting LinR is meant to reduce. Each refinement
starts from the baseline's own weights, so refined and fine-tuned results are paired by seed.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from figures import _runs  # noqa: E402

MEASURED = (107, "2026-12-02, 2 cores shared with 4 other agents")  # full run, `landscape figures linr_scatter`

ROUNDS, QUICK_ROUNDS = 30, 2
LR = 1e-3           # the paper's LinRNL and fine-tuning learning rate (Sec. 4.7-4.8)
PANELS = 8          # checkpoints refined for Fig. 4, as the paper's panels (a)-(h)


def refine_from(model, data, *, rounds: int, seed: int, finetune: bool):
    """LinRNL refinement (``finetune=False``) or the fine-tuning control, in place."""
    import torch

    from regularizers.linear import refine

    torch.manual_seed(seed)  # LinR's mixing weights and pairs use the global generator
    if finetune:
        return refine(model, data, rounds=rounds, n_linr=0, labels=True, lr_cls=LR, weight_decay_cls=5e-4,
                      seed=seed)
    return refine(model, data, rounds=rounds, labels=False, lr_linr=LR, seed=seed)


def main(argv=None) -> int:
    import numpy as np

    from analysis.generalization import (RefineSweep, accuracy_points, plot_accuracy_scatter,
                                         plot_refine_sweep, sweet_point)
    from regularizers.models import load_checkpoint
    from regularizers.train import load_run

    args = _runs.parse(_runs.parser(__doc__, steps=f"refine rounds T (default {ROUNDS})"), argv)
    rounds = args.steps or (QUICK_ROUNDS if args.quick else ROUNDS)
    data_file = _runs.subset_data(args.out, args.quick)
    every = max(1, args.epochs // PANELS)
    epochs = list(range(every, args.epochs + 1, every))
    per_seed = []
    for k, seed in enumerate(args.seeds):
        print(f"[{k + 1}/{len(args.seeds)}] seed {seed}: baseline, then {len(epochs)} refinements of "
              f"{rounds} rounds and the fine-tuning control", flush=True)
        folder = _runs.train(args.out, "baseline", seed=seed, epochs=args.epochs, data=data_file)
        model, data, hist = load_run(folder)
        refined = []
        for epoch in epochs:
            load_checkpoint(model, folder / "checkpoints" / f"epoch_{epoch:03d}.pt")
            result = refine_from(model, data, rounds=rounds, seed=seed, finetune=False)
            refined.append(np.stack([result.train_acc, result.test_acc], axis=1))
            print(f"  epoch {epoch:3d}: baseline test acc {result.initial_test_acc:5.1f}%, refined "
                  f"{min(result.test_acc):5.1f}..{max(result.test_acc):5.1f}%", flush=True)
        load_checkpoint(model, folder / "checkpoints" / f"epoch_{args.epochs:03d}.pt")
        tuned = refine_from(model, data, rounds=rounds, seed=seed, finetune=True)
        sweep = RefineSweep(np.array(epochs), accuracy_points(hist)[np.array(epochs) - 1], refined)
        per_seed.append({"seed": seed, "sweep": sweep, "sweet_point": sweet_point(sweep),
                         "finetune": np.stack([tuned.train_acc, tuned.test_acc], axis=1),
                         "baseline_final": accuracy_points(hist)[-1]})

    final = [s["baseline_final"][1] for s in per_seed]
    refined_final = [s["sweep"].refined[-1][-1, 1] for s in per_seed]      # last round, last checkpoint
    tuned_final = [s["finetune"][-1, 1] for s in per_seed]
    refined_mean = [s["sweep"].refined[-1][:, 1].mean() for s in per_seed]
    vs_finetune = _runs.effect(refined_final, tuned_final, paired=True)
    vs_baseline = _runs.effect(refined_mean, final, paired=True)
    sweets = [s["sweet_point"] for s in per_seed]

    fig3 = plot_accuracy_scatter({  # the baseline last, drawn on top
        "LinRNL refine, every round": np.concatenate([s["sweep"].refined[-1] for s in per_seed]),
        "fine-tune with labels, every round": np.concatenate([s["finetune"] for s in per_seed]),
        "baseline (trained)": np.array([s["baseline_final"] for s in per_seed])})
    fig3.axes[0].set_title(f"LinR Fig. 3: refine vs fine-tune, T={rounds}, {len(args.seeds)} seeds", fontsize=9)
    fig3.axes[0].legend(fontsize=7)
    fig4 = plot_refine_sweep(per_seed[0]["sweep"], columns=min(4, len(epochs)))
    fig4.suptitle(f"LinR Fig. 4, seed {args.seeds[0]}: refining from every {every}th checkpoint, "
                  f"sweet points per seed: {sweets}", y=1.02)
    claims = [
        _runs.claim("refining the trained model with LinRNL reaches higher test accuracy than fine-tuning it "
                    "with labels for as long (Fig. 3: LinRNL points lie upper left)",
                    "CIFAR-10, converged baseline 91.08%; no per-point numbers",
                    f"final test acc: baseline {_runs.mean_text(final, '%')}, LinRNL "
                    f"{_runs.mean_text(refined_final, '%')}, fine-tune {_runs.mean_text(tuned_final, '%')}; "
                    f"LinRNL - fine-tune {_runs.fmt(vs_finetune, ' points')} (paired by seed)",
                    _runs.verdict(vs_finetune.low, vs_finetune.high, +1)),
        _runs.claim("refining a late checkpoint improves on its baseline: after the 'sweet point' every refined "
                    "result surpasses the baseline (Fig. 4)",
                    "DenseNet on CIFAR-10: sweet point between epochs 2 and 8 of 200",
                    f"last checkpoint: mean refined test acc over the rounds - baseline "
                    f"{_runs.fmt(vs_baseline, ' points')} (paired by seed); sweet point per seed {sweets}",
                    _runs.verdict(vs_baseline.low, vs_baseline.high, +1)),
    ]
    _runs.conclude([fig3, fig4], args.out, "linr_scatter", claims, {
        "epochs": epochs, "rounds": rounds, "lr": LR, "seeds": args.seeds, "sweet_points": sweets,
        "baseline": [s["sweep"].baseline.tolist() for s in per_seed],
        "refined": [[r.tolist() for r in s["sweep"].refined] for s in per_seed],
        "finetune": [s["finetune"].tolist() for s in per_seed]}, quick=args.quick)
    _runs.save(fig3, args.out, "linr_scatter.png")
    _runs.save(fig4, args.out, "linr_sweep.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
