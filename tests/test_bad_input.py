"""Every bad input of issue 12, one table: exit status 2, exactly one line on stderr, no traceback,
and no file of the involved folders changed (every file hashed before and after). Also: a
checkpoint carrying a pickled payload is refused by every command that reads checkpoints (the
payload never runs), Ctrl-C exits 130 with one line, and a closed output pipe exits quietly."""
import contextlib
import hashlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from landscape.cli import main
from regularizers.safe_io import RunLock

LANDSCAPE = str(Path(sys.executable).with_name("landscape"))
TRAIN = ["--model", "cnn", "--model-option", "channels=[4,8]", "--data", "digits", "--epochs", "1",
         "--batch-size", "256", "--device", "cpu", "--quiet"]
SURFACE = ["--checkpoint", "{root}/run", "--x=-1:1:3", "--y=-1:1:3", "--batch-size", "500", "--device", "cpu",
           "--quiet", "--dir_file", "{root}/dir.h5"]


class Payload:
    """Pickled, it becomes a call of ``open(marker, "w")``: loading it unsafely creates the marker."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A run folder, its 3x3 surface, an unfinished copy, bad data files and planted checkpoints."""
    root = tmp_path_factory.mktemp("bad_input")
    assert main(["train", *TRAIN, "--out", str(root / "run")]) == 0
    assert main(["surface", *[a.format(root=root) for a in SURFACE], "--surf_file", str(root / "surface.h5")]) == 0
    rng = np.random.default_rng(0)
    np.savez(root / "negative_labels.npz", x=rng.random((40, 4), dtype=np.float32), y=np.r_[np.zeros(39, int), -1])
    x = rng.random((40, 4), dtype=np.float32)
    x[3, 1] = np.nan
    np.savez(root / "nan_pixel.npz", x=x, y=np.arange(40) % 2)
    (root / "junk.h5").write_bytes(b"not an hdf5 file" * 16)
    (root / "figures").mkdir()
    np.savez(root / "one_class.npz", x=rng.random((40, 1, 8, 8), dtype=np.float32), y=np.zeros(40, int))
    np.savez(root / "flat.npz", x=rng.random((40, 64), dtype=np.float32), y=np.arange(40) % 2)
    assert main(["surface", *[a.format(root=root) for a in SURFACE if not a.startswith("--y=")], "--surf_file",
                 str(root / "inf_line.h5")]) == 0
    with h5py.File(root / "inf_line.h5", "r+") as f:  # a diverged model: +inf loss everywhere
        f["train_loss"][...] = np.inf
        f["test_loss"][...] = np.inf
    shutil.copy(root / "surface.h5", root / "inf_plane.h5")
    with h5py.File(root / "inf_plane.h5", "r+") as f:
        f["train_loss"][...] = np.inf

    state = torch.load(root / "run" / "model.pt", weights_only=True)
    marker = root / "PAYLOAD_RAN"
    evil = root / "evil"  # a run folder whose model and checkpoint carry the payload
    (evil / "checkpoints").mkdir(parents=True)
    shutil.copy(root / "run" / "config.json", evil / "config.json")
    torch.save({**state, "payload": Payload(marker)}, evil / "model.pt")
    torch.save({"model": state, "payload": Payload(marker)}, evil / "checkpoints" / "epoch_001.pt")
    diverged = root / "diverged"  # a run whose model.pt and last checkpoint hold a NaN weight
    shutil.copytree(root / "run", diverged)
    name = next(iter(state))
    torch.save({**state, name: state[name].clone().fill_(math.nan)}, diverged / "model.pt")
    checkpoint = torch.load(diverged / "checkpoints" / "epoch_001.pt", weights_only=True)
    checkpoint["model"][name][0] = math.inf
    torch.save(checkpoint, diverged / "checkpoints" / "epoch_001.pt")
    resumed = root / "resume"  # a run whose latest checkpoint carries the payload
    shutil.copytree(root / "run", resumed)
    checkpoint = torch.load(resumed / "checkpoints" / "epoch_001.pt", weights_only=True)
    torch.save({**checkpoint, "epoch": 0, "payload": Payload(marker)}, resumed / "checkpoints" / "epoch_002.pt")
    return root


def digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def read_only(path: Path):
    """``path`` (a file or a folder and all in it) cannot be changed, even by root: chmod for
    other users, ``chattr +i`` (immutable) for root."""
    if os.geteuid() != 0:
        paths = [path, *path.rglob("*")] if path.is_dir() else [path]
        modes = {p: p.stat().st_mode for p in paths}
        for p in paths:
            p.chmod(modes[p] & 0o555)
        try:
            yield
        finally:
            for p in paths:
                p.chmod(modes[p])
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "-R", "+i", str(path)],
                                                        capture_output=True).returncode:
        pytest.skip("running as root on a file system without chattr +i: cannot make a read-only folder")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-R", "-i", str(path)], check=True)


@contextlib.contextmanager
def opened_elsewhere(path: Path):
    """``path`` held open by another process (HDF5 file locking; a reader, which changes no byte)."""
    holder = subprocess.Popen([sys.executable, "-c", "import h5py, sys, time; f = h5py.File(sys.argv[1], 'r'); "
                               "print('open', flush=True); time.sleep(120)", str(path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        yield
    finally:
        holder.kill()
        holder.wait()


@contextlib.contextmanager
def trained_elsewhere(path: Path):
    """The run folder ``path`` locked by a live process (this one, as if it trained there)."""
    with RunLock(path):
        yield


# (id, command line, words of the message, folders hashed, situation)
CASES = [
    ("train other lr", ["train", *TRAIN, "--out", "{root}/run", "--lr", "0.01"],
     "run was made with lr=0.05, not 0.01", ["run"], None),
    ("train other model", ["train", "--model", "mlp", *TRAIN[4:], "--out", "{root}/run"],
     "made with model='cnn', not 'mlp'", ["run"], None),
    ("train other data", ["train", *TRAIN, "--data-seed", "1", "--out", "{root}/run"],
     "data_seed=0, not 1", ["run"], None),
    ("train lr nan", ["train", *TRAIN, "--lr", "nan", "--out", "{root}/run"],
     "argument --lr: 'nan' is not a finite number", ["run"], None),
    ("train lr inf", ["train", *TRAIN, "--lr", "inf", "--out", "{root}/run"],
     "argument --lr: 'inf' is not a finite number", ["run"], None),
    ("train momentum 2", ["train", *TRAIN, "--momentum", "2", "--out", "{root}/run"], "argument --momentum: 2 is not < 1",
     ["run"], None),
    ("train batch size 0", ["train", *TRAIN, "--batch-size", "0", "--out", "{root}/run"],
     "argument --batch-size: 0 is not >= 1", ["run"], None),
    # issue 20, item 6: schedule options, seeds and fractions checked when parsed, the flag named
    ("train gamma -1", ["train", *TRAIN, "--schedule", "step", "--gamma", "-1", "--out", "{root}/run"],
     "argument --gamma: -1 is not > 0", ["run"], None),
    ("train gamma 0", ["train", *TRAIN, "--schedule", "step", "--gamma", "0", "--out", "{root}/run"],
     "argument --gamma: 0 is not > 0", ["run"], None),
    ("train gamma 2", ["train", *TRAIN, "--schedule", "step", "--gamma", "2", "--out", "{root}/run"],
     "argument --gamma: 2 is not <= 1", ["run"], None),
    ("train step size 0", ["train", *TRAIN, "--schedule", "step", "--step-size", "0", "--out", "{root}/run"],
     "argument --step-size: 0 is not >= 1", ["run"], None),
    ("train step size -1", ["train", *TRAIN, "--schedule", "step", "--step-size", "-1", "--out", "{root}/run"],
     "argument --step-size: -1 is not >= 1", ["run"], None),
    ("train milestones -5 0", ["train", *TRAIN, "--schedule", "multistep", "--milestones", "-5", "0", "--out",
                               "{root}/run"], "argument --milestones: -5 is not >= 1", ["run"], None),
    ("train seed 1e23", ["train", *TRAIN, "--seed", "1e23", "--out", "{root}/run"],
     "argument --seed: 1e23 is not <= 4294967295", ["run"], None),
    ("train seed 0.5", ["train", *TRAIN, "--seed", "0.5", "--out", "{root}/run"],
     "argument --seed: '0.5' is not an integer", ["run"], None),
    ("train data seed -1", ["train", *TRAIN, "--data-seed", "-1", "--out", "{root}/run"],
     "argument --data-seed: -1 is not >= 0", ["run"], None),
    ("train test fraction 1.5", ["train", *TRAIN, "--test-fraction", "1.5", "--out", "{root}/run"],
     "argument --test-fraction: 1.5 is not < 1", ["run"], None),
    ("train epochs 0", ["train", *TRAIN, "--epochs", "0", "--out", "{root}/run"], "argument --epochs: 0 is not >= 1",
     ["run"], None),
    ("train single class", ["train", "--model", "mlp", "--data", "{root}/one_class.npz", "--out", "{root}/run",
                            "--quiet"], "one_class.npz: every label is 0: a classifier needs at least 2 classes",
     ["run"], None),
    ("train cnn on flat inputs", ["train", "--model", "cnn", "--data", "{root}/flat.npz", "--out", "{root}/run",
                                  "--quiet"],
     "model 'cnn' takes images of shape (n, C, H, W); the data's inputs have shape (n, 64)",
     ["run"], None),
    ("train resumes a NaN checkpoint", ["train", *TRAIN, "--out", "{root}/diverged"],
     "epoch_001.pt: features.0.weight holds 9 non-finite values (NaN or inf) of 36", ["diverged"], None),
    ("surface data seed -1", ["surface", *SURFACE, "--data-seed", "-1", "--surf_file", "{root}/s.h5"],
     "argument --data-seed: -1 is not >= 0", ["."], None),
    ("surface NaN weights", ["surface", *SURFACE[2:], "--checkpoint", "{root}/diverged", "--surf_file",
                             "{root}/nan.h5"], "non-finite values (NaN or inf)", ["."], None),
    ("plot vmin above vmax", ["plot", "{root}/surface.h5", "--vmin", "5", "--vmax", "1", "--out", "{root}/figures"],
     "--vmin 5 must be below --vmax 1", ["."], None),
    ("plot vmin nan", ["plot", "{root}/surface.h5", "--vmin", "nan", "--out", "{root}/figures"],
     "argument --vmin: 'nan' is not a finite number", ["."], None),
    ("plot vlevel 0", ["plot", "{root}/surface.h5", "--vlevel", "0", "--out", "{root}/figures"],
     "argument --vlevel: 0 is not > 0", ["."], None),
    ("plot inf loss 1D", ["plot", "{root}/inf_line.h5", "--out", "{root}/figures"],
     "train_loss has no finite value to plot", ["."], None),
    ("plot inf loss 2D", ["plot", "{root}/inf_plane.h5", "--out", "{root}/figures"], "no valid values to plot",
     ["."], None),
    ("demo epochs 0", ["demo", "--epochs", "0", "--out", "{root}/demo"], "argument --epochs: 0 is not >= 1", ["."], None),
    ("demo seed -1", ["demo", "--seed", "-1", "--out", "{root}/demo"], "argument --seed: -1 is not >= 0", ["."], None),
    ("demo points 1", ["demo", "--points", "1", "--out", "{root}/demo"], "argument --points: 1 is not >= 3", ["."],
     None),
    ("train negative coefficient", ["train", *TRAIN, "--reg", "mma:-1", "--out", "{root}/run"],
     "coefficient must be a finite number >= 0", ["run"], None),
    ("train bogus device", ["train", *TRAIN, "--device", "bogus", "--out", "{root}/run"], "bogus", ["run"], None),
    ("train negative labels", ["train", "--model", "mlp", "--data", "{root}/negative_labels.npz", "--out", "{root}/run",
                               "--quiet"], "negative", ["run"], None),
    ("train NaN pixel", ["train", "--model", "mlp", "--data", "{root}/nan_pixel.npz", "--out", "{root}/run", "--quiet"],
     "non-finite", ["run"], None),
    ("train read-only out", ["train", *TRAIN, "--out", "{root}/run"], "cannot write", ["run"], "read_only:run"),
    ("train into a folder in use", ["train", *TRAIN, "--out", "{root}/run"], f"is being trained by pid {os.getpid()}",
     ["run"], "trained_elsewhere:run"),
    ("train resumes a pickled checkpoint", ["train", *TRAIN, "--out", "{root}/resume"],
     "epoch_002.pt: refused", ["resume"], None),
    # 10**12 points (about 45 TiB) exceed any machine; 10**9 (45.6 GiB) is refused only where less is available
    ("surface huge grid", ["surface", *SURFACE, "--x=-1:1:1000000000000", "--surf_file", "{root}/huge.h5"],
     "3,000,000,000,000 points needs about", ["."], None),
    ("surface negative labels", ["surface", *SURFACE, "--data", "{root}/negative_labels.npz", "--surf_file",
                                 "{root}/labels.h5"], "negative", ["."], None),
    ("surface bogus device", ["surface", *SURFACE, "--device", "bogus", "--surf_file", "{root}/d.h5"], "bogus", ["."],
     None),
    ("surface file in use", ["surface", *SURFACE, "--surf_file", "{root}/surface.h5"],
     "locked by another process", ["."], "opened_elsewhere:surface.h5"),
    ("surface file read-only", ["surface", *SURFACE, "--surf_file", "{root}/surface.h5"],
     "surface.h5: permission denied", ["."], "read_only:surface.h5"),
    ("surface file not HDF5", ["surface", *SURFACE, "--surf_file", "{root}/junk.h5"],
     "junk.h5: not a readable HDF5 file (file signature not found)", ["."], None),
    ("surface pickled checkpoint", ["surface", *SURFACE[2:], "--checkpoint", "{root}/evil", "--surf_file",
                                    "{root}/evil.h5"], "evil/model.pt", ["."], None),
    ("interpolate pickled checkpoint", ["interpolate", "--checkpoint", "{root}/run", "--model_file2",
                                        "{root}/evil/model.pt", "--x=0:1:3", "--quiet", "--device", "cpu"],
     "evil/model.pt", ["."], None),
    ("trajectory pickled checkpoint", ["trajectory", "{root}/evil"], "evil/", ["."], None),
    ("diagnose pickled checkpoint", ["diagnose", "{root}/evil", "--quick", "--quiet", "--device", "cpu"],
     "evil/model.pt", ["."], None),
    ("plot read-only out", ["plot", "{root}/surface.h5", "--out", "{root}/figures", "--kinds", "contour"],
     "cannot write", ["."], "read_only:figures"),
    ("plot not HDF5", ["plot", "{root}/junk.h5"], "not a readable HDF5 file", ["."], None),
    ("diagnose read-only out", ["diagnose", "{root}/run", "--quick", "--no-surface", "--quiet", "--device", "cpu",
                                "--out", "{root}/figures"], "figures", ["."], "read_only:figures"),
]


@pytest.mark.parametrize("argv, words, folders, situation", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(root, capfd, argv, words, folders, situation):
    argv = [a.format(root=root) for a in argv]
    before = {f: digest(root / f) for f in folders}
    capfd.readouterr()
    context = contextlib.nullcontext()
    if situation:
        kind, _, name = situation.partition(":")
        context = {"read_only": read_only, "opened_elsewhere": opened_elsewhere,
                   "trained_elsewhere": trained_elsewhere}[kind](root / name)
    with context:
        code = main(argv)
        err = capfd.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert words in err, err
    assert err.startswith(f"landscape {argv[0]}: error: "), err
    assert {f: digest(root / f) for f in folders} == before
    assert not (root / "PAYLOAD_RAN").exists()


def test_the_planted_payload_would_run_if_loaded_unsafely(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"payload": Payload(marker)}, tmp_path / "p.pt")
    torch.load(tmp_path / "p.pt", weights_only=False)
    assert marker.exists()


def test_unfinished_and_nan_surfaces_are_plotted_with_a_warning(root, capfd):
    unfinished = root / "unfinished.h5"
    shutil.copy(root / "surface.h5", unfinished)
    with h5py.File(unfinished, "r+") as f:
        done = f["done"][()]
        done[0, :2] = 0
        f["done"][...] = done
        loss = f["train_loss"][()]
        loss[2, 2] = np.nan
        f["train_loss"][...] = loss
    capfd.readouterr()
    assert main(["plot", str(unfinished), "--kinds", "heatmap", "--out", str(root / "plots")]) == 0
    err = capfd.readouterr().err.strip()
    assert err == (f"landscape plot: warning: {unfinished}: 2 of 9 points are not computed yet (rerun the same "
                   "`landscape surface` command to finish them); 1 computed points are NaN (the loss diverged "
                   "there); they are left blank")
    assert sorted(p.name for p in (root / "plots").iterdir()) == ["unfinished_train_loss_heatmap.png"]


def _train_in_background(out: Path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [LANDSCAPE, "train", *[a for a in TRAIN if a != "--quiet"], "--epochs", "50", "--out", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_ctrl_c_exits_130_with_one_line_and_leaves_a_resumable_run(tmp_path):
    out = tmp_path / "run"
    child = _train_in_background(out)
    assert child.stdout.readline().startswith("epoch   1/50")
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130
    assert err.strip().splitlines() == ["landscape train: interrupted; rerun the same command to resume after "
                                        "the last finished epoch"], err
    assert (out / "checkpoints" / "epoch_001.pt").is_file()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    assert json.loads((out / "config.json").read_text())["epochs"] == 50


def test_a_closed_output_pipe_exits_quietly(tmp_path):
    out = tmp_path / "run"
    child = _train_in_background(out)
    assert child.stdout.readline().startswith("epoch   1/50")
    child.stdout.close()  # as `| head -1` does
    child.wait(timeout=120)
    assert child.returncode == 141
    assert child.stderr.read() == ""
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


# ----------------------------------------------------------------------------- issue 20: the run's own data
def _tiny_npz(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=rng.random((48, 1, 8, 8), dtype=np.float32), y=np.arange(48) % 3)


@pytest.fixture
def relative_run(tmp_path, monkeypatch):
    """``proj/run`` trained from ``proj`` on ``--data data/mine.npz`` (relative); the current
    folder is then ``elsewhere``, which holds other data under the same relative name."""
    proj, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    _tiny_npz(proj / "data" / "mine.npz", 0)
    _tiny_npz(elsewhere / "data" / "mine.npz", 1)
    monkeypatch.chdir(proj)
    assert main(["train", "--model", "mlp", "--model-option", "hidden=[4]", "--data", "data/mine.npz", "--epochs", "1",
                 "--device", "cpu", "--quiet", "--out", "run"]) == 0
    monkeypatch.chdir(elsewhere)
    return proj / "run", elsewhere


EVALUATIONS = {  # every command that rebuilds a run's data, writing into the current folder
    "surface": ["surface", "--checkpoint", "{run}", "--x=-1:1:3", "--batch-size", "500", "--device", "cpu", "--quiet",
                "--surf_file", "s.h5", "--dir_file", "d.h5"],
    "interpolate": ["interpolate", "--checkpoint", "{run}", "--model_file2", "{run}/model.pt", "--x=0:1:3",
                    "--batch-size", "500", "--device", "cpu", "--quiet", "--surf_file", "i.h5"],
    "trajectory": ["trajectory", "{run}", "--out", "traj", "--batch-size", "500", "--device", "cpu", "--quiet"],
    "diagnose": ["diagnose", "{run}", "--quick", "--no-surface", "--quiet", "--device", "cpu", "--out", "diag"],
}


def test_a_run_records_its_data_by_absolute_path_and_hash(relative_run):
    run, _ = relative_run
    config = json.loads((run / "config.json").read_text())
    data = run.parent / "data" / "mine.npz"
    assert config["data"] == str(data)
    assert config["data_file_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()


def test_a_run_evaluated_from_another_folder_uses_its_own_data(relative_run):
    run, elsewhere = relative_run
    assert main([a.format(run=run) for a in EVALUATIONS["surface"]]) == 0
    from regularizers.models import load_model
    model = load_model("mlp", num_classes=3, in_channels=1, checkpoint=run / "model.pt", hidden=[4]).eval()
    with np.load(run.parent / "data" / "mine.npz") as z:
        inputs, targets = torch.from_numpy(z["x"]), torch.from_numpy(z["y"])
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(model(inputs), targets).item()
    with h5py.File(elsewhere / "s.h5", "r") as f:
        assert f["train_loss"][1] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("command", list(EVALUATIONS))
@pytest.mark.parametrize("case", ["older run with a relative path", "data file replaced"])
def test_other_data_under_the_run_s_data_name_is_refused(relative_run, capfd, command, case):
    run, elsewhere = relative_run
    if case == "older run with a relative path":  # as written before paths were made absolute
        config = json.loads((run / "config.json").read_text())
        config["data"] = "data/mine.npz"
        del config["data_file_sha256"]
        (run / "config.json").write_text(json.dumps(config))
        words = f"run {run} names its data by the relative path 'data/mine.npz'"
    else:
        _tiny_npz(run.parent / "data" / "mine.npz", 2)
        words = f"{run.parent / 'data' / 'mine.npz'} is not the data run"
    before = digest(run.parent), digest(elsewhere)
    capfd.readouterr()
    assert main([a.format(run=run) for a in EVALUATIONS[command]]) == 2
    err = capfd.readouterr().err
    assert len(err.strip().splitlines()) == 1 and words in err, err
    assert (digest(run.parent), digest(elsewhere)) == before


def test_an_older_run_with_its_data_inside_the_run_folder_uses_that_file(relative_run):
    run, elsewhere = relative_run
    config = json.loads((run / "config.json").read_text())
    config["data"] = "data/mine.npz"
    del config["data_file_sha256"]
    (run / "config.json").write_text(json.dumps(config))
    shutil.copytree(run.parent / "data", run / "data")
    from regularizers.train import load_run
    _, data, _ = load_run(run)
    with np.load(run.parent / "data" / "mine.npz") as z:
        assert torch.equal(data.x_train, torch.from_numpy(z["x"]))


# ----------------------------------------------------------------------------- issue 20: leftovers
def test_temporaries_of_killed_writers_are_removed_by_the_next_command_writing_there(root, tmp_path):
    figures = tmp_path / "figures"
    figures.mkdir()
    host = socket.gethostname().replace(".", "_") or "localhost"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [figures / f".surface_train_loss_contour.png.{host}.{dead.pid}.tmp",  # what a killed plot leaves
             figures / f".report.html.{host}.{dead.pid}.tmp"]                       # and a killed diagnose
    live = figures / f".other.png.{host}.{os.getpid()}.tmp"  # a writer still running: kept
    for path in stale + [live]:
        path.write_bytes(b"partial")
    assert main(["plot", str(root / "surface.h5"), "--kinds", "heatmap", "--out", str(figures)]) == 0
    assert sorted(p.name for p in figures.iterdir()) == [live.name, "surface_train_loss_heatmap.png"]


# ----------------------------------------------------------------------------- issue 20: full disk in any library
def test_a_full_disk_reported_by_any_library_is_one_line_exit_2(monkeypatch, capfd, tmp_path):
    from landscape.commands import plot as plot_command

    def full(args):
        try:
            raise OSError(28, "No space left on device")
        except OSError as err:
            raise RuntimeError("Can't write data (file write failed)") from err  # as h5py and torch wrap it
    monkeypatch.setattr(plot_command, "run", full)
    capfd.readouterr()
    assert main(["plot", str(tmp_path / "any.h5")]) == 2
    err = capfd.readouterr().err
    assert err.startswith("landscape plot: error: no space left on device") and len(err.strip().splitlines()) == 1, err


def test_the_run_s_data_named_by_another_path_is_checked_too(relative_run, capfd):
    run, elsewhere = relative_run
    _tiny_npz(run.parent / "data" / "mine.npz", 2)  # replaced in place after training
    before = digest(elsewhere)
    capfd.readouterr()
    argv = [a.format(run=run) for a in EVALUATIONS["surface"]] + ["--data", "../proj/data/./mine.npz"]
    assert main(argv) == 2
    err = capfd.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "is not the data run" in err, err
    assert digest(elsewhere) == before
