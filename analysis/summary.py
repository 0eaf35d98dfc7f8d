"""What one diagnosed model is and how it is measured: the models to diagnose (run folders of
``landscape train`` and models trained anywhere, :class:`ModelSource`), the measuring settings
(:class:`Settings`), the numbers of one run (:func:`summarize` into :class:`RunSummary` and
:class:`LayerSummary`; :func:`basin_width` of a 1D surface), how runs are grouped
(:func:`make_groups`) and a run's numbers as flat labelled metrics (:func:`run_metrics`).

:mod:`analysis.report` turns these into the ``landscape diagnose`` report.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from analysis.angles import minimal_angles, named_layers
from analysis.curvature import hessian_trace, rho_sharpness, top_eigenvalues
from analysis.similarity import count_above, filter_norms, stable_ranks
from analysis.weight_spectra import weight_spectra
from regularizers.angular import cosine_matrix
from regularizers.evaluation import evaluate, seeded_subset

COSINE_THRESHOLD = 0.2


@dataclass
class Settings:
    """How the numbers are measured. Curvature uses ``samples`` training examples (a seeded
    random subset) and the parameters ``params`` (``"all"``: every parameter, as PyHessian and
    the exact Hessian; ``"weights"``: conv and linear weights only). Surfaces use at most
    ``surface_samples`` examples of each split; the 1D basin width is measured where the training
    loss has risen ``basin_rise`` nats above its value at the model. Intervals have coverage
    ``confidence``."""

    samples: int = 512            # training examples for Hessian eigenvalue, trace, sharpness
    probes: int = 30              # Hutchinson probes of the trace
    eig_tol: float = 1e-3         # Lanczos tolerance of the top eigenvalue
    rho: float = 0.05             # radius of the SAM (rho) sharpness
    params: str = "all"           # curvature parameters: "all" or "weights"
    surface: bool = True
    points_1d: int = 21           # 1D grid over [-span, span]
    points_2d: int = 11           # 2D grid: points_2d x points_2d
    span: float = 1.0
    surface_samples: int = 2000
    basin_rise: float = 1.0       # rise of the train loss (nats) at which the 1D basin width is measured
    confidence: float = 0.95
    spectra: bool = True          # Hessian spectral density (first run of each group) and diagonal
    density_probes: int = 3       # stochastic Lanczos quadrature probes
    lanczos_steps: int = 40       # Lanczos steps per probe
    seed: int = 0                 # data subsets, probes, directions


QUICK = dict(samples=128, probes=6, eig_tol=1e-2, points_1d=9, points_2d=5, surface_samples=300,
             density_probes=1, lanczos_steps=15)


@dataclass
class LayerSummary:
    """Filter geometry of one layer; angles in degrees."""

    name: str
    filters: int
    min_angle: float              # smallest angle between any two filters
    mean_min_angle: float         # mean over filters of each filter's minimal angle
    pairs_above: int              # filter pairs with cosine > COSINE_THRESHOLD
    pairs: int                    # filters * (filters - 1) / 2
    stable_rank: float
    mean_norm: float              # mean filter norm
    alpha: float = math.nan       # power-law exponent of the tail of the layer's W^T W spectrum


@dataclass
class RunSummary:
    """The numbers of one run (accuracies in percent, losses in nats, evaluated from the model
    as loaded; NaN for a split the data does not have)."""

    name: str
    group: str
    source: str                   # run folder, or the checkpoint file of a model trained elsewhere
    model: str
    regularizers: list[str]
    seed: int | None
    epochs: int | None
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    gap: float                    # train - test accuracy, percentage points
    min_angle: float              # over all layers
    mean_min_angle: float         # over all filters of all layers
    top_eigenvalue: float
    hessian_trace: float
    trace_stderr: float
    sharpness: float              # L(w + rho g / |g|) - L(w)
    diagonal_sum: float = math.nan  # sum of the Hutchinson Hessian diagonal (an independent trace estimate)
    basin_width: float = math.nan  # width of the 1D basin at Settings.basin_rise (direction units)
    layers: list[LayerSummary] = field(default_factory=list)
    surfaces: list[str] = field(default_factory=list)   # 1d/NAME.h5, 2d/NAME.h5 in the out dir


@dataclass
class ModelSource:
    """One model to diagnose: a run folder, or a model trained anywhere (``history`` None)."""

    name: str
    model: nn.Module
    data: object                  # a regularizers.data.Dataset
    history: dict | None
    config: dict
    files: list[str]              # the files it was read from
    folder: Path | None = None

    @property
    def source(self) -> str:
        return str(self.folder) if self.folder is not None else self.config["checkpoint"]


def from_run(folder, name: str | None = None) -> ModelSource:
    """A run folder of ``landscape train`` (its recorded data and normalization are used)."""
    from regularizers.train import load_run

    folder = Path(folder)
    model, data, history = load_run(folder)
    config = json.loads((folder / "config.json").read_text())
    files = [str(folder / f) for f in ("config.json", "history.json", "model.pt")]
    return ModelSource(name or folder.name, model, data, history, config, files, folder)


def from_checkpoint(model: str, checkpoint, data: str, *, name: str | None = None,
                    normalize: str = "none", options: Mapping | None = None) -> ModelSource:
    """A model trained anywhere: ``model`` is a registry name or ``package.module:factory``,
    ``checkpoint`` a state-dict file, ``data`` a data spec used as stored unless ``normalize``
    says otherwise (``none``, ``standardize`` or ``MEAN,STD``)."""
    from regularizers.models import load_model
    from regularizers.train import data_from_config

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    config = {"model": model, "model_options": dict(options or {}), "checkpoint": str(path),
              "data": data, "normalize": normalize}
    dataset = data_from_config(config)
    net = load_model(model, num_classes=dataset.num_classes, in_channels=dataset.in_channels,
                     checkpoint=str(path), input_shape=dataset.x_train.shape[1:], input_dtype=dataset.x_train.dtype,
                     **config["model_options"])
    return ModelSource(name or path.stem, net, dataset, None, config, [str(path)])


# ------------------------------------------------------------------------------------ measures
def layer_summaries(model: nn.Module) -> list[LayerSummary]:
    """One :class:`LayerSummary` per Conv/Linear layer of ``model`` (alpha from
    :func:`analysis.weight_spectra.weight_spectra`, matched by the module of the weight)."""
    ranks, norms = stable_ranks(model), filter_norms(model)
    alphas = {f"{r.name}.weight": r.alpha for r in weight_spectra(model)}
    out = []
    for (name, w), rank, norm in zip(named_layers(model), ranks, norms):
        mins, n = minimal_angles(w), int(w.shape[0])
        out.append(LayerSummary(name, n, float(mins.min()), float(mins.mean()),
                                count_above(cosine_matrix(w), COSINE_THRESHOLD), n * (n - 1) // 2,
                                float(rank), float(norm.mean()), float(alphas.get(name, math.nan))))
    return out


def _split_metrics(model: nn.Module, data, split: str, device) -> tuple[float, float]:
    if getattr(data, f"x_{split}", None) is None:
        return math.nan, math.nan
    return evaluate(model, data, split=split, device=device)


def curvature_subset(data, settings: Settings, device) -> tuple:
    """The seeded subset of ``settings.samples`` training examples every curvature number uses."""
    x, y = seeded_subset(data.x_train, data.y_train, settings.samples, settings.seed)
    return x.to(device), y.to(device)


def summarize(source: ModelSource, settings: Settings, device="cpu", group: str = "") -> RunSummary:
    """Accuracies, losses, filter geometry and curvature of one model (no surface yet)."""
    model = source.model.to(device)
    data = source.data
    train_loss, train_acc = _split_metrics(model, data, "train", device)
    test_loss, test_acc = _split_metrics(model, data, "test", device)
    all_mins = np.concatenate([minimal_angles(w) for _, w in named_layers(model)])
    subset = curvature_subset(data, settings, device)
    eig = top_eigenvalues(model, subset, k=1, seed=settings.seed, tol=settings.eig_tol, params=settings.params)
    trace = hessian_trace(model, subset, num_probes=settings.probes, seed=settings.seed, params=settings.params)
    sharp = rho_sharpness(model, subset, rho=settings.rho, params=settings.params)
    config, history = source.config, source.history
    return RunSummary(source.name, group or source.name, source.source, config.get("model", "?"),
                      list(config.get("regularizers", [])), config.get("seed"),
                      len(history["epoch"]) if history else None, train_loss, train_acc, test_loss,
                      test_acc, train_acc - test_acc, float(all_mins.min()), float(all_mins.mean()),
                      float(eig.values[0]), trace.mean, trace.stderr, sharp.value,
                      layers=layer_summaries(model))


def basin_width(x: np.ndarray, loss: np.ndarray, threshold: float) -> float:
    """Width of the basin around ``x = 0`` where ``loss <= threshold`` along a 1D line.

    Args:
        x: ``(n,)`` increasing coordinates holding 0 (direction units).
        loss: ``(n,)`` loss at each coordinate.
        threshold: the loss level.

    Returns:
        The distance between the two crossings of ``threshold`` nearest to 0 on either side,
        linearly interpolated between grid points; a side that never crosses counts up to the
        grid's end (the width is then a lower bound). 0 when the loss at 0 is above the level.
    """
    x, loss = np.asarray(x, float), np.asarray(loss, float)
    centre = int(np.argmin(np.abs(x)))
    if not loss[centre] <= threshold:
        return 0.0

    def edge(step: int) -> float:
        i = centre
        while 0 <= i + step < len(x) and loss[i + step] <= threshold:
            i += step
        j = i + step
        if not 0 <= j < len(x):
            return x[i]
        return x[i] + (threshold - loss[i]) / (loss[j] - loss[i]) * (x[j] - x[i])

    return float(edge(1) - edge(-1))


def run_names(folders: Sequence[Path]) -> list[str]:
    """Short unique names: the folder name, with its parent's when two runs share one."""
    names = [f.name for f in folders]
    return [f"{f.parent.name}/{f.name}" if names.count(f.name) > 1 else f.name for f in folders]


