"""Which generalization measure tracks the gap on 300 digits (Jiang et al. 2019, "Fantastic
Generalization Measures and Where to Find Them", arXiv 1912.02178): a small sweep of MMA, norm
loss and weight decay at three strengths each plus the unregularized baseline, 3 seeds, ranked
by Kendall's tau with the generalization gap and its granulated Psi. Writes
``generalization_measures/sweep.json``, ``sweep.html``, ``sweep_tau.png`` and
``generalization_measures.md`` into ``--out``.

    python figures/generalization_measures.py          # 10 configurations x 3 seeds, 40 epochs
    python figures/generalization_measures.py --quick  # 2 strengths, 2 seeds, 2 epochs (tests)

Regime (``figures/_runs.py``): 300 training digits, where the CNN fits its training set and the
test accuracy stays below it, so runs differ in their gap. Hyperparameters: ``regularizer``
(none, mma, norm, wd) and ``strength`` (0 for none, 1-3 for the coefficients below); the Psi axes
are ``regularizer`` (the three methods at one strength and seed) and ``strength`` (one method's
three coefficients at one seed); the baseline enters the overall tau only. The measures, their
definitions and the ranking rules are those of ``landscape sweep`` (``analysis/measures.py``,
``analysis/sweep.py``). There is no paper claim to reproduce at this scale: the script reports
which measures track the gap for these runs.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from figures import _runs  # noqa: E402

# full run, `landscape figures generalization_measures`
MEASURED = (473, "2026-12-05, 2 cores shared with 7 other agents, load average ~9")

COEFFICIENTS = {"mma": (0.01, 0.07, 0.5), "norm": (1e-3, 1e-2, 1e-1), "wd": (1e-3, 1e-2, 1e-1)}


def configurations(quick: bool) -> list:
    """``[(run name, regularizer specs, weight decay, hparams)]``: the baseline, then each method
    at its strengths (the first and last with --quick)."""
    out = [("baseline", [], 0.0, {"regularizer": "none", "strength": 0})]
    for method, coefficients in COEFFICIENTS.items():
        for level, c in enumerate(coefficients, 1):
            if quick and level == 2:
                continue
            regs, wd = ([], c) if method == "wd" else ([f"{method}:{c}"], 0.0)
            out.append((f"{method}{c:g}", regs, wd, {"regularizer": method, "strength": level}))
    return out


def main(argv=None) -> int:
    from analysis.measures import MeasureSettings
    from analysis.summary import from_run
    from analysis.sweep import SweepEntry, initial_model, markdown_table, sweep

    args = _runs.parse(_runs.parser(__doc__, seeds=3), argv)
    data = _runs.subset_data(args.out, args.quick)
    configs = configurations(args.quick)
    entries, step = [], 0
    for seed in args.seeds:
        for name, regs, wd, hparams in configs:
            step += 1
            print(f"[{step}/{len(configs) * len(args.seeds)}] {name}, seed {seed}", flush=True)
            folder = _runs.train(args.out, name, seed=seed, epochs=args.epochs, data=data, reg=regs, weight_decay=wd)
            source = from_run(folder, folder.name)
            entries.append(SweepEntry(source, hparams, seed, initial_model(source.config, source.data)))
    settings = (MeasureSettings(samples=100, probes=2, noise_draws=2, points=7, curvature=False) if args.quick
                else MeasureSettings())
    result = sweep(entries, args.out / "generalization_measures", settings=settings,
                   resamples=200 if args.quick else 1000)
    table = markdown_table(result.ranking)
    text = (f"{table}\n\n{result.conclusion}\n\nCoefficients: "
            + "; ".join(f"{m} {', '.join(f'{c:g}' for c in cs)}" for m, cs in COEFFICIENTS.items())
            + f". {len(args.seeds)} seeds, {args.epochs} epochs.\n")
    (args.out / "generalization_measures.md").write_text(text)
    print(table)
    print(result.conclusion, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
