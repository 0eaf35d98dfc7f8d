import json
import math
import re

import pytest
import torch
import torch.nn.functional as F

from analysis.angles import minimal_angles, named_layers
from analysis.report import subset
from landscape.cli import main
from landscape.store import read_surface
from regularizers.train import load_run

TINY = ["--model", "cnn", "--model-option", "channels=[4,8]", "--data", "digits", "--epochs", "2", "--quiet"]
SMALL = ["--quick", "--samples", "64", "--points-1d", "5", "--points-2d", "3"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    base, mma = root / "baseline", root / "mma"
    assert main(["train", *TINY, "--out", str(base)]) == 0
    assert main(["train", *TINY, "--out", str(mma), "--reg", "mma"]) == 0
    return base, mma


def images(report):
    sources = re.findall(r'<img src="([^"]+)"', report.read_text())
    assert sources
    for src in sources:
        assert (report.parent / src).read_bytes()[:4] == b"\x89PNG"
    return sources


def test_two_runs_report_summary_and_surfaces(runs, tmp_path, capsys):
    out = tmp_path / "diag"
    assert main(["diagnose", *map(str, runs), "--out", str(out), *SMALL]) == 0
    printed = capsys.readouterr().out
    assert "diagnose: [2/2] mma: accuracy, filter geometry, curvature on 64 training samples" in printed
    report = out / "report.html"
    assert printed.strip().splitlines()[-1] == str(report)
    sources = images(report)
    for name in ("learning_curves.png", "gap.png", "min_angles.png", "angle_histogram.png", "cosine.png",
                 "filter_norms.png", "stable_ranks.png", "compare_1d.png", "compare_train_loss_contour.png"):
        assert name in sources
    text = report.read_text()
    assert "subset of 64 training samples" in text and "<td>mma</td>" in text

    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["samples"] == 64 and summary["settings"]["points_2d"] == 3
    assert [r["name"] for r in summary["runs"]] == ["baseline", "mma"]
    for folder, run in zip(runs, summary["runs"]):
        numbers = [v for k, v in run.items() if isinstance(v, float)]
        assert len(numbers) == 11 and all(math.isfinite(v) for v in numbers)
        history = json.loads((folder / "history.json").read_text())
        assert run["test_acc"] == pytest.approx(history["test_acc"][-1], abs=1e-9)
        assert run["gap"] == pytest.approx(history["train_acc"][-1] - history["test_acc"][-1], abs=1e-9)
        model, data, _ = load_run(folder)
        mins = [minimal_angles(w) for _, w in named_layers(model)]
        assert run["min_angle"] == pytest.approx(min(m.min() for m in mins), rel=1e-9)
        assert [l["filters"] for l in run["layers"]] == [4, 8, 10]
        assert run["top_eigenvalue"] > 0 and run["sharpness"] > 0
        # the 1D line's middle point is the trained model on the seeded surface subset
        line = read_surface(out / run["surfaces"][0])
        assert line.x.tolist() == [-1, -0.5, 0, 0.5, 1]
        x, y = subset(data.x_test, data.y_test, summary["settings"]["surface_samples"], 0)
        with torch.no_grad():
            own = F.cross_entropy(model.eval()(x), y).item()
        assert line["test_loss"][2] == pytest.approx(own, rel=1e-5)
        assert read_surface(out / run["surfaces"][1])["train_loss"].shape == (3, 3)
    # MMA spreads the filters of the first layer apart
    assert summary["runs"][1]["layers"][0]["min_angle"] > summary["runs"][0]["layers"][0]["min_angle"]


def test_one_run_default_folder_without_surface(runs, capsys):
    base = runs[0]
    assert main(["diagnose", str(base), *SMALL, "--no-surface", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(base / "diagnosis" / "report.html")
    report = base / "diagnosis" / "report.html"
    assert "compare_1d.png" not in images(report)
    summary = json.loads((base / "diagnosis" / "summary.json").read_text())
    assert summary["settings"]["surface"] is False and summary["runs"][0]["surfaces"] == []
    assert not (base / "diagnosis" / "1d").exists()


def test_bad_input_is_a_one_line_error(tmp_path, capsys):
    assert main(["diagnose", str(tmp_path / "missing")]) == 2
    assert "config.json is missing" in capsys.readouterr().err
    assert main(["diagnose", str(tmp_path), "--points-2d", "1"]) == 2
    assert "--points-2d must be at least 2" in capsys.readouterr().err
