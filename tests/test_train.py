"""Trainer: accuracy on digits, exact resume, early stopping, schedules, run folder, CLI."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from landscape.cli import main
from regularizers.data import load_data
from regularizers.models import create_model, load_model
from regularizers.train import EarlyStopping, fit, load_run


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", seed=0)


def small_cnn(data, seed=0):
    torch.manual_seed(seed)
    return create_model("cnn", num_classes=data.num_classes, in_channels=data.in_channels)


def test_tiny_model_beats_90_percent_on_digits(digits, tmp_path):
    model = small_cnn(digits)
    result = fit(model, digits, epochs=8, lr=0.05, batch_size=64, out=tmp_path, progress=False)
    assert result.history["test_acc"][-1] > 90.0
    assert result.history["epoch"] == list(range(1, 9))
    assert len(list((tmp_path / "checkpoints").glob("epoch_*.pt"))) == 8
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["test_acc"] == pytest.approx(result.history["test_acc"])


class Interrupt:
    """A regularizer hook that fails at the start of a given epoch (0-based)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def start_epoch(self, epoch, epochs):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(digits, tmp_path):
    settings = dict(epochs=4, lr=0.05, batch_size=64, schedule="step",
                    schedule_options={"step_size": 2, "gamma": 0.5}, progress=False, seed=3)
    straight = small_cnn(digits)
    fit(straight, digits, out=tmp_path / "a", **settings)

    with pytest.raises(KeyboardInterrupt):
        fit(small_cnn(digits), digits, out=tmp_path / "b", regularizers=[Interrupt(2)], **settings)
    assert len(list((tmp_path / "b" / "checkpoints").glob("*.pt"))) == 2
    resumed_model = small_cnn(digits, seed=99)  # other init: the checkpoint must win
    resumed = fit(resumed_model, digits, out=tmp_path / "b", **settings)

    assert resumed.history["epoch"] == [1, 2, 3, 4]
    assert resumed.history["lr"] == pytest.approx([0.05, 0.05, 0.025, 0.025])
    for (name, a), b in zip(straight.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.equal(a, b), name


def test_early_stopping_follows_the_patience_algorithm():
    stopper = EarlyStopping(patience=2, monitor="loss")
    model = torch.nn.Linear(1, 1)
    decisions = []
    for epoch, loss in enumerate([3.0, 2.0, 2.5, 1.5, 1.5, 1.7], start=1):
        with torch.no_grad():
            model.weight.fill_(epoch)
        decisions.append(stopper.update(epoch, loss, 0.0, model))
    # Improvements at epochs 1, 2, 4; epoch 5 ties (not better), epoch 6 worse -> stop.
    assert decisions == [False, False, False, False, False, True]
    assert stopper.best_epoch == 4
    assert stopper.best_state["weight"].item() == 4.0


def test_early_stopping_restores_the_best_epoch(digits, tmp_path):
    model = small_cnn(digits)
    result = fit(model, digits, epochs=40, lr=0.3, batch_size=256, patience=2, monitor="loss",
                 out=tmp_path, progress=False)
    h = result.history
    assert result.stopped_early and len(h["epoch"]) < 40
    best = min(range(len(h["val_loss"])), key=lambda i: h["val_loss"][i])
    assert result.best_epoch == h["epoch"][best]
    assert len(h["epoch"]) == result.best_epoch + 2
    restored = load_model("cnn", num_classes=10, in_channels=1, checkpoint=tmp_path / "model.pt")
    from regularizers.train import evaluate
    x, y = digits.x_test, digits.y_test
    assert evaluate(restored, (x, y))[1] == pytest.approx(h["test_acc"][best])


def test_cosine_restarts_schedule_restarts(digits):
    model = small_cnn(digits)
    result = fit(model, digits, epochs=5, lr=0.1, schedule="cosine_restarts",
                 schedule_options={"t0": 2}, progress=False)
    lrs = result.history["lr"]
    assert lrs[0] == pytest.approx(0.1) and lrs[2] == pytest.approx(0.1) and lrs[4] == pytest.approx(0.1)
    assert lrs[1] == pytest.approx(0.05)


class NaNPenalty:
    def penalty(self, model):
        return torch.tensor(float("nan"))


def test_diverging_training_fails_clearly(digits):
    model = small_cnn(digits)
    with pytest.raises(FloatingPointError, match="epoch 1"):
        fit(model, digits, epochs=1, regularizers=[NaNPenalty()], progress=False)


def test_cli_train_writes_a_loadable_run(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--model", "mlp", "--data", "digits", "--epochs", "2", "--out", str(out),
                 "--quiet"])
    assert code == 0
    assert "test acc" in capsys.readouterr().out
    model, data, history = load_run(out)
    assert len(history["epoch"]) == 2
    assert data.num_classes == 10
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "mlp" and config["epochs"] == 2


