"""Diagnose trained runs with one call (``landscape diagnose``): an HTML report of learning curves,
filter geometry, curvature and a small filter-normalized loss landscape.

:func:`diagnose` reads run folders written by ``landscape train`` (see CONTRACTS.md) and writes
into ``out``: PNG figures, the surface HDF5 files, ``summary.json`` (the :class:`Settings` and a
:class:`RunSummary` per run) and ``report.html``. Several runs share every figure (overlaid or
side by side) and one comparison table.
"""
from __future__ import annotations

import dataclasses
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from analysis.angles import (angle_histogram, min_angle_table, minimal_angles, named_layers,
                             plot_angle_histogram, plot_min_angles)
from analysis.curvature import hessian_trace, rho_sharpness, top_eigenvalues
from analysis.generalization import plot_gap, plot_learning_curves
from analysis.similarity import (count_above, cosine_matrix, filter_norms, plot_cosine_matrices,
                                 plot_filter_norms, plot_stable_ranks, stable_ranks)

COSINE_THRESHOLD = 0.2


@dataclass
class Settings:
    """How the numbers are measured. Curvature uses ``samples`` training examples (a seeded
    random subset); surfaces use at most ``surface_samples`` examples of each split."""

    samples: int = 512            # training examples for Hessian eigenvalue, trace, sharpness
    probes: int = 30              # Hutchinson probes of the trace
    eig_tol: float = 1e-3         # Lanczos tolerance of the top eigenvalue
    rho: float = 0.05             # radius of the SAM (rho) sharpness
    surface: bool = True
    points_1d: int = 21           # 1D grid over [-span, span]
    points_2d: int = 11           # 2D grid: points_2d x points_2d
    span: float = 1.0
    surface_samples: int = 2000
    layer: int = -2               # layer index of the cosine heat map (-2: the last hidden layer)
    seed: int = 0                 # data subsets, probes, directions


QUICK = dict(samples=128, probes=6, eig_tol=1e-2, points_1d=9, points_2d=5, surface_samples=300)


@dataclass
class LayerSummary:
    """Filter geometry of one layer; angles in degrees."""

    name: str
    filters: int
    min_angle: float              # smallest angle between any two filters
    mean_min_angle: float         # mean over filters of each filter's minimal angle
    pairs_above: int              # filter pairs with cosine > COSINE_THRESHOLD
    stable_rank: float
    mean_norm: float              # mean filter norm


@dataclass
class RunSummary:
    """The numbers of one run (accuracies in percent, evaluated from the run's ``model.pt``)."""

    name: str
    folder: str
    model: str
    regularizers: List[str]
    epochs: int
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
    layers: List[LayerSummary] = field(default_factory=list)
    surfaces: List[str] = field(default_factory=list)   # 1d/NAME.h5, 2d/NAME.h5 in the out dir


def subset(x: torch.Tensor, y: torch.Tensor, n: int, seed: int = 0):
    """A seeded random subset of at most ``n`` examples of ``(x, y)``."""
    keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[keep], y[keep]


def layer_summaries(model: nn.Module) -> List[LayerSummary]:
    """One :class:`LayerSummary` per Conv/Linear layer of ``model``."""
    ranks, norms = stable_ranks(model), filter_norms(model)
    out = []
    for (name, w), rank, norm in zip(named_layers(model), ranks, norms):
        mins = minimal_angles(w)
        out.append(LayerSummary(name, int(w.shape[0]), float(mins.min()), float(mins.mean()),
                                count_above(cosine_matrix(w), COSINE_THRESHOLD), float(rank),
                                float(norm.mean())))
    return out


def summarize(name: str, folder, model: nn.Module, data, history: dict, settings: Settings,
              device="cpu") -> RunSummary:
    """Accuracies, filter geometry and curvature of one trained model."""
    from regularizers.train import evaluate

    config = json.loads((Path(folder) / "config.json").read_text())
    model = model.to(device)
    train_loss, train_acc = evaluate(model, data.x_train.to(device), data.y_train.to(device))
    test_loss, test_acc = evaluate(model, data.x_test.to(device), data.y_test.to(device))
    layers = layer_summaries(model)
    all_mins = np.concatenate([minimal_angles(w) for _, w in named_layers(model)])
    x, y = (t.to(device) for t in subset(data.x_train, data.y_train, settings.samples, settings.seed))
    eig = top_eigenvalues(model, x, y, k=1, seed=settings.seed, tol=settings.eig_tol)
    trace = hessian_trace(model, x, y, num_probes=settings.probes, seed=settings.seed)
    sharp = rho_sharpness(model, x, y, rho=settings.rho)
    return RunSummary(name, str(folder), config.get("model", "?"), list(config.get("regularizers", [])),
                      len(history["epoch"]), train_loss, train_acc, test_loss, test_acc,
                      train_acc - test_acc, float(all_mins.min()), float(all_mins.mean()),
                      float(eig.values[0]), trace.mean, trace.stderr, sharp.value, layers)


