"""Which measure tracks generalization across a sweep of trained models: Kendall's tau of each
measure of :mod:`analysis.measures` with the generalization gap, its granulated form Psi (Jiang
et al. 2019, "Fantastic Generalization Measures and Where to Find Them", arXiv 1912.02178), the
worst case over hyperparameter axes (after Dziugaite et al. 2020, "In Search of Robust Measures
of Generalization", arXiv 2010.11924) and a bootstrap interval of tau over runs.

Definitions (``gap`` = train - test accuracy in percentage points, from the model as loaded):

- ``tau``: Kendall's tau-b (``scipy.stats.kendalltau``) between a measure and the gap over all
  runs with a finite value.
- ``axes``: the hyperparameters taking at least two values. For axis ``a``, runs are grouped by
  every other hyperparameter and the seed; ``psi_a`` is the mean tau within the groups holding at
  least two runs (a group whose tau is undefined, e.g. tied gaps, is left out).
- ``psi``: the mean of ``psi_a`` over the axes that have one; ``robust``: the smallest ``psi_a``
  (a simplification: Dziugaite et al. take the worst case over environments, pairs of runs
  differing in one hyperparameter value, not over whole axes).
- ``low``, ``high``: percentile bootstrap interval of ``tau`` over runs
  (``scipy.stats.bootstrap``, paired resampling of runs).

A measure with a censored value in any run (the 1D basin width when it is a lower bound) is not
ranked: its numbers are reported per run and its ranking entries are None.
"""
from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import bootstrap, kendalltau

from analysis.measures import MEASURES, MeasureSettings, compute_measures
from landscape.plot import save_figure
from regularizers.evaluation import evaluate, seeded_subset
from regularizers.safe_io import atomic_write_json, atomic_write_text


@dataclass
class SweepRun:
    """One model of the sweep: its hyperparameters, seed, gap (points) and measures."""

    name: str
    hparams: dict
    seed: int | None
    gap: float
    measures: dict
    censored: list = field(default_factory=list)
    train_acc: float = math.nan
    test_acc: float = math.nan
    notes: list = field(default_factory=list)          # why a measure is NaN


@dataclass
class Ranking:
    """How one measure ranks the runs (module docstring); None where undefined."""

    tau: float | None
    psi: float | None
    robust: float | None
    low: float | None
    high: float | None
    axes: dict                  # axis -> psi_a (None when the axis has no group of two runs)
    runs: int                   # runs with a finite, uncensored value
    censored: int               # runs whose value is a lower bound


def kendall(values, gaps) -> float:
    """Kendall's tau-b between ``values`` and ``gaps`` over the finite pairs; NaN under 2 pairs or
    when either side is constant."""
    values, gaps = np.asarray(values, float), np.asarray(gaps, float)
    keep = np.isfinite(values) & np.isfinite(gaps)
    if keep.sum() < 2:
        return math.nan
    return float(kendalltau(values[keep], gaps[keep]).statistic)


def sweep_axes(runs: Sequence[SweepRun]) -> list:
    """The hyperparameter names that take at least two values over ``runs``, sorted."""
    keys = sorted({k for r in runs for k in r.hparams})
    return [k for k in keys if len({json.dumps(r.hparams.get(k), sort_keys=True) for r in runs}) > 1]


def axis_groups(runs: Sequence[SweepRun], axis: str) -> list:
    """Indices of runs that differ only along ``axis``: equal in every other hyperparameter and in
    seed; only groups of at least two runs with at least two values of ``axis``."""
    groups: dict = {}
    for i, r in enumerate(runs):
        rest = {k: v for k, v in r.hparams.items() if k != axis}
        groups.setdefault(json.dumps([rest, r.seed], sort_keys=True, default=str), []).append(i)
    return [g for g in groups.values()
            if len({json.dumps(runs[i].hparams.get(axis), default=str) for i in g}) > 1]


