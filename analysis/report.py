"""Diagnose trained models with one call (``landscape diagnose``): an HTML report that reaches
conclusions across seeds -- learning curves, filter geometry, curvature and a small
filter-normalized loss landscape, grouped, with intervals, differences and Findings.

:func:`diagnose` takes run folders written by ``landscape train`` and models trained anywhere
(:func:`from_checkpoint`), groups the runs (explicitly, or run folders whose ``config.json``
differ only in ``seed``), measures every run (:func:`summarize`), compares the groups with
:mod:`analysis.findings` and writes into ``out``: PNG figures, the surface HDF5 files,
``summary.json`` (everything the report shows: settings, groups, each run's numbers, group
statistics, differences, rank correlations, the Findings) and ``report.html``.

The models and their numbers (:class:`Settings`, :class:`RunSummary`, :func:`summarize`,
:func:`make_groups`, :func:`run_metrics`, ...) live in :mod:`analysis.summary`; this module is
the orchestration, the figures and the HTML page.
"""
from __future__ import annotations

import dataclasses
import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from torch import nn

from analysis.angles import angle_histogram, named_layers, plot_angle_histogram
from analysis.findings import (Correlation, GroupComparison, Stat, compare_groups, findings_text,
                               rank_correlations)
from analysis.generalization import plot_gap, plot_learning_curves
from analysis.similarity import plot_cosine_matrices
from analysis.spectrum import hessian_diagonal, plot_spectral_density, spectral_density
from analysis.summary import (COSINE_THRESHOLD, FINDINGS_ORDER, GEOMETRY, LAYER_METRICS, QUICK,
                              TOP_METRICS, LayerSummary, ModelSource, RunSummary, Settings, add_curvature,
                              basin_edges, check_inputs, basin_width, curvature_subset, findings_labels, from_checkpoint,
                              from_run, layer_summaries, make_groups, metric_label, run_metrics,
                              run_names, summarize)
from analysis.weight_spectra import plot_weight_spectra, weight_spectra
from landscape.plot import save_figure

# re-exported: the names callers import from analysis.report since before the split
__all__ = ["COSINE_THRESHOLD", "FINDINGS_ORDER", "GEOMETRY", "LAYER_METRICS", "QUICK", "TOP_METRICS",
           "LayerSummary", "ModelSource", "RunSummary", "Settings", "basin_width", "curvature_subset",
           "findings_labels", "from_checkpoint", "from_run", "layer_summaries", "make_groups",
           "metric_label", "run_metrics", "run_names", "summarize", "add_curvature", "basin_edges",
           "comparison_rows", "cosine_figure", "diagnose", "geometry_figures", "hessian_figures",
           "landscape_figures", "largest_change_layer", "learning_figures", "plot_layer_metric",
           "render_html", "shared_layers", "stat_text"]



# ------------------------------------------------------------------------------------ figures
def _file_stem(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name)


def _save(fig, out: Path, name: str) -> str:
    save_figure(fig, out / name, dpi=110)  # atomic: a killed report leaves no half-written figure
    plt.close(fig)
    return name


def plot_layer_metric(comparison: GroupComparison, key: str, layers: Sequence[str], ylabel: str):
    """Group mean and interval of ``key/<layer>`` per layer, layer names on the x axis."""
    fig, ax = plt.subplots(figsize=(max(5.5, 0.9 * len(layers) + 2), 4))
    groups = list(comparison.groups)
    width = 0.6 / max(1, len(groups) - 1) if len(groups) > 1 else 0
    for k, group in enumerate(groups):
        stats = [comparison.stats.get(f"{key}/{layer}", {}).get(group) for layer in layers]
        mean = np.array([s.mean if s else math.nan for s in stats])
        low = np.array([s.low if s else math.nan for s in stats])
        high = np.array([s.high if s else math.nan for s in stats])
        xs = np.arange(len(layers)) + (k - (len(groups) - 1) / 2) * width * 0.5
        err = np.vstack([mean - low, high - mean])
        ax.errorbar(xs, mean, yerr=np.where(np.isfinite(err), err, 0), marker="o", capsize=3,
                    label=f"{group} (n={comparison.groups[group]})")
    ax.set_xticks(np.arange(len(layers)), layers, rotation=30, ha="right")
    ax.set(xlabel="layer", ylabel=ylabel)
    ax.legend()
    return fig


def shared_layers(summaries: Sequence[RunSummary]) -> list[str]:
    """Layer names present in every run, in the first run's order."""
    names = [layer.name for layer in summaries[0].layers]
    return [n for n in names if all(any(layer.name == n for layer in s.layers) for s in summaries)]