def landscape_files(model: nn.Module, data, out, stem: str, *, points_1d: int = 21,
                    points_2d: int = 11, span: float = 1.0, samples: int = 2000, seed: int = 0,
                    device=None, progress: bool = True) -> Tuple[Path, Path]:
    """A filter-normalized random 1D line and 2D plane around ``model`` (directions from
    ``seed``, BN and biases fixed), on at most ``samples`` examples per split; written to
    ``out/1d/<stem>.h5`` and ``out/2d/<stem>.h5`` (recomputed when present)."""
    from landscape.directions import random_directions
    from landscape.surface import compute_surface

    splits = {"train": subset(data.x_train, data.y_train, samples, seed),
              "test": subset(data.x_test, data.y_test, samples, seed)}
    paths = []
    for ndim, num in ((1, points_1d), (2, points_2d)):
        path = Path(out) / f"{ndim}d" / f"{stem}.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        axis = f"{-span}:{span}:{num}"
        compute_surface(model, splits, directions=random_directions(model, ndim=ndim, seed=seed),
                        x=axis, y=axis if ndim == 2 else None, surf_file=path, device=device,
                        progress=progress)
        paths.append(path)
    return paths[0], paths[1]


def run_names(folders: Sequence[Path]) -> List[str]:
    """Short unique names: the folder name, with its parent's when two runs share one."""
    names = [f.name for f in folders]
    return [f"{f.parent.name}/{f.name}" if names.count(f.name) > 1 else f.name for f in folders]


