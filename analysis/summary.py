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
import torch
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
    output: str | int | None = None  # which part of a dict/tuple model output holds the logits
    precision: str = "fp32"       # arithmetic of the surfaces (compute_surface's precision)
    widenings: int = 2            # times the 1D line is widened (x4 each) to find the basin's edges
    samples_used: int | None = None  # curvature examples actually used: min(samples, training examples)


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
    alpha_note: str = ""          # why alpha is NaN (too few eigenvalues, no power-law tail)


@dataclass
class RunSummary:
    """The numbers of one run (accuracies in percent, losses in nats, evaluated from the model
    as loaded; NaN for a split the data does not have)."""

    name: str
    group: str
    source: str                   # run folder, or the checkpoint file of a model trained elsewhere
    model: str
    regularizers: list[str] | None  # None: unknown (a model trained elsewhere, not said in the models file)
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
    basin_span: float = math.nan  # half-width of the 1D line the basin width was measured on
    samples_used: int = 0         # training examples the curvature numbers used
    censored: list[str] = field(default_factory=list)  # measures whose value is only a (lower) bound
    notes: list[str] = field(default_factory=list)     # sections that do not apply, and why
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
        """The run folder, or the checkpoint file."""
        return str(self.folder) if self.folder is not None else self.config["checkpoint"]

    @property
    def seed(self) -> int | None:
        """The training seed: a run folder's, or the one the models file gives (None: unknown)."""
        return self.config.get("seed")


def from_run(folder, name: str | None = None) -> ModelSource:
    """A run folder of ``landscape train`` (its recorded data and normalization are used)."""
    from regularizers.train import load_run

    folder = Path(folder)
    model, data, history = load_run(folder)
    config = json.loads((folder / "config.json").read_text())
    files = [str(folder / f) for f in ("config.json", "history.json", "model.pt")]
    return ModelSource(name or folder.name, model, data, history, config, files, folder)


def from_checkpoint(model: str, checkpoint, data: str, *, name: str | None = None,
                    normalize: str = "none", options: Mapping | None = None, seed: int | None = None,
                    regularizers: Sequence[str] | None = None, output=None) -> ModelSource:
    """A model trained anywhere: ``model`` is a registry name or ``package.module:factory``,
    ``checkpoint`` a state-dict file, ``data`` a data spec used as stored unless ``normalize``
    says otherwise (``none``, ``standardize`` or ``MEAN,STD``). ``seed`` (its training seed)
    pairs it with runs of other groups; ``regularizers`` stays None (unknown) unless given.
    A checkpoint that does not fit because of the labels, or inputs the model rejects, is a
    one-line ValueError naming the labels or both shapes."""
    from regularizers.models import load_model
    from regularizers.train import data_from_config

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    config = {"model": model, "model_options": dict(options or {}), "checkpoint": str(path),
              "data": data, "normalize": normalize, "seed": seed,
              "regularizers": None if regularizers is None else list(regularizers)}
    dataset = data_from_config(config)
    try:
        net = load_model(model, num_classes=dataset.num_classes, in_channels=dataset.in_channels,
                         checkpoint=str(path), input_shape=dataset.x_train.shape[1:],
                         input_dtype=dataset.x_train.dtype, **config["model_options"])
    except ValueError as error:
        raise ValueError(f"{error}{label_hint(dataset)}") from None
    check_inputs(net, dataset, model, output)
    return ModelSource(name or path.stem, net, dataset, None, config, [str(path)])


def label_hint(data) -> str:
    """What the model was built for from ``data``, appended to a checkpoint that does not fit:
    the inputs' shape (its input channels) and the classes, read from the labels (largest + 1)
    unless the ``.npz`` has a ``num_classes`` key."""
    labels = torch.cat([y for y in (data.y_train, data.y_test) if y is not None])
    low, high = int(labels.min()), int(labels.max())
    shape = ", ".join(map(str, data.x_train.shape[1:]))
    return (f"; the model was built for the data: inputs of shape (N, {shape}) ({data.in_channels} input "
            f"channels) and {data.num_classes} classes, as its labels run {low}..{high} (labels are class "
            f"indices 0..K-1: the largest label + 1 classes, unless the .npz has a num_classes key)"
            f"{' -- labels starting at 1 would explain a mismatch of the last layer' if low > 0 else ''}")


def expected_input(model: nn.Module) -> str:
    """What the first layer of ``model`` takes, e.g. ``(N, 1, H, W) (Conv2d features.0)``."""
    for name, module in model.named_modules():
        shape = {nn.Conv1d: "(N, {}, L)", nn.Conv2d: "(N, {}, H, W)", nn.Conv3d: "(N, {}, D, H, W)"}.get(type(module))
        if shape:
            return f"{shape.format(module.in_channels)} ({type(module).__name__} {name})"
        if isinstance(module, nn.Linear):
            return f"(N, ..., {module.in_features}) (Linear {name})"
        if isinstance(module, (nn.LSTM, nn.GRU, nn.RNN)):
            return f"(N, T, {module.input_size}) ({type(module).__name__} {name}, batch_first={module.batch_first})"
        if isinstance(module, nn.Embedding):
            return f"integer ids in [0, {module.num_embeddings}) (Embedding {name})"
    return "another shape"


