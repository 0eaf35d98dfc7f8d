import json
from pathlib import Path

import pytest

import landscape.commands.figures as figures_command
from analysis.angles import cosine_matrix, named_layers
from analysis.similarity import count_above
from landscape.cli import main
from regularizers.train import load_run

FIGURES = Path(__file__).resolve().parents[1] / "figures"
NEW = ("mma_cosine_matrices", "linr_scatter", "residual_curves", "norm_loss_sensitivity",
       "landscape_comparison")


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """One output folder for every script, so they share the cached quick baseline run."""
    return tmp_path_factory.mktemp("figures")


def run_script(name, out, *png):
    assert main(["figures", name, "--quick", "--out", str(out)]) == 0
    for image in png:
        assert (out / image).read_bytes()[:4] == b"\x89PNG"
    return json.loads((out / f"{name}.json").read_text())


def history(out, run):
    return json.loads((out / "runs" / run / "history.json").read_text())


def in_percent(values):
    return all(0.0 <= v <= 100.0 for v in values)


def test_list_names_every_script(capsys):
    assert main(["figures", "--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    scripts = sorted(p.stem for p in FIGURES.glob("*.py") if not p.name.startswith("_"))
    assert listed == scripts and set(NEW) <= set(listed) and "tammes_table" in listed


def test_bad_names_and_a_missing_folder_are_one_line_errors(tmp_path, monkeypatch, capsys):
    assert main(["figures", "nonexistent"]) == 2
    assert "available: landscape_comparison" in capsys.readouterr().err
    monkeypatch.setattr(figures_command, "__file__", str(tmp_path / "landscape" / "commands" / "figures.py"))
    assert main(["figures", "--list"]) == 2
    assert f"no figures/ folder at {tmp_path / 'figures'}" in capsys.readouterr().err


def test_mma_cosine_matrices(out):
    numbers = run_script("mma_cosine_matrices", out, "mma_cosine_matrices.png")
    n = numbers["filters"]
    assert numbers["pairs"] == n * (n - 1) // 2 == 2016
    model, _, _ = load_run(out / "runs" / "baseline-e3")
    assert numbers["count_above"]["baseline"] == count_above(cosine_matrix(named_layers(model)[-2][1]), 0.2)
    for count in numbers["count_above"].values():
        assert isinstance(count, int) and 0 <= count <= numbers["pairs"]
    # MMA spreads the first layer's filters apart (MMA Table 3)
    assert numbers["min_angle"]["MMA 0.07"][0] > numbers["min_angle"]["baseline"][0]
    assert "| 0 | features.0.weight | 32 |" in (out / "mma_min_angles.md").read_text()


def test_linr_scatter(out):
    numbers = run_script("linr_scatter", out, "linr_scatter.png", "linr_sweep.png")
    assert numbers["epochs"] == [1, 2, 3]
    assert numbers["sweet_point"] is None or numbers["sweet_point"] in numbers["epochs"]
    h = history(out, "baseline-e3")
    assert numbers["baseline"] == [[a, b] for a, b in zip(h["train_acc"], h["test_acc"])]
    for rounds in numbers["refined"]:
        assert len(rounds) == numbers["rounds"] == 2
        assert all(in_percent(point) for point in rounds)


def test_residual_curves(out):
    numbers = run_script("residual_curves", out, "residual_curves.png")
    assert list(numbers) == ["MSE", "Laplace", "Logistic"]
    for name, values in numbers.items():
        assert in_percent([values["test_acc"], values["best_test_acc"]])
        assert values["test_acc"] == history(out, f"residual-{name.lower()}-lr0.2-e3")["test_acc"][-1]
        assert values["objective"] > 0


def test_norm_loss_sensitivity(out):
    numbers = run_script("norm_loss_sensitivity", out, "norm_loss_sensitivity.png")
    assert numbers["factors"] == [1e-3, 1e-1]
    assert len(numbers["norm loss"]) == len(numbers["weight decay"]) == 2
    assert in_percent(numbers["norm loss"] + numbers["weight decay"] + [numbers["baseline"]])
    assert numbers["weight decay"][1] == history(out, "wd0.1-e3")["test_acc"][-1]


def test_landscape_comparison(out):
    numbers = run_script("landscape_comparison", out, "landscape_comparison_2d.png",
                         "landscape_comparison_1d.png")
    assert (out / "landscape_comparison" / "2d" / "linr.h5").is_file()
    for name, run in (("baseline", "baseline-e3"), ("linr", "linr-e3")):
        # the plane's centre is the trained model on all the training digits
        assert numbers[name]["centre_train_loss"] == pytest.approx(history(out, run)["train_loss"][-1], rel=1e-4)
        assert numbers[name]["mean_train_loss"] > numbers[name]["centre_train_loss"]
        assert in_percent([numbers[name]["centre_test_acc"]])