def _save(fig, out: Path, name: str) -> str:
    fig.savefig(out / name, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return name


def _layer_index(models: Dict[str, nn.Module], layer: int) -> int:
    """``layer`` when every model has that layer index, else 0."""
    return layer if all(-len(named_layers(m)) <= layer < len(named_layers(m)) for m in models.values()) else 0


def geometry_figures(models: Dict[str, nn.Module], out: Path, layer: int) -> List[Tuple[str, str]]:
    """Minimal angles per layer, angle histogram, cosine heat maps of ``layer``, filter norms and
    stable ranks; ``[(png name, caption)]``."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, model in models.items():  # one table each: runs may differ in architecture
        plot_min_angles(min_angle_table({name: model}), ax=ax)
    figures = [(_save(fig, out, "min_angles.png"),
                "Minimal pairwise filter angle per layer (solid) and mean minimal angle (dashed).")]
    figures.append((_save(plot_angle_histogram(angle_histogram(models, "minimal")), out,
                          "angle_histogram.png"), "Histogram of every filter's minimal angle, all layers."))
    names = ", ".join(f"{n}: {named_layers(m)[layer][0]}" for n, m in models.items())
    figures.append((_save(plot_cosine_matrices(models, layer, COSINE_THRESHOLD), out, "cosine.png"),
                    f"Filter cosine similarity of layer {layer} ({names}); titles count pairs "
                    f"above {COSINE_THRESHOLD}."))
    figures.append((_save(plot_filter_norms(models), out, "filter_norms.png"),
                    "Filter norms per layer (norm loss drives them to 1, dotted)."))
    figures.append((_save(plot_stable_ranks(models), out, "stable_ranks.png"),
                    "Stable rank ||W||_F^2 / ||W||_2^2 per layer."))
    return figures


def landscape_figures(files: Dict[str, Tuple[Path, Path]], out: Path) -> List[Tuple[str, str]]:
    """1D curves overlaid and 2D train-loss contours side by side; ``[(png name, caption)]``."""
    from landscape.plot import compare_surface_files

    one = compare_surface_files([f[0] for f in files.values()], out_dir=out)
    two = compare_surface_files([f[1] for f in files.values()], kinds=("contour",), out_dir=out)
    return [(one[0].name, "Loss (solid train, dashed test) and accuracy along one filter-normalized "
                          "random direction."),
            (two[0].name, "Train loss over a filter-normalized random plane (shared levels).")]


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"diagnose: {message}", flush=True)


def diagnose(runs: Sequence, out=None, surface: bool = True, *, quick: bool = False,
             device="cpu", progress: bool = True, **settings) -> Path:
    """Diagnose one or more run folders; return the path of ``report.html``.

    ``out`` defaults to ``<run>/diagnosis`` for one run and ``diagnosis/`` for several.
    ``quick`` uses the small :data:`QUICK` settings; other keywords set :class:`Settings` fields.
    """
    from regularizers.train import load_run

    folders = [Path(r) for r in runs]
    if not folders:
        raise ValueError("no run folder given")
    conf = Settings(surface=surface, **{**(QUICK if quick else {}), **settings})
    out = Path(out) if out is not None else (folders[0] / "diagnosis" if len(folders) == 1 else Path("diagnosis"))
    out.mkdir(parents=True, exist_ok=True)
    names = run_names(folders)
    models, histories, summaries, files = {}, {}, [], {}
    for i, (name, folder) in enumerate(zip(names, folders)):
        _say(progress, f"[{i + 1}/{len(folders)}] {name}: loading {folder}")
        model, data, history = load_run(folder)
        _say(progress, f"[{i + 1}/{len(folders)}] {name}: accuracy, filter geometry, curvature "
                       f"on {conf.samples} training samples")
        summary = summarize(name, folder, model, data, history, conf, device)
        if conf.surface:
            _say(progress, f"[{i + 1}/{len(folders)}] {name}: 1D ({conf.points_1d} points) and 2D "
                           f"({conf.points_2d}x{conf.points_2d}) loss landscape")
            stem = name.replace("/", "_")
            files[name] = landscape_files(model, data, out, stem, points_1d=conf.points_1d,
                                          points_2d=conf.points_2d, span=conf.span,
                                          samples=conf.surface_samples, seed=conf.seed,
                                          device=device, progress=False)
            summary.surfaces = [p.relative_to(out).as_posix() for p in files[name]]
        summaries.append(summary)
        models[name], histories[name] = model.cpu(), history
        _say(progress, f"{name}: test acc {summary.test_acc:.1f}%  gap {summary.gap:.1f}  min angle "
                       f"{summary.min_angle:.1f} deg  top eig {summary.top_eigenvalue:.3g}  "
                       f"sharpness {summary.sharpness:.3g}")
    _say(progress, "figures")
    sections = {
        "Learning curves": [(_save(plot_learning_curves(histories), out, "learning_curves.png"),
                             "Train loss, test loss and test accuracy per epoch."),
                            (_save(plot_gap(histories), out, "gap.png"),
                             "Generalization gap: train - test accuracy and test - train loss.")],
        "Filter geometry": geometry_figures(models, out, _layer_index(models, conf.layer)),
    }
    if files:
        sections["Loss landscape"] = landscape_figures(files, out)
    (out / "summary.json").write_text(json.dumps(
        _finite({"settings": dataclasses.asdict(conf), "runs": [dataclasses.asdict(s) for s in summaries]}),
        indent=1))
    report = out / "report.html"
    report.write_text(render_html(summaries, conf, sections))
    _say(progress, f"wrote {report}")
    return report


def _finite(value):
    """JSON-safe copy: non-finite floats become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(summaries: Sequence[RunSummary], conf: Settings,
                sections: Dict[str, List[Tuple[str, str]]]) -> str:
    """The report page: the comparison table, per-layer tables, and the figures of ``sections``."""
    summary = _table(
        ["run", "model", "regularizers", "epochs", "train acc %", "test acc %", "gap (points)",
         "min angle (deg)", "mean min angle (deg)", "top Hessian eig.", "Hessian trace",
         f"rho-sharpness (rho={conf.rho:g})"],
        [[s.name, s.model, ", ".join(s.regularizers) or "none", s.epochs, s.train_acc, s.test_acc,
          s.gap, s.min_angle, s.mean_min_angle, s.top_eigenvalue,
          f"{s.hessian_trace:.4g} ± {s.trace_stderr:.2g}", s.sharpness] for s in summaries])
    parts = ["<h2>Summary</h2>", summary,
             f"<p>Accuracies and losses of each run's <code>model.pt</code> on the full splits. "
             f"Curvature (top Hessian eigenvalue by Lanczos, trace by Hutchinson with {conf.probes} "
             f"probes, SAM sharpness) on a seeded subset of {conf.samples} training samples, "
             f"convolution and linear weights only, BN in eval mode.</p>"]
    for title, figures in sections.items():
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if title == "Filter geometry":
            for s in summaries:
                parts.append(f"<h3>{html.escape(s.name)}</h3>" + _table(
                    ["layer", "filters", "min angle", "mean min angle",
                     f"pairs cos > {COSINE_THRESHOLD}", "stable rank", "mean filter norm"],
                    [[l.name, l.filters, l.min_angle, l.mean_min_angle, l.pairs_above,
                      l.stable_rank, l.mean_norm] for l in s.layers]))
        if title == "Loss landscape":
            parts.append(f"<p>Filter-normalized random directions (seed {conf.seed}), span "
                         f"&plusmn;{conf.span:g}, on at most {conf.surface_samples} samples per "
                         f"split. Files: " + ", ".join(f"<code>{html.escape(f)}</code>"
                                                      for s in summaries for f in s.surfaces) + ".</p>")
        for png, caption in figures:
            parts.append(f'<figure><img src="{html.escape(png)}" alt="{html.escape(png)}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:1300px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:3px 7px;text-align:right}img{max-width:100%}")
    runs = ", ".join(html.escape(s.name) for s in summaries)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Diagnosis: {runs}</title>"
            f"<style>{style}</style></head><body><h1>Diagnosis: {runs}</h1>\n"
            + "\n".join(parts) + "\n</body></html>\n")