def check_inputs(model: nn.Module, data, spec: str, output=None) -> None:
    """One forward pass on two training examples; a model that rejects their shape is a
    one-line ValueError naming the data's shape and the one the model expects."""
    from regularizers.evaluation import select_output

    inputs = data.x_train[:2]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            outputs = model(inputs)
    except (RuntimeError, ValueError, IndexError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"model {spec} rejects the data's inputs of shape (N, {', '.join(map(str, inputs.shape[1:]))})"
                         f"; it expects {expected_input(model)} ({first})") from None
    finally:
        model.train(was_training)
    try:
        logits = select_output(outputs, output)
    except (KeyError, IndexError, AttributeError, TypeError) as error:
        raise ValueError(f"model {spec}: output {output!r} does not select its predictions from a "
                         f"{type(outputs).__name__} ({type(error).__name__}: {error})") from None
    if not torch.is_tensor(logits) or logits.dim() != 2 or logits.shape[0] != 2 or logits.shape[1] < data.num_classes:
        shape = tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__
        raise ValueError(f"model {spec} gives predictions of shape {shape} for 2 examples (output {output!r}); "
                         f"the data has {data.num_classes} classes, so (2, {data.num_classes}) was expected"
                         f"{label_hint(data)}")


# ------------------------------------------------------------------------------------ measures
def layer_summaries(model: nn.Module) -> list[LayerSummary]:
    """One :class:`LayerSummary` per Conv/Linear layer of ``model`` (alpha from
    :func:`analysis.weight_spectra.weight_spectra`, matched by the module of the weight)."""
    if not named_layers(model):  # nothing to read as filters (geometry_notes says so)
        return []
    ranks, norms = stable_ranks(model), filter_norms(model)
    spectra = {f"{r.name}.weight": r for r in weight_spectra(model)}
    out = []
    for (name, w), rank, norm in zip(named_layers(model), ranks, norms):
        n = int(w.shape[0])
        if n < 2:  # one filter has no angle to another
            continue
        mins = minimal_angles(w)
        spectrum = spectra.get(name)
        out.append(LayerSummary(name, n, float(mins.min()), float(mins.mean()),
                                count_above(cosine_matrix(w), COSINE_THRESHOLD), n * (n - 1) // 2,
                                float(rank), float(norm.mean()), spectrum.alpha if spectrum else math.nan,
                                spectrum.note if spectrum else "no weight spectrum"))
    return out


UNREAD = (nn.RNNBase, nn.Embedding, nn.MultiheadAttention)  # weights the filter geometry does not read


def geometry_notes(model: nn.Module) -> list[str]:
    """Why filter geometry and weight spectra do not apply to (parts of) ``model``."""
    layers = named_layers(model)
    unread = [f"{name} ({type(m).__name__})" for name, m in model.named_modules() if isinstance(m, UNREAD)]
    notes = [f"filter geometry and weight spectra read Conv and Linear layers only; not covered: "
             f"{', '.join(unread)}"] if unread else []
    if not layers:
        return notes + ["filter geometry does not apply: the model has no Conv or Linear layer"]
    single = [name for name, w in layers if int(w.shape[0]) < 2]
    if len(single) == len(layers):
        return notes + ["filter geometry does not apply: every Conv/Linear layer has a single filter (no angle)"]
    return notes + ([f"left out of the filter geometry (a single filter, no angle): {', '.join(single)}"]
                    if single else [])


def _split_metrics(model: nn.Module, data, split: str, device, output=None) -> tuple[float, float]:
    if getattr(data, f"x_{split}", None) is None:
        return math.nan, math.nan
    return evaluate(model, data, split=split, device=device, output=output)


def curvature_subset(data, settings: Settings, device) -> tuple:
    """The seeded subset of ``settings.samples`` training examples every curvature number uses
    (all of them when there are fewer)."""
    x, y = seeded_subset(data.x_train, data.y_train, settings.samples, settings.seed)
    return x.to(device), y.to(device)