def largest_change_layer(comparison: GroupComparison, layers: Sequence[str],
                         summaries: Sequence[RunSummary]) -> str | None:
    """The layer whose fraction of filter pairs above the cosine threshold differs most (in
    absolute value) between any group and the baseline; None with one group."""
    pairs = {layer.name: layer.pairs for layer in summaries[0].layers}
    best, best_change = None, -1.0
    for layer in layers:
        for diff in comparison.differences.get(f"pairs_above/{layer}", {}).values():
            change = abs(diff.stat.mean) / max(1, pairs[layer])
            if math.isfinite(change) and change > best_change:
                best, best_change = layer, change
    return best


def cosine_figure(models: Mapping[str, nn.Module], layer: str | None = None):
    """Cosine heat maps of the layer named ``layer`` (None: each model's first layer), one panel
    per model that has it, titled with the model's name, the layer and the count above the
    threshold."""
    weights = {}
    for name, model in models.items():
        found = [(n, w) for n, w in named_layers(model) if layer is None or n == layer]
        if found:
            weights[f"{name}, {found[0][0]}\n{found[0][1].shape[0]} filters"] = found[0][1]
    return plot_cosine_matrices(weights, 0, COSINE_THRESHOLD)


def geometry_figures(comparison: GroupComparison, summaries: Sequence[RunSummary],
                     representatives: Mapping[str, nn.Module], out: Path) -> list[tuple[str, str]]:
    """Per-layer geometry with group intervals (layers every run has), the angle histogram and
    cosine heat maps of the first layer and of the layer with the largest change;
    ``[(png name, caption)]``."""
    layers = shared_layers(summaries)
    pct = f"{100 * comparison.confidence:g}%"
    figures = []
    for key, file in (("min_angle", "min_angles.png"), ("alpha", "alpha.png"), ("pairs_above", "pairs_above.png"),
                      ("mean_norm", "filter_norms.png"), ("stable_rank", "stable_ranks.png")):
        if layers:
            figures.append((_save(plot_layer_metric(comparison, key, layers, LAYER_METRICS[key]), out, file),
                            f"{LAYER_METRICS[key].capitalize()} per layer: group mean and {pct} t-interval "
                            "over the group's runs (no bar for a single run)."))
        if key == "min_angle":
            for group, model in representatives.items():
                figures.append((_save(plot_weight_spectra(weight_spectra(model), title=group), out,
                                      f"weight_spectra_{_file_stem(group)}.png"),
                                f"{group} (first run): empirical spectral density of each layer's W^T W "
                                "(conv weights as out x in*k*k), log-log, with the fitted power-law tail; "
                                "alpha is its exponent (smaller: heavier tail, more correlated weights)."))
    figures.append((_save(plot_angle_histogram(angle_histogram(representatives, "minimal")), out,
                          "angle_histogram.png"),
                    "Histogram of every filter's minimal angle, all layers, first run of each group."))
    figures.append((_save(cosine_figure(representatives), out, "cosine_first.png"),
                    "Filter cosine similarity of the first layer (the layer of MMA's Fig. 1), first run "
                    f"of each group; titles count pairs above {COSINE_THRESHOLD}."))
    largest = largest_change_layer(comparison, layers, summaries)
    if largest is not None and largest != layers[0]:
        figures.append((_save(cosine_figure(representatives, largest), out, "cosine_largest_change.png"),
                        f"Filter cosine similarity of {largest}, the layer whose share of pairs above "
                        f"{COSINE_THRESHOLD} changed most against the baseline (group means), first run "
                        "of each group."))
    return figures


def landscape_figures(files: Mapping[str, tuple[Path, Path]], out: Path, conf: Settings) -> list[tuple[str, str]]:
    """1D curves overlaid and 2D train-loss contours side by side, log-scaled;
    ``[(png name, caption)]``."""
    from landscape.plot import compare_surface_files

    one = compare_surface_files([f[0] for f in files.values()], out_dir=out, log=True)
    two = compare_surface_files([f[1] for f in files.values()], kinds=("contour",), out_dir=out, log=True)
    where = (f"filter-normalized random direction(s) (seed {conf.seed}, biases and BN fixed), span "
             f"±{conf.span:g}, at most {conf.surface_samples} examples per split, first run of each group")
    return [(one[0].name, f"Loss (log scale; solid train, dashed test) and accuracy along one {where}. "
                          f"The basin width is measured where the train loss has risen {conf.basin_rise:g} "
                          "above its value at the model; a side that stays lower is searched on the same "
                          f"direction over lines widened x4 (up to {conf.widenings} times, files 1d/*.span*.h5), "
                          "and where it still stays lower the width is a lower bound (>= w, censored)."),
            (two[0].name, f"Train loss over a plane of two {where}; log-spaced contour levels shared "
                          "by the panels.")]