def test_cli_reports_bad_input_on_one_line(tmp_path, capsys):
    code = main(["train", "--model", "no_such_model", "--epochs", "1", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no_such_model" in err


def test_cli_lists_models_and_regularizers(capsys):
    assert main(["train", "--list-models"]) == 0
    models = capsys.readouterr().out.split()
    assert {"cnn", "mlp", "resnet20", "vgg9", "densenet_bc100_12"} <= set(models)
    assert main(["train", "--list-regularizers"]) == 0
    assert {"mma", "norm", "linr", "residual"} <= set(capsys.readouterr().out.split())


def test_a_run_folder_is_bound_to_its_settings(digits, tmp_path):
    first = fit(small_cnn(digits), digits, epochs=1, lr=0.05, batch_size=256, out=tmp_path, progress=False,
                config={"data": "digits"})
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=f"^{tmp_path} was made with lr=0.05, not 0.01: overwrite it"):
        fit(small_cnn(digits), digits, epochs=1, lr=0.01, batch_size=256, out=tmp_path, progress=False,
            config={"data": "digits"})
    with pytest.raises(ValueError, match="batch_size=256, not 128; data='digits', not 'other'"):
        fit(small_cnn(digits), digits, epochs=1, lr=0.05, out=tmp_path, progress=False, config={"data": "other"})
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == files  # nothing touched

    same = fit(small_cnn(digits, seed=5), digits, epochs=1, lr=0.05, batch_size=256, out=tmp_path,
               progress=False, config={"data": "digits"})  # finished: resumed, not trained again
    assert same.history == first.history
    replaced = fit(small_cnn(digits), digits, epochs=2, lr=0.01, batch_size=256, out=tmp_path, progress=False,
                   config={"data": "digits"}, overwrite=True)
    assert replaced.history["lr"] == [0.01, 0.01]
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["lr"], config["epochs"], config["momentum"], config["data"]) == (0.01, 2, 0.9, "digits")
    assert json.loads((tmp_path / "history.json").read_text())["lr"] == [0.01, 0.01]


