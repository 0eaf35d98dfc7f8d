"""Every shell and Python block of README.md runs as written, so the README cannot drift.

Blocks run in order in one scratch folder that a fixture fills with what the README assumes to
exist (run folders, a CIFAR-10 folder, `mypkg/nets.py`, checkpoints, an `.npz`); the sizes are
shrunk by the explicit table :data:`SMALLER` (fewer epochs, 3-point grids), nothing else changes.
`landscape` commands run in this process (`landscape.cli.main`, the console script's function);
other programs (`.venv/bin/mpiexec`) run as written with this checkout's code. Lines listed in
:data:`NOT_RUN` are the only exceptions, each with its reason. Python blocks run with `my_model`
and `my_dataset` defined, and the HF and Lightning examples are checked against plain loops.
"""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from landscape.cli import main

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
README = (ROOT / "README.md").read_text()

NOT_RUN = {   # the start of a command line -> why this test does not run it
    "make demo": "the demo itself: run by CI and by tests/test_demo.py",
    "make test": "the whole test suite, this test included",
    "make bench": "every benchmark, minutes by design (run_all.py)",
    "srun ": "needs a SLURM cluster (documented as not tested)",
    ".venv/bin/python benchmarks/": "benchmarks take minutes by design (make bench)",
}
SMALLER = [   # (as written in the README, as run here): tiny runs, tiny grids
    ("--epochs 10", "--epochs 3"), ("epochs=10", "epochs=3"),
    ("--epochs 200", "--epochs 2"), ("--milestones 100 150", "--milestones 1"),
    ("~/data/cifar-10-batches-py", "data/cifar-10-batches-py"),
    ("mpiexec -n 4", "mpiexec -n 2"),
    ("--seeds 5 --epochs 40", "--quick --seeds 2 --epochs 1"),
    ("$L diagnose ", "$L diagnose --quick --no-spectra "),
    ("$L sweep ", "$L sweep --samples 40 --probes 2 --noise-draws 1 --points 5 --resamples 50 --quiet "),
    ("trajectory runs/cnn --surface", "trajectory runs/cnn --surface --x=-1:1:3 --y=-1:1:3"),
]
GRID = re.compile(r"""([="]-?[\d.]+:-?[\d.]+:|=auto:)(\d+)""")   # --x=-1:1:51 -> --x=-1:1:3, "auto:41" -> "auto:3"


def smaller(text: str) -> str:
    for written, run in SMALLER:
        text = text.replace(written, run)
    return GRID.sub(lambda m: m.group(1) + str(min(int(m.group(2)), 3)), text)


def blocks():
    """``(language, text, line)`` of every fenced bash and python block."""
    for match in re.finditer(r"^```(bash|python)\n(.*?)^```", README, re.M | re.S):
        yield match.group(1), match.group(2), README[:match.start()].count("\n") + 1


def command_lines(text: str):
    """Logical lines of a shell block (continuations joined), comments kept out by shlex."""
    return [line for line in text.replace("\\\n", " ").splitlines() if shlex.split(line, comments=True)]


def make_cifar10(folder: Path, per_batch: int = 4) -> None:
    """A CIFAR-10 python-batch folder with ``per_batch`` random images per batch file."""
    import pickle

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch))


