"""The trainer: epochs, LR schedules, regularizer hooks, early stopping, checkpoints, history.

A run folder (``out``) holds ``config.json``, ``history.json``, ``checkpoints/epoch_NNN.pt`` (one
per epoch) and the final ``model.pt`` state dict; see CONTRACTS.md. Training is reproducible
epoch by epoch: the shuffling and every random draw of epoch ``e`` come from the seed
``(seed, e)``, so a run resumed from its last checkpoint ends with the same weights as an
uninterrupted one.

A run folder is bound to its settings (``config.json``: the caller's config and every training
setting): a rerun with the same settings resumes (a finished run is reused), one with other
settings is refused with a one-line diff before anything is written (``overwrite=True``
replaces the run). While training, the folder is locked (:class:`regularizers.safe_io.RunLock`),
so a second training into it is refused; every file is written atomically and checkpoints are
read with ``weights_only=True``, so a kill at any instant leaves a folder that a rerun of the
same command continues (``tests/test_kill.py``).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import check_regularizers, defines
from .data import Dataset, augment_crop_flip
from .evaluation import evaluate, resolve_device
from .safe_io import (RunLock, atomic_torch_save, atomic_write_json, atomic_write_text, check_finite, file_sha256,
                    remove_stale_temps, tensors_sha256)

HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "objective", "seconds")
LR_SCHEDULES = ("constant", "step", "multistep", "cosine", "cosine_restarts")
# make_scheduler's options and their defaults; config.json records them all (train_run and the CLI alike)
SCHEDULE_DEFAULTS = {"step_size": 30, "milestones": [], "gamma": 0.1, "t0": 10, "t_mult": 1}
RUN_FILES = ("config.json", "history.json", "model.pt")
SAVED_DATA = "data.pt"  # the data's tensors, when no spec names the data (see complete_config)


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
        """The stopper's state for a checkpoint (best value, epoch and weights, patience count)."""
        return {k: getattr(self, k) for k in ("patience", "monitor", "best_value", "best_epoch",
                                               "bad_epochs", "best_state")}


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


