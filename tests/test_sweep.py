"""The sweep's ranking against hand-counted ground truth (Kendall's tau from concordant pairs,
Psi from per-axis groups), and `landscape sweep` end to end on 12 tiny runs trained here."""
import html
import json
import math
import subprocess
import sys
from itertools import combinations

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

from analysis.sweep import (SweepRun, axis_groups, conclusion, config_hparams, entries_from_runs, kendall, rank,
                            sweep_axes)


def pair_tau(values, gaps) -> float:
    """Kendall's tau-a from concordant and discordant pairs (no ties in the synthetic data)."""
    sign = [np.sign(values[i] - values[j]) * np.sign(gaps[i] - gaps[j]) for i, j in combinations(range(len(gaps)), 2)]
    return float(np.mean(sign))


def synthetic_runs():
    """a in 0..2, b in 0..1, seeds 0..1; gap = a + 3 b + 0.1 seed. ``same`` = gap, ``flip`` = -gap,
    ``mixed`` = a - 3 b + 0.1 seed (tracks axis a, opposes axis b), ``basin`` censored in one run."""
    runs = []
    for seed in (0, 1):
        for a in range(3):
            for b in range(2):
                gap = a + 3 * b + 0.1 * seed
                measures = {"same": gap, "flip": -gap, "mixed": a - 3 * b + 0.1 * seed, "basin": float(a),
                            "holes": math.nan if a == 0 else gap}
                runs.append(SweepRun(f"a{a}b{b}s{seed}", {"a": a, "b": b}, seed, gap, measures,
                                     ["basin"] if (a, b, seed) == (2, 1, 1) else []))
    return runs


def test_tau_and_psi_on_a_known_ranking():
    runs = synthetic_runs()
    gaps = np.array([r.gap for r in runs])
    assert sweep_axes(runs) == ["a", "b"]
    assert sorted(len(g) for g in axis_groups(runs, "a")) == [3] * 4        # (b, seed) fixed
    assert sorted(len(g) for g in axis_groups(runs, "b")) == [2] * 6        # (a, seed) fixed
    table = rank(runs, measures=["same", "flip", "mixed", "basin", "holes"], resamples=200)
    same, flip, mixed = table["same"], table["flip"], table["mixed"]
    assert (same.tau, same.psi, same.robust) == pytest.approx((1.0, 1.0, 1.0))
    assert (flip.tau, flip.psi, flip.robust) == pytest.approx((-1.0, -1.0, -1.0))
    values = np.array([r.measures["mixed"] for r in runs])
    assert mixed.tau == pytest.approx(pair_tau(values, gaps))
    assert mixed.axes == pytest.approx({"a": 1.0, "b": -1.0})
    assert mixed.psi == pytest.approx(0.0) and mixed.robust == pytest.approx(-1.0)
    assert (same.low, same.high, flip.high) == pytest.approx((1.0, 1.0, -1.0))
    assert mixed.low < mixed.tau < mixed.high
    basin = table["basin"]                                   # censored: reported, never ranked
    assert basin.tau is None and basin.psi is None and basin.censored == 1
    holes = table["holes"]                                   # NaN values left out, counted
    assert holes.runs == 8 and holes.tau == pytest.approx(1.0)
    assert holes.axes == pytest.approx({"a": 1.0, "b": 1.0})
    assert set(list(table)[:2]) == {"same", "holes"} and list(table)[-1] == "basin"   # sorted by Psi
    sentence = conclusion(table, len(runs))
    tracks = sentence.split(" track the generalization gap")[0]
    assert "same" in tracks and "holes" in tracks and "flip tracks it inversely" in sentence
    assert "mixed does not" in sentence and "basin is not ranked" in sentence
    assert math.isnan(kendall([1, 1], [0, 1]))


def test_config_hparams_split_regularizer_and_coefficient():
    configs = [{"seed": 0, "lr": 0.1, "regularizers": []}, {"seed": 1, "lr": 0.1, "regularizers": ["mma:0.5"]},
               {"seed": 0, "lr": 0.2, "regularizers": ["norm"]}]
    assert config_hparams(configs) == [{"coefficient": 0.0, "lr": 0.1, "regularizer": "none"},
                                       {"coefficient": 0.5, "lr": 0.1, "regularizer": "mma"},
                                       {"coefficient": "default", "lr": 0.2, "regularizer": "norm"}]


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """12 tiny CNN runs on 120 digits (2 learning rates x 3 MMA coefficients x 2 seeds, 6 epochs)."""
    from regularizers.data import load_data
    from regularizers.train import train_run

    root = tmp_path_factory.mktemp("sweep")
    data = load_data("digits", seed=0)
    keep = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(0))[:120]
    np.savez(root / "digits.npz", x_train=data.x_train[keep].numpy(), y_train=data.y_train[keep].numpy(),
             x_test=data.x_test[:200].numpy(), y_test=data.y_test[:200].numpy(), num_classes=np.array(10))
    folders = []
    torch.set_num_threads(1)
    for lr in (0.05, 0.2):
        for reg in ([], ["mma:0.1"], ["mma:1"]):
            for seed in (0, 1):
                folder = root / f"lr{lr}-{reg[0] if reg else 'none'}-s{seed}"
                train_run(folder, model="cnn", model_options={"channels": [4, 8]}, data=str(root / "digits.npz"),
                          regularizers=reg, seed=seed, epochs=6, lr=lr, batch_size=32, device="cpu", progress=False)
                folders.append(folder)
    return root, folders


