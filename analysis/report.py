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
                              TOP_METRICS, LayerSummary, ModelSource, RunSummary, Settings,
                              basin_width, curvature_subset, findings_labels, from_checkpoint,
                              from_run, layer_summaries, make_groups, metric_label, run_metrics,
                              run_names, summarize)
from analysis.weight_spectra import plot_weight_spectra, weight_spectra

# re-exported: the names callers import from analysis.report since before the split
__all__ = ["COSINE_THRESHOLD", "FINDINGS_ORDER", "GEOMETRY", "LAYER_METRICS", "QUICK", "TOP_METRICS",
           "LayerSummary", "ModelSource", "RunSummary", "Settings", "basin_width", "curvature_subset",
           "findings_labels", "from_checkpoint", "from_run", "layer_summaries", "make_groups",
           "metric_label", "run_metrics", "run_names", "summarize",
           "comparison_rows", "cosine_figure", "diagnose", "geometry_figures", "hessian_figures",
           "landscape_figures", "largest_change_layer", "learning_figures", "plot_layer_metric",
           "render_html", "shared_layers", "stat_text"]



# ------------------------------------------------------------------------------------ figures
def _file_stem(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name)


def _save(fig, out: Path, name: str) -> str:
    fig.savefig(out / name, dpi=110, bbox_inches="tight")
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
                          "above its value at the model (a side that stays lower counts to the grid's "
                          "end: the width is then a lower bound)."),
            (two[0].name, f"Train loss over a plane of two {where}; log-spaced contour levels shared "
                          "by the panels.")]