def test_a_folder_in_training_is_refused_and_a_dead_trainers_lock_is_taken_over(digits, tmp_path):
    from regularizers.safe_io import RunLock

    with RunLock(tmp_path), pytest.raises(ValueError, match=f"is being trained by pid {os.getpid()}"):
        fit(small_cnn(digits), digits, epochs=1, out=tmp_path, progress=False)
    assert os.listdir(tmp_path) == []
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    (tmp_path / ".lock").write_text(json.dumps({"pid": child.pid, "host": socket.gethostname().replace(".", "_")}))
    fit(small_cnn(digits), digits, epochs=1, batch_size=256, out=tmp_path, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["checkpoints", "config.json", "data.pt", "history.json", "model.pt"]


@pytest.mark.parametrize("settings, message", [
    (dict(lr=float("nan")), "lr must be a finite number > 0, got nan"),
    (dict(lr=float("inf")), "lr must be a finite number > 0, got inf"),
    (dict(momentum=2.0), r"momentum must be in \[0, 1\), got 2.0"),
    (dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
    (dict(epochs=0), "epochs must be an integer >= 1, got 0"),
    (dict(weight_decay=-1.0), "weight_decay must be a finite number >= 0"),
    (dict(patience=0), "patience must be an integer >= 1"),
    (dict(schedule="step", schedule_options={"gamma": -1}), r"schedule option gamma must be a finite number in \(0, 1\]"),
    (dict(schedule="step", schedule_options={"gamma": 0}), "schedule option gamma must be"),
    (dict(schedule="step", schedule_options={"step_size": 0}), "schedule option step_size must be an integer >= 1"),
    (dict(schedule="multistep", schedule_options={"milestones": [-5, 0]}), "schedule option milestones must be"),
    (dict(schedule_options={"step": 3}), "unknown schedule option"),
])
def test_bad_settings_are_refused_before_anything_is_written(digits, tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        fit(small_cnn(digits), digits, out=tmp_path / "run", progress=False, **settings)
    assert not (tmp_path / "run").exists()


def test_bad_data_is_refused_before_anything_is_written(digits, tmp_path):
    import dataclasses

    cases = [
        (dataclasses.replace(digits, y_test=digits.y_test.clone().fill_(10)),
         f"{len(digits.y_test)} test labels outside 0..9"),
        (dataclasses.replace(digits, x_train=digits.x_train.clone().index_fill_(0, torch.tensor([0, 1]), float("nan"))),
         f"{2 * digits.x_train[0].numel()} non-finite input values in the train split"),
        (dataclasses.replace(digits, num_classes=12), "the model has 10 outputs but data 'digits' has 12 classes"),
        (dataclasses.replace(digits, y_train=digits.y_train.clone().fill_(3)),
         "every training label is 3; a classifier needs examples of at least two classes"),
    ]
    for data, message in cases:
        with pytest.raises(ValueError, match=message):
            fit(small_cnn(digits), data, out=tmp_path / "run", progress=False)
        assert not (tmp_path / "run").exists()


def test_resume_refuses_a_checkpoint_that_is_not_plain_data(digits, tmp_path):
    fit(small_cnn(digits), digits, epochs=1, batch_size=256, out=tmp_path, progress=False)
    torch.save({"model": {}, "hook": print}, tmp_path / "checkpoints" / "epoch_002.pt")  # a pickled function
    with pytest.raises(ValueError, match="epoch_002.pt: refused: it holds pickled Python objects"):
        fit(small_cnn(digits), digits, epochs=1, batch_size=256, out=tmp_path, progress=False)
    (tmp_path / "checkpoints" / "epoch_002.pt").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="epoch_002.pt: not a readable trainer checkpoint"):
        fit(small_cnn(digits), digits, epochs=1, batch_size=256, out=tmp_path, progress=False)


# ----------------------------------------------------------------------------- issue 20 item 4, issue 21
def digest(folder) -> dict:
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_run_of_1002_epochs_is_resumed_by_epoch_number_and_its_rerun_changes_nothing(tmp_path, monkeypatch):
    import numpy as np

    from landscape.trajectory import checkpoint_paths as trajectory_paths
    from regularizers.train import checkpoint_paths, train_run

    monkeypatch.setattr(os, "fsync", lambda fd: None)  # 3000 fsyncs of a loaded disk are not what is tested
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tiny.npz", x=rng.random((12, 1, 8, 8), dtype=np.float32), y=np.arange(12) % 3)
    settings = dict(model="mlp", model_options={"hidden": [4]}, data=str(tmp_path / "tiny.npz"), epochs=1002,
                    device="cpu", progress=False)
    train_run(tmp_path / "run", **settings)
    names = [p.name for p in checkpoint_paths(tmp_path / "run")]
    assert len(names) == 1002 and names[:2] == ["epoch_001.pt", "epoch_002.pt"]
    assert names[-4:] == ["epoch_999.pt", "epoch_1000.pt", "epoch_1001.pt", "epoch_1002.pt"]
    assert [p.name for p in trajectory_paths(tmp_path / "run")] == names
    before = digest(tmp_path / "run")
    result = train_run(tmp_path / "run", **settings)  # found finished: nothing is trained again
    assert digest(tmp_path / "run") == before
    assert result.history["epoch"] == list(range(1, 1003))


def test_checkpoint_paths_sort_by_epoch_number_and_skip_other_names(tmp_path):
    from regularizers.train import checkpoint_paths

    (tmp_path / "checkpoints").mkdir()
    for name in ("epoch_1000.pt", "epoch_999.pt", "epoch_10000.pt", "epoch_01.pt", "epoch_x.pt", "epoch_5.pt.bak"):
        (tmp_path / "checkpoints" / name).write_bytes(b"")
    assert [p.name for p in checkpoint_paths(tmp_path)] == ["epoch_01.pt", "epoch_999.pt", "epoch_1000.pt",
                                                           "epoch_10000.pt"]
    assert checkpoint_paths(tmp_path / "nowhere") == []


def test_train_run_and_the_command_write_the_same_config(tmp_path, monkeypatch):
    from regularizers.train import train_run

    monkeypatch.chdir(tmp_path)
    common = ["--model", "mlp", "--model-option", "hidden=[4]", "--epochs", "1", "--batch-size", "256", "--device",
              "cpu", "--quiet"]
    assert main(["train", *common, "--out", "cli"]) == 0
    train_run("py", model="mlp", model_options={"hidden": [4]}, epochs=1, batch_size=256, device="cpu",
              progress=False)
    assert (tmp_path / "py" / "config.json").read_text() == (tmp_path / "cli" / "config.json").read_text()
    assert json.loads((tmp_path / "py" / "config.json").read_text())["schedule_options"] == {
        "step_size": 30, "milestones": [], "gamma": 0.1, "t0": 10, "t_mult": 1}
    # and each resumes the other's run: the settings are the same
    train_run("cli", model="mlp", model_options={"hidden": [4]}, epochs=1, batch_size=256, device="cpu",
              progress=False)
    assert main(["train", *common, "--out", "py"]) == 0


def test_an_older_run_with_empty_schedule_options_is_resumed(tmp_path):
    from regularizers.train import train_run

    settings = dict(model="mlp", model_options={"hidden": [4]}, epochs=1, batch_size=256, device="cpu",
                    progress=False)
    train_run(tmp_path, **settings)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "schedule_options": {}}))  # as older versions wrote
    before = digest(tmp_path)
    train_run(tmp_path, **settings)
    assert digest(tmp_path) == before