def summarize(source: ModelSource, settings: Settings, device="cpu", group: str = "") -> RunSummary:
    """Accuracies, losses and filter geometry of one model (curvature: :func:`add_curvature`;
    surfaces later). Sections that do not apply are NaN with a sentence in ``notes``."""
    model = source.model.to(device)
    data = source.data
    train_loss, train_acc = _split_metrics(model, data, "train", device, settings.output)
    test_loss, test_acc = _split_metrics(model, data, "test", device, settings.output)
    layers = layer_summaries(model)
    kept = {layer.name for layer in layers}
    mins = [minimal_angles(w) for name, w in named_layers(model) if name in kept]
    all_mins = np.concatenate(mins) if mins else np.array([math.nan])
    config, history = source.config, source.history
    regs = config.get("regularizers", [] if source.folder is not None else None)
    summary = RunSummary(source.name, group or source.name, source.source, config.get("model", "?"),
                         None if regs is None else list(regs), source.seed,
                         len(history["epoch"]) if history else None, train_loss, train_acc, test_loss,
                         test_acc, train_acc - test_acc, float(all_mins.min()), float(all_mins.mean()),
                         math.nan, math.nan, math.nan, math.nan, layers=layers,
                         samples_used=min(settings.samples, len(data.x_train)))
    summary.notes += geometry_notes(model)
    return summary


def add_curvature(summary: RunSummary, source: ModelSource, settings: Settings, device="cpu") -> None:
    """Top Hessian eigenvalue, Hutchinson trace and rho-sharpness on the curvature subset."""
    model, subset = source.model.to(device), curvature_subset(source.data, settings, device)
    keys = dict(params=settings.params, output=settings.output)
    summary.top_eigenvalue = float(top_eigenvalues(model, subset, k=1, seed=settings.seed, tol=settings.eig_tol,
                                                   **keys).values[0])
    trace = hessian_trace(model, subset, num_probes=settings.probes, seed=settings.seed, **keys)
    summary.hessian_trace, summary.trace_stderr = trace.mean, trace.stderr
    summary.sharpness = rho_sharpness(model, subset, rho=settings.rho, **keys).value


@dataclass
class Basin:
    """The basin around ``x = 0`` where the loss stays at or below a level along a 1D line:
    its edges (direction units) and whether each side is *censored* (the loss never reached the
    level within the line, so that edge is the line's end and the width only a lower bound)."""

    left: float
    right: float
    left_censored: bool
    right_censored: bool

    @property
    def width(self) -> float:
        """``right - left``."""
        return float(self.right - self.left)

    @property
    def censored(self) -> bool:
        """True when the width is only a lower bound."""
        return self.left_censored or self.right_censored


def basin_edges(x: np.ndarray, loss: np.ndarray, threshold: float) -> Basin:
    """The :class:`Basin` around ``x = 0`` where ``loss <= threshold``.

    Args:
        x: ``(n,)`` increasing coordinates holding 0 (direction units).
        loss: ``(n,)`` loss at each coordinate (a non-finite loss counts as above any level).
        threshold: the loss level.

    Returns:
        Edges at the crossings of ``threshold`` nearest to 0 on either side, linearly
        interpolated between grid points (at the last point below when the next is not finite);
        a side that never crosses ends at the grid's end and is censored. Both edges 0 when the
        loss at 0 is above the level.
    """
    x, loss = np.asarray(x, float), np.asarray(loss, float)
    centre = int(np.argmin(np.abs(x)))
    if not loss[centre] <= threshold:
        return Basin(0.0, 0.0, False, False)

    def edge(step: int) -> tuple[float, bool]:
        i = centre
        while 0 <= i + step < len(x) and loss[i + step] <= threshold:
            i += step
        j = i + step
        if not 0 <= j < len(x):
            return float(x[i]), True
        if not math.isfinite(loss[j]):
            return float(x[i]), False
        return float(x[i] + (threshold - loss[i]) / (loss[j] - loss[i]) * (x[j] - x[i])), False

    (left, left_cut), (right, right_cut) = edge(-1), edge(1)
    return Basin(left, right, left_cut, right_cut)


def basin_width(x: np.ndarray, loss: np.ndarray, threshold: float) -> float:
    """Width of the basin around ``x = 0`` where ``loss <= threshold`` along a 1D line
    (:func:`basin_edges`; a side that never crosses counts up to the grid's end, and the width is
    then a lower bound). 0 when the loss at 0 is above the level."""
    return basin_edges(x, loss, threshold).width


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
FINDINGS_ORDER = ("test_acc", "gap", "test_loss", "min_angle/", "pairs_above/", "mean_norm/", "alpha/",
                  "top_eigenvalue", "hessian_trace", "sharpness", "basin_width")


def run_metrics(s: RunSummary) -> dict[str, float]:
    """A run's numbers as one flat ``{metric: value}`` dict: :data:`TOP_METRICS`, the totals
    ``pairs_above`` and ``mean_norm`` over layers, ``alpha`` (mean over the layers with a fit),
    and ``FIELD/LAYER`` for every per-layer field."""
    values = {k: float(getattr(s, k)) for k in TOP_METRICS}
    values["pairs_above"] = float(sum(layer.pairs_above for layer in s.layers)) if s.layers else math.nan
    values["mean_norm"] = float(np.mean([layer.mean_norm for layer in s.layers])) if s.layers else math.nan
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
