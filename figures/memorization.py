"""Zhang et al. 2017, Fig. 1a (lecture 002): an MLP memorizes 300 digits under random labels,
shuffled pixels, random pixels and Gaussian inputs, 5 seeds each (same initialization per seed
across the variants). Writes ``memorization.png`` (mean over seeds) and ``memorization.json``
(every run's per-epoch history) into ``--out``.

    python figures/memorization.py            # 5 seeds x 5 variants, 100 epochs
    python figures/memorization.py --quick    # 2 seeds, 2 epochs (tests)

Regime (``figures/_runs.py``): 300 training digits, small enough that an MLP (256-256, SGD lr
0.05, batch 32, no regularization) can fit any labelling within the run, as the paper's
Inception fits CIFAR-10. Time to fit is the first epoch with training accuracy >= 99% (a run that
never gets there counts as epochs + 1, so the difference is then a lower bound).

Rule, fixed before the run (``figures/_runs.py`` for the shared part; runs are paired by seed):
"fits random labels" is decided on final train accuracy minus 99%; "test accuracy at chance" on
the 95% t-interval of the final test accuracy under random labels: reproduced when it lies
within 5 points of chance, 100/K % for K classes (10% on digits), not reproduced when it lies
entirely outside that band, otherwise inconclusive; the claim holds when both halves do.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from figures import _runs  # noqa: E402

MEASURED = (92, "2026-12-05, 5 seeds, 2 cores shared with 8 agents")  # full run, `landscape figures memorization`

EPOCHS = 100
FIT = 99.0  # percent training accuracy that counts as fitted
CHANCE_BAND = 5.0  # points around chance (100/K %) that count as "at chance"


def at_chance(test_acc, classes: int):
    """``(text, verdict)`` of "test accuracy at chance": the 95% t-interval of ``test_acc`` (%)
    against the band of :data:`CHANCE_BAND` points around ``100 / classes``."""
    from analysis.findings import mean_interval

    chance, s = 100 / classes, mean_interval(test_acc)
    low, high = chance - CHANCE_BAND, chance + CHANCE_BAND
    if low <= s.low and s.high <= high:
        result = _runs.VERDICTS[0]
    elif s.high < low or s.low > high:
        result = _runs.VERDICTS[1]
    else:
        result = _runs.VERDICTS[2]
    return (f"test acc {s.mean:.3g}% [{s.low:.3g}, {s.high:.3g}] against chance {chance:.3g}% ± {CHANCE_BAND:g}: "
            f"{result}", result)


def both(first: str, second: str) -> str:
    """A two-part claim's verdict: reproduced when both parts are, not reproduced when either is not."""
    if first == second:
        return first
    return _runs.VERDICTS[1] if _runs.VERDICTS[1] in (first, second) else _runs.VERDICTS[2]


def fit_epoch(history: dict, epochs: int) -> int:
    """First epoch with training accuracy >= :data:`FIT`, or ``epochs + 1``."""
    return next((e for e, a in zip(history["epoch"], history["train_acc"]) if a >= FIT), epochs + 1)


def main(argv=None) -> int:
    """Run the figure (command line of ``figures/_runs.py``); 0 on success."""
    import numpy as np

    from analysis.memorization import KINDS, LABELS, MemorizationRun, memorization_experiment, plot_memorization
    from regularizers.data import load_data
    from regularizers.models import create_model

    args = _runs.parse(_runs.parser(__doc__, epochs=EPOCHS), argv)
    epochs = args.epochs
    data = load_data(str(_runs.subset_data(args.out, args.quick)), normalize="standardize")
    runs = {kind: [] for kind in KINDS}
    for k, seed in enumerate(args.seeds):
        print(f"[{k + 1}/{len(args.seeds)}] seed {seed}: {len(KINDS)} variants x {epochs} epochs", flush=True)
        result = memorization_experiment(
            data, lambda: create_model("mlp", data.num_classes, data.in_channels, hidden=(256, 256)),
            epochs=epochs, seed=seed, batch_size=32, lr=0.05, device="cpu")
        for kind, run in result.items():
            runs[kind].append(run.history)
            print(f"  {LABELS[kind]:16s} train acc {run.history['train_acc'][-1]:5.1f}%  test acc "
                  f"{run.history['test_acc'][-1]:5.1f}%", flush=True)

    mean_runs = {kind: MemorizationRun(kind, LABELS[kind], -1, {
        key: np.mean([h[key] for h in hs], axis=0).tolist() for key in ("epoch", "train_loss", "train_acc", "test_acc")})
        for kind, hs in runs.items()}
    fig = plot_memorization(mean_runs)
    fig.suptitle(f"Memorization of {len(data.y_train)} digits (MLP 256-256, SGD, no regularization), mean of "
                 f"{len(args.seeds)} seeds", fontsize=9)
    final = {kind: [h["train_acc"][-1] for h in hs] for kind, hs in runs.items()}
    test = {kind: [h["test_acc"][-1] for h in hs] for kind, hs in runs.items()}
    fitted = _runs.decide(np.array(final["labels"]) - FIT, None, +1)
    chance_text, chance = at_chance(test["labels"], data.num_classes)
    slower = _runs.decide([fit_epoch(h, epochs) for h in runs["labels"]],
                          [fit_epoch(h, epochs) for h in runs["true"]], +1)
    claims = [
        _runs.claim("a network fits random labels exactly (training accuracy reaches ~100%) while its test "
                    "accuracy stays at chance (Zhang et al. Fig. 1a)",
                    "Inception on CIFAR-10: 100% training accuracy on random labels, test ~10%",
                    f"final train acc on random labels {_runs.mean_text(final['labels'], '%')}; train acc - {FIT:g}%: "
                    f"{fitted.text(' points')}: {fitted.verdict}; {chance_text}; "
                    + "; ".join(f"{LABELS[k]} train {_runs.mean_text(final[k], '%')}" for k in KINDS[2:]),
                    both(fitted.verdict, chance)),
        _runs.claim("random labels take longer to fit than true labels (Fig. 1a)",
                    "convergence slows by a small constant factor",
                    f"epochs to {FIT:g}% train acc, random - true labels: {slower.text()}", slower),
    ]
    _runs.conclude([fig], args.out, "memorization", claims,
                   {"epochs": epochs, "seeds": args.seeds, "runs": runs}, quick=args.quick)
    _runs.save(fig, args.out, "memorization.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
