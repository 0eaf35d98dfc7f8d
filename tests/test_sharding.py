"""`mpiexec -n N landscape surface`: the same file as one process, and no hang on errors.

The MPI tests launch `mpiexec` (from the venv's bin folder) on a tiny model and grid, compare
the files with a one-process file value for value, and make a rank fail on purpose through the
test-only switch LANDSCAPE_FAULT_RANK. Every launch has a timeout that kills its whole process
group, so a hang fails the test instead of blocking CI.
"""
import importlib.util
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

from landscape import sharding
from landscape.cli import main
from regularizers.models import load_model

BIN = Path(sys.executable).parent
MPIEXEC = BIN / "mpiexec"
needs_mpi = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or not MPIEXEC.exists(),
                               reason="needs mpi4py and mpiexec in the venv")
# a fixed batch size: files of independent runs are equal value for value only when they sum in the
# same order (the automatic choice depends on timings; a resumed file keeps the one it began with)
ARGS = ["surface", "--model", "cnn", "--model-option", "channels=[4,8]", "--data", "digits",
        "--x=-1:1:7", "--y=-1:1:5", "--quiet", "--batch-size", "64"]
POINTS = 35
LAUNCH_VARS = ("PMI_", "PMIX_", "OMPI_", "MPI_LOCAL", "MV2_", "SLURM_", "LANDSCAPE_FAULT")  # prefixes


def launch(folder, *extra, ranks=1, env=None, timeout=90):
    """Run `landscape surface` (under mpiexec when ranks > 1) in ``folder``; returns
    ``(returncode, stdout, stderr, seconds)``. A timeout kills the whole process group."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(LAUNCH_VARS)}
    environ.update(PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", OMP_NUM_THREADS="1", **(env or {}))
    # one process: also check that it never initializes (or imports) MPI
    code = "import sys; from landscape.cli import main; rc = main(sys.argv[1:]); " \
           "assert 'mpi4py' not in sys.modules, 'MPI imported'; sys.exit(rc)"
    command = [sys.executable, "-c", code, *ARGS, *extra] if ranks == 1 else \
        [str(MPIEXEC), "-n", str(ranks), sys.executable, "-m", "landscape.cli", *ARGS, *extra]
    start = time.monotonic()
    proc = subprocess.Popen(command, cwd=folder, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(command)} hung for {timeout} s:\n{out}{err}")
    return proc.returncode, out, err, time.monotonic() - start


def assert_same_file(path, reference):
    with h5py.File(path, "r") as f, h5py.File(reference, "r") as g:
        assert sorted(f) == sorted(g) and dict(f.attrs) == dict(g.attrs)
        for key in g:  # values, done, coordinates and the dir_file name
            assert np.array_equal(f[key][()], g[key][()]), key


def done(path) -> int:
    with h5py.File(path, "r") as f:
        return int(f["done"][()].sum())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The one-process surface file and its direction file."""
    folder = tmp_path_factory.mktemp("one")
    rc, out, err, _ = launch(folder, "--dir_file", "dirs.h5", "--surf_file", "surf.h5")
    assert rc == 0, err
    assert f"{POINTS}/{POINTS} points ({POINTS} computed" in out and "ranks" not in out
    return folder / "surf.h5", folder / "dirs.h5"


def copy_dirs(reference, folder) -> Path:
    (folder / "dirs.h5").write_bytes(reference[1].read_bytes())
    return folder / "dirs.h5"


# ----------------------------------------------------------------------------- MPI runs
@needs_mpi
def test_two_ranks_make_the_one_process_files(reference, tmp_path):
    rc, out, err, _ = launch(tmp_path, "--dir_file", "dirs.h5", "--surf_file", "surf.h5", ranks=2)
    assert rc == 0, err
    assert f"{POINTS}/{POINTS} points ({POINTS} computed" in out and "points/s on 2 ranks" in out
    assert_same_file(tmp_path / "surf.h5", reference[0])
    with h5py.File(tmp_path / "dirs.h5", "r") as f, h5py.File(reference[1], "r") as g:  # written by rank 0
        assert all(np.array_equal(f[f"{a}direction/{i}"][()], g[f"{a}direction/{i}"][()])
                   for a in "xy" for i in g[f"{a}direction"])


