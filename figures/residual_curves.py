"""Residual smoothing Figs. 5-6 on the digits: train loss, test loss and test accuracy per epoch
of a CNN trained with the plain squared error (MSE on softmax outputs) and with residual smoothing
under the Laplace and the Logistic annealing schedules. Writes ``residual_curves.png`` and
``residual_curves.json`` into ``--out`` (default figures/out).

    python figures/residual_curves.py            # 20 epochs each (about 25 s on a CPU)
    python figures/residual_curves.py --quick    # 3 epochs
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from figures import _runs  # noqa: E402

from analysis.generalization import load_history, plot_learning_curves  # noqa: E402

# name -> regularizer spec; "residual:0" has zero diffusivity: the plain squared error
RUNS = {"MSE": "residual:0", "Laplace": "residual:1:schedule=laplace,b=0.2",
        "Logistic": "residual:1:schedule=logistic,b=0.25"}


def main(argv=None) -> int:
    p = _runs.parser(__doc__)
    p.add_argument("--lr", type=float, default=0.2, help="SGD learning rate (squared errors need a large one)")
    args = _runs.parse(p, argv)
    folders = {name: _runs.train(args.out, f"residual-{name.lower()}-lr{args.lr:g}", args.epochs, [spec],
                                 lr=args.lr, seed=args.seed)
               for name, spec in RUNS.items()}
    fig = plot_learning_curves(folders)
    for ax in fig.axes[:2]:
        ax.set_yscale("log")
    fig.suptitle(f"Residual smoothing, digits CNN, SGD lr {args.lr:g} "
                 "(losses: cross-entropy of the evaluated model)", y=1.03)
    _runs.save(fig, args.out, "residual_curves.png")
    numbers = {}
    for name, folder in folders.items():
        h = load_history(folder)
        objective = json.loads((folder / "history.json").read_text())["objective"]
        numbers[name] = {"train_loss": h["train_loss"][-1], "test_loss": h["test_loss"][-1],
                         "test_acc": h["test_acc"][-1], "best_test_acc": h["test_acc"].max(),
                         "objective": objective[-1]}
        print(f"{name:9s} final train loss {h['train_loss'][-1]:.4f}  test loss {h['test_loss'][-1]:.4f}  "
              f"test acc {h['test_acc'][-1]:5.1f}% (best {h['test_acc'].max():5.1f}%)  "
              f"training objective {objective[-1]:.4f}")
    _runs.write_json(args.out, "residual_curves.json", numbers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