def granulated(values, gaps, runs: Sequence[SweepRun], axes: Sequence[str]) -> dict:
    """``{axis: psi_a}``: the mean within-group tau along each axis (NaN without a defined group)."""
    out = {}
    for axis in axes:
        taus = [kendall(values[g], gaps[g]) for g in axis_groups(runs, axis)]
        taus = [t for t in taus if math.isfinite(t)]
        out[axis] = float(np.mean(taus)) if taus else math.nan
    return out


def _none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def rank_measure(runs: Sequence[SweepRun], measure: str, axes: Sequence[str], *, confidence: float = 0.95,
                 resamples: int = 1000, seed: int = 0) -> Ranking:
    """The :class:`Ranking` of one measure over ``runs``."""
    censored = sum(measure in r.censored for r in runs)
    values = np.array([r.measures.get(measure, math.nan) for r in runs], float)
    gaps = np.array([r.gap for r in runs], float)
    finite = int((np.isfinite(values) & np.isfinite(gaps)).sum())
    if censored:
        return Ranking(None, None, None, None, None, {a: None for a in axes}, finite - censored, censored)
    tau = kendall(values, gaps)
    per_axis = granulated(values, gaps, runs, axes)
    defined = [v for v in per_axis.values() if math.isfinite(v)]
    low = high = math.nan
    keep = np.isfinite(values) & np.isfinite(gaps)
    if keep.sum() >= 3 and math.isfinite(tau):
        interval = bootstrap((values[keep], gaps[keep]), lambda a, b: kendalltau(a, b).statistic, paired=True,
                             vectorized=False, n_resamples=resamples, confidence_level=confidence,
                             method="percentile", random_state=np.random.default_rng(seed)).confidence_interval
        low, high = interval.low, interval.high
    return Ranking(_none(tau), _none(np.mean(defined)) if defined else None, _none(min(defined)) if defined else None,
                   _none(low), _none(high), {a: _none(v) for a, v in per_axis.items()}, finite, 0)


def rank(runs: Sequence[SweepRun], *, measures: Sequence[str] | None = None, confidence: float = 0.95,
         resamples: int = 1000, seed: int = 0) -> dict:
    """``{measure: Ranking}`` for every measure (default: :data:`analysis.measures.MEASURES`),
    sorted by Psi, largest first, measures without a Psi last."""
    if len(runs) < 3:
        raise ValueError(f"a sweep needs at least 3 runs to rank measures, got {len(runs)}")
    axes = sweep_axes(runs)
    table = {m: rank_measure(runs, m, axes, confidence=confidence, resamples=resamples, seed=seed)
             for m in (measures or list(MEASURES))}
    return dict(sorted(table.items(), key=lambda kv: -kv[1].psi if kv[1].psi is not None else math.inf))


def tracking(r: Ranking) -> str:
    """``"tracks"`` (tau's interval above 0), ``"inverse"`` (below 0), ``"no"`` (holds 0) or
    ``"unranked"`` (censored, undefined or too few runs for an interval)."""
    if r.low is None or r.high is None:
        return "unranked"
    return "tracks" if r.low > 0 else "inverse" if r.high < 0 else "no"


def conclusion(ranking: Mapping[str, Ranking], runs: int, confidence: float = 0.95) -> str:
    """One sentence: which measures track the gap over these runs and which do not."""
    kinds = {k: [m for m, r in ranking.items() if tracking(r) == k] for k in ("tracks", "inverse", "no", "unranked")}

    def verb(names, one, many):
        return f"{', '.join(names) or 'no measure'} {one if len(names) <= 1 else many}"  # no measure tracks

    parts = [f"over these {runs} runs, {verb(kinds['tracks'], 'tracks', 'track')} the generalization gap "
             f"(the {confidence:.0%} bootstrap interval of Kendall's tau lies above 0)"]
    if kinds["inverse"]:
        parts.append(f"{verb(kinds['inverse'], 'tracks', 'track')} it inversely (interval below 0)")
    if kinds["no"]:
        parts.append(f"{verb(kinds['no'], 'does', 'do')} not (interval holds 0)")
    if kinds["unranked"]:
        parts.append(f"{verb(kinds['unranked'], 'is', 'are')} not ranked "
                     "(a censored or undefined value, or no bootstrap interval)")
    text = "; ".join(parts) + "."
    return text[0].upper() + text[1:]


