import json
from pathlib import Path

import pytest

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
    for line, name in zip(lines, sorted(SCRIPTS)):
        assert figures_command.measured(FIGURES / f"{name}.py") in line


def test_bad_names_options_and_a_missing_folder_are_one_line_errors(tmp_path, monkeypatch, capsys):
    assert main(["figures", "nonexistent"]) == 2
    assert "available: landscape_comparison" in capsys.readouterr().err
    assert main(["figures", "tammes_table", "--epochs", "3", "--out", str(tmp_path)]) == 2
    assert "does not take --epochs 3" in capsys.readouterr().err
    assert main(["figures", "mma_cosine_matrices", "--seeds", "1", "--out", str(tmp_path)]) == 2
    assert "--seeds must be at least 2" in capsys.readouterr().err
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


def test_tammes_table_writes_outside_the_source_tree_by_default(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["figures", "tammes_table", "--quick", "--steps", "50"]) == 0
    printed = capsys.readouterr().out
    numbers = json.loads((tmp_path / "figures_out" / "tammes_table.json").read_text())
    assert numbers["steps"] == 50 and numbers["seeds"] == [0, 1]
    assert "paper's claim: MMA gets the closest" in printed and "verdict: " in printed
    assert numbers["rule"] == RULE and f"rule: {RULE}" in printed
    # (d=3, n=4): every energy reaches the regular simplex, arccos(-1/3) = 109.47 degrees
    assert numbers["optimal"][0] == pytest.approx(109.4712206)
    assert "| 3 | 4 | 109.5 |" in (tmp_path / "figures_out" / "tammes_table.md").read_text()


def test_mma_cosine_matrices(out):
    numbers = run_script("mma_cosine_matrices", out, "mma_cosine_matrices.png", "mma_min_angles.png")
    assert numbers["pairs"] == 32 * 31 // 2 and numbers["layers"][0] == "features.0.weight"
    for seed in (0, 1):
        model, _, hist = load_run(out / "runs" / f"baseline-s{seed}-e2")
        assert numbers["runs"]["baseline"]["count_above"][seed] == count_above(
            cosine_matrix(named_layers(model)[0][1]), 0.2)
        assert numbers["runs"]["baseline"]["test_acc"][seed] == hist["test_acc"][-1]
    assert [c["verdict"] for c in numbers["claims"]] and len(numbers["claims"]) == 3
    assert "features.0.weight" in (out / "mma_min_angles.md").read_text()


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
    assert config["schedule"] == "multistep" and config["schedule_options"] == {"milestones": [2], "gamma": 0.01}


def test_norm_loss_sensitivity(out):
    numbers = run_script("norm_loss_sensitivity", out, "norm_loss_sensitivity.png")
    assert numbers["factors"] == [1e-3, 1e-1]
    assert numbers["weight decay"][1][1] == pytest.approx(100 - history(out, "wd0.1-s1-e2")["test_acc"][-1])


def test_landscape_comparison(out):
    numbers = run_script("landscape_comparison", out, "landscape_comparison_2d.png", "landscape_comparison_1d.png")
    assert (out / "landscape_comparison" / "2d" / "linrnl-s0.h5").is_file()
    for seed in (0, 1):
        # the line's centre is the trained baseline on all of its training digits
        h = history(out, f"baseline-s{seed}-e2")
        assert numbers["baseline"]["train_loss"][seed] == pytest.approx(h["train_loss"][-1], rel=1e-4)
        assert numbers["baseline"]["test_acc"][seed] == pytest.approx(h["test_acc"][-1])


def test_memorization(out):
    numbers = run_script("memorization", out, "memorization.png")
    assert set(numbers["runs"]) == {"true", "labels", "shuffled_pixels", "random_pixels", "gaussian"}
    assert all(len(runs) == 2 and len(runs[0]["epoch"]) == 2 for runs in numbers["runs"].values())
