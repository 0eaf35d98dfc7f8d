"""Memorization (Zhang et al.): true labels are fit fast, random labels slower but fit too."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from analysis.memorization import memorization_experiment, plot_memorization, variant
from regularizers.data import load_data
from regularizers.models import create_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", limit=200, normalize="standardize")  # standardized, as Zhang et al. train


def test_random_labels_are_memorized_more_slowly(digits):
    def factory():
        return create_model("mlp", 10, 1, hidden=(256,))

    runs = memorization_experiment(digits, factory, kinds=("true", "labels"), epochs=30,
                                   batch_size=32, lr=0.05, device="cpu")
    true, rand = runs["true"].history, runs["labels"].history
    assert list(true["epoch"]) == list(range(1, 31))
    assert true["train_acc"][4] >= 95 and rand["train_acc"][4] < 75   # after 5 epochs
    assert rand["train_acc"][-1] >= 95                                 # memorized in the end
    assert rand["train_loss"][4] > 3 * true["train_loss"][4]
    assert true["test_acc"][-1] > 80 and rand["test_acc"][-1] < 30     # chance is 10%
    assert runs["labels"].dataset == "digits+labels1" and runs["labels"].seed == 0


def test_variants(digits):
    assert variant(digits, "true") is digits
    half = variant(digits, "labels:0.5", seed=1)
    changed = (half.y_train != digits.y_train).float().mean().item()
    assert 0.3 < changed < 0.6                   # about 0.5 * (1 - 1/10) change
    assert torch.equal(half.x_train, digits.x_train)


def test_plot_one_line_per_kind(digits):
    runs = memorization_experiment(digits, lambda: create_model("mlp", 10, 1, hidden=(32,)),
                                   kinds=("true", "gaussian", "labels:0.5"), epochs=2, device="cpu")
    fig = plot_memorization(runs)
    assert [len(ax.lines) for ax in fig.axes] == [3, 3, 3]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        "true labels", "Gaussian", "random labels (50%)"]


def test_figure_script_quick(tmp_path):
    spec = importlib.util.spec_from_file_location("memorization_figure", ROOT / "figures" / "memorization.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--quick", "--epochs", "3", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "memorization.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "memorization.json").read_text())
    assert list(saved["runs"]) == ["true", "labels", "shuffled_pixels", "random_pixels", "gaussian"]
    assert [len(h["train_acc"]) for h in saved["runs"]["true"]] == [3] * len(saved["seeds"])
    assert all(c["verdict"].startswith(("reproduced", "not reproduced", "inconclusive")) for c in saved["claims"])