def schedule_options_of(options: Optional[dict]) -> dict:
    """``options`` with every :data:`SCHEDULE_DEFAULTS` key filled in, checked.

    Raises:
        ValueError: an unknown key, ``step_size``/``t0``/``t_mult`` not an integer >= 1, ``gamma``
            not a finite number in (0, 1], ``milestones`` not integers >= 1 (one line naming it).
    """
    full = {**SCHEDULE_DEFAULTS, **(options or {})}
    unknown = sorted(set(full) - set(SCHEDULE_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown schedule option(s) {', '.join(unknown)}; known: {', '.join(SCHEDULE_DEFAULTS)}")

    def whole(value):
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1

    for key in ("step_size", "t0", "t_mult"):
        if not whole(full[key]):
            raise ValueError(f"schedule option {key} must be an integer >= 1, got {full[key]!r}")
    gamma = full["gamma"]
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not (math.isfinite(gamma) and 0 < gamma <= 1):
        raise ValueError(f"schedule option gamma must be a finite number in (0, 1], got {gamma!r}")
    milestones = list(full["milestones"])
    if not all(whole(m) for m in milestones):
        raise ValueError(f"schedule option milestones must be epochs >= 1, got {milestones!r}")
    return {**full, "milestones": milestones}


def make_scheduler(optimizer, name: str = "constant", epochs: int = 1, step_size: int = 30,
                   milestones: Sequence[int] = (), gamma: float = 0.1, t0: int = 10, t_mult: int = 1):
    """A ``torch.optim.lr_scheduler`` stepped once per epoch (``constant``: none); the options
    are checked by :func:`schedule_options_of`."""
    sched = torch.optim.lr_scheduler
    schedule_options_of(dict(step_size=step_size, milestones=milestones, gamma=gamma, t0=t0, t_mult=t_mult))
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
    raise ValueError(f"unknown LR schedule {name!r}; choose one of {', '.join(LR_SCHEDULES)}")


def checkpoint_epoch(path) -> Optional[int]:
    """The epoch number of a checkpoint name ``epoch_NNN.pt`` (any number of digits), else None."""
    stem = Path(path).name
    digits = stem[len("epoch_"):-len(".pt")] if stem.startswith("epoch_") and stem.endswith(".pt") else ""
    return int(digits) if digits.isdigit() else None


def checkpoint_paths(run_dir) -> list:
    """The checkpoints ``run_dir/checkpoints/epoch_N.pt`` sorted by epoch number (``epoch_1000.pt``
    after ``epoch_999.pt``, unlike a sort by name); files of other names are left out.

    Args:
        run_dir: a run folder (see CONTRACTS.md); a missing ``checkpoints`` folder gives [].

    Returns:
        A list of :class:`pathlib.Path`, first epoch first.
    """
    found = [(checkpoint_epoch(p), p) for p in Path(run_dir, "checkpoints").glob("epoch_*.pt")]
    return [p for epoch, p in sorted((e, p) for e, p in found if e is not None)]


def _split_validation(data: Dataset, fraction: float, seed: int):
    """Hold out ``fraction`` of the training split (seeded) for early stopping."""
    n = len(data.x_train)
    n_val = max(1, int(round(fraction * n)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val, train = order[:n_val], order[n_val:]
    return (data.x_train[train], data.y_train[train]), (data.x_train[val], data.y_train[val])


def check_settings(*, epochs: int, batch_size: int, lr: float, momentum: float, weight_decay: float,
                   patience: Optional[int], monitor: str, val_fraction: float, eval_batch_size: int) -> None:
    """Refuse training settings that cannot work, with a one-line ValueError naming the argument.

    Args:
        epochs: an integer >= 1.
        batch_size: examples per training step, an integer >= 1.
        lr: the learning rate, a finite number > 0.
        momentum: in [0, 1).
        weight_decay: finite, >= 0.
        patience: epochs without improvement before stopping, an integer >= 1, or None.
        monitor: ``"error"`` or ``"loss"``.
        val_fraction: in (0, 1).
        eval_batch_size: examples per evaluation forward pass, an integer >= 1.
    """
    def whole(name, value, allow_none=False):
        if value is None and allow_none:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")

    whole("epochs", epochs)
    whole("batch_size", batch_size)
    whole("eval_batch_size", eval_batch_size)
    whole("patience", patience, allow_none=True)
    for name, value, ok, rule in (
            ("lr", lr, lambda v: v > 0, "a finite number > 0"),
            ("momentum", momentum, lambda v: 0 <= v < 1, "in [0, 1)"),
            ("weight_decay", weight_decay, lambda v: v >= 0, "a finite number >= 0"),
            ("val_fraction", val_fraction, lambda v: 0 < v < 1, "in (0, 1)")):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and ok(value)):
            raise ValueError(f"{name} must be {rule}, got {value!r}")
    if monitor not in ("error", "loss"):
        raise ValueError(f"monitor must be 'error' or 'loss', got {monitor!r}")


@torch.no_grad()
def check_data(model: nn.Module, data: Dataset, device=None) -> None:
    """Refuse data the model cannot be trained on, with a one-line ValueError: non-finite
    inputs, labels outside ``[0, num_classes)``, a single class in the training split, or more
    classes than the model has outputs (read from one forward pass in eval mode on one example).

    Args:
        model: the classifier, on ``device``.
        data: the :class:`regularizers.data.Dataset` (a test split may be absent).
        device: where the model is (default: the data's device).
    """
    if not isinstance(data, Dataset):  # evaluation takes other forms; training stages a Dataset
        raise TypeError(f"fit trains on a regularizers.data.Dataset, got a {type(data).__name__}: wrap tensors "
                        "as Dataset(name, x_train, y_train, x_test, y_test, num_classes, transforms=())")
    splits = [("train", data.x_train, data.y_train)]
    if data.x_test is not None:
        splits.append(("test", data.x_test, data.y_test))
    for split, x, y in splits:
        if len(x) == 0 or len(x) != len(y):
            raise ValueError(f"data {data.name!r}: the {split} split has {len(x)} inputs and {len(y)} labels")
        bad = int((~torch.isfinite(x)).sum()) if x.is_floating_point() else 0
        if bad:
            raise ValueError(f"data {data.name!r}: {bad} non-finite input values in the {split} split")
        outside = int(((y < 0) | (y >= data.num_classes)).sum())
        if outside:
            raise ValueError(f"data {data.name!r}: {outside} {split} labels outside 0..{data.num_classes - 1} "
                             f"(values {int(y.min())}..{int(y.max())})")
    labels = torch.unique(data.y_train)
    if len(labels) < 2:
        raise ValueError(f"data {data.name!r}: every training label is {int(labels[0])}; a classifier needs "
                         "examples of at least two classes")
    was_training = model.training
    model.eval()
    try:
        outputs = model(data.x_train[:1].to(device) if device is not None else data.x_train[:1]).shape[-1]
    except (RuntimeError, IndexError, ValueError, TypeError) as err:  # e.g. image layers given flat inputs
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"the model cannot take the inputs of data {data.name!r} (one example of shape "
                         f"{tuple(data.x_train.shape[1:])}, {data.x_train.dtype}): {reason}") from None
    finally:
        model.train(was_training)
    if outputs < data.num_classes:
        raise ValueError(f"the model has {outputs} outputs but data {data.name!r} has {data.num_classes} classes")


def _settings(config: Optional[dict], model: nn.Module, data: Dataset, **training) -> dict:
    """What ``config.json`` records: the caller's ``config`` completed (:func:`complete_config`)
    and the training settings of :func:`fit`, in the form JSON gives back."""
    return json.loads(json.dumps({**complete_config(model, data, config), **training}))


def _differences(stored: dict, wanted: dict) -> list:
    """``["lr=0.05, not 0.01", ...]`` for each setting that differs."""
    keys = sorted(set(stored) | set(wanted))
    return [f"{k}={stored.get(k, 'unset')!r}, not {wanted.get(k, 'unset')!r}".replace("'unset'", "unset")
            for k in keys if stored.get(k, "unset") != wanted.get(k, "unset")]


def _comparable(stored: dict, wanted: dict) -> dict:
    """A stored config as today's version writes it: older runs recorded empty schedule options,
    a data path as typed and no data hash; they are the same run when these match up."""
    stored = dict(stored)
    if isinstance(stored.get("schedule_options"), dict):
        stored["schedule_options"] = {**SCHEDULE_DEFAULTS, **stored["schedule_options"]}
    data, new = stored.get("data"), wanted.get("data")
    if isinstance(data, str) and isinstance(new, str) and data != new and _absolute_spec(data) == new:
        stored["data"] = new
    if "data_file_sha256" not in stored and "data_file_sha256" in wanted:
        stored["data_file_sha256"] = wanted["data_file_sha256"]
    return stored


def _bind_folder(out: Path, wanted: dict, *, overwrite: bool, resume: bool) -> None:
    """Make ``out`` a run folder of the settings ``wanted`` (the lock is held).

    A folder made with other settings is refused with a one-line diff unless ``overwrite``;
    then, or without ``resume``, its run files are removed. ``config.json`` is written when it
    is new or changed; a folder with the same settings is left as it is (and resumed)."""
    config_path = out / "config.json"
    stored = json.loads(config_path.read_text()) if config_path.is_file() else None
    stored = _comparable(stored, wanted) if stored is not None else None
    present = [p.name for p in (out / "checkpoints").glob("epoch_*.pt")] + [
        name for name in RUN_FILES + (SAVED_DATA,) if (out / name).is_file()]
    if stored is None and present and not overwrite:
        raise ValueError(f"{out} holds a run without config.json ({present[0]}); its settings are "
                         "unknown: overwrite it (--overwrite) or use another run folder")
    differs = _differences(stored, wanted) if stored is not None else []
    if differs and not overwrite:
        more = f" (and {len(differs) - 3} more)" if len(differs) > 3 else ""
        raise ValueError(f"{out} was made with {'; '.join(differs[:3])}{more}: overwrite it "
                         "(--overwrite) or use another run folder")
    if differs or not resume or (stored is None and present):
        for path in checkpoint_paths(out) + [out / name for name in RUN_FILES + (SAVED_DATA,)]:
            path.unlink(missing_ok=True)
        stored = None
    if stored is None:
        atomic_write_json(config_path, wanted)


def _resume(out: Path, model: nn.Module, opt, scheduler, stopper, device) -> Optional[dict]:
    """Load the last checkpoint of ``out`` into model, optimizer, scheduler and early stopping;
    return it (``history``, ``epoch``, ``stopped``), or None when there is none. Checkpoints are
    read with ``weights_only=True``: a file holding code or other objects is refused."""
    found = checkpoint_paths(out)
    if not found:
        return None
    path = found[-1]
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        if "global" not in str(err).lower():  # not a pickle of Python objects: a foreign file
            raise ValueError(f"{path}: not a readable trainer checkpoint") from None
        raise ValueError(f"{path}: refused: it holds pickled Python objects besides tensors and plain "
                         "data, which could run code when loaded; delete it if you did not make it, "
                         "or use another run folder") from None
    except Exception as err:  # a truncated or foreign file
        lines = str(err).strip().splitlines()
        raise ValueError(f"{path}: not a readable trainer checkpoint ({type(err).__name__}: "
                         f"{lines[0] if lines else 'unreadable'})") from None
    needed = ("model", "optimizer", "epoch", "history")
    if not isinstance(state, dict) or any(key not in state for key in needed):
        raise ValueError(f"{path}: not a trainer checkpoint (a dict with {', '.join(needed)})")
    check_finite(state["model"], path)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler"):
        scheduler.load_state_dict(state["scheduler"])
    if stopper and state.get("early_stopping"):
        for key, value in state["early_stopping"].items():
            setattr(stopper, key, value)
    return state


def _train_epoch(model: nn.Module, opt, regs: list, criterion, x_train, y_train, *, epoch: int,
                 epochs: int, batch_size: int, augment: bool, seed: int) -> float:
    """One epoch of minibatch steps (epoch is 0-based); returns the mean objective per example."""
    replacing = next((r for r in regs if defines(r, "loss")), None)
    torch.manual_seed(seed * 100_003 + epoch)  # every random draw of this epoch
    for reg in regs:
        if defines(reg, "start_epoch"):
            reg.start_epoch(epoch, epochs)
    model.train()
    order = torch.randperm(len(x_train), device=x_train.device)
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
    return total / seen


def _save_checkpoint(out: Path, model: nn.Module, opt, scheduler, stopper, *, epoch: int, history: dict,
                     stopped: bool) -> None:
    """``out/checkpoints/epoch_NNN.pt`` (see CONTRACTS.md), then ``history.json``, both atomic."""
    atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                       "scheduler": scheduler.state_dict() if scheduler is not None else None,
                       "epoch": epoch, "history": _history_tensors(history), "stopped": stopped,
                       "early_stopping": stopper.state_dict() if stopper else None},
                      out / "checkpoints" / f"epoch_{epoch:03d}.pt")
    _write_history(out, history)