@needs_mpi
def test_three_ranks_oversubscribed_with_an_existing_direction_file(reference, tmp_path):
    copy_dirs(reference, tmp_path)
    rc, out, err, _ = launch(tmp_path, "--dir_file", "dirs.h5", "--surf_file", "surf.h5", ranks=3)
    assert rc == 0, err
    assert f"({POINTS} computed" in out and "on 3 ranks" in out
    assert_same_file(tmp_path / "surf.h5", reference[0])


@needs_mpi
@pytest.mark.parametrize("fault_rank, after, ranks, resume_ranks", [(1, 3, 2, 3), (0, 2, 3, 2)])
def test_a_failing_rank_ends_the_job_and_the_file_resumes_on_other_ranks(reference, tmp_path, fault_rank,
                                                                        after, ranks, resume_ranks):
    copy_dirs(reference, tmp_path)
    files = ["--dir_file", "dirs.h5", "--surf_file", "surf.h5"]
    rc, out, err, seconds = launch(tmp_path, *files, ranks=ranks,
                                   env={"LANDSCAPE_FAULT_RANK": str(fault_rank), "LANDSCAPE_FAULT_AFTER": str(after)})
    assert rc != 0 and seconds < 30, (rc, seconds, err)
    assert (f"landscape surface: error: rank {fault_rank}: RuntimeError: fault injected by "
            f"LANDSCAPE_FAULT_RANK={fault_rank} after {after} points") in err
    if fault_rank:
        assert f"rank 0: stopping all ranks after rank {fault_rank}'s error" in err  # rank 0 closed the file
    written = done(tmp_path / "surf.h5")
    assert after <= written < POINTS  # the failing rank's points were sent before its error
    rc, out, err, _ = launch(tmp_path, *files, ranks=resume_ranks)
    assert rc == 0, err
    assert f"{POINTS}/{POINTS} points ({POINTS - written} computed" in out
    assert_same_file(tmp_path / "surf.h5", reference[0])


@needs_mpi
def test_bad_input_is_reported_once_and_every_rank_exits(reference, tmp_path):
    copy_dirs(reference, tmp_path)
    (tmp_path / "surf.h5").write_bytes(reference[0].read_bytes())
    rc, out, err, seconds = launch(tmp_path, "--dir_file", "dirs.h5", "--surf_file", "surf.h5",
                                   "--loss_name", "mse", ranks=2)
    message = "landscape surface: error: surf.h5: made with loss='crossentropy', not 'mse'"
    assert rc == 2 and err.count(message) == 1 and "Abort" not in err, err
    rc, out, err, seconds = launch(tmp_path, "--model", "nope", ranks=2)
    assert rc == 2 and err.count("error: unknown model 'nope'") == 1, err


# ----------------------------------------------------------------------------- one process
def test_launch_detection_reads_the_environment_only():
    assert sharding.launched({}) == 0
    assert sharding.launched({"PMI_SIZE": "1", "OMPI_COMM_WORLD_SIZE": "1"}) == 0
    assert sharding.launched({"PMI_SIZE": "4"}) == 4
    assert sharding.launched({"OMPI_COMM_WORLD_SIZE": "3"}) == 3
    assert sharding.launched({"SLURM_STEP_NUM_TASKS": "8"}) == 8
    assert sharding.launched({"SLURM_STEP_NUM_TASKS": "8", "PMI_SIZE": "1"}) == 0  # mpiexec -n 1 inside srun