def measure_run(source, hparams: Mapping, seed, *, initial=None, settings: MeasureSettings | None = None,
                device="cpu") -> SweepRun:
    """A :class:`SweepRun` of one :class:`analysis.summary.ModelSource`: gap from its whole train
    and test splits, measures on a seeded subset of ``settings.samples`` training examples."""
    settings = settings or MeasureSettings()
    data, model = source.data, source.model.to(device)
    if getattr(data, "x_test", None) is None:
        raise ValueError(f"{source.name}: the data has no test split, so there is no generalization gap")
    _, train_acc = evaluate(model, data, split="train", device=device)
    _, test_acc = evaluate(model, data, split="test", device=device)
    inputs, targets = seeded_subset(data.x_train, data.y_train, settings.samples, settings.seed)
    measures = compute_measures(model, inputs.to(device), targets.to(device),
                                initial=initial.to(device) if initial is not None else None, settings=settings)
    for net in (model, initial):  # back to the host: a GPU holds one sweep model at a time
        if net is not None:
            net.cpu()
    return SweepRun(source.name, dict(hparams), seed, train_acc - test_acc, measures.values, measures.censored,
                    train_acc, test_acc, measures.notes)


def sweep_json(runs: Sequence[SweepRun], ranking: Mapping[str, Ranking], sentence: str, settings) -> dict:
    """The content of ``sweep.json`` (NaN written as null)."""
    def clean(obj):
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else None
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [clean(v) for v in obj]
        return obj

    return clean({"runs": [asdict(r) for r in runs], "ranking": {m: asdict(r) for m, r in ranking.items()},
                  "conclusion": sentence, "settings": asdict(settings),
                  "definitions": {m: d for m, (_, d) in MEASURES.items()}})


# ------------------------------------------------------------------------------------ inputs
@dataclass
class SweepEntry:
    """One model to measure: a :class:`analysis.summary.ModelSource`, its hyperparameters, its
    seed, and its model at initialization (None: no distance from init)."""

    source: object
    hparams: dict
    seed: int | None = None
    initial: object = None


IGNORED_CONFIG = ("seed", "transforms", "num_classes", "in_channels")


def config_hparams(configs: Sequence[Mapping]) -> list:
    """Per config, the settings that differ among ``configs`` (seed and derived keys left out).
    A ``regularizers`` list of at most one ``NAME[:COEF...]`` spec per run becomes ``regularizer``
    (``"none"`` for an empty list) and ``coefficient`` (0 for none, NaN-free: the paper default
    when the spec gives none is written as ``"default"``)."""
    def flat(config):
        out = {k: v for k, v in config.items() if k not in IGNORED_CONFIG and k != "regularizers"}
        regs = list(config.get("regularizers", []))
        if len(regs) <= 1:
            name, _, rest = (regs[0] if regs else "none").partition(":")
            coef = rest.split(":")[0]
            out["regularizer"] = name
            out["coefficient"] = 0.0 if not regs else float(coef) if coef else "default"
        else:
            out["regularizers"] = ",".join(regs)
        return out

    flats = [flat(c) for c in configs]
    keys = sorted({k for f in flats for k in f})
    differ = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]
    return [{k: f.get(k) for k in differ} for f in flats]