def hessian_figures(densities: Mapping[str, object], diagonals: Mapping[str, object],
                    firsts: Mapping[str, RunSummary], out: Path, conf: Settings) -> list[tuple[str, str]]:
    """Spectral density of the first run of each group and a histogram of its Hessian diagonal
    (``{group: SpectralDensity}``, ``{group: HessianDiagonal}``, ``{group: RunSummary}``);
    ``[(png name, caption)]``."""
    figures = []
    where = (f"on the {conf.samples} curvature samples, "
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
    for ax in fig.axes[:2]:
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
        quick: the small :data:`QUICK` settings; other keywords set :class:`Settings` fields.
        device: where the numbers are computed.

    Returns:
        The path of ``report.html``; ``summary.json`` lies beside it.
    """
    unknown = set(settings) - {f.name for f in dataclasses.fields(Settings)}
    if unknown:
        raise TypeError(f"diagnose() got an unknown setting {sorted(unknown)[0]!r}")
    conf = Settings(surface=surface, **{**(QUICK if quick else {}), **settings})
    if conf.params not in ("all", "weights"):
        raise ValueError(f"params must be 'all' or 'weights', got {conf.params!r}")
    folders = [Path(r) for r in runs]
    if not folders and not models:
        raise ValueError("nothing to diagnose: give run folders or --model/--checkpoint/--data")
    sources = [from_run(f, n) for f, n in zip(folders, run_names(folders))] + list(models)
    names = [s.name for s in sources]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ValueError(f"two models are named {duplicate!r}; give them distinct --name")
    group_of, how = make_groups(sources, groups)
    if baseline is not None and baseline not in group_of:
        raise ValueError(f"--baseline {baseline!r} is not a group; groups: {', '.join(group_of)}")
    baseline = baseline or next(iter(group_of))
    member_group = {n: g for g, members in group_of.items() for n in members}
    default_out = folders[0] / "diagnosis" if len(sources) == 1 and folders else Path("diagnosis")
    out = Path(out) if out is not None else default_out
    out.mkdir(parents=True, exist_ok=True)
    for line in how:
        _say(progress, f"group {line}")

    from landscape.store import read_surface
    from landscape.surface import landscape_files

    summaries, files, diagonals, densities = [], {}, {}, {}
    firsts = {members[0] for members in group_of.values()}
    for i, s in enumerate(sources):
        tag = f"[{i + 1}/{len(sources)}] {s.name}"
        _say(progress, f"{tag}: loss, accuracy, filter geometry; curvature ({conf.params} parameters) "
                       f"on {conf.samples} training samples")
        summary = summarize(s, conf, device, member_group[s.name])
        if conf.spectra:
            _say(progress, f"{tag}: Hessian diagonal ({conf.probes} probes)"
                           + (f" and spectral density ({conf.density_probes} probes x {conf.lanczos_steps} "
                              "Lanczos steps)" if s.name in firsts else ""))
            subset = curvature_subset(s.data, conf, device)
            diagonal = hessian_diagonal(s.model, subset, num_probes=conf.probes, seed=conf.seed + 1,
                                        params=conf.params)
            summary.diagonal_sum = float(diagonal.values.sum())
            if s.name in firsts:
                diagonals[summary.group] = diagonal
                densities[summary.group] = spectral_density(
                    s.model, subset, num_probes=conf.density_probes, lanczos_steps=conf.lanczos_steps,
                    seed=conf.seed, params=conf.params)
        if conf.surface:
            _say(progress, f"{tag}: loss landscape, 1D ({conf.points_1d} points) and 2D "
                           f"({conf.points_2d}x{conf.points_2d}) on at most {conf.surface_samples} "
                           "examples per split")
            stem = s.name.replace("/", "_")
            pair = landscape_files(s.model, s.data, out, stem, points_1d=conf.points_1d,
                                   points_2d=conf.points_2d, span=conf.span, samples=conf.surface_samples,
                                   seed=conf.seed, device=device, progress=progress)
            line = read_surface(pair[0])
            centre = line["train_loss"][int(np.argmin(np.abs(line.x)))]
            summary.basin_width = basin_width(line.x, line["train_loss"], centre + conf.basin_rise)
            summary.surfaces = [p.relative_to(out).as_posix() for p in pair]
            if s.name in firsts:
                files[s.name] = pair
        s.model.cpu()
        summaries.append(summary)
        _say(progress, f"{tag}: test acc {summary.test_acc:.2f}%  test loss {summary.test_loss:.4f}  "
                       f"gap {summary.gap:.2f}  min angle {summary.min_angle:.1f} deg  top eig "
                       f"{summary.top_eigenvalue:.4g}  trace {summary.hessian_trace:.4g}  sharpness "
                       f"{summary.sharpness:.3g}  basin width {summary.basin_width:.3g}")

    _say(progress, "group statistics, differences against the baseline, rank correlations")
    by_name = {s.name: s for s in summaries}
    metrics = {g: [run_metrics(by_name[n]) for n in members] for g, members in group_of.items()}
    comparison = compare_groups(metrics, baseline, conf.confidence)
    all_runs = [m for runs_ in metrics.values() for m in runs_]
    correlations = rank_correlations(all_runs, GEOMETRY, "test_acc", conf.confidence)
    labels = findings_labels(list(comparison.stats))
    findings = findings_text(comparison, labels, correlations,
                             correlation_labels={m: metric_label(m) for m in GEOMETRY})

    _say(progress, "figures")
    sources_by_name = {s.name: s for s in sources}
    representatives = {g: sources_by_name[m[0]].model for g, m in group_of.items()}
    sections = {}
    histories = {s.name: s.history for s in sources if s.history}
    if histories:
        sections["Learning curves"] = learning_figures(histories, out)
    sections["Filter geometry"] = geometry_figures(comparison, summaries, representatives, out)
    if diagonals:
        firsts_by_group = {s.group: s for s in summaries if s.name in firsts}
        sections["Hessian spectrum"] = hessian_figures(densities, diagonals, firsts_by_group, out, conf)
    if files:
        _say(progress, "landscape figures")
        sections["Loss landscape"] = landscape_figures(
            {member_group[n]: f for n, f in files.items()}, out, conf)

    used = {"summary.json": "summary.json"}
    used.update({f: f for s in summaries for f in s.surfaces})
    inputs = {f: Path(f).resolve().as_uri() for s in sources for f in s.files}
    summary_json = {
        "settings": dataclasses.asdict(conf), "baseline": baseline, "groups": group_of,
        "grouping": how, "findings": findings, "runs": summaries,
        "metrics": {s.name: run_metrics(s) for s in summaries},
        "stats": comparison.stats, "differences": comparison.differences, "correlations": correlations,
        "sections": sections, "inputs": list(inputs),
    }
    (out / "summary.json").write_text(json.dumps(_finite(summary_json), indent=1))
    report = out / "report.html"
    report.write_text(render_html(summaries, conf, comparison, correlations, findings, how, sections,
                                  {**used, **inputs}))
    _say(progress, f"wrote {report}")
    return report


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
    """``"98.2 [97.9, 98.5]"``, ``"98.2 (1 run)"`` or ``"n/a"``."""
    if s is None or not math.isfinite(s.mean):
        return "n/a"
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
            row.append(("* " if d.changed else "") + stat_text(d.stat).replace(" run)", " run, no interval)"))
        rows.append(row)
    return rows


def render_html(summaries: Sequence[RunSummary], conf: Settings, comparison: GroupComparison,
                correlations: Sequence[Correlation], findings: Sequence[str], how: Sequence[str],
                sections: Mapping[str, list[tuple[str, str]]], files: Mapping[str, str]) -> str:
    """The report page: Findings, groups, the group table with difference columns, the per-layer
    table, the per-run table, the figures of ``sections`` and links to every file used."""
    pct = f"{100 * conf.confidence:g}%"
    params = "every parameter" if conf.params == "all" else "convolution and linear weights only"
    groups = list(comparison.groups)
    diff_head = [f"{g} - {comparison.baseline}" for g in groups if g != comparison.baseline]
    header = ["measure"] + [f"{g} (n={comparison.groups[g]})" for g in groups] + diff_head
    parts = ["<h2>Findings</h2><ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in findings) + "</ul>",
             f"<p>Rule: a difference changed beyond noise when its {pct} Welch t-interval excludes 0 "
             f"(starred in the tables); group cells are mean [{pct} t-interval over the group's runs]; "
             "rank correlations are Spearman's rho over all runs with a Fisher-z interval.</p>",
             "<h2>Groups</h2><ul>" + "".join(f"<li>{html.escape(h)}</li>" for h in how) + "</ul>",
             f"<h2>Summary (baseline: {html.escape(comparison.baseline)})</h2>",
             _table(header, comparison_rows(comparison, list(TOP_METRICS) + ["pairs_above", "mean_norm"],
                                            metric_label)),
             f"<p>Losses (cross-entropy, nats) and accuracies of each model as loaded, on the full "
             f"splits. Curvature: top Hessian eigenvalue by Lanczos, trace by Hutchinson with "
             f"{conf.probes} probes, SAM sharpness (rho={conf.rho:g}), on a seeded subset of "
             f"{conf.samples} training samples, {params}, "
             f"BN in eval mode. Basin width: length of the 1D line around the model where the train "
             f"loss stays within {conf.basin_rise:g} of its value at the model.</p>"]
    layers = shared_layers(summaries)
    layer_metrics = [f"{key}/{layer}" for layer in layers for key in LAYER_METRICS]
    parts += ["<h2>Per layer</h2>",
              _table(["layer", "measure"] + header[1:],
                     [[m.split("/", 1)[1], LAYER_METRICS[m.split("/", 1)[0]]] + row[1:]
                      for m, row in zip([m for m in layer_metrics if m in comparison.stats],
                                        comparison_rows(comparison, layer_metrics, str))])]
    parts += ["<h2>Runs</h2>", _table(
        ["run", "group", "model", "regularizers", "seed", "epochs", "train loss", "train acc %",
         "test loss", "test acc %", "gap (points)", "min angle (deg)", "top Hessian eig.",
         "Hessian trace", "Hessian diagonal sum", "rho-sharpness", "basin width"],
        [[s.name, s.group, s.model, ", ".join(s.regularizers) or "none", s.seed if s.seed is not None else "-",
          s.epochs if s.epochs is not None else "-", s.train_loss, s.train_acc, s.test_loss, s.test_acc,
          s.gap, s.min_angle, s.top_eigenvalue, f"{s.hessian_trace:.4g} ± {s.trace_stderr:.2g}",
          s.diagonal_sum, s.sharpness, s.basin_width] for s in summaries])]
    if correlations:
        parts += ["<h2>Rank correlation with test accuracy</h2>", _table(
            ["measure", "Spearman rho", f"{pct} interval", "runs"],
            [[metric_label(c.metric), c.rho, f"[{c.low:.2f}, {c.high:.2f}]" if math.isfinite(c.low) else "n/a",
              c.n] for c in correlations])]
    for title, figures in sections.items():
        parts.append(f"<h2>{html.escape(title)}</h2>")
        for png, caption in figures:
            parts.append(f'<figure><a href="{html.escape(png)}"><img src="{html.escape(png)}" '
                         f'alt="{html.escape(png)}"></a><figcaption>{html.escape(caption)}</figcaption></figure>')
    parts.append("<h2>Files</h2><ul>" + "".join(
        f'<li><a href="{html.escape(href)}">{html.escape(name)}</a></li>' for name, href in files.items()) + "</ul>")
    style = ("body{font-family:sans-serif;max-width:1300px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:3px 7px;text-align:right}img{max-width:100%}")
    title = ", ".join(html.escape(g) for g in groups)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Diagnosis: {title}</title>"
            f"<style>{style}</style></head><body><h1>Diagnosis: {title}</h1>\n"
            + "\n".join(parts) + "\n</body></html>\n")