def test_threads_share_the_cores():
    cores = len(os.sched_getaffinity(0))
    assert sharding.threads_per_rank(1) == cores
    assert sharding.threads_per_rank(os.cpu_count()) == 1 and sharding.threads_per_rank(10 * os.cpu_count()) == 1
    assert sharding.threads_per_rank(2) == max(1, min(cores, os.cpu_count() // 2))


def test_helpers_without_mpi_run_plainly():
    assert sharding.on_root(None, lambda: 5) == 5 and sharding.on_all(None, lambda: 6) == 6
    with pytest.raises(ValueError, match="bad"):
        with sharding.guard(None):
            raise ValueError("bad")
    assert sharding.describe(ValueError("x")) == "x"
    assert sharding.describe(RuntimeError("y")) == "RuntimeError: y"


def test_fault_switch_counts_points(monkeypatch):
    monkeypatch.setenv("LANDSCAPE_FAULT_RANK", "1")
    monkeypatch.setenv("LANDSCAPE_FAULT_AFTER", "3")
    assert sharding._fault(len, 0) is len  # other ranks are untouched
    evaluate = sharding._fault(len, 1)
    assert evaluate([1, 2]) == 2 and evaluate([3]) == 1
    with pytest.raises(RuntimeError, match="LANDSCAPE_FAULT_RANK=1 after 3 points"):
        evaluate([4])


def test_unsharded_commands_refuse_an_mpi_launch(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    for name in ("a.pt", "b.pt"):
        torch.save(load_model("cnn", num_classes=10, in_channels=1, channels=[4, 8]).state_dict(), name)
    monkeypatch.setenv("PMI_SIZE", "2")
    assert main(["interpolate", "--model", "cnn", "--model-option", "channels=[4,8]", "--data", "digits",
                 "--checkpoint", "a.pt", "--model_file2", "b.pt", "--x=0:1:2", "--quiet"]) == 2
    assert "landscape interpolate: error: this command runs in one process" in capsys.readouterr().err
    for command in (["train", "--model", "mlp", "--epochs", "1"], ["trajectory", "run"], ["demo"]):
        assert main(command) == 2
        assert "runs in one process" in capsys.readouterr().err
    assert not list(tmp_path.glob("runs"))  # nothing was started


@needs_mpi
def test_ctrl_c_under_mpi_exits_130_and_the_file_resumes(tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(LAUNCH_VARS)}
    environ.update(PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", OMP_NUM_THREADS="1")
    grid = ["--x=-1:1:25", "--y=-1:1:25", "--dir_file", "dirs.h5", "--surf_file", "surf.h5"]
    command = [str(MPIEXEC), "-n", "2", sys.executable, "-m", "landscape.cli", *ARGS, *grid]
    proc = subprocess.Popen(command, cwd=tmp_path, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (tmp_path / "surf.h5").exists():
            time.sleep(0.2)
        time.sleep(1)  # some points computed
        proc.send_signal(signal.SIGINT)  # mpiexec forwards Ctrl-C to the ranks
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert 0 < done(tmp_path / "surf.h5") < 25 * 25
    rc, out, err, _ = launch(tmp_path, *grid, ranks=2, timeout=300)
    assert rc == 0 and done(tmp_path / "surf.h5") == 25 * 25, err


class _RecordingComm:
    """A stand-in communicator (one rank of it) that records the status ``Abort`` is called with."""

    def __init__(self, rank: int):
        self.rank, self.aborted = rank, None

    def Get_rank(self):
        return self.rank

    def Abort(self, status):
        self.aborted = status


@pytest.mark.parametrize("error, status", [(OSError(28, "No space left on device"), 2), (ValueError("bad"), 2),
                                           (RuntimeError("bug"), 1),
                                           (sharding.RankFailed("a worker's full disk", status=2), 2)])
def test_a_rank_0_error_ends_the_job_with_the_one_process_status(error, status, capsys):
    from landscape.sharding import guard

    comm = _RecordingComm(rank=0)
    with guard(comm, "landscape surface"):
        raise error
    assert comm.aborted == status  # a full disk mid-run is 2 under MPI too (on any rank), a bug 1
    assert capsys.readouterr().err.count("\n") == 1