def hessian_figures(densities: Mapping[str, object], diagonals: Mapping[str, object],
                    firsts: Mapping[str, RunSummary], out: Path, conf: Settings) -> list[tuple[str, str]]:
    """Spectral density of the first run of each group and a histogram of its Hessian diagonal
    (``{group: SpectralDensity}``, ``{group: HessianDiagonal}``, ``{group: RunSummary}``);
    ``[(png name, caption)]``."""
    figures = []
    where = (f"on the {conf.samples_used} curvature examples, "
             f"{'every parameter' if conf.params == 'all' else 'conv and linear weights'}")
    for group, density in densities.items():
        figures.append((_save(plot_spectral_density(density, title=f"{group}: Hessian spectral density"), out,
                              f"spectral_density_{_file_stem(group)}.png"),
                        f"{group} (first run): Hessian eigenvalue density by stochastic Lanczos quadrature "
                        f"({density.num_probes} probes x {density.lanczos_steps} steps, Gaussian width "
                        f"{density.sigma:.2g}) {where}."))
    fig, ax = plt.subplots(figsize=(6, 4))
    for group, diagonal in diagonals.items():
        ax.hist(diagonal.values, bins=60, histtype="step", lw=1.5, label=group)
    ax.set(xlabel="Hessian diagonal entry", ylabel="parameters", yscale="log")
    ax.legend()
    sums = "; ".join(f"{s.name}: diagonal sum {s.diagonal_sum:.4g} vs Hutchinson trace "
                     f"{s.hessian_trace:.4g} ± {s.trace_stderr:.2g}" for s in firsts.values())
    figures.append((_save(fig, out, "hessian_diagonal.png"),
                    f"Histogram of the Hessian diagonal (Hutchinson, {conf.probes} probes, other probes "
                    f"than the trace's) {where}, first run of each group. Its sum estimates the trace "
                    f"independently: {sums}."))
    return figures


def learning_figures(histories: Mapping[str, dict], out: Path) -> list[tuple[str, str]]:
    """Learning curves (losses on a log scale) and the generalization gap of every run with a history."""
    fig = plot_learning_curves(histories)
    for ax in fig.axes[:2]:  # log scale where there is a positive loss (no test split: an empty panel)
        values = np.concatenate([np.asarray(line.get_ydata(), float) for line in ax.get_lines()] or [np.array([])])
        if np.any(np.isfinite(values) & (values > 0)):
            ax.set_yscale("log")
    return [(_save(fig, out, "learning_curves.png"),
             "Train loss, test loss (log scale) and test accuracy per epoch, every run with a history."),
            (_save(plot_gap(histories), out, "gap.png"),
             "Generalization gap per epoch: train - test accuracy and test - train loss.")]


# ------------------------------------------------------------------------------------ diagnose
def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"diagnose: {message}", flush=True)


