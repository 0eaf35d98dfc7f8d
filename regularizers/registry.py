"""Regularizers by name: ``make_regularizer("mma:0.07")``, ``names()``.

A spec is ``NAME[:COEF[:KEY=VALUE,...]]``. ``COEF`` is the method's main number (left out or
empty: the paper's default); the options are the keyword arguments of the method's class,
values read as booleans (``true``/``false``), integers, floats or strings. Examples::

    mma                      MMA, coefficient 0.07, classifier included
    mma:0.03:include_output=false
    mhe:1:s=0,half_space=true
    orthogonal::normalize=false
    linrc:0.5:alpha=1.0      LinR with the confidence mask
    residual:1:schedule=logistic,b=0.25,alpha=0

What each coefficient means (defaults in brackets): mma / cosine / mhe / orthogonal / srip /
norm / l1: the penalty weight [0.07 / 0.07 / 1 / 1e-4 / 1e-4 / 0.01 / 1e-5]; pbwn: the
projection period T in steps [1]; label_smoothing: epsilon [0.1]; mixup / cutmix: the Beta
alpha [1]; cutout: the patch side as a fraction of the image side [0.5]; randaugment: the
magnitude M on the 0-30 scale [9] (option ``n`` ops [2]); linr / linrc / linrnl / linrnm: the
LinR weight [1]; residual: the peak diffusivity scale [1].

weight_norm has no coefficient: it reparametrizes the covered layers before training and
folds them back afterwards (:class:`regularizers.norms.WeightNorm`).
"""
from __future__ import annotations

import inspect
import json
import math

from .angular import MHE, MMA, SRIP, Cosine, Orthogonal
from .classic import L1, CutMix, Cutout, LabelSmoothing, Mixup, RandAugment
from .linear import LinR
from .norms import NormLoss, ProjectionWeightNorm, WeightNorm
from .residual import ResidualSmoothing

# name -> (class, options fixed by the name)
REGISTRY = {
    "mma": (MMA, {}),
    "cosine": (Cosine, {}),
    "mhe": (MHE, {}),
    "orthogonal": (Orthogonal, {}),
    "srip": (SRIP, {}),
    "norm": (NormLoss, {}),
    "pbwn": (ProjectionWeightNorm, {}),
    "weight_norm": (WeightNorm, {}),
    "l1": (L1, {}),
    "label_smoothing": (LabelSmoothing, {}),
    "mixup": (Mixup, {}),
    "cutmix": (CutMix, {}),
    "cutout": (Cutout, {}),
    "randaugment": (RandAugment, {}),
    "linr": (LinR, {}),
    "linrc": (LinR, {"confidence": True}),
    "linrnl": (LinR, {"labels": False}),
    "linrnm": (LinR, {"mix": False}),
    "residual": (ResidualSmoothing, {}),
}


def names() -> list:
    """The registered names, in registry order."""
    return list(REGISTRY)


def parse_value(text: str):
    """``'true'`` -> True, ``'3'`` -> 3, ``'0.5'`` -> 0.5, ``'[4,8]'`` -> [4, 8]; else the string."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _options(text: str, spec: str) -> dict:
    options = {}
    for pair in filter(None, text.split(",")):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"regularizer {spec!r}: option {pair!r} is not KEY=VALUE")
        options[key.strip()] = parse_value(value.strip())
    return options


def make_regularizer(spec: str):
    """Build the regularizer of ``spec``.

    Args:
        spec: ``NAME[:COEF[:KEY=VALUE,...]]`` (see the module docstring); ``COEF`` must be a
            finite number >= 0.

    Returns:
        The regularizer, with ``name`` set.

    Raises:
        ValueError: an unknown name, a bad coefficient or options the method does not take.
    """
    name, _, rest = spec.strip().partition(":")
    coef_text, _, option_text = rest.partition(":")
    if name not in REGISTRY:
        raise ValueError(f"unknown regularizer {name!r}; choose one of {', '.join(REGISTRY)}")
    cls, fixed = REGISTRY[name]
    try:
        coefficient = float(coef_text) if coef_text.strip() else None
    except ValueError:
        raise ValueError(f"regularizer {spec!r}: coefficient {coef_text!r} is not a number") from None
    if coefficient is not None and not (math.isfinite(coefficient) and coefficient >= 0):
        raise ValueError(f"regularizer {spec!r}: the coefficient must be a finite number >= 0, "
                         f"got {coef_text.strip()}")
    options = {**fixed, **_options(option_text, spec)}
    try:
        reg = cls(coefficient, **options)
    except TypeError:
        accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "coefficient")]
        raise ValueError(f"regularizer {name!r} got options {sorted(options)}; "
                         f"it accepts {accepted}") from None
    reg.name = name
    return reg