# ------------------------------------------------------------------------------------ groups
def _group_name(members: Sequence[ModelSource]) -> str:
    """The members' common name once their seed is cut out of it (``base-s0-e40``,
    ``base-s1-e40`` -> ``base-e40``), else their longest common prefix."""
    stems = set()
    for m in members:
        seed = m.config.get("seed")
        stem = re.sub(rf"(?<![0-9A-Za-z])(seed|s)?[-_=]?{seed}(?![0-9])", "", m.name)
        stems.add(re.sub(r"([-_.])[-_.]+", r"\1", stem).strip("-_./"))
    if len(stems) == 1 and next(iter(stems)):
        return next(iter(stems))
    names = [m.name for m in members]
    prefix = names[0]
    for n in names[1:]:
        while not n.startswith(prefix):
            prefix = prefix[:-1]
    return prefix.rstrip("-_./") or names[0]


def make_groups(sources: Sequence[ModelSource], explicit: Mapping[str, Sequence[str]] | None = None
                ) -> tuple[dict[str, list[str]], list[str]]:
    """Group the sources: ``explicit`` groups first (members named by source name or run
    folder path), then run folders whose ``config.json`` equal each other except for ``seed``,
    then every other source on its own.

    Returns:
        ``({group: [source names]}, [sentences saying how each group was formed])``.
    """
    by_key = {s.name: s for s in sources}
    by_key.update({str(s.folder): s for s in sources if s.folder is not None})
    groups, how, taken = {}, [], set()
    for group, members in (explicit or {}).items():
        names = []
        for m in members:
            if m not in by_key:
                raise ValueError(f"group {group!r}: {m!r} is neither a run folder nor a model name given")
            names.append(by_key[m].name)
        if group in groups:
            raise ValueError(f"group {group!r} is given twice")
        twice = taken.intersection(names)
        if twice:
            raise ValueError(f"{sorted(twice)[0]!r} is in two groups")
        groups[group], taken = names, taken | set(names)
        how.append(f"{group}: {', '.join(names)} (grouped with --group).")
    pending: dict[str, list[ModelSource]] = {}
    for s in sources:
        if s.name in taken:
            continue
        if s.folder is None or "seed" not in s.config:
            pending[f"single:{s.name}"] = [s]
            continue
        key = json.dumps({k: v for k, v in s.config.items() if k != "seed"}, sort_keys=True)
        pending.setdefault(key, []).append(s)
    for key, members in pending.items():
        names = [m.name for m in members]
        name = _group_name(members) if len(members) > 1 else names[0]
        while name in groups:
            name += "'"
        groups[name] = names
        if len(members) > 1:
            seeds = ", ".join(str(m.config["seed"]) for m in members)
            how.append(f"{name}: {', '.join(names)} (grouped automatically: their config.json are "
                       f"equal except for seed = {seeds}).")
        else:
            alone = " (no other run folder differs from it only in seed)" if members[0].folder else ""
            how.append(f"{name}: a single run{alone}.")
    return groups, how