def _history_tensors(history: dict) -> dict:
    """The history as a checkpoint stores it: one float64 (``epoch``: int64) tensor per key, exact
    and fast to save (a list pickles element by element, which grows with every epoch)."""
    return {k: torch.tensor(v, dtype=torch.int64 if k == "epoch" else torch.float64) for k, v in history.items()}


def _history_lists(saved: dict) -> dict:
    """:func:`_history_tensors` undone (checkpoints of older versions hold the lists)."""
    return {k: v.tolist() if isinstance(v, torch.Tensor) else list(v) for k, v in saved.items()}


def _write_history(out: Path, history: dict) -> None:
    """``out/history.json``: one line per key (json's C encoder; an indented list is slow to write)."""
    lines = [f" {json.dumps(key)}: {json.dumps(values)}" for key, values in history.items()]
    atomic_write_text(out / "history.json", "{\n" + ",\n".join(lines) + "\n}")


def fit(model: nn.Module, data: Dataset, *, epochs: int = 10, batch_size: int = 128,
        optimizer: str = "sgd", lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 0.0,
        nesterov: bool = False, schedule: str = "constant", schedule_options: Optional[dict] = None,
        regularizers: Sequence = (), augment: bool = False, patience: Optional[int] = None,
        monitor: str = "error", val_fraction: float = 0.1, seed: int = 0, device="auto",
        out=None, resume: bool = True, config: Optional[dict] = None, overwrite: bool = False,
        progress: bool = True, eval_batch_size: int = 1000) -> FitResult:
    """Train ``model`` on ``data`` and record per-epoch train/test loss and accuracy.

    Args:
        model: any classifier ``(batch, *input) -> (batch, num_classes)`` logits.
        data: a :class:`regularizers.data.Dataset`; the whole split is staged on ``device``.
        epochs: the maximum number of epochs.
        batch_size: examples per training step.
        optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"`` (:func:`make_optimizer`).
        lr: the initial learning rate.
        momentum: SGD momentum (unused by Adam/AdamW).
        weight_decay: the optimizer's weight decay (L2 term; AdamW: decoupled).
        nesterov: Nesterov momentum (SGD).
        schedule: one of ``LR_SCHEDULES``.
        schedule_options: ``step_size``, ``milestones``, ``gamma``, ``t0``, ``t_mult`` (see :func:`make_scheduler`).
        regularizers: objects following :mod:`regularizers.base`.
        augment: pad-4 random crop + horizontal flip on image batches.
        patience: early stopping after this many epochs without improvement; None: all ``epochs``.
        monitor: what early stopping watches: validation ``"error"`` or ``"loss"``.
        val_fraction: the validation share, taken out of the training data (with ``patience``).
        seed: seeds the batch order, augmentation and validation split.
        device: ``"auto"`` (cuda when present), ``"cpu"``, ``"cuda"``, or a ``torch.device``.
        out: run folder for checkpoints and history, locked while training (:class:`RunLock`).
            A run made with other settings is refused with a one-line diff before anything is written.
        config: items recorded in ``out/config.json`` and compared like settings (how to rebuild model and data).
        resume: continue a run of the same settings from its last checkpoint (False: start over).
        overwrite: replace a run made with other settings (its run files are removed first).
        progress: print one line per epoch.
        eval_batch_size: examples per evaluation forward pass.

    Returns:
        :class:`FitResult`; the model holds the final (or, with early stopping, the best) weights.

    Raises:
        ValueError: bad settings or data (:func:`check_settings`, :func:`check_data`), a run folder
            of other settings or in use by another process, a refused checkpoint.
    """
    check_settings(epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                   weight_decay=weight_decay, patience=patience, monitor=monitor,
                   val_fraction=val_fraction, eval_batch_size=eval_batch_size)
    regs = check_regularizers(regularizers)
    device = _stage_model(model, data, device)
    settings = dict(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, momentum=momentum,
                    nesterov=nesterov, weight_decay=weight_decay, schedule=schedule,
                    schedule_options=schedule_options_of(schedule_options), augment=augment, patience=patience,
                    monitor=monitor, val_fraction=val_fraction if patience else None, seed=seed)
    wanted = _settings(config, model, data, **settings) if out is not None else None
    parts = _training_parts(model, regs, settings)
    out = _make_run_folder(out) if out is not None else None
    with RunLock(out) if out is not None else contextlib.nullcontext():
        if out is not None:
            _bind_run_folder(out, wanted, data, overwrite=overwrite, resume=resume)
        return _fit_epochs(model, data, *parts, regs, out, device=device,
                           progress=progress, eval_batch_size=eval_batch_size, **settings)


