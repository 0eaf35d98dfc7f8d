"""Shared by the figure scripts: their command line and the training runs they cache.

Runs are ``landscape train`` folders under ``<out>/runs/<name>-e<epochs>``; a folder whose
``model.pt`` exists and whose ``config.json`` holds the same settings is reused, one made with
other settings is deleted and retrained. All runs are on the embedded digits data.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # before any pyplot import: the scripts only write files

OUT = Path(__file__).resolve().parent / "out"
EPOCHS, QUICK_EPOCHS = 20, 3   # every script's baseline, so they share one cached run


def parser(doc: str) -> argparse.ArgumentParser:
    """``--quick``, ``--epochs``, ``--seed`` and ``--out`` (default ``figures/out``)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="few epochs and small grids (for tests)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs (default {EPOCHS}, {QUICK_EPOCHS} with --quick)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=OUT, help="output folder (runs are cached in OUT/runs)")
    return p


def parse(p: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse, fill ``--epochs``, create ``--out``, and use one torch thread (tiny models)."""
    import torch

    args = p.parse_args(argv)
    args.epochs = args.epochs or (QUICK_EPOCHS if args.quick else EPOCHS)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    return args


def train(out: Path, name: str, epochs: int, reg: Sequence[str] = (), *, model: str = "cnn",
          lr: float = 0.05, weight_decay: float = 0.0, seed: int = 0) -> Path:
    """The run folder ``out/runs/<name>-e<epochs>`` of ``landscape train`` on digits with these
    settings, trained unless cached."""
    from landscape.commands.train import train_cached

    return train_cached(Path(out) / "runs" / f"{name}-e{epochs}", model=model, epochs=epochs, reg=reg,
                        lr=lr, weight_decay=weight_decay, seed=seed, device="cpu")


def save(fig, out: Path, name: str) -> Path:
    """Save a figure as ``out/name`` and close it."""
    import matplotlib.pyplot as plt

    fig.savefig(out / name, dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {out / name}")
    return out / name


def write_json(out: Path, name: str, numbers: dict) -> None:
    """The measured numbers as ``out/name``."""
    (out / name).write_text(json.dumps(numbers, indent=1))
