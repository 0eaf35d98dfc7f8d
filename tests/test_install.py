"""A plain (non-editable) install carries everything the commands need: built from a copy of the
source into a temporary target folder, run from another folder with only that target importable."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "landscape", "regularizers", "analysis", "figures")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``pip install --no-deps --no-build-isolation --target`` of a copy of the source (the
    checkout itself stays clean): the target folder."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "out")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    target = tmp / "target"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(src)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return target


def run_installed(target, cwd, *args):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(target), MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "landscape", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_figures_list_works_after_a_plain_install(installed, tmp_path):
    done = run_installed(installed, tmp_path, "figures", "--list")
    assert done.returncode == 0, done.stderr
    listed = [line.split()[0] for line in done.stdout.splitlines()]
    assert listed == sorted(p.stem for p in (ROOT / "figures").glob("*.py") if not p.name.startswith("_"))
    assert (installed / "figures" / "_runs.py").is_file() and (installed / "figures" / "README.md").is_file()
    assert not (tmp_path / "figures").exists()          # found in the install, not in the working folder
    imported = subprocess.run([sys.executable, "-c", "import landscape, figures; print(landscape.__file__, "
                               "figures.__file__)"], cwd=tmp_path, capture_output=True, text=True,
                              env={**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
                                   "PYTHONPATH": str(installed)})
    assert imported.stdout.split() == [str(installed / "landscape" / "__init__.py"),
                                       str(installed / "figures" / "__init__.py")]


def test_a_figure_script_runs_from_the_install(installed, tmp_path):
    done = run_installed(installed, tmp_path, "figures", "tammes_table", "--quick", "--steps", "5",
                         "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "tammes_table.json").is_file()