@pytest.mark.parametrize("command", ["train", "plot", "demo"])
def test_every_option_has_help_text(command):
    from landscape.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    missing = [a.option_strings[0] for a in sub._actions if a.option_strings and not (a.help or "").strip()]
    assert missing == []
    if command == "train":
        text = " ".join(sub.format_help().split())
        assert ":KEY=VALUE" in text and "number of training epochs (the maximum with --patience) (default: 10)" in text
        assert "of training (default: 0)" in text and "weight decay coefficient (default: 0.0)" in text  # 0 is a default


def test_the_command_s_schedules_are_the_trainer_s():
    from landscape.commands import train as train_command
    from regularizers import train

    assert train_command.LR_SCHEDULES == train.LR_SCHEDULES


def test_fit_into_a_folder_refuses_a_model_its_class_cannot_rebuild_and_its_saved_data_is_read_anywhere(
        tmp_path, monkeypatch):
    from landscape.store import read_surface
    from regularizers.data import Dataset

    torch.manual_seed(0)
    inputs, targets = torch.randn(60, 1, 8, 8), torch.randint(0, 3, (60,))
    data = Dataset("mine", inputs, targets, inputs[:20], targets[:20], 3, ())
    model = load_model("cnn", num_classes=3, in_channels=1, channels=[4, 8])  # not the class's defaults
    with pytest.raises(ValueError, match="does not rebuild this model"):
        fit(model, data, epochs=1, out=tmp_path / "refused", progress=False)
    assert not (tmp_path / "refused").exists()
    fit(model, data, epochs=1, out=tmp_path / "run", progress=False,
        config={"model": "cnn", "model_options": {"channels": [4, 8]}})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # data.pt is the run's, not this folder's
    assert main(["surface", "--checkpoint", str(tmp_path / "run"), "--x=-1:1:3", "--quiet", "--surf_file", "s.h5"]) == 0
    with torch.no_grad():
        centre = torch.nn.functional.cross_entropy(model.eval()(inputs[:20]), targets[:20]).item()
    assert abs(read_surface("s.h5")["test_loss"][1] - centre) < 1e-5


def test_fit_names_the_data_form_it_takes():
    model = load_model("cnn", num_classes=3, in_channels=1, channels=[4, 8])
    with pytest.raises(TypeError, match="fit trains on a regularizers.data.Dataset, got a dict"):
        fit(model, {"train": (torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0]))}, epochs=1, progress=False)
