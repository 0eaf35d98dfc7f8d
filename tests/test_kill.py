"""Nothing lost: `landscape train` and `landscape surface` killed (SIGKILL) at many instants --
inside atomic writes, during HDF5 file creation, between a chunk's values and its done marks --
and rerun each time with the same command finish with the results of an uninterrupted run.

The instants are chosen with the test-only switch LANDSCAPE_KILL_AT=LABEL:N of
:mod:`regularizers.safe_io`. Each step of a chain starts from what the killed step before it left.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from landscape.cli import main
from landscape.grid import make_grid
from landscape.store import SurfaceWriter, check_surface, create_surface, read_surface
from regularizers.safe_io import RunLock, atomic_path, atomic_write_text, file_sha256, remove_stale_temps, temp_path

LANDSCAPE = str(Path(sys.executable).with_name("landscape"))
TRAIN = ["train", "--model", "cnn", "--model-option", "channels=[4,8]", "--data", "digits", "--epochs", "3",
         "--batch-size", "256", "--device", "cpu", "--quiet"]
# A fixed batch size: the default one is timed per process, and values depend on it by float rounding.
SURFACE = ["--x=-1:1:5", "--y=-1:1:5", "--batch-size", "500", "--device", "cpu", "--quiet"]
VALUES = ("train_loss", "train_acc", "test_loss", "test_acc", "done")


def landscape(args, kill_at=None):
    """Run the venv's `landscape` with LANDSCAPE_KILL_AT=kill_at; returns the exit status."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    env.pop("LANDSCAPE_KILL_AT", None)
    if kill_at:
        env["LANDSCAPE_KILL_AT"] = kill_at
    done = subprocess.run([LANDSCAPE, *map(str, args)], env=env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def leftovers(folder: Path) -> list:
    """Temporary files of killed writers and lock files anywhere under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*") if p.name.endswith(".tmp") or p.name == ".lock")


def surface_arrays(path) -> dict:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in VALUES}


def direction_tensors(path) -> list:
    with h5py.File(path, "r") as f:
        return [f[f"{a}direction"][str(i)][()] for a in "xy" for i in range(len(f[f"{a}direction"]))]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted training run and 5x5 surface, made in this process."""
    root = tmp_path_factory.mktemp("reference")
    assert main([*TRAIN, "--out", str(root / "run")]) == 0
    assert main(["surface", "--checkpoint", str(root / "run"), *SURFACE, "--dir_file", str(root / "dir.h5"),
                 "--surf_file", str(root / "surf.h5")]) == 0
    return root


def test_train_killed_at_many_instants_resumes_to_the_uninterrupted_run(reference, tmp_path):
    run = tmp_path / "run"
    chain = [
        "atomic:written:1",   # config.json complete under its temporary name: nothing is in place
        "atomic:open:2",      # epoch 1's checkpoint file created, still empty
        "atomic:written:2",   # epoch 1 checkpointed; history.json complete but not renamed
        "atomic:replaced:3",  # epochs 2 and 3 checkpointed, the folder not yet synced
        "atomic:written:1",   # model.pt complete under its temporary name
    ]
    for kill_at in chain:
        assert landscape([*TRAIN, "--out", run], kill_at) == -signal.SIGKILL, kill_at
    assert landscape([*TRAIN, "--out", run]) == 0

    ref = reference / "run"
    history, expected = (json.loads((d / "history.json").read_text()) for d in (run, ref))
    assert history.keys() == expected.keys()
    for key in history.keys() - {"seconds"}:  # wall time differs
        assert history[key] == expected[key], key
    model, want = (torch.load(d / "model.pt", weights_only=True) for d in (run, ref))
    assert model.keys() == want.keys() and all(torch.equal(model[k], want[k]) for k in want)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_001.pt", "epoch_002.pt", "epoch_003.pt"]
    assert leftovers(run) == []


def test_surface_killed_at_many_instants_resumes_to_the_uninterrupted_surface(reference, tmp_path):
    dir_file, surf_file = tmp_path / "dir.h5", tmp_path / "surf.h5"
    args = ["surface", "--checkpoint", reference / "run", *SURFACE, "--dir_file", dir_file, "--surf_file", surf_file]
    chain = [
        ("h5:partial:1", False),      # the direction file half made under its temporary name
        ("h5:written:2", False),      # directions in place; the new surface file complete, not renamed
        ("surface:values:3", True),   # two points done; the third's values written, not marked done
        ("surface:done:15", True),    # 15 more points done
    ]
    for kill_at, surface_exists in chain:
        assert landscape(args, kill_at) == -signal.SIGKILL, kill_at
        assert surf_file.exists() == surface_exists, kill_at
    with h5py.File(surf_file, "r") as f:
        assert int(f["done"][()].sum()) == 17  # what the kills left: 2 + 15 points
    assert landscape(args) == 0

    got, want = surface_arrays(surf_file), surface_arrays(reference / "surf.h5")
    for key in VALUES:
        assert np.array_equal(got[key], want[key], equal_nan=True), key
    assert int(got["done"].sum()) == 25
    for a, b in zip(direction_tensors(dir_file), direction_tensors(reference / "dir.h5")):
        assert np.array_equal(a, b)
    assert leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- the building blocks
def test_a_failed_atomic_write_leaves_the_old_file(tmp_path):
    path = atomic_write_text(tmp_path / "a.json", "old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half of the new cont")
        raise RuntimeError("writer failed")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["a.json"]


def test_only_temporaries_of_dead_writers_are_removed(tmp_path):
    mine = temp_path(tmp_path / "a.h5")
    dead = mine.with_name(mine.name.replace(f".{os.getpid()}.tmp", f".{dead_pid()}.tmp"))
    other_host = tmp_path / ".a.h5.elsewhere.1.tmp"
    for path in (mine, dead, other_host):
        path.write_bytes(b"partial")
    assert remove_stale_temps(tmp_path, "b.h5") == 0
    assert remove_stale_temps(tmp_path) == 1
    assert sorted(os.listdir(tmp_path)) == sorted([mine.name, other_host.name])


def test_run_lock_refuses_a_live_holder_and_takes_over_a_dead_one(tmp_path):
    with RunLock(tmp_path) as lock:
        held = json.loads((tmp_path / ".lock").read_text())
        assert held["pid"] == os.getpid()
        with pytest.raises(ValueError, match=f"is being trained by pid {os.getpid()}"):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / ".lock").exists() and not lock.held
    (tmp_path / ".lock").write_text(json.dumps({**held, "pid": dead_pid()}))
    with RunLock(tmp_path):
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- issue 20: full disk, Ctrl-C under MPI
@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs (skipped where mounting is not allowed); yields its folder, unmounted after."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                                           capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_during_training_is_one_line_and_the_run_resumes_once_space_is_back(small_disk, tmp_path, capfd):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tiny.npz", x=rng.random((12, 1, 8, 8), dtype=np.float32), y=np.arange(12) % 3)
    train = ["train", "--model", "mlp", "--model-option", "hidden=[4]", "--data", str(tmp_path / "tiny.npz"),
             "--epochs", "60", "--device", "cpu", "--quiet"]
    assert main([*train, "--out", str(tmp_path / "reference")]) == 0
    run = small_disk / "run"
    capfd.readouterr()
    assert main([*train, "--out", str(run)]) == 2  # 60 checkpoints need about 600 KiB
    err = capfd.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("landscape train: error: cannot write ")
    assert err.strip().endswith(": no space left on device"), err
    saved = sorted((run / "checkpoints").iterdir())
    last = torch.load(saved[-1], weights_only=True)  # the last complete checkpoint is readable
    assert 0 < last["epoch"] < 60 and len(saved) == last["epoch"]
    assert leftovers(small_disk) == []
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_disk)], check=True)  # space is back
    assert main([*train, "--out", str(run)]) == 0
    for name in ("model.pt", f"checkpoints/epoch_{last['epoch']:03d}.pt"):
        got, want = (torch.load(d / name, weights_only=True) for d in (run, tmp_path / "reference"))
        got, want = got.get("model", got), want.get("model", want)
        assert all(torch.equal(got[k], want[k]) for k in want), name
    history, expected = (json.loads((d / "history.json").read_text()) for d in (run, tmp_path / "reference"))
    assert {k: v for k, v in history.items() if k != "seconds"} == {k: v for k, v in expected.items() if k != "seconds"}