NETS = '''
from regularizers.models import CifarResNet, SmallCNN


def resnet(num_classes=10, in_channels=3):
    return CifarResNet(num_classes, in_channels, depth=8)


def cnn(num_classes=10, in_channels=3):
    return SmallCNN(num_classes, in_channels, channels=(4, 8))
'''


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The scratch folder holding what the README's commands name."""
    from regularizers.models import load_model
    from regularizers.train import train_run

    here = tmp_path_factory.mktemp("readme")
    make_cifar10(here / "data" / "cifar-10-batches-py")
    (here / "mypkg").mkdir()
    (here / "mypkg" / "__init__.py").write_text("")
    (here / "mypkg" / "nets.py").write_text(NETS)
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    x = rng.normal(size=(60, 1, 8, 8)).astype(np.float32) + y[:, None, None, None]
    np.savez(here / "mine.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    sys.path.insert(0, str(here))
    try:
        import mypkg.nets as nets

        torch.manual_seed(0)
        torch.save(nets.resnet(3, 1).state_dict(), here / "ckpt.pt")
        torch.save(nets.cnn(3, 1).state_dict(), here / "theirs.pt")
    finally:
        sys.path.remove(str(here))
        for name in ("mypkg", "mypkg.nets"):
            sys.modules.pop(name, None)
    for group, regs in (("base", []), ("mma", ["mma"])):
        for seed in range(3):
            train_run(here / "runs" / f"{group}-s{seed}", model="cnn", data=str(here / "mine.npz"), epochs=2,
                      seed=seed, model_options={"channels": [4, 8]}, regularizers=regs, progress=False)
    for alias, run in zip("abcdef", ["base-s0", "base-s1", "base-s2", "mma-s0", "mma-s1", "mma-s2"]):
        (here / "runs" / alias).symlink_to(run)
    (here / "runs" / "baseline").symlink_to("base-s0")
    assert load_model("cnn", 3, 1, input_shape=(1, 8, 8), channels=[4, 8],
                      checkpoint=str(here / "runs" / "a" / "model.pt")) is not None
    return here


def last_line(text: str) -> str:
    """The last non-empty line of a program's stderr (progress bars drawn with \\r dropped)."""
    lines = [part.strip() for line in text.splitlines() for part in line.split("\r") if part.strip()]
    return lines[-1] if lines else ""


def run_shell(text: str, where: Path, capsys, variables: dict) -> list:
    """Run a shell block's lines; ``variables`` (``L=...``) last across blocks, as in one shell
    session. Returns one message per failing line (the later lines still run)."""
    failures = []
    for line in command_lines(text):
        if any(line.startswith(start) for start in NOT_RUN):
            continue
        words = shlex.split(smaller(line), comments=True)
        if len(words) == 1 and re.fullmatch(r"\w+=\S+", words[0]):
            name, _, value = words[0].partition("=")
            variables[name] = value
            continue
        words = [variables.get(w[1:], w) if w.startswith("$") else w for w in words]
        if words[0].endswith("bin/landscape"):
            capsys.readouterr()
            try:
                code = main(words[1:])
            except SystemExit as exit_:   # argparse refused the command line
                code = exit_.code
            err = capsys.readouterr().err
        else:
            env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
            argv = [w.replace(".venv/bin/", f"{BIN}/") for w in words]
            done = subprocess.run(argv, cwd=where, env=env, capture_output=True, text=True, timeout=300)
            code, err = done.returncode, done.stderr
        if code != 0:
            failures.append(f"{line.strip()!r} exited {code}: {last_line(err)}")
    return failures


class UserModel(torch.nn.Module):
    """``my_model`` of the README: a dict output holding the logits."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))

    def forward(self, x):
        return {"logits": self.net(x)}


def plain_mean_loss(model, batches, split=lambda b: b, output=lambda out: out, smoothing=0.0) -> float:
    """The mean cross-entropy (label smoothing ``smoothing``) over every example of ``batches``,
    one plain forward per batch."""
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for batch in batches:
            inputs, targets = split(batch)
            out = model(**inputs) if isinstance(inputs, dict) else model(inputs)
            total += F.cross_entropy(output(out), targets, reduction="sum", label_smoothing=smoothing).item()
            count += len(targets)
    return total / count


def centre(surface, key: str) -> float:
    """The value of ``key`` at the model (coordinate 0 on every axis) of a 1D or 2D surface."""
    values = np.asarray(surface[key])
    index = tuple(int(np.argmin(np.abs(getattr(surface, axis)))) for axis in "yx"[2 - values.ndim:])
    assert all(getattr(surface, axis)[i] == 0 for axis, i in zip("yx"[2 - values.ndim:], index))
    return float(values[index])


def check_python(scope: dict) -> None:
    """What each Python block computed, against an independent computation."""
    if "bert" in scope:
        got = centre(scope["surface"], "train_loss")
        want = plain_mean_loss(scope["bert"], scope["batches"], scope["hooks"].split, lambda out: out.logits)
        assert got == pytest.approx(want, rel=1e-5)
        assert scope["sharpest"] > 0
    elif "callback" in scope:
        got = centre(scope["callback"].surface, "train_loss")
        assert got == pytest.approx(plain_mean_loss(scope["module"], scope["loader"]), rel=1e-5)
    elif "loader" in scope:
        assert scope["surface"]["train_loss"].shape == (3, 3)
        want = plain_mean_loss(scope["my_model"], scope["loader"], output=lambda out: out["logits"], smoothing=0.1)
        assert centre(scope["surface"], "train_loss") == pytest.approx(want, rel=1e-5)


def test_readme_blocks_run_as_written(folder, monkeypatch, capsys):
    for start in NOT_RUN:
        assert start in README, f"NOT_RUN names {start!r}, which the README no longer holds"
    for written, _ in SMALLER:
        assert written in README, f"SMALLER shrinks {written!r}, which the README no longer holds"
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "path", list(sys.path))
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    dataset = torch.utils.data.TensorDataset(torch.randn(64, 1, 8, 8, generator=gen),
                                             torch.randint(0, 10, (64,), generator=gen))
    ran, variables, failures = [], {}, []
    for language, text, line in blocks():
        if language == "bash":
            failures += [f"README.md line {line}: {f}" for f in run_shell(text, folder, capsys, variables)]
        else:
            torch.manual_seed(0)
            scope = {"my_model": UserModel(), "my_dataset": dataset, "__name__": f"readme_line_{line}"}
            try:
                exec(compile(smaller(text), f"README.md line {line}", "exec"), scope)
                check_python(scope)
            except Exception as err:   # noqa: BLE001 -- collected, so that every failing block is named
                failures.append(f"README.md line {line} (python): {type(err).__name__}: {str(err).strip()[:300]}")
        ran.append(line)
    assert len(ran) >= 7
    assert not failures, "README blocks that fail as written:\n" + "\n".join(failures)