def _stage_model(model: nn.Module, data: Dataset, device) -> torch.device:
    """The resolved ``device`` (``"auto"``: cuda when present), with ``model`` moved there and the
    data checked against it (:func:`check_data`)."""
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    model.to(device)
    check_data(model, data, device)
    return device


def _training_parts(model: nn.Module, regs: list, settings: dict) -> tuple:
    """``(optimizer, scheduler, stopper)`` for ``settings`` (those of :func:`fit`), after each
    regularizer's ``prepare`` (which may add parameters the optimizer must see)."""
    for reg in regs:
        if defines(reg, "prepare"):
            reg.prepare(model)
    opt = make_optimizer(model, settings["optimizer"], settings["lr"], settings["momentum"],
                         settings["weight_decay"], settings["nesterov"])
    scheduler = make_scheduler(opt, settings["schedule"], settings["epochs"], **settings["schedule_options"])
    stopper = EarlyStopping(settings["patience"], settings["monitor"]) if settings["patience"] else None
    return opt, scheduler, stopper


def _make_run_folder(out) -> Path:
    """``out`` as a Path, created with its parents; an OSError names the folder in one line."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise type(err)(f"cannot make the run folder {out}: {(err.strerror or str(err)).lower()}") from None
    return out


def _bind_run_folder(out: Path, wanted: dict, data: Dataset, *, overwrite: bool, resume: bool) -> None:
    """Under the run lock: clear stale temporary files, bind ``out`` to the ``wanted`` settings
    (:func:`_bind_folder`), and save the data's tensors when no spec names them."""
    remove_stale_temps(out)
    remove_stale_temps(out / "checkpoints")
    _bind_folder(out, wanted, overwrite=overwrite, resume=resume)
    (out / "checkpoints").mkdir(exist_ok=True)
    if wanted["data"] == SAVED_DATA and not (out / SAVED_DATA).is_file():
        _save_data(out, data)


