"""`landscape figures`: list or run the paper-figure scripts of the repository's ``figures/``.

Each ``figures/<name>.py`` (names starting with ``_`` are helpers) defines ``main(argv)``, takes
``--quick``, ``--seeds``, ``--out`` (default ``./figures_out``) and, where it uses them,
``--epochs`` and ``--steps``, and holds ``MEASURED = (seconds, date)``: its runtime measured on
the 2-core machine it was developed on. The folder is the ``figures`` package: it ships with
the source checkout and is installed beside ``landscape`` by ``pip install .`` (editable or not).
"""
from __future__ import annotations

import ast
import importlib.util
import textwrap
import time
from pathlib import Path

from . import common

HELP = "list (--list) or run the paper figure scripts (the figures/ folder, installed with the package)"


def figures_dir() -> Path:
    """The ``figures/`` folder (package) beside the ``landscape`` package; a clear error when absent.

    Found from this file (``landscape/commands/figures.py``): ``landscape.__file__`` is None when
    the package is imported as a namespace package (a stale editable install)."""
    folder = Path(__file__).resolve().parents[2] / "figures"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no figures/ folder at {folder}: the figure scripts ship with the source repository and are "
            "installed with it (pip install . or pip install -e . from a checkout); reinstall from a checkout")
    return folder


def scripts(folder: Path) -> dict:
    """``{name: path}`` of the figure scripts, sorted by name."""
    return {p.stem: p for p in sorted(folder.glob("*.py")) if not p.name.startswith("_")}


def summary(path: Path, width: int = 100) -> str:
    """The first paragraph of a script's docstring, shortened to ``width`` (read without importing)."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return textwrap.shorten(doc.split("\n\n")[0], width, placeholder=" ...")


def measured(path: Path) -> str:
    """The script's ``MEASURED = (seconds, date)`` as ``"312 s (2026-12-02)"``, read without
    importing; ``"not measured"`` when it is None or absent."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "MEASURED" for t in node.targets):
            value = ast.literal_eval(node.value)
            if value:
                seconds, date = value
                return f"{seconds:.0f} s ({date})"
    return "not measured"


def load(path: Path):
    """Import a script as a module (its ``if __name__ == "__main__"`` block does not run)."""
    spec = importlib.util.spec_from_file_location(f"_figure_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "main", None)):
        raise ValueError(f"{path} defines no main(argv)")
    return module


def add_arguments(p) -> None:
    """Add the flags of ``landscape figures`` to the argparse parser ``p``."""
    p.add_argument("names", nargs="*", metavar="NAME", help="scripts to run (default: all)")
    p.add_argument("--list", action="store_true",
                   help="list the scripts with their runtime measured on a 2-core machine, and exit")
    p.add_argument("--quick", action="store_true", help="each script's tiny setting (for tests)")
    p.add_argument("--out", default=None, help="output folder (default ./figures_out)")
    p.add_argument("--seeds", type=common.number(int, low=2), default=None,
                   help="seeds per configuration, at least 2 (intervals need two runs); default: the script's "
                        "(5; Tammes and the built-in sweep 3)")
    p.add_argument("--epochs", type=common.positive_int, default=None,
                   help="training epochs, for scripts that train (default: each script's own)")
    p.add_argument("--steps", type=common.positive_int, default=None,
                   help="optimization steps, for scripts that take them (Tammes SGD steps, LinR rounds; "
                        "default: each script's own)")


def run(args) -> int:
    """Run ``landscape figures`` with the parsed flags ``args``; returns the exit status (0: done)."""
    available = scripts(figures_dir())
    if args.list:
        width = max(map(len, available), default=0)
        for name, path in available.items():
            print(f"{name:{width}s}  {measured(path):>18s}  {summary(path)}")
        return 0
    unknown = [n for n in args.names if n not in available]
    if unknown:
        raise ValueError(f"unknown figure script {unknown[0]!r}; available: {', '.join(available)}")
    argv = ["--quick"] * args.quick
    for flag in ("out", "seeds", "epochs", "steps"):
        if getattr(args, flag) is not None:
            argv += [f"--{flag}", str(getattr(args, flag))]
    failed = []
    for name in args.names or available:
        print(f"== figures/{name}.py {' '.join(argv)}".rstrip(), flush=True)
        began = time.perf_counter()
        if load(available[name]).main(argv):
            failed.append(name)
        print(f"== figures/{name}.py took {time.perf_counter() - began:.0f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0