# ------------------------------------------------------------------------------------ metrics
TOP_METRICS = {  # summary metric -> label (units)
    "test_acc": "test accuracy (%)", "test_loss": "test loss", "train_acc": "train accuracy (%)",
    "train_loss": "train loss", "gap": "train - test accuracy (points)",
    "min_angle": "minimal filter angle, all layers (deg)",
    "mean_min_angle": "mean minimal filter angle, all layers (deg)",
    "top_eigenvalue": "top Hessian eigenvalue", "hessian_trace": "Hessian trace",
    "sharpness": "rho-sharpness", "diagonal_sum": "sum of the Hessian diagonal",
    "basin_width": "1D basin width",
}
LAYER_METRICS = {  # LayerSummary field -> label
    "min_angle": "minimal angle (deg)", "mean_min_angle": "mean minimal angle (deg)",
    "pairs_above": f"pairs with cos > {COSINE_THRESHOLD}", "mean_norm": "mean filter norm",
    "stable_rank": "stable rank", "alpha": "weight-spectrum alpha",
}
GEOMETRY = ("min_angle", "mean_min_angle", "pairs_above", "mean_norm", "alpha", "top_eigenvalue",
            "hessian_trace", "sharpness", "basin_width")
FINDINGS_ORDER = ("min_angle/", "pairs_above/", "mean_norm/", "alpha/", "top_eigenvalue", "hessian_trace",
                  "sharpness", "basin_width", "gap", "test_acc", "test_loss")