QUICK = ["--samples", "64", "--probes", "2", "--noise-draws", "2", "--points", "7", "--resamples", "200", "--quiet"]


def landscape(*args, cwd):
    return subprocess.run([sys.executable, "-m", "landscape", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_landscape_sweep_on_run_folders(tiny_runs):
    root, folders = tiny_runs
    done = landscape("sweep", *folders, "--out", root / "out", *QUICK, cwd=root)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("measure") and "Psi" in lines[0]
    assert lines[-1].startswith("Over these 12 runs,") and lines[-1].endswith(".")
    report = json.loads((root / "out" / "sweep.json").read_text())
    runs = report["runs"]
    assert len(runs) == 12 and {tuple(sorted(r["hparams"])) for r in runs} == {("coefficient", "lr", "regularizer")}
    gaps = np.array([r["gap"] for r in runs])
    for name, entry in report["ranking"].items():                 # the ranking recomputes from the runs
        values = np.array([r["measures"][name] if r["measures"][name] is not None else np.nan for r in runs])
        if entry["tau"] is not None:
            keep = np.isfinite(values)
            assert entry["tau"] == pytest.approx(kendalltau(values[keep], gaps[keep]).statistic)
    assert all(r["measures"]["distance_from_init"] > 0 for r in runs)
    assert (root / "out" / "sweep_tau.png").stat().st_size > 0
    assert html.escape(lines[-1]) in (root / "out" / "sweep.html").read_text()


def test_landscape_sweep_models_file(tiny_runs):
    root, folders = tiny_runs
    lines = [f"--model cnn --model-option channels=[4,8] --checkpoint {f / 'model.pt'} --data {root / 'digits.npz'} "
             f"--normalize none --hparam run={i % 6} --seed {i // 6} --name m{i}" for i, f in enumerate(folders)]
    (root / "models.txt").write_text("\n".join(lines) + "\n")
    done = landscape("sweep", "--models-file", root / "models.txt", "--out", root / "file", "--no-curvature",
                     *QUICK, cwd=root)
    assert done.returncode == 0, done.stderr
    report = json.loads((root / "file" / "sweep.json").read_text())
    assert [r["hparams"] for r in report["runs"]][:2] == [{"run": 0}, {"run": 1}]
    assert report["ranking"]["lambda_max"]["tau"] is None and report["runs"][0]["measures"]["distance_from_init"] is None
    assert "distance_from_init: no initial model" in report["runs"][0]["notes"]
    bad = root / "bad.txt"
    bad.write_text(lines[0] + " --hparam oops\n")
    done = landscape("sweep", "--models-file", bad, "--out", root / "bad", *QUICK, cwd=root)
    assert done.returncode == 2 and "--hparam 'oops' is not KEY=VALUE" in done.stderr


def test_initial_model_is_the_training_start(tmp_path):
    from regularizers.train import train_run

    for seed in (0, 1):
        train_run(tmp_path / f"s{seed}", model="cnn", model_options={"channels": [4, 8]}, data="digits", seed=seed,
                  epochs=1, lr=1e-12, device="cpu", progress=False)
    entries = entries_from_runs([tmp_path / "s0", tmp_path / "s1"])
    model, initial = entries[0].source.model, entries[0].initial
    for name, p in model.named_parameters():
        if p.dim() > 1:
            assert torch.allclose(p, dict(initial.named_parameters())[name], atol=1e-9)
    other = dict(entries[1].initial.named_parameters())
    assert not torch.allclose(model.features[0].weight, other["features.0.weight"])


def test_sweep_refuses_in_one_line(tmp_path):
    done = landscape("sweep", "--out", tmp_path / "o", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.strip().endswith("nothing to sweep: give run folders or --models-file")
    done = landscape("sweep", "--models-file", tmp_path / "missing.txt", cwd=tmp_path)
    assert done.returncode == 2 and "missing.txt does not exist" in done.stderr
    done = landscape("sweep", "--points", "4", cwd=tmp_path)
    assert done.returncode == 2 and "--points" in done.stderr and "not odd" in done.stderr


def test_builtin_sweep_quick(tmp_path):
    from landscape.cli import main

    assert main(["figures", "generalization_measures", "--quick", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "generalization_measures" / "sweep.json").read_text())
    assert len(report["runs"]) == 14                                  # (baseline + 3 methods x 2) x 2 seeds
    assert {r["hparams"]["regularizer"] for r in report["runs"]} == {"none", "mma", "norm", "wd"}
    table = (tmp_path / "generalization_measures.md").read_text()
    assert table.startswith("| measure | Psi |") and report["conclusion"] in table
