"""The trainer: epochs, LR schedules, regularizer hooks, early stopping, checkpoints, history.

A run folder (``out``) holds ``config.json``, ``history.json``, ``checkpoints/epoch_NNN.pt`` (one
per epoch) and the final ``model.pt`` state dict; see CONTRACTS.md. Training is reproducible
epoch by epoch: the shuffling and every random draw of epoch ``e`` come from the seed
``(seed, e)``, so a run resumed from its last checkpoint ends with the same weights as an
uninterrupted one.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import check_regularizers, defines
from .data import Dataset, augment_crop_flip

HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "objective", "seconds")
SCHEDULES = ("constant", "step", "multistep", "cosine", "cosine_restarts")


@dataclass
class FitResult:
    """What :func:`fit` produced. ``best_epoch`` is 1-based (the last epoch without early stopping)."""

    history: dict
    best_epoch: int
    stopped_early: bool
    out: Optional[Path] = None


@dataclass
class EarlyStopping:
    """The lecture's patience meta-algorithm, evaluated once per epoch (n = one epoch of steps).

    ``monitor`` is ``"error"`` (validation error rate, as in the lecture) or ``"loss"``. A value
    counts as better only when strictly lower; after ``patience`` epochs without improvement
    training stops and the best epoch's weights are restored.
    """

    patience: int
    monitor: str = "error"
    best_value: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    best_state: dict = field(default_factory=dict, repr=False)

    def update(self, epoch: int, loss: float, acc: float, model: nn.Module) -> bool:
        """Record the validation result of ``epoch``; returns True when training must stop."""
        value = 100.0 - acc if self.monitor == "error" else loss
        if value < self.best_value:
            self.best_value, self.best_epoch, self.bad_epochs = value, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("patience", "monitor", "best_value", "best_epoch",
                                               "bad_epochs", "best_state")}


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000):
    """Mean cross-entropy and accuracy (percent) of ``model`` in eval mode on ``x``, ``y``."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        logits = model(x[start:start + batch_size])
        target = y[start:start + batch_size]
        total_loss += F.cross_entropy(logits, target, reduction="sum").item()
        correct += (logits.argmax(1) == target).sum().item()
    model.train(was_training)
    return total_loss / len(x), 100.0 * correct / len(x)


def make_optimizer(model: nn.Module, name: str = "sgd", lr: float = 0.1, momentum: float = 0.9,
                   weight_decay: float = 0.0, nesterov: bool = False) -> torch.optim.Optimizer:
    """SGD (with momentum / Nesterov) or Adam; weight decay is the optimizer's L2 term."""
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                               weight_decay=weight_decay, nesterov=nesterov)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose sgd, adam or adamw")


def make_scheduler(optimizer, name: str = "constant", epochs: int = 1, step_size: int = 30,
                   milestones: Sequence[int] = (), gamma: float = 0.1, t0: int = 10, t_mult: int = 1):
    """A ``torch.optim.lr_scheduler`` stepped once per epoch (``constant``: none)."""
    sched = torch.optim.lr_scheduler
    if name == "constant":
        return None
    if name == "step":
        return sched.StepLR(optimizer, step_size=step_size, gamma=gamma)
    if name == "multistep":
        if not milestones:
            milestones = [epochs // 2, 3 * epochs // 4]
        return sched.MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma)
    if name == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "cosine_restarts":
        return sched.CosineAnnealingWarmRestarts(optimizer, T_0=t0, T_mult=t_mult)
    raise ValueError(f"unknown LR schedule {name!r}; choose one of {', '.join(SCHEDULES)}")


def _checkpoints(out: Path) -> list:
    return sorted((out / "checkpoints").glob("epoch_*.pt"))