def _staged_splits(data: Dataset, stopper, val_fraction: Optional[float], seed: int, device) -> tuple:
    """``(train, val, test)`` ``(inputs, targets)`` pairs on ``device``; ``val`` is carved out of
    the training data when early stopping (else None), ``test`` is None without a test split."""
    if stopper:
        train, val = _split_validation(data, val_fraction, seed)
        val = (val[0].to(device), val[1].to(device))
    else:
        train, val = (data.x_train, data.y_train), None
    test = (data.x_test.to(device), data.y_test.to(device)) if data.x_test is not None else None
    return (train[0].to(device), train[1].to(device)), val, test


def _start_history(out: Optional[Path], model: nn.Module, opt, scheduler, stopper, device, *, epochs: int,
                   progress: bool) -> tuple:
    """``(history, epoch, stopped)``: empty at epoch 0, or those of the run's last checkpoint."""
    history = {k: [] for k in HISTORY_KEYS + (("val_loss", "val_acc") if stopper else ())}
    state = _resume(out, model, opt, scheduler, stopper, device) if out is not None else None
    if state is None:
        return history, 0, False
    history, epoch, stopped = _history_lists(state["history"]), state["epoch"], state.get("stopped", False)
    if progress and (stopped or epoch >= epochs):
        print(f"reusing the trained run {out} (finished after epoch {epoch})", flush=True)
    elif progress:
        print(f"resuming {out} after epoch {epoch}", flush=True)
    return history, epoch, stopped