def initial_model(config: Mapping, data):
    """The model of a run at initialization, rebuilt as :func:`regularizers.train.train_run` built
    it (``torch.manual_seed(seed)``, then the model factory for ``data``'s inputs); None when the
    config has no seed. The global RNG is restored."""
    import torch

    from regularizers.models import load_model

    if config.get("seed") is None:
        return None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(config["seed"]))
        return load_model(config["model"], num_classes=config["num_classes"], in_channels=config["in_channels"],
                          input_shape=data.x_train.shape[1:], input_dtype=data.x_train.dtype,
                          **config.get("model_options", {}))


def entries_from_runs(folders: Sequence) -> list:
    """A :class:`SweepEntry` per run folder of ``landscape train``: hyperparameters from
    :func:`config_hparams` of their ``config.json``, seed from the config, initial model from
    :func:`initial_model`."""
    from analysis.summary import from_run, run_names

    folders = [Path(f) for f in folders]
    sources = [from_run(f, name) for f, name in zip(folders, run_names(folders))]
    hparams = config_hparams([s.config for s in sources])
    return [SweepEntry(s, h, s.config.get("seed"), initial_model(s.config, s.data)) for s, h in zip(sources, hparams)]


# ------------------------------------------------------------------------------------ report
def _number(value, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}g}"


def plot_taus(ranking: Mapping[str, Ranking]):
    """Kendall's tau per hyperparameter axis (psi_a) and over all runs, one row per measure.
    Returns the figure."""
    import matplotlib.pyplot as plt

    measures = list(ranking)
    axes = sorted({a for r in ranking.values() for a in r.axes})
    series = [(f"axis: {a}", [r.axes.get(a) for r in ranking.values()]) for a in axes]
    series.append(("all runs (tau)", [r.tau for r in ranking.values()]))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(measures) + 1.5))
    height = 0.8 / len(series)
    for k, (label, vals) in enumerate(series):
        ys = np.arange(len(measures)) + k * height
        ax.barh(ys, [v if v is not None else 0.0 for v in vals], height, label=label)
    ax.set_yticks(np.arange(len(measures)) + 0.4 - height / 2, [MEASURES.get(m, (m,))[0] for m in measures],
                  fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.8)
    ax.set(xlim=(-1, 1), xlabel="Kendall's tau with the generalization gap (unranked measures: no bar)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def render_html(runs: Sequence[SweepRun], ranking: Mapping[str, Ranking], sentence: str, figure: str) -> str:
    """The sweep report: the conclusion, the ranking table sorted by Psi, the figure, the runs."""
    axes = sorted({a for r in ranking.values() for a in r.axes})
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in ["measure", "Psi", "robust (worst axis)", "tau [interval]",
                                                   *[f"psi: {a}" for a in axes], "runs", "tracks the gap?",
                                                   "definition and source"])
    rows = []
    for m, r in ranking.items():
        label, definition = MEASURES.get(m, (m, ""))
        note = f" ({r.censored} censored: lower bounds)" if r.censored else ""
        cells = [esc(label), _number(r.psi), _number(r.robust), f"{_number(r.tau)} [{_number(r.low)}, {_number(r.high)}]",
                 *[_number(r.axes.get(a)) for a in axes], f"{r.runs}{note}", tracking(r), esc(definition)]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    names = list(ranking)
    run_head = "".join(f"<th>{esc(h)}</th>" for h in ["run", "hyperparameters", "seed", "gap (points)", *names, "notes"])
    run_rows = ["<tr>" + "".join(f"<td>{c}</td>" for c in [
        esc(r.name), esc(json.dumps(r.hparams)), r.seed, _number(r.gap),
        *[_number(r.measures.get(m)) + ("&ge; (censored)" if m in r.censored else "") for m in names],
        esc("; ".join(r.notes))]) + "</tr>"
        for r in runs]
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Generalization measures</title>"
            "<style>body{font-family:sans-serif;max-width:1300px}table{border-collapse:collapse;font-size:12px}"
            "td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>"
            f"<h1>Which measure tracks the generalization gap</h1><p><b>{esc(sentence)}</b></p>"
            f"<pre>{esc(chr(10).join(__doc__.split(chr(10) + chr(10))[1:]))}</pre>"
            f"<table><tr>{head}</tr>{''.join(rows)}</table><p><img src='{esc(figure)}'></p>"
            f"<h2>Runs</h2><table><tr>{run_head}</tr>{''.join(run_rows)}</table></body></html>")