MPIEXEC = Path(sys.executable).with_name("mpiexec")


@pytest.mark.skipif(not MPIEXEC.exists(), reason="needs mpiexec in the venv")
def test_ctrl_c_under_mpi_exits_130_with_one_line(reference, tmp_path):
    pytest.importorskip("mpi4py")
    surf_file = tmp_path / "surf.h5"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [str(MPIEXEC), "-n", "2", LANDSCAPE, "surface", "--checkpoint", str(reference / "run"), "--x=-1:1:101",
            "--y=-1:1:101", "--batch-size", "500", "--device", "cpu", "--quiet", "--surf_file", str(surf_file),
            "--dir_file", str(tmp_path / "dir.h5")]
    job = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for _ in range(600):  # until points are being computed
            if surf_file.exists() or job.poll() is not None:
                break
            time.sleep(0.1)
        time.sleep(2.0)
        job.send_signal(signal.SIGINT)
        _, err = job.communicate(timeout=120)
    finally:
        job.kill()
    assert job.returncode == 130, err
    lines = [line for line in err.splitlines() if line.startswith("landscape surface:")]
    assert lines == ["landscape surface: interrupted; rerun the same command to compute only the missing points"], err
    assert "Traceback" not in err
    for _ in range(100):  # the aborted ranks may still be exiting, holding the file's lock
        try:
            with h5py.File(surf_file, "r") as f:  # readable, unfinished: a rerun computes the rest
                done = int(f["done"][()].sum())
            break
        except BlockingIOError:
            time.sleep(0.1)
    assert 0 < done < 101 * 101