def _split_validation(data: Dataset, fraction: float, seed: int):
    """Hold out ``fraction`` of the training split (seeded) for early stopping."""
    n = len(data.x_train)
    n_val = max(1, int(round(fraction * n)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val, train = order[:n_val], order[n_val:]
    return (data.x_train[train], data.y_train[train]), (data.x_train[val], data.y_train[val])


def fit(model: nn.Module, data: Dataset, *, epochs: int = 10, batch_size: int = 128,
        optimizer: str = "sgd", lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 0.0,
        nesterov: bool = False, schedule: str = "constant", schedule_options: Optional[dict] = None,
        regularizers: Sequence = (), augment: bool = False, patience: Optional[int] = None,
        monitor: str = "error", val_fraction: float = 0.1, seed: int = 0, device="auto",
        out=None, resume: bool = True, config: Optional[dict] = None,
        progress: bool = True, eval_batch_size: int = 1000) -> FitResult:
    """Train ``model`` on ``data`` and record per-epoch train/test loss and accuracy.

    Args:
        model: any classifier ``(batch, *input) -> (batch, num_classes)`` logits.
        data: a :class:`regularizers.data.Dataset`; the whole split is staged on ``device``.
        epochs: the maximum number of epochs.
        schedule: one of ``SCHEDULES``; ``schedule_options`` holds ``step_size``,
            ``milestones``, ``gamma``, ``t0``, ``t_mult`` (see :func:`make_scheduler`).
        regularizers: objects following :mod:`regularizers.base`.
        augment: pad-4 random crop + horizontal flip on image batches.
        patience: early stopping on a validation split of ``val_fraction`` of the training data
            (taken out of training); ``None`` trains for all ``epochs``.
        out: run folder for checkpoints and history; with ``resume`` an existing run continues
            from its last checkpoint.
        config: extra items written to ``out/config.json`` (how to rebuild model and data).

    Returns:
        :class:`FitResult`; the model holds the final (or, with early stopping, the best) weights.
    """
    from landscape.commands.common import resolve_device

    regs = check_regularizers(regularizers)
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    model.to(device)
    for reg in regs:
        if defines(reg, "prepare"):
            reg.prepare(model)
    opt = make_optimizer(model, optimizer, lr, momentum, weight_decay, nesterov)
    scheduler = make_scheduler(opt, schedule, epochs, **(schedule_options or {}))
    stopper = EarlyStopping(patience, monitor) if patience else None

    if stopper:
        (x_train, y_train), (x_val, y_val) = _split_validation(data, val_fraction, seed)
        x_val, y_val = x_val.to(device), y_val.to(device)
    else:
        x_train, y_train = data.x_train, data.y_train
    x_train, y_train = x_train.to(device), y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)

    history = {k: [] for k in HISTORY_KEYS + (("val_loss", "val_acc") if stopper else ())}
    start_epoch, stopped = 0, False
    out = Path(out) if out is not None else None
    if out is not None:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        if config is not None:
            (out / "config.json").write_text(json.dumps(config, indent=2))
        found = _checkpoints(out) if resume else []
        if found:
            state = torch.load(found[-1], map_location=device, weights_only=False)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            if scheduler is not None and state.get("scheduler"):
                scheduler.load_state_dict(state["scheduler"])
            history, start_epoch, stopped = state["history"], state["epoch"], state.get("stopped", False)
            if stopper and state.get("early_stopping"):
                for key, value in state["early_stopping"].items():
                    setattr(stopper, key, value)
            if progress:
                print(f"resuming {out} after epoch {start_epoch}", flush=True)

    criterion = F.cross_entropy
    for reg in regs:
        if defines(reg, "criterion"):
            criterion = reg.criterion(criterion)
    replacing = next((r for r in regs if defines(r, "loss")), None)

    epoch = start_epoch
    while epoch < epochs and not stopped:
        began = time.perf_counter()
        torch.manual_seed(seed * 100_003 + epoch)  # every random draw of this epoch
        for reg in regs:
            if defines(reg, "start_epoch"):
                reg.start_epoch(epoch, epochs)
        lr_now = opt.param_groups[0]["lr"]
        model.train()
        order = torch.randperm(len(x_train), device=device)
        total, seen = 0.0, 0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            x, y = x_train[idx], y_train[idx]
            if augment:
                x = augment_crop_flip(x)
            for reg in regs:
                if defines(reg, "transform"):
                    x, y = reg.transform(x, y)
            loss = replacing.loss(model, x, y, criterion) if replacing else criterion(model(x), y)
            for reg in regs:
                if defines(reg, "penalty"):
                    loss = loss + reg.penalty(model)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"training loss became {loss.item()} in epoch {epoch + 1} (batch starting at "
                    f"{start}); lower the learning rate or the regularization coefficient")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for reg in regs:
                if defines(reg, "after_step"):
                    reg.after_step(model)
            total += loss.item() * len(idx)
            seen += len(idx)
        if scheduler is not None:
            scheduler.step()
        epoch += 1

        train_loss, train_acc = evaluate(model, x_train, y_train, eval_batch_size)
        test_loss, test_acc = evaluate(model, x_test, y_test, eval_batch_size)
        row = dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc, test_loss=test_loss,
                   test_acc=test_acc, lr=lr_now, objective=total / seen,
                   seconds=time.perf_counter() - began)
        if stopper:
            row["val_loss"], row["val_acc"] = evaluate(model, x_val, y_val, eval_batch_size)
            stopped = stopper.update(epoch, row["val_loss"], row["val_acc"], model)
        for key, value in row.items():
            history[key].append(value)
        if progress:
            extra = f"  val acc {row['val_acc']:5.1f}%" if stopper else ""
            print(f"epoch {epoch:3d}/{epochs}  train loss {train_loss:.4f} acc {train_acc:5.1f}%  "
                  f"test loss {test_loss:.4f} acc {test_acc:5.1f}%{extra}  lr {lr_now:.3g}  "
                  f"({row['seconds']:.1f} s)", flush=True)
        if out is not None:
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": scheduler.state_dict() if scheduler is not None else None,
                        "epoch": epoch, "history": history, "stopped": stopped,
                        "early_stopping": stopper.state_dict() if stopper else None},
                       out / "checkpoints" / f"epoch_{epoch:03d}.pt")
            (out / "history.json").write_text(json.dumps(history, indent=1))

    best_epoch = epoch
    if stopper and stopper.best_state:
        model.load_state_dict(stopper.best_state)
        best_epoch = stopper.best_epoch
        if progress:
            print(f"early stopping: best epoch {best_epoch} "
                  f"(validation {stopper.monitor} {stopper.best_value:.4f}); its weights restored")
    for reg in regs:
        if defines(reg, "finish"):
            reg.finish(model)
    if out is not None:
        torch.save(model.state_dict(), out / "model.pt")
        if progress:
            print(f"wrote {out / 'model.pt'}, {out / 'history.json'} and "
                  f"{len(_checkpoints(out))} checkpoints", flush=True)
    return FitResult(history=history, best_epoch=best_epoch, stopped_early=stopped, out=out)


def data_from_config(config: dict) -> Dataset:
    """The data set a run folder's config names: ``data``, ``data_seed`` and ``corrupt``
    (``KIND[:P]``, a memorization variant of :func:`regularizers.data.corrupt`)."""
    from .data import corrupt, load_data

    seed = config.get("data_seed", 0)
    data = load_data(config.get("data", "digits"), seed=seed)
    if config.get("corrupt"):
        kind, _, p = config["corrupt"].partition(":")
        data = corrupt(data, kind, p=float(p) if p else 1.0, seed=seed)
    return data


def load_run(out):
    """Rebuild ``(model, data, history)`` from a run folder written by ``landscape train``."""
    from .models import load_model

    out = Path(out)
    config_path = out / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{out} is not a run folder: config.json is missing")
    config = json.loads(config_path.read_text())
    data = data_from_config(config)
    model = load_model(config["model"], num_classes=data.num_classes, in_channels=data.in_channels,
                       checkpoint=out / "model.pt", **config.get("model_options", {}))
    history = json.loads((out / "history.json").read_text())
    return model, data, history