def _finite(value):
    """JSON-safe copy: non-finite floats become None, dataclasses dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class Stages:
    """Progress with an overall stage count: ``diagnose: [3/7] curvature: base-s0 ...``."""

    def __init__(self, total: int, progress: bool):
        self.total, self.done, self.progress = total, 0, progress

    def __call__(self, stage: str, message: str) -> None:
        """Announce the next stage."""
        self.done += 1
        _say(self.progress, f"[{self.done}/{self.total}] {stage}: {message}")


def stage_count(count: int, conf: Settings) -> int:
    """Stages of a diagnosis of ``count`` models: measures and curvature per model, spectra and
    surfaces when on, then statistics and figures."""
    return count * (2 + conf.spectra + conf.surface) + 2


def surface_pair(source: ModelSource, out: Path, conf: Settings, device, progress: bool):
    """The 1D line and 2D plane of one model (filter-normalized random directions of seed
    ``conf.seed``, at most ``conf.surface_samples`` examples per split), written to
    ``out/1d/<stem>.h5`` and ``out/2d/<stem>.h5``. Where the train loss does not rise
    ``conf.basin_rise`` on both sides of the line, the same direction is drawn on wider lines
    (x4, up to ``conf.widenings`` times: ``out/1d/<stem>.span<S>.h5``).

    Returns:
        ``(line paths, plane path, Basin, span of the line it was measured on)``.
    """
    from landscape.directions import random_directions
    from landscape.store import read_surface
    from landscape.surface import compute_surface
    from regularizers.evaluation import data_splits, seeded_subset

    model, stem = source.model, _file_stem(source.name)
    splits = {name: seeded_subset(src.x, src.y, conf.surface_samples, conf.seed)
              for name, src in data_splits(source.data).items()}
    keys = dict(device=device, progress=progress, output=conf.output)
    keys.update({"precision": conf.precision} if conf.precision != "fp32" else {})

    def draw(ndim: int, span: float, num: int) -> Path:
        path = out / f"{ndim}d" / (f"{stem}.h5" if span == conf.span else f"{stem}.span{span:g}.h5")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        axis = f"{-span}:{span}:{num}"
        compute_surface(model, splits, directions=random_directions(model, ndim=ndim, seed=conf.seed),
                        x=axis, y=axis if ndim == 2 else None, surf_file=path, **keys)
        return path

    span, lines = conf.span, []
    for attempt in range(conf.widenings + 1):
        lines.append(draw(1, span, conf.points_1d))
        line = read_surface(lines[-1])
        centre = line["train_loss"][int(np.argmin(np.abs(line.x)))]
        basin = basin_edges(line.x, line["train_loss"], centre + conf.basin_rise)
        if not basin.censored or attempt == conf.widenings:
            break
        span *= 4
    return lines, draw(2, conf.span, conf.points_2d), basin, span


def _curvature(summary: RunSummary, source: ModelSource, conf: Settings, device, first: bool, stages: Stages):
    """Curvature and (when on) spectra of one run; a model the Hessian cannot be taken of gets a
    note saying why. Returns ``(HessianDiagonal | None, SpectralDensity | None)``."""
    tag = source.name
    stages("curvature", f"{tag}: top Hessian eigenvalue, trace, rho-sharpness ({conf.params} parameters) "
                        f"on {summary.samples_used} training examples")
    try:
        add_curvature(summary, source, conf, device)
    except RuntimeError as error:
        summary.notes.append(f"curvature not computed: {_first_line(error)}")
        if conf.spectra:
            stages("spectra", f"{tag}: skipped (no curvature)")
        return None, None
    if not conf.spectra:
        return None, None
    stages("spectra", f"{tag}: Hessian diagonal ({conf.probes} probes)"
                      + (f" and spectral density ({conf.density_probes} probes x {conf.lanczos_steps} Lanczos "
                         "steps)" if first else ""))
    subset, keys = curvature_subset(source.data, conf, device), dict(params=conf.params, output=conf.output)
    diagonal = hessian_diagonal(source.model, subset, num_probes=conf.probes, seed=conf.seed + 1, **keys)
    summary.diagonal_sum = float(diagonal.values.sum())
    density = spectral_density(source.model, subset, num_probes=conf.density_probes,
                               lanczos_steps=conf.lanczos_steps, seed=conf.seed, **keys) if first else None
    return diagonal, density


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def measure(source: ModelSource, conf: Settings, device, group: str, first: bool, out: Path, stages: Stages,
            progress: bool) -> tuple[RunSummary, object, object, tuple | None]:
    """Every number of one run: :func:`summarize`, curvature, spectra and surfaces.

    Returns:
        ``(RunSummary, HessianDiagonal | None, SpectralDensity | None, (line, plane) paths | None)``.
    """
    stages("measures", f"{source.name}: loss, accuracy, filter geometry")
    summary = summarize(source, conf, device, group)
    diagonal, density = _curvature(summary, source, conf, device, first, stages)
    pair = None
    if conf.surface:
        stages("surfaces", f"{source.name}: 1D line ({conf.points_1d} points) and 2D plane ({conf.points_2d}x"
                           f"{conf.points_2d}) on at most {conf.surface_samples} examples per split")
        lines, plane, basin, span = surface_pair(source, out, conf, device, progress)
        summary.basin_width, summary.basin_span = basin.width, span
        if basin.censored:
            summary.censored.append("basin_width")
        summary.surfaces = [p.relative_to(out).as_posix() for p in (lines[0], plane, *lines[1:])]
        pair = (lines[0], plane)
    source.model.cpu()
    _say(progress, f"{source.name}: test acc {summary.test_acc:.2f}%  test loss {summary.test_loss:.4f}  gap "
                   f"{summary.gap:.2f}  min angle {summary.min_angle:.1f} deg  top eig {summary.top_eigenvalue:.4g}  "
                   f"trace {summary.hessian_trace:.4g}  sharpness {summary.sharpness:.3g}  basin width "
                   f"{'>= ' if summary.censored else ''}{summary.basin_width:.3g}")
    return summary, diagonal, density, pair


def make_settings(surface: bool, quick: bool, settings: Mapping) -> Settings:
    """:class:`Settings` from the keywords of :func:`diagnose`, checked."""
    unknown = set(settings) - {f.name for f in dataclasses.fields(Settings)}
    if unknown:
        raise TypeError(f"diagnose() got an unknown setting {sorted(unknown)[0]!r}")
    conf = Settings(surface=surface, **{**(QUICK if quick else {}), **settings})
    if conf.params not in ("all", "weights"):
        raise ValueError(f"params must be 'all' or 'weights', got {conf.params!r}")
    if not (math.isfinite(conf.basin_rise) and conf.basin_rise > 0):
        raise ValueError(f"basin_rise must be a positive finite number of nats, got {conf.basin_rise}")
    return conf


def conclude(summaries: Sequence[RunSummary], group_of: Mapping[str, Sequence[str]], baseline: str,
             conf: Settings) -> tuple[GroupComparison, list[Correlation], list[str]]:
    """Group statistics, differences (paired by seed where the groups share seeds), rank
    correlations (censored values left out) and the Findings."""
    by_name = {s.name: s for s in summaries}
    metrics = {g: [run_metrics(by_name[n]) for n in members] for g, members in group_of.items()}
    seeds = {g: [by_name[n].seed for n in members] for g, members in group_of.items()}
    censored = {g: [by_name[n].censored for n in members] for g, members in group_of.items()}
    comparison = compare_groups(metrics, baseline, conf.confidence, seeds=seeds, censored=censored)
    all_runs = [m for runs_ in metrics.values() for m in runs_]
    cut = [c for g in group_of for c in censored[g]]
    correlations = rank_correlations(all_runs, GEOMETRY, "test_acc", conf.confidence, censored=cut)
    findings = findings_text(comparison, findings_labels(list(comparison.stats)), correlations,
                             correlation_labels={m: metric_label(m) for m in GEOMETRY})
    notes = [f"{s.name}: {note}." for s in summaries for note in s.notes]
    return comparison, correlations, findings + notes


def load_sources(folders: Sequence[Path], models: Sequence[ModelSource], conf: Settings) -> list[ModelSource]:
    """Run folders and models trained elsewhere, named uniquely, each checked once on two
    examples (a shape or ``output`` the model rejects is a one-line ValueError)."""
    if not folders and not models:
        raise ValueError("nothing to diagnose: give run folders or --model/--checkpoint/--data")
    sources = [from_run(f, n) for f, n in zip(folders, run_names(folders))] + list(models)
    names = [s.name for s in sources]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ValueError(f"two models are named {duplicate!r}; give them distinct --name")
    for s in sources:
        check_inputs(s.model, s.data, s.config.get("model", s.name), conf.output)
    return sources


def diagnose(runs: Sequence = (), out=None, surface: bool = True, *,
             models: Sequence[ModelSource] = (), groups: Mapping[str, Sequence[str]] | None = None,
             baseline: str | None = None, quick: bool = False, device="cpu", progress: bool = True,
             **settings) -> Path:
    """Diagnose run folders and models trained anywhere; return the path of ``report.html``.

    Args:
        runs: run folders written by ``landscape train`` (or :func:`regularizers.train.fit`).
        out: report folder; default ``<run>/diagnosis`` for one run, ``diagnosis/`` otherwise.
        surface: compute the 1D and 2D loss landscapes.
        models: models trained elsewhere, from :func:`from_checkpoint`.
        groups: ``{group: [run folder or model name, ...]}``; the rest is grouped by seed.
        baseline: the group the others are compared against (default: the first).
        quick: the small :data:`QUICK` settings.
        device: where the numbers are computed.
        progress: print what is being computed.
        **settings: :class:`Settings` fields (``output``, ``precision``, ``basin_rise``, ``samples``, ...).

    Returns:
        The path of ``report.html``; ``summary.json`` lies beside it. Both are written once the
        numbers are known and again with the figures, so a failing figure loses no number.
    """
    conf = make_settings(surface, quick, settings)
    folders = [Path(r) for r in runs]
    sources = load_sources(folders, models, conf)
    group_of, how = make_groups(sources, groups)
    if baseline is not None and baseline not in group_of:
        raise ValueError(f"--baseline {baseline!r} is not a group; groups: {', '.join(group_of)}")
    baseline = baseline or next(iter(group_of))
    member_group = {n: g for g, members in group_of.items() for n in members}
    out = Path(out) if out is not None else (folders[0] / "diagnosis" if len(sources) == 1 and folders
                                             else Path("diagnosis"))
    out.mkdir(parents=True, exist_ok=True)
    for line in how:
        _say(progress, f"group {line}")
    stages, firsts = Stages(stage_count(len(sources), conf), progress), {m[0] for m in group_of.values()}
    measured = [measure(s, conf, device, member_group[s.name], s.name in firsts, out, stages, progress)
                for s in sources]
    summaries = [m[0] for m in measured]
    conf.samples_used = min(s.samples_used for s in summaries)
    stages("statistics", "group statistics, differences against the baseline, rank correlations")
    comparison, correlations, findings = conclude(summaries, group_of, baseline, conf)
    _say(progress, rule_text(comparison, conf).split(". ")[0].removeprefix("Rule: "))
    _say(progress, findings[0])
    page = Page(out, conf, summaries, comparison, correlations, findings, how, group_of,
                {s.name: s.files for s in sources})
    page.write()  # the numbers first: a failing figure below loses nothing
    stages("figures", "learning curves, geometry, spectra, landscapes")
    page.sections = report_figures(sources, measured, group_of, comparison, out, conf)
    page.write()
    _say(progress, f"wrote {page.report}")
    return page.report


def report_figures(sources: Sequence[ModelSource], measured: Sequence[tuple], group_of: Mapping[str, Sequence[str]],
                   comparison: GroupComparison, out: Path, conf: Settings) -> dict[str, list]:
    """Every figure section; a section that fails or does not apply holds a sentence saying why
    (``[(None, sentence)]``) instead of stopping the report."""
    summaries = [m[0] for m in measured]
    by_name = {s.name: s for s in sources}
    representatives = {g: by_name[m[0]].model for g, m in group_of.items()}
    histories = {s.name: s.history for s in sources if s.history}
    diagonals = {m[0].group: m[1] for m in measured if m[2] is not None}
    densities = {m[0].group: m[2] for m in measured if m[2] is not None}
    files = {m[0].group: m[3] for m in measured if m[3] is not None and m[0].name in {g[0] for g in group_of.values()}}
    firsts = {s.group: s for s in summaries if s.name in {g[0] for g in group_of.values()}}
    plans = {"Learning curves": (lambda: learning_figures(histories, out), "no run has a training history"
                                 if not histories else ""),
             "Filter geometry": (lambda: geometry_figures(comparison, summaries, representatives, out),
                                 "" if shared_layers(summaries) else "no layer with two or more filters "
                                 "is shared by every run"),
             "Hessian spectrum": (lambda: hessian_figures(densities, diagonals, firsts, out, conf),
                                  "" if diagonals else "spectra are off, or no curvature could be computed"),
             "Loss landscape": (lambda: landscape_figures(files, out, conf),
                                "" if files else "surfaces are off (--no-surface)")}
    sections = {}
    for title, (make, skip) in plans.items():
        if skip:
            sections[title] = [(None, f"Not drawn: {skip}.")]
            continue
        try:
            sections[title] = make()
        except (ValueError, RuntimeError, IndexError, OSError) as error:
            plt.close("all")
            sections[title] = [(None, f"Not drawn: the figure failed ({_first_line(error)}); every number is "
                                      "in the tables and summary.json.")]
    return sections


class Page:
    """What ``summary.json`` and ``report.html`` show; :meth:`write` writes both atomically
    (once with the numbers alone, again with the figure ``sections``)."""

    def __init__(self, out: Path, conf: Settings, summaries: Sequence[RunSummary], comparison: GroupComparison,
                 correlations: Sequence[Correlation], findings: Sequence[str], how: Sequence[str],
                 group_of: Mapping[str, Sequence[str]], inputs: Mapping[str, Sequence[str]]):
        self.out, self.conf, self.summaries, self.comparison = out, conf, list(summaries), comparison
        self.correlations, self.findings, self.how, self.group_of = list(correlations), list(findings), how, group_of
        self.inputs = {f: Path(f).resolve().as_uri() for files in inputs.values() for f in files}
        self.sections: dict[str, list] = {}

    @property
    def report(self) -> Path:
        """The path of ``report.html``."""
        return self.out / "report.html"

    def summary(self) -> dict:
        """The content of ``summary.json``."""
        return {"settings": dataclasses.asdict(self.conf), "baseline": self.comparison.baseline,
                "groups": self.group_of, "grouping": self.how, "findings": self.findings, "runs": self.summaries,
                "metrics": {s.name: run_metrics(s) for s in self.summaries}, "stats": self.comparison.stats,
                "differences": self.comparison.differences, "censored": self.comparison.censored or {},
                "correlations": self.correlations, "sections": self.sections, "inputs": list(self.inputs)}

    def write(self) -> None:
        """Write ``summary.json`` then ``report.html``."""
        from regularizers.safe_io import atomic_write_text

        atomic_write_text(self.out / "summary.json", json.dumps(_finite(self.summary()), indent=1, default=repr))
        used = {"summary.json": "summary.json", **{f: f for s in self.summaries for f in s.surfaces}}
        atomic_write_text(self.report, render_html(self.summaries, self.conf, self.comparison, self.correlations,
                                                   self.findings, self.how, self.sections, {**used, **self.inputs}))


# ------------------------------------------------------------------------------------ HTML
def _cell(v) -> str:
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:.4g}"
    return html.escape(str(v))


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def stat_text(s: Stat | None) -> str:
    """``"98.2 [97.9, 98.5]"``, ``"98.2 (1 run)"``, ``">= 1.9 (a bound)"`` or ``"n/a"``."""
    if s is None or not math.isfinite(s.mean):
        return "n/a"
    if s.method.startswith("lower bound"):
        return f">= {s.mean:.4g} (a bound: censored runs)"
    if not math.isfinite(s.low):
        return f"{s.mean:.4g} ({s.n} run{'s' * (s.n != 1)})"
    return f"{s.mean:.4g} [{s.low:.3g}, {s.high:.3g}]"


def comparison_rows(comparison: GroupComparison, metrics: Sequence[str], label) -> list[list[str]]:
    """Rows ``[label, group stats..., differences...]``; a difference beyond noise is starred."""
    rows = []
    for m in metrics:
        if m not in comparison.stats:
            continue
        row = [label(m)] + [stat_text(comparison.stats[m][g]) for g in comparison.groups]
        for g in comparison.groups:
            if g == comparison.baseline:
                continue
            d = comparison.differences[m][g]
            if d.censored:
                row.append("not compared (a value is a bound)")
                continue
            row.append(("* " if d.changed else "") + stat_text(d.stat).replace(" run)", " run, no interval)")
                       + (" (paired)" if d.paired and math.isfinite(d.stat.mean) else ""))
        rows.append(row)
    return rows


def rule_text(comparison: GroupComparison, conf: Settings) -> str:
    """The statistical rule of the page, saying which comparisons are paired."""
    pct = f"{100 * conf.confidence:g}%"
    kinds = {g: any(d[g].paired for d in comparison.differences.values() if g in d)
             for g in comparison.groups if g != comparison.baseline}
    how = "; ".join(f"{g} vs {comparison.baseline}: "
                    + ("paired by seed (t-interval of the per-seed differences)" if paired
                       else "Welch t-interval (the groups do not hold the same seeds)") for g, paired in kinds.items())
    return (f"Rule: a difference changed beyond noise when its {pct} interval excludes 0 (starred in the "
            f"tables){': ' + how if how else ''}. Group cells are mean [{pct} t-interval over the group's runs]; "
            "measures that cannot be negative (angles, counts, widths, norms, ranks, losses) take the "
            "log-scale t-interval mean x exp(±t SE / mean), which stays >= 0. A censored value (a basin width "
            "whose loss never rose enough within the widened line) is a lower bound, shown as >= w, never "
            "compared and left out of correlations. Rank correlations are Spearman's rho over all runs with a "
            "Fisher-z interval.")


def method_text(conf: Settings) -> str:
    """How the numbers of the summary table are measured."""
    params = "every parameter" if conf.params == "all" else "convolution and linear weights only"
    return (f"Losses (cross-entropy, nats) and accuracies of each model as loaded, on the full splits. "
            f"Curvature: top Hessian eigenvalue by Lanczos, trace by Hutchinson with {conf.probes} probes, SAM "
            f"sharpness (rho={conf.rho:g}), on a seeded subset of {conf.samples_used} training examples "
            f"({conf.samples} asked), {params}, BN in eval mode. Basin width: length of the 1D line around the "
            f"model where the train loss stays within {conf.basin_rise:g} of its value at the model; the line "
            f"(±{conf.span:g}) is widened x4 up to {conf.widenings} times to find both edges.")


def runs_table(summaries: Sequence[RunSummary]) -> str:
    """The per-run table (a censored basin width shown as ``>= w``)."""
    def regs(s):
        return "unknown" if s.regularizers is None else ", ".join(s.regularizers) or "none"

    return _table(
        ["run", "group", "model", "regularizers", "seed", "epochs", "train loss", "train acc %", "test loss",
         "test acc %", "gap (points)", "min angle (deg)", "top Hessian eig.", "Hessian trace",
         "Hessian diagonal sum", "rho-sharpness", "basin width"],
        [[s.name, s.group, s.model, regs(s), s.seed if s.seed is not None else "-",
          s.epochs if s.epochs is not None else "-", s.train_loss, s.train_acc, s.test_loss, s.test_acc,
          s.gap, s.min_angle, s.top_eigenvalue, f"{s.hessian_trace:.4g} ± {s.trace_stderr:.2g}",
          s.diagonal_sum, s.sharpness,
          f">= {s.basin_width:.4g}" if "basin_width" in s.censored else s.basin_width] for s in summaries])


def figures_html(sections: Mapping[str, list]) -> list[str]:
    """Each section's figures with captions; a ``(None, sentence)`` entry says why none is drawn."""
    parts = []
    for title, figures in sections.items():
        parts.append(f"<h2>{html.escape(title)}</h2>")
        for png, caption in figures:
            if png is None:
                parts.append(f"<p>{html.escape(caption)}</p>")
                continue
            parts.append(f'<figure><a href="{html.escape(png)}"><img src="{html.escape(png)}" '
                         f'alt="{html.escape(png)}"></a><figcaption>{html.escape(caption)}</figcaption></figure>')
    return parts


