"""MMA Fig. 1 and Table 3 on the digits: filter cosine-similarity matrices of one layer and the
minimal angle of every layer, baseline vs MMA-trained CNN. Writes ``mma_cosine_matrices.png``,
``mma_min_angles.md`` and ``mma_cosine_matrices.json`` into ``--out`` (default figures/out).

    python figures/mma_cosine_matrices.py            # 20 epochs each (about 20 s on a CPU)
    python figures/mma_cosine_matrices.py --quick    # 3 epochs
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from figures import _runs  # noqa: E402

from analysis.angles import cosine_matrix, min_angle_table, named_layers  # noqa: E402
from analysis.similarity import count_above, plot_cosine_matrices  # noqa: E402
from regularizers.train import load_run  # noqa: E402


def main(argv=None) -> int:
    p = _runs.parser(__doc__)
    p.add_argument("--coef", type=float, default=0.07, help="MMA coefficient (the paper's 0.07)")
    p.add_argument("--layer", type=int, default=-2, help="layer index of the matrices (-2: last conv)")
    p.add_argument("--threshold", type=float, default=0.2)
    args = _runs.parse(p, argv)
    runs = {"baseline": _runs.train(args.out, "baseline", args.epochs, seed=args.seed),
            f"MMA {args.coef:g}": _runs.train(args.out, f"mma{args.coef:g}", args.epochs,
                                              [f"mma:{args.coef}"], seed=args.seed)}
    loaded = {name: load_run(folder) for name, folder in runs.items()}
    models = {name: model for name, (model, _, _) in loaded.items()}

    layer_name, weight = named_layers(models["baseline"])[args.layer]
    n = weight.shape[0]
    fig = plot_cosine_matrices(models, args.layer, args.threshold)
    fig.suptitle(f"{layer_name} ({n} filters, {n * (n - 1) // 2} pairs), digits CNN, {args.epochs} epochs",
                 y=1.02)
    _runs.save(fig, args.out, "mma_cosine_matrices.png")
    table = min_angle_table(models)
    text = (f"Minimal / mean minimal filter angle (degrees) per layer after {args.epochs} epochs "
            f"(MMA Table 3 style).\n\n{table.to_text()}\n")
    (args.out / "mma_min_angles.md").write_text(text)

    numbers = {"layer": layer_name, "filters": n, "pairs": n * (n - 1) // 2, "threshold": args.threshold,
               "count_above": {}, "test_acc": {}, "min_angle": {}, "mean_min_angle": {}}
    for name, model in models.items():
        numbers["count_above"][name] = count_above(cosine_matrix(named_layers(model)[args.layer][1]),
                                                   args.threshold)
        numbers["test_acc"][name] = loaded[name][2]["test_acc"][-1]
        numbers["min_angle"][name] = table.min_angle[name].tolist()
        numbers["mean_min_angle"][name] = table.mean_min_angle[name].tolist()
        print(f"{name:12s} test acc {numbers['test_acc'][name]:5.1f}%  pairs of {layer_name} with "
              f"cosine > {args.threshold:g}: {numbers['count_above'][name]} of {numbers['pairs']}")
    print(text)
    _runs.write_json(args.out, "mma_cosine_matrices.json", numbers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