@dataclass
class SweepResult:
    """What :func:`sweep` measured and wrote."""

    runs: list
    ranking: dict
    conclusion: str
    files: list


def sweep(entries: Sequence[SweepEntry], out, *, settings: MeasureSettings | None = None,
          confidence: float = 0.95, resamples: int = 1000, device="cpu", progress: bool = True) -> SweepResult:
    """Measure every entry, rank the measures (:func:`rank`) and write ``out/sweep.json``,
    ``out/sweep.html`` and ``out/sweep_tau.png``."""
    import matplotlib.pyplot as plt

    settings = settings or MeasureSettings()
    if len(entries) < 3:
        raise ValueError(f"a sweep needs at least 3 runs, got {len(entries)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for i, e in enumerate(entries, 1):
        runs.append(measure_run(e.source, e.hparams, e.seed, initial=e.initial, settings=settings, device=device))
        if progress:
            print(f"[{i}/{len(entries)}] {runs[-1].name}: gap {runs[-1].gap:+.2f} points", flush=True)
    ranking = rank(runs, confidence=confidence, resamples=resamples, seed=settings.seed)
    sentence = conclusion(ranking, len(runs), confidence)
    atomic_write_json(out / "sweep.json", sweep_json(runs, ranking, sentence, settings), indent=1)
    atomic_write_text(out / "sweep.html", render_html(runs, ranking, sentence, "sweep_tau.png"))
    fig = plot_taus(ranking)  # the numbers are written first: a failing figure loses none of them
    save_figure(fig, out / "sweep_tau.png", dpi=110)
    plt.close(fig)
    return SweepResult(runs, ranking, sentence, [str(out / n) for n in ("sweep.json", "sweep.html", "sweep_tau.png")])


def table_text(ranking: Mapping[str, Ranking]) -> str:
    """The ranking as a plain-text table sorted by Psi (what ``landscape sweep`` prints)."""
    axes = sorted({a for r in ranking.values() for a in r.axes})
    lines = [f"{'measure':<34}{'Psi':>8}{'robust':>8}{'tau':>8}  {'interval':<17}"
             + "".join(f"{a[:12]:>13}" for a in axes) + "  tracks"]
    for m, r in ranking.items():
        interval = f"[{_number(r.low, 2)}, {_number(r.high, 2)}]"
        lines.append(f"{MEASURES.get(m, (m,))[0][:33]:<34}{_number(r.psi, 2):>8}{_number(r.robust, 2):>8}"
                     f"{_number(r.tau, 2):>8}  {interval:<17}" + "".join(f"{_number(r.axes.get(a), 2):>13}" for a in axes)
                     + f"  {tracking(r)}")
    return "\n".join(lines)


def markdown_table(ranking: Mapping[str, Ranking]) -> str:
    """The ranking as a Markdown table sorted by Psi (for READMEs)."""
    axes = sorted({a for r in ranking.values() for a in r.axes})
    lines = ["| measure | Psi | robust | tau [95% interval] | " + " | ".join(f"psi: {a}" for a in axes)
             + " | runs | tracks |", "|---" * (6 + len(axes)) + "|"]
    for m, r in ranking.items():
        cells = [MEASURES.get(m, (m,))[0], _number(r.psi, 2), _number(r.robust, 2),
                 f"{_number(r.tau, 2)} [{_number(r.low, 2)}, {_number(r.high, 2)}]",
                 *[_number(r.axes.get(a), 2) for a in axes], str(r.runs),
                 tracking(r) + (f" ({r.censored} censored)" if r.censored else "")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
