"""Shared by the figure scripts: their command line, the data regime, cached training runs, and
the verdict each figure prints and writes beside itself.

**Regime.** The papers' effects are a point or two of accuracy on CIFAR; the embedded digits
reach 99% with any method, leaving nothing to explain. The scripts therefore train on a seeded
random subset of ``TRAIN_EXAMPLES`` = 300 training digits (a regime where a small CNN fits its
training set exactly while test accuracy stays visibly below it, so a regularizer has room to
help), and test on the whole digits test split (450 images), standardized with the training
statistics. Every configuration runs ``--seeds`` seeds (default 5).

**Verdict rule** (:func:`decide`), stated before every run for all figures: for a claim "B is
higher than A" (or lower), take the 95% t-interval of the effect -- of the per-seed differences
when the runs share seeds (every comparison here: seed ``s`` initializes and orders the batches
of every method alike, and a refinement starts from its own baseline), Welch's only for groups
without shared seeds. *Reproduced*: the interval lies entirely on the claimed side of 0. *Not
reproduced*: it lies entirely on the other side. Otherwise *inconclusive at this scale*. One
runaway seed cannot decide: with three or more seeds, a verdict stands only if the mean effect
stays on its side with any one seed left out, and (paired runs) the effects of all seeds but at
most one lie on that side; otherwise it is *inconclusive at this scale*. Spreads and other ratios of positive
quantities are compared on the log scale (the per-seed log-ratio), where one seed's blow-up
counts once, not by its size.

Runs are ``train_run`` folders under ``<out>/runs/<name>-s<seed>-e<epochs>``; a finished run with
the same settings is reused. Output goes to ``--out`` (default ``./figures_out``, outside the
source tree).
"""
from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before any pyplot import: the scripts only write files

OUT = Path("figures_out")
EPOCHS, QUICK_EPOCHS = 40, 2
SEEDS, QUICK_SEEDS = 5, 2
TRAIN_EXAMPLES, QUICK_TRAIN_EXAMPLES = 300, 100
VERDICTS = ("reproduced", "not reproduced", "inconclusive at this scale")
RULE = ("reproduced: the 95% t-interval of the effect (of per-seed differences: the runs share seeds) lies on "
        "the claimed side of 0; not reproduced: on the other side; otherwise inconclusive at this scale. One runaway "
        "seed cannot decide: a verdict stands only if the mean effect stays on its side with any one seed left out "
        "and all seeds but at most one lie on that side, otherwise inconclusive. Ratios of positive quantities "
        "(spreads) are compared as per-seed log-ratios")


def parser(doc: str, *, epochs: int | None = EPOCHS, steps: str | None = None,
           seeds: int = SEEDS) -> argparse.ArgumentParser:
    """``--quick``, ``--seeds`` (default ``seeds``), ``--out``, and ``--epochs`` (default ``epochs``;
    None: the script does not train) / ``--steps`` (``steps`` is the help text of a script's
    ``--steps``)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="tiny setting for tests: fewer seeds, epochs, examples and points")
    p.add_argument("--seeds", type=int, default=None,
                   help=f"seeds per configuration, at least 2 (default {seeds}, {QUICK_SEEDS} with --quick)")
    p.set_defaults(default_seeds=seeds)
    if epochs:
        p.add_argument("--epochs", type=int, default=None,
                       help=f"training epochs (default {epochs}, {QUICK_EPOCHS} with --quick)")
        p.set_defaults(default_epochs=epochs)
    if steps:
        p.add_argument("--steps", type=int, default=None, help=steps)
    p.add_argument("--out", type=Path, default=OUT, help=f"output folder (default ./{OUT}); runs cached in OUT/runs")
    return p


def parse(p: argparse.ArgumentParser, argv=None, rule: str = RULE) -> argparse.Namespace:
    """Parse (an unknown option is a one-line ValueError), fill the defaults, create ``--out``,
    use one torch thread (tiny models; the machine is shared), and print the verdict ``rule``
    and the kernels before anything runs."""
    import torch

    args, extra = p.parse_known_args(argv)
    if extra:
        raise ValueError(f"{p.prog} does not take {' '.join(extra)}")
    count = args.seeds if args.seeds is not None else (QUICK_SEEDS if args.quick else args.default_seeds)
    if count < 2:
        raise ValueError(f"--seeds must be at least 2 (intervals need two runs), got {count}")
    args.seeds = list(range(count))
    if hasattr(args, "epochs"):
        if args.epochs is None:
            args.epochs = QUICK_EPOCHS if args.quick else args.default_epochs
        if args.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
    if getattr(args, "steps", None) is not None and args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    env = environment()
    print(f"rule, fixed before the run: {rule}\ntorch {env['torch']}, CPU kernels {env['cpu_capability']}, "
          f"{env['threads']} thread(s)", flush=True)
    return args


def subset_data(out: Path, quick: bool = False, *, examples: int | None = None) -> Path:
    """``out/data/digits-<n>.npz``: a seeded random subset of ``n`` digits training examples
    (default :data:`TRAIN_EXAMPLES`) and the whole digits test split, as stored (pixels in
    [0, 1]); written once."""
    import numpy as np
    import torch

    from regularizers.data import load_data

    n = examples or (QUICK_TRAIN_EXAMPLES if quick else TRAIN_EXAMPLES)
    path = Path(out) / "data" / f"digits-{n}.npz"
    if not path.is_file():
        data = load_data("digits", seed=0)
        keep = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(0))[:n]
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, x_train=data.x_train[keep].numpy(), y_train=data.y_train[keep].numpy(),
                 x_test=data.x_test.numpy(), y_test=data.y_test.numpy(), num_classes=np.array(10))
    return path


def train(out: Path, name: str, *, seed: int, epochs: int, data: Path, reg: Sequence[str] = (),
          model: str = "cnn", model_options: dict | None = None, lr: float = 0.05,
          weight_decay: float = 0.0, schedule: str = "constant", schedule_options: dict | None = None,
          batch_size: int = 64, corrupt: str | None = None) -> Path:
    """The run folder ``out/runs/<name>-s<seed>-e<epochs>`` trained by
    :func:`regularizers.train.train_run` on ``data`` (standardized with its training
    statistics), reused when finished with the same settings."""
    from regularizers.train import train_run

    folder = Path(out) / "runs" / f"{name}-s{seed}-e{epochs}"
    done = (folder / "model.pt").is_file()
    print(f"  {'reusing' if done else 'training'} {folder.name}", flush=True)
    train_run(folder, model=model, model_options=model_options, data=str(data), normalize="standardize",
              corrupt=corrupt, regularizers=list(reg), seed=seed, epochs=epochs, lr=lr,
              weight_decay=weight_decay, schedule=schedule, schedule_options=schedule_options,
              batch_size=batch_size, device="cpu", progress=False)
    return folder


def history(folder: Path) -> dict:
    """The run's ``history.json``."""
    return json.loads((Path(folder) / "history.json").read_text())


