"""Issue 17: conclusions a reviewer would accept, on six models trained in plain PyTorch
(3 shared seeds x 2 settings) on 300 digits, through ``landscape diagnose --models-file``."""
import json

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.datasets import load_digits

from analysis.report import basin_edges
from landscape.cli import main
from landscape.store import read_surface
from user_models import cnn, train_plain

SEEDS = (0, 1, 2)
SETTINGS = {"base": 0.0, "wd": 5e-3}   # the second setting: an L2 penalty added in the plain loop
SMALL = ["--quick", "--points-1d", "5", "--points-2d", "3", "--no-spectra", "--quiet"]


def digits(n_train=300, n_test=200):
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target)
    return x[:n_train], y[:n_train], x[n_train:n_train + n_test], y[n_train:n_train + n_test]


def train(seed, l2, x, y):
    torch.manual_seed(seed)  # the initial weights, then the batches, from one stream per seed
    return train_plain(cnn(10, 1), x, y, seed=None, l2=l2)


@pytest.fixture(scope="module")
def six(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("six")
    x, y, xt, yt = digits()
    npz = root / "digits300.npz"
    np.savez(npz, x_train=x.numpy(), y_train=y.numpy(), x_test=xt.numpy(), y_test=yt.numpy())
    lines, accuracy = [], {}
    for setting, l2 in SETTINGS.items():
        for seed in SEEDS:
            net = train(seed, l2, x, y)
            name = f"{setting}-s{seed}"
            torch.save(net.state_dict(), root / f"{name}.pt")
            with torch.no_grad():
                accuracy[name] = 100.0 * float((net(xt).argmax(1) == yt).float().mean())
            lines.append(f"--model user_models:cnn --checkpoint {root / name}.pt --data {npz} --name {name} "
                         f"--seed {seed}")
    listing = root / "models.txt"
    listing.write_text("# six models trained in plain PyTorch\n" + "\n".join(lines) + "\n")
    out = root / "diag"
    groups = [f"--group={s}=" + ",".join(f"{s}-s{k}" for k in SEEDS) for s in SETTINGS]
    assert main(["diagnose", "--models-file", str(listing), *groups, "--baseline", "base", "--out", str(out),
                 "--samples", "512", "--basin-rise", "1e6", *SMALL]) == 0
    return dict(root=root, npz=npz, accuracy=accuracy, out=out,
                summary=json.loads((out / "summary.json").read_text()))


def test_the_answer_first_paired_by_seed(six):
    summary, acc = six["summary"], six["accuracy"]
    wd, base = [acc[f"wd-s{k}"] for k in SEEDS], [acc[f"base-s{k}"] for k in SEEDS]
    ci = stats.ttest_rel(wd, base).confidence_interval(0.95)
    diff = float(np.mean(wd) - np.mean(base))
    verdict = "improved" if ci.low > 0 else "worsened" if ci.high < 0 else "no change beyond noise"
    assert summary["findings"][0] == (f"Test accuracy: wd vs base: {diff:+.2f} points (95% paired t-interval of "
                                      f"per-seed differences [{ci.low:+.2f}, {ci.high:+.2f}], n=3): {verdict}.")
    d = summary["differences"]["test_acc"]["wd"]
    assert d["paired"] is True and d["stat"]["method"] == "paired-t"
    assert (d["stat"]["low"], d["stat"]["high"]) == pytest.approx((ci.low, ci.high), rel=1e-6, abs=1e-9)
    assert summary["findings"][1].startswith("Generalization gap (train - test accuracy): wd vs base:")
    text = (six["out"] / "report.html").read_text()
    assert text.split("<body>", 1)[1].startswith('<p class="answer"><b>Test accuracy: wd vs base:')
    assert "wd vs base: paired by seed" in text


def test_a_forced_censored_basin_width_is_a_bound_never_a_change(six):
    summary = six["summary"]
    for run in summary["runs"]:
        assert run["censored"] == ["basin_width"]
        # the line was widened twice (x4 each) and the loss still never rose 1e6 nats
        assert [read_surface(six["out"] / f).x.max() for f in run["surfaces"]] == pytest.approx([1, 1, 4, 16])
        line = read_surface(six["out"] / run["surfaces"][-1])   # the ±1 line, the plane, then the wider lines
        assert run["basin_span"] == pytest.approx(16.0)
        centre = line["train_loss"][int(np.argmin(np.abs(line.x)))]
        basin = basin_edges(line.x, line["train_loss"], centre + 1e6)
        assert basin.censored and run["basin_width"] == pytest.approx(basin.width) == pytest.approx(32.0)
    d = summary["differences"]["basin_width"]["wd"]
    assert d["changed"] is None and d["censored"] is True
    assert summary["censored"]["basin_width"] == {"base": 3, "wd": 3}
    assert not any("changed beyond noise" in f and "basin width" in f.split("within noise")[0] for f in summary["findings"])
    assert any("1D basin width not compared (a value is only a lower bound" in f for f in summary["findings"])
    basin = next(c for c in summary["correlations"] if c["metric"] == "basin_width")
    assert basin["n"] == 0 and basin["rho"] is None
    assert "&gt;= 32" in (six["out"] / "report.html").read_text()


def test_intervals_of_nonnegative_measures_stay_above_zero(six):
    stats_ = six["summary"]["stats"]
    checked = 0
    for metric, groups in stats_.items():
        if metric.split("/")[0] in ("min_angle", "mean_min_angle", "pairs_above", "mean_norm", "stable_rank"):
            for stat in groups.values():
                assert stat["method"] == "log-t" and stat["low"] >= 0 and stat["low"] <= stat["mean"] <= stat["high"]
                checked += 1
    assert checked >= 2 * 5 * 3


def test_regularizers_unknown_alpha_only_with_50_eigenvalues_samples_used(six):
    summary = six["summary"]
    assert summary["settings"]["samples_used"] == 300 and summary["settings"]["samples"] == 512
    for run in summary["runs"]:
        assert run["regularizers"] is None and run["seed"] in SEEDS and run["samples_used"] == 300
        for layer in run["layers"]:   # 6, 8 and 10 filters: at most 10 eigenvalues each
            assert layer["alpha"] is None and "fewer than 50" in layer["alpha_note"]
    text = (six["out"] / "report.html").read_text()
    assert "on a seeded subset of 300 training examples (512 asked)" in text
    assert "<td>unknown</td>" in text


def fixed_cnn(num_classes=10, in_channels=1):
    """A conv model built for one input channel whatever the data says (as many user factories are)."""
    return cnn(num_classes, 1)


def one_line(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_a_shape_the_model_rejects_and_labels_out_of_range_are_one_line(six, tmp_path, capsys):
    x, y, xt, yt = digits(100, 50)
    flat = tmp_path / "flat.npz"
    np.savez(flat, x=x.reshape(100, 64).numpy(), y=y.numpy())
    ckpt = str(six["root"] / "base-s0.pt")
    base = ["diagnose", "--checkpoint", ckpt, "--out", str(tmp_path / "d"), *SMALL]
    # the factory builds for the data's 64 "channels": the checkpoint's first layer does not fit
    assert main([*base, "--model", "user_models:cnn", "--data", str(flat)]) == 2
    err = one_line(capsys)
    assert "features.0.weight': checkpoint (6, 1, 3, 3)" in err and "inputs of shape (N, 64)" in err
    # the factory ignores the data: the checkpoint loads, the forward pass rejects the shape
    assert main([*base, "--model", "test_diagnose_conclusions:fixed_cnn", "--data", str(flat)]) == 2
    err = one_line(capsys)
    assert "rejects the data's inputs of shape (N, 64)" in err and "expects (N, 1, H, W) (Conv2d features.0)" in err
    shifted = tmp_path / "one_based.npz"
    np.savez(shifted, x=x.numpy(), y=(y + 1).numpy())
    assert main([*base, "--model", "user_models:cnn", "--data", str(shifted)]) == 2
    err = one_line(capsys)
    assert "'head.weight': checkpoint (10, 32), model (11, 32)" in err
    assert "11 classes, as its labels run 1..10" in err and "labels starting at 1" in err


@pytest.mark.parametrize("value", ["nan", "-1", "0", "inf"])
def test_basin_rise_is_checked_at_parse_time(value, capsys):
    assert main(["diagnose", "--basin-rise", value, "--model", "cnn"]) == 2
    err = capsys.readouterr().err
    assert "--basin-rise" in err and len(err.strip().splitlines()) == 1