def render_html(summaries: Sequence[RunSummary], conf: Settings, comparison: GroupComparison,
                correlations: Sequence[Correlation], findings: Sequence[str], how: Sequence[str],
                sections: Mapping[str, list[tuple[str, str]]], files: Mapping[str, str]) -> str:
    """The report page: the answer (``findings[0]``) as its first line, the Findings, groups, the
    group table with difference columns, the per-layer table, the per-run table, the figures of
    ``sections`` and links to every file used."""
    pct = f"{100 * conf.confidence:g}%"
    groups = list(comparison.groups)
    diff_head = [f"{g} - {comparison.baseline}" for g in groups if g != comparison.baseline]
    header = ["measure"] + [f"{g} (n={comparison.groups[g]})" for g in groups] + diff_head
    answer = f'<p class="answer"><b>{html.escape(findings[0])}</b></p>' if findings else ""
    parts = [answer, "<h2>Findings</h2><ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in findings) + "</ul>",
             f"<p>{html.escape(rule_text(comparison, conf))}</p>",
             "<h2>Groups</h2><ul>" + "".join(f"<li>{html.escape(h)}</li>" for h in how) + "</ul>",
             f"<h2>Summary (baseline: {html.escape(comparison.baseline)})</h2>",
             _table(header, comparison_rows(comparison, list(TOP_METRICS) + ["pairs_above", "mean_norm"],
                                            metric_label)),
             f"<p>{html.escape(method_text(conf))}</p>"]
    layer_metrics = [f"{key}/{layer}" for layer in shared_layers(summaries) for key in LAYER_METRICS]
    parts += ["<h2>Per layer</h2>",
              _table(["layer", "measure"] + header[1:],
                     [[m.split("/", 1)[1], LAYER_METRICS[m.split("/", 1)[0]]] + row[1:]
                      for m, row in zip([m for m in layer_metrics if m in comparison.stats],
                                        comparison_rows(comparison, layer_metrics, str))])]
    parts += ["<h2>Runs</h2>", runs_table(summaries)]
    if correlations:
        parts += ["<h2>Rank correlation with test accuracy</h2>", _table(
            ["measure", "Spearman rho", f"{pct} interval", "runs"],
            [[metric_label(c.metric), c.rho, f"[{c.low:.2f}, {c.high:.2f}]" if math.isfinite(c.low) else "n/a",
              c.n] for c in correlations])]
    parts += figures_html(sections)
    parts.append("<h2>Files</h2><ul>" + "".join(
        f'<li><a href="{html.escape(href)}">{html.escape(name)}</a></li>' for name, href in files.items()) + "</ul>")
    style = ("body{font-family:sans-serif;max-width:1300px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:3px 7px;text-align:right}img{max-width:100%}")
    title = ", ".join(html.escape(g) for g in groups)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Diagnosis: {title}</title>"
            f"<style>{style}</style></head><body>{answer}<h1>Diagnosis: {title}</h1>\n"
            + "\n".join(parts[1:]) + "\n</body></html>\n")
