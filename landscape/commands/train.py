"""`landscape train`: train a model with regularizers, writing a run folder for analysis."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

from . import common

HELP = "train a model (per-epoch checkpoints, history.json, model.pt) with optional regularizers"


def add_arguments(p) -> None:
    common.add_model_arguments(p, checkpoint=False)
    common.add_data_arguments(p)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out", default=None, help="run folder (default: runs/MODEL-DATA)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--optimizer", default="sgd", choices=("sgd", "adam", "adamw"))
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", default="constant",
                   choices=("constant", "step", "multistep", "cosine", "cosine_restarts"))
    p.add_argument("--step-size", type=int, default=30, help="epochs between decays (step)")
    p.add_argument("--milestones", type=int, nargs="*", default=(), help="epochs of decay (multistep)")
    p.add_argument("--gamma", type=float, default=0.1, help="decay factor (step, multistep)")
    p.add_argument("--t0", type=int, default=10, help="first restart period in epochs (cosine_restarts)")
    p.add_argument("--t-mult", type=int, default=1, help="period growth factor (cosine_restarts)")
    p.add_argument("--reg", action="append", default=[], metavar="NAME[:COEF]",
                   help="regularizer, repeatable, e.g. --reg mma:0.07 --reg norm:0.01")
    p.add_argument("--augment", action="store_true", help="pad-4 random crop + horizontal flip")
    p.add_argument("--patience", type=int, default=None,
                   help="early stopping patience in epochs (validation split taken from train)")
    p.add_argument("--monitor", default="error", choices=("error", "loss"))
    p.add_argument("--corrupt", default=None, metavar="KIND[:P]",
                   help="memorization variant: labels:P, shuffled_pixels, random_pixels, gaussian")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights and of training")
    p.add_argument("--no-resume", action="store_true", help="start over even if checkpoints exist")
    common.add_device_argument(p)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--list-models", action="store_true", help="print the model registry and exit")
    p.add_argument("--list-regularizers", action="store_true",
                   help="print the regularizer registry and exit")


def run(args) -> int:
    import torch

    from regularizers.models import load_model
    from regularizers.registry import make_regularizer
    from regularizers.train import data_from_config, fit

    if args.list_models or args.list_regularizers:
        from regularizers.models import list_models
        from regularizers.registry import names

        print("\n".join(list_models() if args.list_models else names()))
        return 0
    if args.model is None:
        raise ValueError("--model is required (a registry name or package.module:factory)")
    if args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
    data_spec, data_seed = args.data or "digits", args.data_seed or 0
    data = data_from_config({"data": data_spec, "data_seed": data_seed, "corrupt": args.corrupt})
    options = common.parse_options(args.model_option)
    torch.manual_seed(args.seed)
    model = load_model(args.model, num_classes=data.num_classes, in_channels=data.in_channels, **options)
    regs = [make_regularizer(spec) for spec in args.reg]
    out = args.out or f"runs/{args.model.replace(':', '_').replace('.', '_')}-{data_spec.replace('/', '_')}"
    config = {"model": args.model, "model_options": options, "data": data_spec,
              "data_seed": data_seed, "corrupt": args.corrupt, "num_classes": data.num_classes,
              "in_channels": data.in_channels, "regularizers": list(args.reg),
              "seed": args.seed, "epochs": args.epochs, "lr": args.lr, "optimizer": args.optimizer,
              "weight_decay": args.weight_decay, "schedule": args.schedule,
              "batch_size": args.batch_size, "augment": args.augment, "patience": args.patience}
    schedule_options = dict(step_size=args.step_size, milestones=args.milestones, gamma=args.gamma,
                            t0=args.t0, t_mult=args.t_mult)
    result = fit(model, data, epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
                 lr=args.lr, momentum=args.momentum, nesterov=args.nesterov,
                 weight_decay=args.weight_decay, schedule=args.schedule,
                 schedule_options=schedule_options, regularizers=regs, augment=args.augment,
                 patience=args.patience, monitor=args.monitor, seed=args.seed, device=args.device,
                 out=out, resume=not args.no_resume, config=config, progress=not args.quiet)
    h = result.history
    i = result.best_epoch - 1
    print(f"{out}: epoch {result.best_epoch}  train acc {h['train_acc'][i]:.1f}%  "
          f"test acc {h['test_acc'][i]:.1f}%")
    return 0



def train_cached(folder, *, model: str = "cnn", data: str = "digits", epochs: int = 10,
                 reg: Sequence[str] = (), lr: float = 0.05, weight_decay: float = 0.0, seed: int = 0,
                 device: str = "auto", quiet: bool = True) -> Path:
    """``folder``, a run of ``landscape train`` with these settings, trained unless it is there.

    A folder whose ``model.pt`` exists and whose ``config.json`` holds the same settings is
    reused; one made with other settings is deleted first (its checkpoints must not be resumed).
    """
    from landscape.cli import main as cli

    folder = Path(folder)
    wanted = {"model": model, "data": data, "epochs": epochs, "regularizers": list(reg),
              "lr": lr, "weight_decay": weight_decay, "seed": seed}
    config = folder / "config.json"
    if config.is_file():
        found = json.loads(config.read_text())
        same = all(found.get(k) == v for k, v in wanted.items())
        if same and (folder / "model.pt").is_file():
            print(f"reusing the trained run {folder}")
            return folder
        if not same:
            shutil.rmtree(folder)
    argv = ["train", "--model", model, "--data", data, "--epochs", str(epochs), "--lr", str(lr),
            "--weight-decay", str(weight_decay), "--seed", str(seed), "--out", str(folder),
            "--device", device, *(["--quiet"] if quiet else [])]
    for spec in reg:
        argv += ["--reg", spec]
    if cli(argv):
        raise ValueError(f"training {folder} failed")
    return folder