def verdict(low: float, high: float, sign: int = 1) -> str:
    """The verdict of :data:`RULE` for an effect interval ``[low, high]`` whose claimed sign is
    ``sign`` (+1: the claim says higher, -1: lower)."""
    if sign * low > 0 and sign * high > 0:
        return VERDICTS[0]
    if sign * low < 0 and sign * high < 0:
        return VERDICTS[1]
    return VERDICTS[2]


def effect(group, baseline, *, paired: bool = True):
    """The effect ``group - baseline`` with its 95% interval (a :class:`analysis.findings.Stat`):
    the t-interval of per-seed differences when ``paired`` (runs sharing seeds), else Welch's."""
    import numpy as np

    from analysis.findings import difference_interval, mean_interval

    if paired:
        return mean_interval(np.asarray(group, float) - np.asarray(baseline, float))
    return difference_interval(group, baseline)


@dataclass
class Decision:
    """A claim's effect and verdict under :data:`RULE`: ``stat`` (the effect, a
    :class:`analysis.findings.Stat`; a mean log-ratio when ``log``), the ``verdict``, the effect's
    mean with each seed left out (``left_out``), how many seeds' effects are above 0 (a ratio
    above 1), whatever the claim's sign (``agreeing``, paired runs only), and whether the runs
    were ``paired``."""

    stat: object
    verdict: str
    left_out: list
    agreeing: int | None
    paired: bool
    log: bool = False

    def text(self, unit: str = "") -> str:
        """``"+1.2 points [+0.3, +2.1] (paired by seed, 5 of 5 seeds > 0)"``; a ratio for a log-scale effect."""
        import math

        how = "paired by seed" if self.paired else "Welch, unpaired"
        if self.agreeing is not None:
            how += f", {self.agreeing} of {self.stat.n} seeds {'with ratio > 1' if self.log else '> 0'}"
        if self.log:
            s = self.stat
            return f"ratio x{math.exp(s.mean):.3g} [x{math.exp(s.low):.3g}, x{math.exp(s.high):.3g}] ({how}, log scale)"
        return f"{fmt(self.stat, unit)} ({how})"


