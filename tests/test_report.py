import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from sklearn.datasets import load_digits

from analysis.angles import minimal_angles, named_layers
from analysis.report import basin_width
from analysis.weight_spectra import weight_spectra
from landscape.cli import main
from landscape.store import read_surface
from regularizers.evaluation import seeded_subset
from regularizers.train import load_run
from user_models import cnn

TINY = ["--model", "cnn", "--model-option", "channels=[4,8]", "--data", "digits", "--epochs", "1", "--quiet"]
SMALL = ["--quick", "--samples", "64", "--points-1d", "5", "--points-2d", "3", "--quiet"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two groups of three seeds: baseline-s{0,1,2} and mma-s{0,1,2}."""
    root = tmp_path_factory.mktemp("runs")
    folders = {}
    for group, reg in (("baseline", []), ("mma", ["--reg", "mma"])):
        for seed in range(3):
            folder = root / f"{group}-s{seed}"
            assert main(["train", *TINY, *reg, "--seed", str(seed), "--out", str(folder)]) == 0
            folders.setdefault(group, []).append(folder)
    return folders


def t_interval(values):
    v = np.asarray(values, float)
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return v.mean(), v.mean() - half, v.mean() + half


def log_t_interval(values):
    v = np.asarray(values, float)
    spread = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)) / v.mean()
    return v.mean(), v.mean() * math.exp(-spread), v.mean() * math.exp(spread)


def test_two_groups_of_three_seeds_intervals_and_difference(runs, tmp_path):
    out = tmp_path / "diag"
    folders = runs["baseline"] + runs["mma"]
    assert main(["diagnose", *map(str, folders), "--out", str(out), *SMALL, "--no-surface"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["groups"] == {g: [f.name for f in fs] for g, fs in runs.items()}
    assert summary["baseline"] == "baseline"
    assert "grouped automatically: their config.json are equal except for seed = 0, 1, 2" in summary["grouping"][0]
    assert summary["settings"]["params"] == "all"

    # each run's numbers computed directly: accuracy from history.json, angles from the weights
    direct = {}
    for group, fs in runs.items():
        rows = []
        for folder in fs:
            history = json.loads((folder / "history.json").read_text())
            model, _, _ = load_run(folder)
            rows.append({"test_acc": history["test_acc"][-1], "test_loss": history["test_loss"][-1],
                         "gap": history["train_acc"][-1] - history["test_acc"][-1],
                         "min_angle/features.0.weight": minimal_angles(named_layers(model)[0][1]).min()})
        direct[group] = rows
    for metric in ("test_acc", "test_loss", "gap", "min_angle/features.0.weight"):
        for group in runs:
            values = [r[metric] for r in direct[group]]
            got = summary["stats"][metric][group]
            bounded = metric in ("test_loss", "min_angle/features.0.weight")  # cannot be negative: log scale
            interval = log_t_interval(values) if bounded else t_interval(values)
            assert (got["mean"], got["low"], got["high"]) == pytest.approx(interval, rel=1e-6, abs=1e-9)
            assert got["n"] == 3
        mma, base = [r[metric] for r in direct["mma"]], [r[metric] for r in direct["baseline"]]
        ci = stats.ttest_rel(mma, base).confidence_interval(0.95)  # the groups share seeds 0, 1, 2: paired
        diff = summary["differences"][metric]["mma"]
        assert diff["paired"] is True
        assert diff["stat"]["mean"] == pytest.approx(np.mean(mma) - np.mean(base), rel=1e-6, abs=1e-9)
        assert (diff["stat"]["low"], diff["stat"]["high"]) == pytest.approx((ci.low, ci.high), rel=1e-6)
        assert diff["changed"] == bool(ci.low > 0 or ci.high < 0)

    text = (out / "report.html").read_text()
    assert text.index("<h2>Findings</h2>") < text.index("<h2>Summary")
    assert summary["findings"][0].startswith("Test accuracy: mma vs baseline: ")
    assert "mma vs baseline: paired by seed" in text
    assert [r["regularizers"] for r in summary["runs"]] == [[]] * 3 + [["mma"]] * 3
    assert "<th>mma - baseline</th>" in text and "<th>baseline (n=3)</th>" in text
    assert summary["findings"] and all(html_escaped(f) in text for f in summary["findings"])
    assert summary["findings"][-1].startswith("Across all 6 runs, Spearman rank correlation with test accuracy")
    # issue 14's analyses: per-layer alpha of the weight spectra, Hessian diagonal and density
    model, _, _ = load_run(runs["mma"][0])
    alpha = {f"{r.name}.weight": r.alpha for r in weight_spectra(model)}
    layers = summary["runs"][3]["layers"]
    assert [layer["alpha"] for layer in layers] == [alpha[layer["name"]] if math.isfinite(alpha[layer["name"]])
                                                    else None for layer in layers]
    assert all(layer["alpha"] is None and "fewer than 50" in layer["alpha_note"] for layer in layers)
    assert all(math.isfinite(r["diagonal_sum"]) for r in summary["runs"])
    for png in ("learning_curves.png", "min_angles.png", "pairs_above.png", "cosine_first.png", "alpha.png",
                "weight_spectra_mma.png", "spectral_density_baseline.png", "hessian_diagonal.png"):
        assert png in re.findall(r'<img src="([^"]+)"', text)
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def html_escaped(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;").replace("'", "&#x27;")


def test_explicit_groups_baseline_and_a_single_seed(runs, tmp_path):
    out = tmp_path / "diag"
    b, m = runs["baseline"], runs["mma"]
    assert main(["diagnose", "--out", str(out), *SMALL, "--no-surface", "--no-spectra",  # folders named by --group only
                 "--group", f"plain={b[0]}", "--group", f"angles={m[0]},{m[1]}", "--baseline", "angles"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["groups"] == {"plain": ["baseline-s0"], "angles": ["mma-s0", "mma-s1"]}
    assert summary["baseline"] == "angles"
    assert summary["findings"][0].startswith("Test accuracy: plain vs angles: ")
    assert summary["findings"][2].startswith("plain has a single run: no conclusion about noise can be drawn")
    assert all(d["plain"]["changed"] is None for d in summary["differences"].values())


def test_basin_width_closed_form():
    x = np.linspace(-1, 1, 9)
    assert basin_width(x, np.abs(x), 0.3) == pytest.approx(0.6)        # crossings at +-0.3
    assert basin_width(x, np.abs(x - 0.1), 0.3) == pytest.approx(0.6)  # shifted V: -0.2 .. 0.4
    assert basin_width(x, np.abs(x) + 1, 0.5) == 0.0                     # centre above the level
    assert basin_width(x, np.where(x < 0, -x, 0.0), 0.3) == pytest.approx(1.3)  # right side never rises


def test_run_folder_and_plain_pytorch_model(runs, tmp_path):
    # a model trained outside the toolkit, in plain PyTorch, on raw (unstandardized) digit pixels
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)    # values 0..16 as stored
    y = torch.tensor(digits.target)
    npz = tmp_path / "raw_digits.npz"
    np.savez(npz, x_train=x[:1200].numpy(), y_train=y[:1200].numpy(), x_test=x[1200:].numpy(),
             y_test=y[1200:].numpy())
    torch.manual_seed(0)
    net = cnn(10, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    for _ in range(3):
        for start in range(0, 1200, 100):
            loss = F.cross_entropy(net(x[start:start + 100]), y[start:start + 100])
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.save(net.state_dict(), tmp_path / "plain.pt")

    out = tmp_path / "diag"
    folder = runs["baseline"][0]
    assert main(["diagnose", str(folder), "--model", "user_models:cnn", "--checkpoint", str(tmp_path / "plain.pt"),
                 "--data", str(npz), "--name", "plain", "--out", str(out), *SMALL, "--no-spectra"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["groups"] == {"baseline-s0": ["baseline-s0"], "plain": ["plain"]}
    run = {r["name"]: r for r in summary["runs"]}
    net.eval()
    with torch.no_grad():  # independent: the file's examples exactly as given
        train_loss = F.cross_entropy(net(x[:1200]), y[:1200]).item()
        test_acc = 100.0 * int((net(x[1200:]).argmax(1) == y[1200:]).sum()) / len(y[1200:])
    assert run["plain"]["train_loss"] == pytest.approx(train_loss, rel=1e-5)
    assert run["plain"]["test_acc"] == pytest.approx(test_acc, abs=1e-9)
    assert run["plain"]["source"] == str(tmp_path / "plain.pt") and run["plain"]["epochs"] is None
    assert [layer["name"] for layer in run["plain"]["layers"]] == ["features.0.weight", "features.3.weight", "head.weight"]
    # the landscape's centre is the model on the seeded surface subset of the raw test examples
    line = read_surface(out / run["plain"]["surfaces"][0])
    xs, ys = seeded_subset(x[1200:], y[1200:], summary["settings"]["surface_samples"], 0)
    with torch.no_grad():
        centre = F.cross_entropy(net(xs), ys).item()
    assert line["test_loss"][2] == pytest.approx(centre, rel=1e-5)
    widest = read_surface(out / [*run["plain"]["surfaces"][:1], *run["plain"]["surfaces"][2:]][-1])
    centre = widest["train_loss"][int(np.argmin(np.abs(widest.x)))]
    assert run["plain"]["basin_width"] == pytest.approx(basin_width(widest.x, widest["train_loss"], centre + 1.0))
    text = (out / "report.html").read_text()
    assert "compare_1d.png" in text and "compare_train_loss_contour.png" in text
    assert 'href="summary.json"' in text and f'href="{run["plain"]["surfaces"][1]}"' in text
    assert (tmp_path / "plain.pt").resolve().as_uri() in text
    assert (folder / "config.json").resolve().as_uri() in text


def test_bad_input_is_a_one_line_error(runs, tmp_path, capsys):
    assert main(["diagnose", str(tmp_path / "missing")]) == 2
    assert "config.json is missing" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["diagnose", str(tmp_path), "--points-2d", "1"])
    assert "--points-2d: 1 is not >= 2" in capsys.readouterr().err
    assert main(["diagnose", "--model", "cnn", "--data", "digits"]) == 2
    assert "every --model needs its --checkpoint" in capsys.readouterr().err
    assert main(["diagnose", str(runs["baseline"][0]), "--group", "nonsense"]) == 2
    assert "expected NAME=RUN,RUN" in capsys.readouterr().err
    assert main(["diagnose", str(runs["baseline"][0]), "--baseline", "other", "--no-surface", *SMALL]) == 2
    assert "--baseline 'other' is not a group" in capsys.readouterr().err
    bad = tmp_path / "models.txt"
    bad.write_text("# name the checkpoint\n--model cnn --data digits\n")
    assert main(["diagnose", "--models-file", str(bad)]) == 2
    assert f"{bad} line 2: --checkpoint missing" in capsys.readouterr().err


def test_automatic_group_names_cut_the_seed_out():
    from analysis.report import ModelSource, make_groups

    def run(name, seed, lr=0.05):
        return ModelSource(name, None, None, None, {"seed": seed, "lr": lr}, [], folder=Path(name))

    sources = [run("base-s0-e40", 0), run("base-s1-e40", 1), run("seed0", 0, lr=0.1), run("seed1", 1, lr=0.1),
               run("other", 0, lr=0.2)]
    groups, how = make_groups(sources)
    assert groups == {"base-e40": ["base-s0-e40", "base-s1-e40"], "seed": ["seed0", "seed1"], "other": ["other"]}
    assert how[2] == "other: a single run (no other run folder differs from it only in seed)."


def test_models_file_gives_a_run_folder_numbers_equal_to_its_own(runs, tmp_path):
    folder = runs["mma"][0]
    listing = tmp_path / "models.txt"
    listing.write_text(f"# the run's own weights, named as a model trained elsewhere\n--model cnn --model-option "
                       f"channels=[4,8] --checkpoint {folder / 'model.pt'} --data digits --name same\n")
    out = tmp_path / "diag"
    assert main(["diagnose", str(folder), "--models-file", str(listing), "--out", str(out), *SMALL,
                 "--no-surface", "--no-spectra"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    run, same = summary["runs"]
    assert same["name"] == "same" and same["source"] == str(folder / "model.pt")
    for key in ("train_loss", "test_loss", "test_acc", "min_angle", "top_eigenvalue", "hessian_trace", "sharpness"):
        assert same[key] == pytest.approx(run[key], rel=1e-9), key
