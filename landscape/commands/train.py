"""`landscape train`: train a model with regularizers, writing a run folder for analysis."""
from __future__ import annotations

from . import common

LR_SCHEDULES = ("constant", "step", "multistep", "cosine", "cosine_restarts")  # = regularizers.train.LR_SCHEDULES

HELP = "train a model (per-epoch checkpoints, history.json, model.pt) with optional regularizers"


def add_arguments(p) -> None:
    """Add the flags of ``landscape train`` to the argparse parser ``p``."""
    from .common import nonnegative_float, number, positive_float, positive_int, seed_int

    common.add_model_arguments(p, checkpoint=False)
    common.add_data_arguments(p)
    p.add_argument("--epochs", type=positive_int, default=10, help="number of training epochs (the maximum with "
                   "--patience)")
    p.add_argument("--out", default=None, help="run folder (default: runs/MODEL-DATA)")
    p.add_argument("--batch-size", type=positive_int, default=128, help="examples per training step")
    p.add_argument("--optimizer", default="sgd", choices=("sgd", "adam", "adamw"), help="the optimizer")
    p.add_argument("--lr", type=positive_float, default=0.05, help="learning rate (the initial one with --schedule)")
    p.add_argument("--momentum", type=number(low=0, high=1, high_open=True), default=0.9,
                   help="SGD momentum, in [0, 1)")
    p.add_argument("--nesterov", action="store_true", help="Nesterov momentum (sgd)")
    p.add_argument("--weight-decay", type=nonnegative_float, default=0.0,
                   help="the optimizer's L2 weight decay coefficient")
    p.add_argument("--schedule", default="constant", choices=LR_SCHEDULES,
                   help="learning-rate schedule, stepped once per epoch")
    p.add_argument("--step-size", type=positive_int, default=30, help="epochs between decays (step)")
    p.add_argument("--milestones", type=positive_int, nargs="*", default=(),
                   help="epochs of decay (multistep; default: half and three quarters of --epochs)")
    p.add_argument("--gamma", type=number(low=0, high=1, low_open=True), default=0.1,
                   help="decay factor in (0, 1] (step, multistep)")
    p.add_argument("--t0", type=positive_int, default=10, help="first restart period in epochs (cosine_restarts)")
    p.add_argument("--t-mult", type=positive_int, default=1, help="period growth factor (cosine_restarts)")
    p.add_argument("--reg", action="append", default=[], metavar="NAME[:COEF[:KEY=VALUE,...]]",
                   help="regularizer, repeatable, e.g. --reg mma:0.07 --reg norm:0.01; its options follow "
                        "as :KEY=VALUE,... (e.g. --reg NAME:0.1:KEY=VALUE; see --list-regularizers)")
    p.add_argument("--augment", action="store_true", help="pad-4 random crop + horizontal flip")
    p.add_argument("--patience", type=positive_int, default=None,
                   help="early stopping patience in epochs (validation split taken from train)")
    p.add_argument("--monitor", default="error", choices=("error", "loss"),
                   help="what early stopping watches on the validation split (with --patience)")
    p.add_argument("--corrupt", default=None, metavar="KIND[:P]",
                   help="memorization variant: labels:P, shuffled_pixels, random_pixels, gaussian")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the initial weights and of training")
    p.add_argument("--no-resume", action="store_true", help="start over even if checkpoints exist")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run folder made with other settings (its run files are deleted)")
    common.add_device_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress lines (only the final summary)")
    p.add_argument("--list-models", action="store_true", help="print the model registry and exit")
    p.add_argument("--list-regularizers", action="store_true",
                   help="print the regularizer registry and exit")


def run(args) -> int:
    """Run ``landscape train`` with the parsed flags ``args``; returns the exit status (0: done)."""
    from regularizers.train import train_run

    if args.list_models or args.list_regularizers:
        from regularizers.models import list_models
        from regularizers.registry import names

        print("\n".join(list_models() if args.list_models else names()))
        return 0
    if args.model is None:
        raise ValueError("--model is required (a registry name or package.module:factory)")
    data_spec = args.data or "digits"
    out = args.out or f"runs/{args.model.replace(':', '_').replace('.', '_')}-{data_spec.replace('/', '_')}"
    schedule_options = dict(step_size=args.step_size, milestones=list(args.milestones), gamma=args.gamma,
                            t0=args.t0, t_mult=args.t_mult)
    result = train_run(out, model=args.model, data=data_spec, epochs=args.epochs,
                       model_options=common.parse_options(args.model_option), data_seed=args.data_seed or 0,
                       normalize=args.normalize or "none", test_fraction=args.test_fraction,
                       corrupt=args.corrupt, regularizers=args.reg, seed=args.seed,
                       batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                       momentum=args.momentum, nesterov=args.nesterov, weight_decay=args.weight_decay,
                       schedule=args.schedule, schedule_options=schedule_options, augment=args.augment,
                       patience=args.patience, monitor=args.monitor, device=args.device,
                       progress=not args.quiet, resume=not args.no_resume, overwrite=args.overwrite)
    h = result.history
    i = result.best_epoch - 1
    test = f"  test acc {h['test_acc'][i]:.1f}%" if h["test_acc"][i] == h["test_acc"][i] else "  (no test split)"
    print(f"{out}: epoch {result.best_epoch}  train acc {h['train_acc'][i]:.1f}%{test}")
    return 0
