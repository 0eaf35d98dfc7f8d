"""Options shared by several subcommands: model, checkpoint, data, device and output, and the
typed parsers every numeric flag uses (argparse names the flag in their one-line error)."""
from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Optional

DATA_KEYS = ("data", "data_seed", "normalize", "test_fraction", "corrupt")
SEED_MAX = 2**32 - 1  # numpy's and torch's seeds both accept [0, 2**32)


def _number(kind, text: str):
    """``text`` as ``kind`` (int or float), refusing NaN, infinities and non-integral ints."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    if kind is int:
        if value != int(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
        return int(value)
    return value


def number(kind=float, *, low=None, high=None, low_open=False, high_open=False):
    """An argparse ``type``: a finite ``kind`` in ``[low, high]`` (``(low`` / ``high)`` when open).

    >>> number(int, low=1)("3"), number(low=0, low_open=True)("0.5")
    (3, 0.5)
    """
    def parse(text: str):
        value = _number(kind, text)
        if low is not None and (value <= low if low_open else value < low):
            raise argparse.ArgumentTypeError(f"{text} is not {'>' if low_open else '>='} {low}")
        if high is not None and (value >= high if high_open else value > high):
            raise argparse.ArgumentTypeError(f"{text} is not {'<' if high_open else '<='} {high}")
        return value
    return parse


positive_int = number(int, low=1)
nonnegative_int = number(int, low=0)
seed_int = number(int, low=0, high=SEED_MAX)
finite_float = number(float)
positive_float = number(float, low=0, low_open=True)
nonnegative_float = number(float, low=0)
fraction = number(float, low=0, high=1, low_open=True, high_open=True)


def add_output_argument(parser: argparse.ArgumentParser) -> None:
    """``--output NAME|INDEX``: which part of a dict/tuple model output holds the logits."""
    parser.add_argument("--output", default=None, metavar="NAME|INDEX",
                        help="the predictions when the model returns a dict or tuple: a key (e.g. 'logits' for "
                             "HuggingFace models) or a position (0); default: the output itself")


def output_selector(value):
    """``--output`` as :func:`regularizers.evaluation.select_output` takes it (digits -> int)."""
    return int(value) if value is not None and value.lstrip("-").isdigit() else value


def add_model_arguments(parser: argparse.ArgumentParser, checkpoint: bool = True) -> None:
    """``--model``, ``--model-option``, and (optionally) ``--checkpoint``/``--model_file``."""
    parser.add_argument("--model", default=None,
                        help="registry name (see `landscape train --list-models`) or "
                             "'package.module:factory'; default: the run folder's config.json")
    parser.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                        help="extra keyword for the model factory (repeatable), e.g. skip=false")
    if checkpoint:
        parser.add_argument("--checkpoint", "--model_file", dest="checkpoint", default=None,
                            help="state-dict file, trainer checkpoint, or a run folder (uses model.pt)")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data``, ``--data-seed``, ``--normalize`` and ``--test-fraction``."""
    parser.add_argument("--data", default=None,
                        help="'digits' (embedded), a .npz file, or a CIFAR/MNIST folder; "
                             "default: the run folder's config.json, else digits")
    parser.add_argument("--data-seed", type=seed_int, default=None,
                        help="seed of the digits split and of --test-fraction (default: the run's, else 0)")
    parser.add_argument("--normalize", default=None, metavar="none|standardize|MEAN,STD",
                        help="transform the inputs: none (as stored; uint8 scaled to [0, 1]), standardize "
                             "(per channel, training statistics) or MEAN,STD (k means then k stds); "
                             "default: the run folder's, else none")
    parser.add_argument("--test-fraction", type=fraction, default=None,
                        help="split an x, y .npz file into train and test, seeded by --data-seed; "
                             "default: the run folder's, else one split (train)")


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--device`` (auto, cpu, cuda, cuda:N) to ``parser``."""
    parser.add_argument("--device", default="auto", help="'auto' (cuda when present), 'cpu', 'cuda', 'cuda:1'")


def data_config(args, config: Optional[dict] = None) -> dict:
    """The data settings (:data:`DATA_KEYS`) to evaluate on: those of the run folder ``config``
    when ``--data`` is not given (or names the run's data file, by any path), overridden by the
    flags given, and checked against the run's data hash when they are the run's own; for
    other data, the flags given and otherwise the data as stored."""
    config = config or {}
    named = args.data if args.data in (None, "digits") else os.path.abspath(os.path.expanduser(args.data))
    own = bool(config) and (args.data == config.get("data") or named in (None, config.get("data")))
    base = {k: config[k] for k in DATA_KEYS if k in config} if own else {"data": args.data or "digits",
                                                                            "normalize": "none"}
    for key in ("data_seed", "normalize", "test_fraction"):
        if getattr(args, key, None) is not None:
            base[key] = getattr(args, key)
    if own and "data_file_sha256" in config and all(base.get(k) == config.get(k) for k in DATA_KEYS):
        base["data_file_sha256"] = config["data_file_sha256"]  # the run's own data: checked when read
    if own:  # the name and transformations of data saved with the run (data.pt)
        base.update({k: config[k] for k in ("data_name", "transforms") if k in config})
    return base


def parse_options(pairs, what: str = "model option") -> dict:
    """``["depth=28", "skip=false", "dropout=0.3"]`` -> ``{"depth": 28, "skip": False, "dropout": 0.3}``;
    ``what`` names the flag in the error for a word that is not KEY=VALUE."""
    from regularizers.registry import parse_value

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} {pair!r} is not KEY=VALUE")
        options[key] = parse_value(value)
    return options


def run_folder(checkpoint) -> Optional[Path]:
    """The run folder (holding ``config.json``) a checkpoint or folder belongs to, else None."""
    if checkpoint is None:
        return None
    path = Path(checkpoint)
    for folder in (path, path.parent, path.parent.parent):
        if (folder / "config.json").is_file() and folder.is_dir():
            return folder
    return None


def run_config(checkpoint) -> dict:
    """The ``config.json`` of the run folder a checkpoint belongs to ({} when there is none)."""
    folder = run_folder(checkpoint)
    return json.loads((folder / "config.json").read_text()) if folder is not None else {}


def checkpoint_file(checkpoint):
    """A run folder stands for its ``model.pt``; anything else is used as given."""
    if checkpoint is None:
        return None
    path = Path(checkpoint)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return path


def model_and_data(args, checkpoint=None):
    """Build ``(model, data)`` from parsed options; a run folder's config fills what is missing.

    ``checkpoint`` overrides ``args.checkpoint`` (used for ``--model_file2``).
    """
    from regularizers.models import load_model
    from regularizers.train import data_from_config

    checkpoint = checkpoint if checkpoint is not None else getattr(args, "checkpoint", None)
    config = run_config(checkpoint)
    settings = data_config(args, config)
    own = bool(config) and settings.get("data") == config.get("data")
    data = data_from_config(settings, run_folder(checkpoint) if own else None)
    spec = args.model or config.get("model")
    if spec is None:
        raise ValueError("no --model given and no run folder config.json next to the checkpoint")
    options = dict(config.get("model_options", {})) if spec == config.get("model") else {}
    options.update(parse_options(args.model_option))
    model = load_model(spec, num_classes=data.num_classes, in_channels=data.in_channels,
                       checkpoint=checkpoint_file(checkpoint), input_shape=data.x_train.shape[1:],
                       input_dtype=data.x_train.dtype, **options)
    return model, data
