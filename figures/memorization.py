"""Figure: an MLP memorizes the digits under random labels, shuffled / random pixels and
Gaussian inputs (Zhang et al. 2017, Fig. 1a; lecture 002). Writes ``memorization.png`` and the
per-epoch histories ``memorization.json`` into ``--out`` (default ``figures/out``).

    python figures/memorization.py            # all digits, 100 epochs (about a minute on a CPU)
    python figures/memorization.py --quick    # 200 digits, 15 epochs (seconds)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.memorization import memorization_experiment, plot_memorization  # noqa: E402
from regularizers.data import load_data  # noqa: E402
from regularizers.models import create_model  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 training digits, 15 epochs")
    parser.add_argument("--epochs", type=int, help="default 100 (15 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    args = parser.parse_args(argv)

    epochs = args.epochs or (15 if args.quick else 100)
    data = load_data("digits", seed=args.seed, limit=200 if args.quick else None)
    runs = memorization_experiment(
        data, lambda: create_model("mlp", data.num_classes, data.in_channels, hidden=(256, 256)),
        epochs=epochs, seed=args.seed, batch_size=32, lr=0.05, device="cpu")

    args.out.mkdir(parents=True, exist_ok=True)
    fig = plot_memorization(runs)
    fig.suptitle(f"Memorization on {len(data.x_train)} digits (MLP 256-256, SGD, no regularization)")
    fig.savefig(args.out / "memorization.png", dpi=120)
    (args.out / "memorization.json").write_text(
        json.dumps({k: dataclasses.asdict(r) for k, r in runs.items()}, indent=1))
    for kind, run in runs.items():
        h = run.history
        print(f"{kind:16s} train acc {h['train_acc'][-1]:5.1f}%  test acc {h['test_acc'][-1]:5.1f}%")
    print(f"wrote {args.out / 'memorization.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
