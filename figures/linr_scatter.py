"""LinR Figs. 3-4 on the digits: train/test accuracy of baseline CNN checkpoints and of the models
refined from each (Algorithm 1, :func:`regularizers.linear.refine`), and the "sweet point".
Writes ``linr_scatter.png`` (Fig. 3), ``linr_sweep.png`` (Fig. 4) and ``linr_scatter.json``
into ``--out`` (default figures/out).

    python figures/linr_scatter.py            # 20 epochs, every 2nd checkpoint, 10 rounds (~40 s)
    python figures/linr_scatter.py --quick    # 3 epochs, 2 rounds
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from figures import _runs  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from analysis.generalization import (RefineSweep, accuracy_points, plot_accuracy_scatter,  # noqa: E402
                                     plot_refine_sweep, sweet_point)
from regularizers.linear import refine  # noqa: E402
from regularizers.models import load_checkpoint  # noqa: E402
from regularizers.train import load_run  # noqa: E402


def main(argv=None) -> int:
    p = _runs.parser(__doc__)
    p.add_argument("--rounds", type=int, default=None, help="refine rounds T (default 10, 2 with --quick)")
    p.add_argument("--every", type=int, default=None, help="refine every k-th checkpoint (default 2, 1 with --quick)")
    p.add_argument("--lr-linr", type=float, default=1e-3, help="LinR learning rate (the paper: 1e-2 or 1e-3)")
    args = _runs.parse(p, argv)
    rounds = args.rounds or (2 if args.quick else 10)
    every = args.every or (1 if args.quick else 2)
    folder = _runs.train(args.out, "baseline", args.epochs, seed=args.seed)
    model, data, history = load_run(folder)
    epochs = list(range(every, args.epochs + 1, every))
    refined = []
    for epoch in epochs:
        load_checkpoint(model, folder / "checkpoints" / f"epoch_{epoch:03d}.pt")
        torch.manual_seed(args.seed)  # LinR's mixing weights and pairs use the global generator
        result = refine(model, data, rounds=rounds, lr_linr=args.lr_linr, seed=args.seed)
        refined.append(np.stack([result.train_acc, result.test_acc], axis=1))
        print(f"epoch {epoch:3d}: baseline test acc {result.initial_test_acc:5.1f}%  refined "
              f"{min(result.test_acc):5.1f}..{max(result.test_acc):5.1f}% over {rounds} rounds")
    sweep = RefineSweep(np.array(epochs), accuracy_points(history)[np.array(epochs) - 1], refined)
    sweet = sweet_point(sweep)
    print("sweet point: " + (f"epoch {sweet} (refining from it and every later checkpoint always "
                             "raised test accuracy)" if sweet is not None else
                             "none (refining the last checkpoint did not always raise test accuracy)"))

    fig = plot_accuracy_scatter({"baseline checkpoints": sweep.baseline,
                                 "refined (every round)": np.concatenate(refined)})
    fig.axes[0].set_title(f"LinR refine, digits CNN, T={rounds}")
    _runs.save(fig, args.out, "linr_scatter.png")
    _runs.save(plot_refine_sweep(sweep, columns=min(4, len(epochs))), args.out, "linr_sweep.png")
    _runs.write_json(args.out, "linr_scatter.json", {
        "epochs": epochs, "rounds": rounds, "lr_linr": args.lr_linr, "sweet_point": sweet,
        "baseline": sweep.baseline.tolist(), "refined": [r.tolist() for r in refined]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