def _fit_epochs(model, data, opt, scheduler, stopper, regs, out: Optional[Path], *, device, progress: bool,
                eval_batch_size: int, epochs: int, batch_size: int, augment: bool, seed: int,
                val_fraction: Optional[float], **_recorded) -> FitResult:
    """The training loop of :func:`fit` once everything is checked: resume, epochs (train,
    evaluate, checkpoint, early stop), then the final weights."""
    train, val, test = _staged_splits(data, stopper, val_fraction, seed, device)
    history, epoch, stopped = _start_history(out, model, opt, scheduler, stopper, device, epochs=epochs,
                                             progress=progress)
    criterion = F.cross_entropy
    for reg in regs:
        if defines(reg, "criterion"):
            criterion = reg.criterion(criterion)
    while epoch < epochs and not stopped:
        began = time.perf_counter()
        lr_now = opt.param_groups[0]["lr"]
        objective = _train_epoch(model, opt, regs, criterion, *train, epoch=epoch, epochs=epochs,
                                 batch_size=batch_size, augment=augment, seed=seed)
        if scheduler is not None:
            scheduler.step()
        epoch += 1
        row = _epoch_row(model, train, test, val, eval_batch_size, epoch=epoch, lr=lr_now, objective=objective)
        row["seconds"] = time.perf_counter() - began
        if stopper:
            stopped = stopper.update(epoch, row["val_loss"], row["val_acc"], model)
        for key, value in row.items():
            history[key].append(value)
        if out is not None:
            _save_checkpoint(out, model, opt, scheduler, stopper, epoch=epoch, history=history, stopped=stopped)
        if progress:  # after the checkpoint: an epoch shown is an epoch saved
            _print_epoch(row, epochs)
    best_epoch = _finish(model, stopper, regs, out, history, progress)
    best_epoch = epoch if best_epoch is None else best_epoch
    return FitResult(history=history, best_epoch=best_epoch, stopped_early=stopped, out=out)


def _epoch_row(model: nn.Module, train: tuple, test: Optional[tuple], val: Optional[tuple], eval_batch_size: int,
               **recorded) -> dict:
    """One history row: ``recorded`` items then train/test (and val) loss and accuracy (%);
    the test ones are NaN without a test split."""
    row = dict(recorded)
    row["train_loss"], row["train_acc"] = evaluate(model, train, batch_size=eval_batch_size)
    row["test_loss"], row["test_acc"] = (evaluate(model, test, batch_size=eval_batch_size)
                                         if test is not None else (math.nan, math.nan))
    if val is not None:
        row["val_loss"], row["val_acc"] = evaluate(model, val, batch_size=eval_batch_size)
    return row


def _print_epoch(row: dict, epochs: int) -> None:
    """One progress line for a history ``row``."""
    extra = f"  val acc {row['val_acc']:5.1f}%" if "val_acc" in row else ""
    print(f"epoch {row['epoch']:3d}/{epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:5.1f}%  "
          f"test loss {row['test_loss']:.4f} acc {row['test_acc']:5.1f}%{extra}  lr {row['lr']:.3g}  "
          f"({row['seconds']:.1f} s)", flush=True)


def _finish(model: nn.Module, stopper, regs: list, out: Optional[Path], history: dict, progress: bool
            ) -> Optional[int]:
    """After the last epoch: restore the best weights when early stopping (their epoch is
    returned, else None), run each regularizer's ``finish``, write ``model.pt`` and the history."""
    best_epoch = None
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
        atomic_torch_save(model.state_dict(), out / "model.pt")
        _write_history(out, history)
        if progress:
            print(f"wrote {out / 'model.pt'}, {out / 'history.json'} and "
                  f"{len(checkpoint_paths(out))} checkpoints", flush=True)
    return best_epoch


