"""`landscape demo`: the main job on the embedded digits data."""
from __future__ import annotations

from pathlib import Path

HELP = "train a baseline and a regularized model on digits and compare their loss landscapes"


def add_arguments(p) -> None:
    p.add_argument("--out", default="runs/demo", help="folder for runs, surfaces and figures")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)


def train_pair(out: Path, epochs: int, seed: int):
    """Train (or reuse, when already trained) the baseline and the regularized model."""
    from landscape.cli import main as cli

    runs = {"baseline": [], "weight_decay": ["--weight-decay", "5e-3"]}
    for name, extra in runs.items():
        folder = out / name
        if (folder / "model.pt").is_file():
            print(f"{name}: reusing {folder}")
            continue
        code = cli(["train", "--model", "cnn", "--data", "digits", "--epochs", str(epochs),
                    "--out", str(folder), "--seed", str(seed), "--lr", "0.05", *extra])
        if code:
            raise SystemExit(code)
    return {name: out / name for name in runs}


def run(args) -> int:
    out = Path(args.out)
    runs = train_pair(out, args.epochs, args.seed)
    for name, folder in runs.items():
        print(f"{name}: {folder}")
    return 0
