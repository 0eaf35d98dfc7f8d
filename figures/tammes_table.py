"""MMA Table 1: minimal angle (degrees) reached on the Tammes problem by the MMA, cosine,
Riesz-Fisher (s=2) and log energies. Writes figures/out/tammes_table.md and .png.

    python figures/tammes_table.py            # the paper's ten cases
    python figures/tammes_table.py --quick    # three small cases, few steps (for tests)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from analysis.tammes_problem import MMA_TABLE1, plot_tammes_table, tammes_table  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
QUICK_CASES = ((3, 4), (3, 6), (4, 5))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cases and few steps")
    parser.add_argument("--steps", type=int, default=None, help="SGD steps per run (default 3000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT, help="output folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # matrices of at most 600 x 600: extra BLAS threads only contend
    cases = QUICK_CASES if args.quick else tuple(MMA_TABLE1)
    steps = args.steps or (300 if args.quick else 3000)
    table = tammes_table(cases, steps=steps, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    text = (f"Minimal angle (degrees) after {steps} steps, seed {args.seed}; "
            "MMA Table 1's value in parentheses.\n\n" + table.to_markdown() + "\n")
    (args.out / "tammes_table.md").write_text(text)
    plot_tammes_table(table).savefig(args.out / "tammes_table.png", dpi=120, bbox_inches="tight")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