def data_from_config(config: dict, run_dir=None) -> Dataset:
    """The data set a run folder's config names: ``data``, ``data_seed``, ``normalize``,
    ``test_fraction`` and ``corrupt`` (``KIND[:P]``, a memorization variant of
    :func:`regularizers.data.corrupt`). Configs written before ``normalize`` was recorded were
    trained on standardized data with a 75/25 split of ``x, y`` files, and are read so.

    Data saved with the run (``data.pt``: no spec names it) is read from ``run_dir``.
    With ``data_file_sha256`` in ``config`` the file (or folder) read must have that hash
    (:func:`data_file_sha256`), else a one-line ValueError names it and the run. A relative data
    path (written by older versions) is looked up in ``run_dir``; it is refused when not there,
    since the current folder may hold another file of that name.
    """
    from .data import corrupt, load_data

    if config.get("data") == SAVED_DATA:  # data that no spec names, saved with the run (fit(..., out=))
        if run_dir is None:
            raise ValueError(f"the run saved its data with itself ({SAVED_DATA}): give the run folder")
        return _saved_data(Path(run_dir), config)
    seed = config.get("data_seed", 0)
    legacy = "normalize" not in config
    spec = _run_data_path(config.get("data", "digits"), run_dir)
    test_fraction = config.get("test_fraction")
    if legacy and spec != "digits" and str(spec).endswith(".npz"):
        test_fraction = _legacy_test_fraction(spec)
    expected = config.get("data_file_sha256")
    if expected and data_file_sha256(spec) != expected:
        raise ValueError(f"{spec} is not the data {'run ' + str(run_dir) if run_dir else 'the run'} was trained on: "
                         f"sha256 {data_file_sha256(spec)[:12]}..., recorded {expected[:12]}... for {config['data']} "
                         "(the file changed or was replaced)")
    data = load_data(spec, seed=seed, normalize="standardize" if legacy else config["normalize"],
                     test_fraction=test_fraction)
    if config.get("corrupt"):
        kind, _, p = config["corrupt"].partition(":")
        data = corrupt(data, kind, p=float(p) if p else 1.0, seed=seed)
    return data


def _absolute_spec(spec: str) -> str:
    """A data spec with its path made absolute (``digits`` stays as it is)."""
    return spec if spec == "digits" else os.path.abspath(os.path.expanduser(spec))


def _run_data_path(spec: str, run_dir) -> str:
    """The data path a run's config names, a relative one looked up in ``run_dir`` (see
    :func:`data_from_config`); without ``run_dir`` the spec as given."""
    if run_dir is None or spec in ("digits", SAVED_DATA) or os.path.isabs(os.path.expanduser(spec)):
        return spec
    inside = Path(run_dir) / spec
    if inside.exists():
        return str(inside)
    raise ValueError(f"run {run_dir} names its data by the relative path {spec!r} (an older run), which is not in "
                     "the run folder: the file of that name here may be other data; give the data file by an "
                     "absolute --data path (with the run's --normalize and --test-fraction)")


def data_file_sha256(spec: str) -> Optional[str]:
    """Hex SHA-256 of the data a spec reads: the bytes of a file; for a folder (CIFAR, MNIST, or
    one holding them) the names and sizes of its files, in name order (reading every byte of a
    large data folder at each evaluation would be slow); None for the embedded ``digits``."""
    import hashlib

    if spec == "digits":
        return None
    path = Path(spec).expanduser()
    if not path.is_dir():
        return file_sha256(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{item.relative_to(path)}\0{item.stat().st_size}\0".encode())
    return digest.hexdigest()


def _legacy_test_fraction(spec: str) -> Optional[float]:
    """0.25 for an ``x, y`` file (older versions split those silently), else None."""
    import numpy as np

    with np.load(Path(spec).expanduser(), allow_pickle=False) as z:
        return None if "x_test" in z.files else 0.25


def _data_tensors(data: Dataset) -> dict:
    return {k: getattr(data, k).cpu() for k in ("x_train", "y_train", "x_test", "y_test")
            if getattr(data, k) is not None}


def complete_config(model: nn.Module, data: Dataset, config: Optional[dict]) -> dict:
    """``config`` with what :func:`load_run` needs filled in: ``model`` (default: the model's
    class as ``module:Class``), ``num_classes``, ``in_channels``, and ``data`` -- when the
    config names no data spec, :func:`fit` saves the data's tensors as ``out/data.pt``; the
    config then names that file and records the tensors' hash (``data_sha256``)."""
    config = dict(config or {})
    config.setdefault("num_classes", data.num_classes)
    config.setdefault("in_channels", data.in_channels)
    if "model" not in config:
        config["model"] = f"{type(model).__module__}:{type(model).__qualname__}"
        _check_rebuilds(model, data, config)
    if "data" not in config:
        config.update(data=SAVED_DATA, data_name=data.name, transforms=list(data.transforms),
                      data_sha256=tensors_sha256(_data_tensors(data).values()))
    return config


def _check_rebuilds(model: nn.Module, data: Dataset, config: dict) -> None:
    """Refuse, before training, a run folder :func:`load_run` could not rebuild: the model's class
    called as a factory (``num_classes``, ``in_channels``) must give the model's shapes."""
    from .models import load_model

    try:
        rebuilt = load_model(config["model"], num_classes=config["num_classes"], in_channels=config["in_channels"],
                             input_shape=data.x_train.shape[1:], input_dtype=data.x_train.dtype,
                             **config.get("model_options", {}))
        same = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} == \
            {k: tuple(v.shape) for k, v in model.state_dict().items()}
    except (ValueError, TypeError):
        same = False
    if not same:
        raise ValueError(f"fit(..., out=) records the model as {config['model']}, which called with num_classes and "
                         "in_channels does not rebuild this model (it was built with other options): pass "
                         "config={'model': SPEC, 'model_options': {...}} naming how it was built")


