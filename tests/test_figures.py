import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from scipy import ndimage

import landscape.commands.figures as figures_command
from analysis.angles import cosine_matrix, named_layers
from analysis.similarity import count_above
from figures import _runs
from figures.tammes_table import RULE
from landscape.cli import main
from regularizers.train import load_run

FIGURES = Path(__file__).resolve().parents[1] / "figures"
SCRIPTS = ("landscape_comparison", "linr_scatter", "memorization", "mma_cosine_matrices",
           "norm_loss_sensitivity", "residual_curves", "tammes_table")


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """One output folder for every script, so they share the cached quick baseline runs."""
    return tmp_path_factory.mktemp("figures")


def run_script(name, out, *png):
    assert main(["figures", name, "--quick", "--out", str(out)]) == 0
    for image in png:
        assert (out / image).read_bytes()[:4] == b"\x89PNG"
    numbers = json.loads((out / f"{name}.json").read_text())
    assert numbers["quick"] is True and numbers["rule"] == (_runs.RULE if name != "tammes_table" else RULE)
    assert numbers["environment"] == {"torch": torch.__version__, "threads": 1,
                                      "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    for c in numbers["claims"]:
        assert c["claim"] and c["paper"] and c["ours"] and c["verdict"] in _runs.VERDICTS
    return numbers


def history(out, run):
    return json.loads((out / "runs" / run / "history.json").read_text())


def test_list_names_every_script_with_its_measured_runtime(capsys):
    assert main(["figures", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == sorted(p.stem for p in FIGURES.glob("*.py")
                                                        if not p.name.startswith("_"))
    assert set(SCRIPTS) <= {line.split()[0] for line in lines}
    by_name = {line.split()[0]: line for line in lines}
    for name in SCRIPTS:
        assert figures_command.measured(FIGURES / f"{name}.py") in by_name[name]


def test_bad_names_options_and_a_missing_folder_are_one_line_errors(tmp_path, monkeypatch, capsys):
    assert main(["figures", "nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "unknown figure script 'nonexistent'; available: " in err and "landscape_comparison, linr_scatter" in err
    assert main(["figures", "tammes_table", "--epochs", "3", "--out", str(tmp_path)]) == 2
    assert "does not take --epochs 3" in capsys.readouterr().err
    for seeds in ("1", "0"):   # 0 is refused too, not replaced by the default
        assert main(["figures", "mma_cosine_matrices", "--seeds", seeds, "--out", str(tmp_path)]) == 2
        assert f"argument --seeds: {seeds} is not >= 2" in capsys.readouterr().err
    assert main(["figures", "tammes_table", "--steps", "0", "--out", str(tmp_path)]) == 2
    assert "argument --steps: 0 is not >= 1" in capsys.readouterr().err
    monkeypatch.setattr(figures_command, "__file__", str(tmp_path / "landscape" / "commands" / "figures.py"))
    assert main(["figures", "--list"]) == 2
    assert f"no figures/ folder at {tmp_path / 'figures'}" in capsys.readouterr().err


def test_verdict_rule():
    assert _runs.verdict(0.1, 0.5, +1) == "reproduced"
    assert _runs.verdict(-0.5, -0.1, +1) == "not reproduced"
    assert _runs.verdict(-0.1, 0.5, +1) == "inconclusive at this scale"
    assert _runs.verdict(-0.5, -0.1, -1) == "reproduced"
    assert _runs.verdict(float("nan"), float("nan"), +1) == "inconclusive at this scale"
    paired = _runs.effect([3.0, 4.0, 5.5], [1.0, 2.0, 3.0], paired=True)   # differences 2, 2, 2.5
    assert paired.mean == pytest.approx(13 / 6) and paired.low > 0


def test_decide_pairs_by_seed_and_one_seed_cannot_decide():
    # paired: differences 1.0, 1.2, 0.9, 1.1, 1.3 -> t-interval mean 1.1 +- t(0.975, 4) * sd / sqrt(5)
    d = _runs.decide([11, 21.2, 30.9, 41.1, 51.3], [10, 20, 30, 40, 50], +1)
    half = 2.7764451 * np.std([1, 1.2, 0.9, 1.1, 1.3], ddof=1) / math.sqrt(5)
    assert d.paired and d.verdict == "reproduced" and d.agreeing == 5
    assert (d.stat.mean, d.stat.low, d.stat.high) == pytest.approx((1.1, 1.1 - half, 1.1 + half))
    # the same values unpaired (Welch) cannot separate the groups
    assert _runs.decide([11, 21.2, 30.9, 41.1, 51.3], [10, 20, 30, 40, 50], +1, paired=False).verdict == (
        "inconclusive at this scale")
    # four seeds on the claimed side, one opposite: the interval alone would decide; one seed
    # against it is allowed, but here the mean without seed 4 is ~0
    assert _runs.decide([1.0, 1.2, 0.9, 1.1, 1.15], None, +1).verdict == "reproduced"
    assert _runs.decide([0.02, 0.03, 0.01, 0.02, 5.0], None, +1).verdict == "inconclusive at this scale"
    mixed = _runs.decide([1.0, 1.1, -0.1, -0.2, 1.05, 1.2, 0.95], None, +1)   # 2 of 7 seeds against
    assert mixed.stat.low > 0 and mixed.verdict == "inconclusive at this scale"
    assert mixed.left_out == pytest.approx([(sum([1.0, 1.1, -0.1, -0.2, 1.05, 1.2, 0.95]) - v) / 6
                                            for v in [1.0, 1.1, -0.1, -0.2, 1.05, 1.2, 0.95]])
    # log-ratio: spreads 8/1, 4/1, 400/1 (one runaway seed) -> mean log ratio, reported as a ratio
    r = _runs.decide([8.0, 4.0, 400.0], [1.0, 1.0, 1.0], +1, log=True)
    assert r.stat.mean == pytest.approx(np.mean(np.log([8, 4, 400]))) and r.log
    assert "ratio x" in r.text() and "log scale" in r.text()
    with pytest.raises(ValueError, match="positive"):
        _runs.decide([0.0, 1.0, 2.0], [1.0, 1.0, 1.0], log=True)
    assert _runs.combined_verdict("reproduced", "reproduced") == "reproduced"
    assert _runs.combined_verdict("reproduced", "inconclusive at this scale").startswith("inconclusive")


def test_tammes_table_writes_outside_the_source_tree_by_default(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["figures", "tammes_table", "--quick", "--steps", "50"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[1] == f"rule, fixed before the run: {RULE}"   # after the == header
    numbers = json.loads((tmp_path / "figures_out" / "tammes_table.json").read_text())
    assert numbers["steps"] == 50 and numbers["seeds"] == [0, 1]
    assert "paper's claim: MMA gets the closest" in printed and "verdict: " in printed
    assert numbers["rule"] == RULE and f"rule: {RULE}" in printed
    # (d=3, n=4): every energy reaches the regular simplex, arccos(-1/3) = 109.47 degrees
    assert numbers["optimal"][0] == pytest.approx(109.4712206)
    assert "| 3 | 4 | 109.5 |" in (tmp_path / "figures_out" / "tammes_table.md").read_text()


def test_mma_cosine_matrices(out):
    numbers = run_script("mma_cosine_matrices", out, "mma_cosine_matrices.png", "mma_min_angles.png")
    assert numbers["layers"] == ["features.0.weight", "features.4.weight", "classifier.weight"]
    assert list(numbers["methods"]) == ["baseline", "MMA 0.07", "MHE 1", "orthogonal 1e-4"]
    runs = numbers["runs"]
    for method, run in (("baseline", "baseline"), ("MHE 1", "mhe"), ("orthogonal 1e-4", "orthogonal")):
        for seed in (0, 1):
            model, _, hist = load_run(out / "runs" / f"{run}-s{seed}-e2")
            assert runs[method]["count_above"][seed] == [count_above(cosine_matrix(w), 0.2)
                                                         for _, w in named_layers(model)]
            assert runs[method]["test_acc"][seed] == hist["test_acc"][-1]
    assert json.loads((out / "runs" / "mhe-s0-e2" / "config.json").read_text())["regularizers"] == ["mhe:1"]
    # Table 3: MMA minus the best other method per seed, first layer, recomputed from the stored angles
    angles = {m: np.array(v["min_angle"]) for m, v in runs.items()}
    gap = angles["MMA 0.07"][:, 0] - np.max([a[:, 0] for m, a in angles.items() if m != "MMA 0.07"], axis=0)
    assert f"features.0.weight: {_runs.fmt(_runs.effect(gap, np.zeros(2)))}" in numbers["claims"][2]["ours"]
    assert [c["verdict"] for c in numbers["claims"]] and len(numbers["claims"]) == 4
    first = numbers["claims"][0]["effect"]
    diff = [a[0] - b[0] for a, b in zip(runs["MMA 0.07"]["count_above"], runs["baseline"]["count_above"])]
    assert first["paired"] and first["mean"] == pytest.approx(np.mean(diff))
    assert "| orthogonal 1e-4 |" in (out / "mma_min_angles.md").read_text()


def test_linr_scatter(out):
    numbers = run_script("linr_scatter", out, "linr_scatter.png", "linr_sweep.png")
    assert numbers["epochs"] == [1, 2] and numbers["rounds"] == 2
    for seed in (0, 1):
        h = history(out, f"baseline-s{seed}-e2")
        assert numbers["baseline"][seed] == [[a, b] for a, b in zip(h["train_acc"], h["test_acc"])]
        assert all(len(r) == 2 for r in numbers["refined"][seed]) and len(numbers["finetune"][seed]) == 2


def test_residual_curves(out):
    numbers = run_script("residual_curves", out, "residual_curves.png")
    assert numbers["drop_after_epoch"] == 2   # 75% of 2 epochs, rounded
    for seed in (0, 1):
        assert numbers["Laplace"]["test_acc"][seed] == history(out, f"residual-laplace-s{seed}-e2")["test_acc"][-1]
    config = json.loads((out / "runs" / "residual-sgd-s0-e2" / "config.json").read_text())
    options = {k: config["schedule_options"][k] for k in ("milestones", "gamma")}
    assert config["schedule"] == "multistep" and options == {"milestones": [2], "gamma": 0.01}


def test_norm_loss_sensitivity(out):
    numbers = run_script("norm_loss_sensitivity", out, "norm_loss_sensitivity.png")
    assert numbers["factors"] == [1e-3, 1e-1]
    assert numbers["weight decay"][1][1] == pytest.approx(100 - history(out, "nls-wd0.1-s1-e2")["test_acc"][-1])
    assert numbers["norm loss"][0][0] == pytest.approx(100 - history(out, "nls-norm0.001-s0-e2")["test_acc"][-1])
    # the paper's schedule for both methods: lr 0.1 / 5 at 17%, 34%, 69% of the run (all after epoch 1 of 2)
    for run in ("nls-wd0.1-s1-e2", "nls-norm0.001-s0-e2", "nls-baseline-s0-e2"):
        config = json.loads((out / "runs" / run / "config.json").read_text())
        assert (config["lr"], config["momentum"], config["batch_size"], config["schedule"]) == (0.1, 0.9, 64, "multistep")
        assert {k: config["schedule_options"][k] for k in ("milestones", "gamma")} == {"milestones": [1], "gamma": 0.2}
    assert json.loads((out / "runs" / "nls-norm0.001-s0-e2" / "config.json").read_text())["regularizers"] == [
        "norm:0.001"]
    # the log-ratio of per-seed spreads, floored at one test example (100/450 points)
    spread = {m: np.maximum(np.ptp(numbers[m], axis=1), 100 / 450) for m in ("weight decay", "norm loss")}
    assert numbers["spread"]["weight decay"] == pytest.approx(spread["weight decay"].tolist())
    effect = numbers["claims"][0]["effect"]
    assert effect["log"] and effect["mean"] == pytest.approx(np.mean(np.log(spread["weight decay"] / spread["norm loss"])))


def test_landscape_comparison(out):
    numbers = run_script("landscape_comparison", out, "landscape_comparison_2d.png", "landscape_comparison_1d.png")
    assert (out / "landscape_comparison" / "2d" / "linrnl-s0.h5").is_file()
    for seed in (0, 1):
        # the line's centre is the trained baseline on all of its training digits
        h = history(out, f"baseline-s{seed}-e2")
        assert numbers["baseline"]["train_loss"][seed] == pytest.approx(h["train_loss"][-1], rel=1e-4)
        assert numbers["baseline"]["test_acc"][seed] == pytest.approx(h["test_acc"][-1])
        # roughness: scipy's 5-point Laplacian of the stored plane's log train loss, split at radius 0.5
        with h5py.File(out / "landscape_comparison" / "2d" / f"linrnl-s{seed}.h5", "r") as f:
            x, y, loss = f["xcoordinates"][:], f["ycoordinates"][:], f["train_loss"][:]
        lap = ndimage.laplace(np.log(loss))[1:-1, 1:-1] / (x[1] - x[0]) ** 2
        gx, gy = np.meshgrid(x[1:-1], y[1:-1])
        outside = np.hypot(gx, gy) > 0.5
        assert numbers["LinRNL refined"]["surrounding_roughness"][seed] == pytest.approx(np.abs(lap[outside]).mean())
        assert numbers["LinRNL refined"]["middle_roughness"][seed] == pytest.approx(np.abs(lap[~outside]).mean())
    # 9 points over [-1, 1] never rise by 1 nat after two epochs: the widths are bounds, never compared
    assert all(numbers["baseline"]["width_censored"])
    width = numbers["claims"][1]
    assert width["verdict"] == "inconclusive at this scale" and ">= " in width["ours"] and "not compared" in width["ours"]


def test_memorization(out):
    from analysis.memorization import memorization_experiment
    from figures.memorization import at_chance, fit_epoch
    from regularizers.data import load_data
    from regularizers.models import create_model

    numbers = run_script("memorization", out, "memorization.png")
    assert set(numbers["runs"]) == {"true", "labels", "shuffled_pixels", "random_pixels", "gaussian"}
    # seed 1's random-label run recomputed on its own equals the stored history
    data = load_data(str(out / "data" / "digits-100.npz"), normalize="standardize")
    again = memorization_experiment(data, lambda: create_model("mlp", 10, 1, hidden=(256, 256)), kinds=("labels",),
                                    epochs=2, seed=1, batch_size=32, lr=0.05, device="cpu")["labels"].history
    assert again["test_acc"] == pytest.approx(numbers["runs"]["labels"][1]["test_acc"])
    assert again["train_acc"] == pytest.approx(numbers["runs"]["labels"][1]["train_acc"])
    # the chance half of claim 1, from the stored test accuracies
    text, _ = at_chance([h["test_acc"][-1] for h in numbers["runs"]["labels"]], 10)
    assert text in numbers["claims"][0]["ours"]
    assert fit_epoch({"epoch": [1, 2, 3], "train_acc": [50, 99.5, 100]}, 3) == 2
    assert fit_epoch({"epoch": [1, 2], "train_acc": [50, 60]}, 2) == 3


def test_kernel_table_calls_a_verdict_only_where_both_runs_agree(tmp_path):
    from figures import _kernels

    env = {"torch": "2.x", "cpu_capability": "AVX512", "threads": 1}
    effect = {"mean": math.log(2), "low": math.log(1.5), "high": math.log(3), "n": 5, "log": True, "paired": True,
              "left_out_means": [], "seeds_above_0": 5}
    claims = {"default": ["reproduced", "reproduced"], "avx2": ["reproduced", "inconclusive at this scale"]}
    for kernel, verdicts in claims.items():
        (tmp_path / kernel).mkdir()
        (tmp_path / kernel / "fig.json").write_text(json.dumps({"environment": env, "claims": [
            {"claim": "A", "ours": "a", "verdict": verdicts[0], "effect": effect},
            {"claim": "B", "ours": "b" * 300, "verdict": verdicts[1]}]}))
    (tmp_path / "times.txt").write_text("fig default rc=0 seconds=12 load=1\nfig avx2 rc=0 seconds=15 load=1\n")
    rows = _kernels.rows(tmp_path / "default", tmp_path / "avx2", _kernels.runtimes(tmp_path / "times.txt"))
    assert rows[2].split(" | ")[2:8] == ["x2 [x1.5, x3], 5/5 seeds >1", "reproduced", "x2 [x1.5, x3], 5/5 seeds >1",
                                         "reproduced", "reproduced", "12 s / 15 s |"]
    last = rows[3].split(" | ")
    assert last[3] == "reproduced" and last[5] == "inconclusive at this scale"
    assert last[6].startswith("inconclusive at this scale (the runs disagree") and last[2].endswith("...")