def run_metrics(s: RunSummary) -> dict[str, float]:
    """A run's numbers as one flat ``{metric: value}`` dict: :data:`TOP_METRICS`, the totals
    ``pairs_above`` and ``mean_norm`` over layers, ``alpha`` (mean over the layers with a fit),
    and ``FIELD/LAYER`` for every per-layer field."""
    values = {k: float(getattr(s, k)) for k in TOP_METRICS}
    values["pairs_above"] = float(sum(layer.pairs_above for layer in s.layers))
    values["mean_norm"] = float(np.mean([layer.mean_norm for layer in s.layers]))
    alphas = [layer.alpha for layer in s.layers if math.isfinite(layer.alpha)]
    values["alpha"] = float(np.mean(alphas)) if alphas else math.nan
    for layer in s.layers:
        for key in LAYER_METRICS:
            values[f"{key}/{layer.name}"] = float(getattr(layer, key))
    return values


def metric_label(metric: str) -> str:
    """The readable label of a metric key of :func:`run_metrics`."""
    if "/" in metric:
        key, layer = metric.split("/", 1)
        return f"{LAYER_METRICS.get(key, key)} of {layer}"
    return {**TOP_METRICS, "pairs_above": f"pairs with cos > {COSINE_THRESHOLD}, all layers",
            "mean_norm": "mean filter norm, all layers",
            "alpha": "weight-spectrum alpha, mean over layers"}.get(metric, metric)


def findings_labels(metrics: Sequence[str]) -> dict[str, str]:
    """``{metric: label}`` of the metrics the Findings discuss, in :data:`FINDINGS_ORDER`."""
    ordered = [m for prefix in FINDINGS_ORDER for m in metrics
               if (m.startswith(prefix) if prefix.endswith("/") else m == prefix)]
    return {m: metric_label(m) for m in ordered}