def _save_data(out: Path, data: Dataset) -> None:
    """``out/data.pt``: the tensors of data that no spec names (see :func:`complete_config`)."""
    atomic_torch_save({**_data_tensors(data), "num_classes": torch.tensor(data.num_classes)}, out / SAVED_DATA)



def _saved_data(out: Path, config: dict) -> Dataset:
    """The data a run saved with itself (:func:`complete_config`), read with weights_only."""
    saved = torch.load(out / SAVED_DATA, map_location="cpu", weights_only=True)
    return Dataset(config.get("data_name", "saved"), saved["x_train"], saved["y_train"], saved.get("x_test"),
                   saved.get("y_test"), int(saved["num_classes"]), tuple(config.get("transforms", ())))


def load_run(out):
    """Rebuild ``(model, data, history)`` from a run folder written by :func:`fit` or ``landscape train``.

    Returns:
        the model with ``model.pt`` loaded, the data it was trained on (the same inputs: the
        recorded normalization is applied again), and ``history.json`` as a dict of lists.
    """
    from .models import load_model

    out = Path(out)
    config_path = out / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{out} is not a run folder: config.json is missing")
    config = json.loads(config_path.read_text())
    data = data_from_config(config, out)
    model = load_model(config["model"], num_classes=data.num_classes, in_channels=data.in_channels,
                       checkpoint=out / "model.pt", input_shape=data.x_train.shape[1:], input_dtype=data.x_train.dtype,
                       **config.get("model_options", {}))
    history = json.loads((out / "history.json").read_text())
    return model, data, history


def train_run(out, *, model: str = "cnn", data: str = "digits", epochs: int = 10,
              model_options: Optional[dict] = None, data_seed: int = 0, normalize: str = "none",
              test_fraction: Optional[float] = None, corrupt: Optional[str] = None,
              regularizers: Sequence[str] = (), seed: int = 0, batch_size: int = 128,
              optimizer: str = "sgd", lr: float = 0.05, momentum: float = 0.9, nesterov: bool = False,
              weight_decay: float = 0.0, schedule: str = "constant", schedule_options: Optional[dict] = None,
              augment: bool = False, patience: Optional[int] = None, monitor: str = "error",
              device="auto", progress: bool = True, **fit_options) -> FitResult:
    """Train a registry (or ``package.module:factory``) model on a data spec into the run folder
    ``out``: what ``landscape train`` does, as one function call.

    Every setting is recorded in ``out/config.json``; a rerun with the same settings resumes (a
    finished run is not trained again). ``regularizers`` are specs like ``"mma:0.07"``;
    ``fit_options`` go to :func:`fit` (e.g. ``overwrite=True``).

    Returns:
        the :class:`FitResult`; ``load_run(out)`` rebuilds model, data and history.
    """
    from .models import load_model
    from .registry import make_regularizer

    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    settings = {"data": _absolute_spec(data), "data_seed": data_seed, "normalize": normalize,
                "test_fraction": test_fraction, "corrupt": corrupt}
    dataset = data_from_config(settings)
    if data != "digits":
        settings["data_file_sha256"] = data_file_sha256(settings["data"])
    options = dict(model_options or {})
    schedule_options = schedule_options_of(schedule_options)
    torch.manual_seed(seed)
    net = load_model(model, num_classes=dataset.num_classes, in_channels=dataset.in_channels,
                     input_shape=dataset.x_train.shape[1:], input_dtype=dataset.x_train.dtype, **options)
    regs = [make_regularizer(spec) for spec in regularizers]
    config = {"model": model, "model_options": options, **settings, "num_classes": dataset.num_classes,
              "in_channels": dataset.in_channels, "transforms": list(dataset.transforms),
              "regularizers": list(regularizers), "seed": seed, "epochs": epochs, "batch_size": batch_size,
              "optimizer": optimizer, "lr": lr, "momentum": momentum, "nesterov": nesterov,
              "weight_decay": weight_decay, "schedule": schedule, "schedule_options": schedule_options,
              "augment": augment, "patience": patience, "monitor": monitor}
    return fit(net, dataset, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
               momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, schedule=schedule,
               schedule_options=schedule_options, regularizers=regs, augment=augment, patience=patience,
               monitor=monitor, seed=seed, device=device, out=out, config=config, progress=progress,
               **fit_options)