def decide(group, baseline=None, sign: int = 1, *, paired: bool = True, log: bool = False,
           margin: float = 0.0) -> Decision:
    """The verdict of :data:`RULE` on ``group - baseline`` (one value per seed, seeds in the same
    order; ``baseline`` None: 0) for a claim of sign ``sign`` (+1: higher). ``log``: compare
    ``log(group / baseline)`` (positive values). ``margin`` is added to the effect (a tolerance in
    the claim's favour). A decided verdict stands only when, with three or more seeds, the mean
    stays on its side with any one seed left out and (paired) all seeds but at most one lie on
    that side; otherwise it is inconclusive."""
    import numpy as np

    group = np.asarray(group, float)
    baseline = np.zeros_like(group) if baseline is None else np.asarray(baseline, float)
    if log:
        if np.any(group <= 0) or np.any(baseline <= 0):
            raise ValueError("a log-ratio needs positive values")
        group, baseline = np.log(group), np.log(baseline)
    if paired and group.shape != baseline.shape:
        raise ValueError(f"paired runs need one value per seed on both sides, got {group.shape} and {baseline.shape}")
    stat = effect(group, baseline, paired=paired)
    result = verdict(stat.low + margin, stat.high + margin, sign)
    n = len(group)
    keep = [np.arange(n) != i for i in range(n)] if n >= 3 else []  # one seed of the group left out at a time
    left_out = [float(np.mean(group[k]) - np.mean(baseline[k] if paired else baseline) + margin) for k in keep]
    agreeing = int(np.sum(group - baseline + margin > 0)) if paired else None
    if result != VERDICTS[2] and keep:
        side = sign if result == VERDICTS[0] else -sign
        on_side = int(np.sum(side * (group - baseline + margin) > 0)) if paired else n
        if any(side * m <= 0 for m in left_out) or on_side < n - 1:
            result = VERDICTS[2]
    return Decision(stat, result, left_out, agreeing, paired, log)


def environment() -> dict:
    """The torch version, the CPU kernels in use (``torch.backends.cpu.get_cpu_capability()``,
    set by ``ATEN_CPU_CAPABILITY``) and the thread count: written with every figure, since
    unstable training differs between kernels."""
    import torch

    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads()}


def combined_verdict(first: str, second: str) -> str:
    """One verdict from two runs of a figure (e.g. default and AVX2 kernels): theirs when they
    agree, otherwise inconclusive."""
    return first if first == second else f"{VERDICTS[2]} (the runs disagree: {first} / {second})"


def fmt(stat, unit: str = "") -> str:
    """``"+1.23 [+0.4, +2.1]"`` of a :class:`analysis.findings.Stat`."""
    return f"{stat.mean:+.3g}{unit} [{stat.low:+.3g}, {stat.high:+.3g}]"


def mean_text(values, unit: str = "") -> str:
    """``"97.3 ± 0.4"``: mean and half-width of the 95% t-interval of ``values``."""
    from analysis.findings import mean_interval

    s = mean_interval(values)
    return f"{s.mean:.4g}{unit} ± {s.half_width:.2g}"


def claim(text: str, paper: str, ours: str, result) -> dict:
    """One checked claim: the paper's claim, the paper's numbers, ours, and the verdict
    (``result``: a verdict string, or a :class:`Decision` whose effect is kept beside it)."""
    entry = {"claim": text, "paper": paper, "ours": ours}
    if isinstance(result, Decision):
        s = result.stat
        entry["effect"] = {"mean": s.mean, "low": s.low, "high": s.high, "n": s.n, "paired": result.paired,
                           "log": result.log, "left_out_means": result.left_out, "seeds_above_0": result.agreeing}
        result = result.verdict
    if result not in VERDICTS:
        raise ValueError(f"unknown verdict {result!r}")
    entry["verdict"] = result
    return entry


def conclude(figs: Sequence, out: Path, name: str, claims: Sequence[dict], numbers: dict,
             quick: bool = False, rule: str = RULE) -> None:
    """Print every claim with the paper's numbers, ours and the verdict, and the ``rule`` that
    decided them; write them under each figure of ``figs`` and into ``out/<name>.json`` beside
    ``numbers``."""
    lines = []
    for c in claims:
        lines += [f"paper's claim: {c['claim']}", f"  paper's numbers: {c['paper']}", f"  ours: {c['ours']}",
                  f"  verdict: {c['verdict']}" + (" (--quick setting: not a measurement)" if quick else "")]
    lines.append(f"rule: {rule}")
    env = environment()
    lines.append(f"torch {env['torch']}, CPU kernels {env['cpu_capability']}, {env['threads']} thread(s)")
    for line in lines:
        print(line, flush=True)
    text = "\n".join(textwrap.fill(line, 160, subsequent_indent="    ") for line in lines)
    for fig in figs:  # below everything drawn so far (tick labels included)
        renderer = fig.canvas.get_renderer()
        inverse = fig.transFigure.inverted()
        bottom = min(inverse.transform(ax.get_tightbbox(renderer))[0, 1] for ax in fig.axes)
        fig.text(0.01, bottom - 0.03, text, ha="left", va="top", fontsize=7, family="monospace")
    write_json(out, f"{name}.json", {"claims": list(claims), "rule": rule, "quick": quick, "environment": env,
                                     **numbers})


def save(fig, out: Path, name: str) -> Path:
    """Save a figure as ``out/name`` (atomically: :func:`landscape.plot.save_figure`) and close it."""
    import matplotlib.pyplot as plt

    from landscape.plot import save_figure

    save_figure(fig, out / name, dpi=120)
    plt.close(fig)
    print(f"wrote {out / name}", flush=True)
    return out / name


def write_json(out: Path, name: str, numbers: dict) -> None:
    """The measured numbers as ``out/name``."""
    (Path(out) / name).write_text(json.dumps(numbers, indent=1))