# ----------------------------------------------------------------------------- a full disk
def fill(folder: Path, leave: int) -> Path:
    """A file taking all but ``leave`` bytes of ``folder``'s file system."""
    stats = os.statvfs(folder)
    filler = folder / "filler"
    with open(filler, "ab") as f:
        f.write(b"\0" * max(0, stats.f_bavail * stats.f_frsize - leave))
    return filler


def landscape_output(args, kill_at=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    env.pop("LANDSCAPE_KILL_AT", None)
    if kill_at:
        env["LANDSCAPE_KILL_AT"] = kill_at
    return subprocess.run([LANDSCAPE, *map(str, args)], env=env, capture_output=True, text=True, timeout=300)


def test_a_full_disk_is_one_line_and_the_surface_resumes_once_space_is_back(reference, small_disk):
    dir_file, surf_file = small_disk / "dir.h5", small_disk / "surf.h5"
    args = ["surface", "--checkpoint", reference / "run", *SURFACE, "--dir_file", dir_file, "--surf_file", surf_file]
    inputs = {p: file_sha256(p) for p in (reference / "run" / "model.pt", reference / "surf.h5", reference / "dir.h5")}

    def refused(step):
        done = landscape_output(args)
        assert done.returncode == 2, (step, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, (step, done.stderr)
        assert "no space left on device" in done.stderr, (step, done.stderr)
        assert leftovers(small_disk) == [], step

    filler = fill(small_disk, leave=4096)  # not even the direction file fits
    refused("direction file")
    assert not dir_file.exists() and not surf_file.exists()
    filler.unlink()
    filler = fill(small_disk, leave=28 * 1024)  # the direction file (about 20 KiB) fits, the surface does not
    refused("surface file")
    assert dir_file.exists() and not surf_file.exists()
    filler.unlink()
    # killed after 10 points, then resumed on a disk with no byte left: the file stays readable
    assert landscape(args, "surface:done:10") == -signal.SIGKILL
    assert int(read_surface(surf_file).done.sum()) == 10
    filler = fill(small_disk, leave=0)
    done = landscape_output(args)
    assert "Traceback" not in done.stderr and done.returncode in (0, 2), done.stderr
    assert read_surface(surf_file).done.sum() >= 10  # the last complete state, readable
    filler.unlink()
    assert landscape(args) == 0  # space is back: finishes
    got, want = surface_arrays(surf_file), surface_arrays(reference / "surf.h5")
    for key in VALUES:
        assert np.array_equal(got[key], want[key], equal_nan=True), key
    assert leftovers(small_disk) == []
    assert {p: file_sha256(p) for p in inputs} == inputs


def test_a_full_disk_during_a_write_keeps_the_finished_points(tmp_path, monkeypatch):
    """A write that fails (as on a full disk) is one line naming the file; the points finished
    before it are kept, and the file is resumable."""
    grid = make_grid("0:1:4")
    create_surface(tmp_path / "s.h5", grid=grid, keys=["train_loss"], attrs={}, batch_size=8)
    with SurfaceWriter(tmp_path / "s.h5", ["train_loss"]) as write:
        write([0, 1], np.array([[1.0], [2.0]]))

        def full(*args, **kwargs):
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(h5py.File, "flush", full)
        with pytest.raises(ValueError, match=r"s.h5: writing computed points failed \(no space left on device\)"):
            write([2], np.array([[3.0]]))
        monkeypatch.undo()
    surface = read_surface(tmp_path / "s.h5")
    assert surface.done.tolist() == [True, True, False, False] and surface.attrs["batch_size"] == 8
    np.testing.assert_array_equal(surface["train_loss"][:2], [1.0, 2.0])
    assert check_surface(tmp_path / "s.h5", grid=grid, keys=["train_loss"], attrs={})[0].tolist() == [2, 3]


def test_a_read_only_file_system_is_named_as_such(small_disk):
    create_surface(small_disk / "s.h5", grid=make_grid("0:1:2"), keys=["train_loss"], attrs={})
    assert subprocess.run(["mount", "-o", "remount,ro", str(small_disk)]).returncode == 0
    try:
        with pytest.raises(ValueError, match=r"s.h5: cannot open the file for writing \(read-only file system\)"):
            SurfaceWriter(small_disk / "s.h5", ["train_loss"])
        assert read_surface(small_disk / "s.h5").done.tolist() == [False, False]  # reading still works
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=False)


def test_interpolate_and_trajectory_on_a_full_disk_are_one_line(reference, small_disk):
    run = reference / "run"
    fill(small_disk, leave=4096)
    for args in (["interpolate", "--checkpoint", run, "--model_file2", run / "checkpoints" / "epoch_001.pt",
                  "--x=0:1:3", "--dir_file", small_disk / "d.h5", "--surf_file", small_disk / "s.h5", "--quiet"],
                 ["trajectory", run, "--out", small_disk / "t", "--quiet"]):
        done = landscape_output(args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1 and "no space left on device" in done.stderr, done.stderr
        assert leftovers(small_disk) == []
