"""The code's shape, checked by reading it (issue: one job per function).

Every library function (``regularizers``, ``landscape``, ``analysis``) is at most 60 lines and
every figure script function at most 80, counted from ``def`` to its last line, decorators and
docstring included; and no module imports a private (``_name``) object of another of the project's modules.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("regularizers", "landscape", "analysis")
LIMITS = {**{name: 60 for name in LIBRARY}, "figures": 80}


def _modules(folder: str):
    modules = sorted((ROOT / folder).rglob("*.py"))
    assert modules, f"no modules under {ROOT / folder}"
    return modules


def _long_functions(source: str, limit: int):
    """``(line, name, length)`` of every function of ``source`` longer than ``limit`` lines."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            if node.end_lineno - first + 1 > limit:
                yield node.lineno, node.name, node.end_lineno - first + 1


@pytest.mark.parametrize("folder", sorted(LIMITS))
def test_functions_are_short(folder):
    long = [f"{path.relative_to(ROOT)}:{line} {name} ({length} lines)" for path in _modules(folder)
            for line, name, length in _long_functions(path.read_text(), LIMITS[folder])]
    assert not long, f"functions over {LIMITS[folder]} lines:\n" + "\n".join(long)


def test_no_private_names_imported_across_modules():
    crossing = []
    for folder in (*LIBRARY, "figures"):
        for path in _modules(folder):
            for node in ast.walk(ast.parse(path.read_text())):
                ours = isinstance(node, ast.ImportFrom) and (node.level > 0 or node.module.split(".")[0] in LIBRARY)
                if ours:
                    private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                    if private:
                        crossing.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {', '.join(private)}")
    assert not crossing, "private names imported across modules:\n" + "\n".join(crossing)


def test_the_checker_counts_lines():
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    assert list(_long_functions(f"@staticmethod\ndef f():\n{body}\n", 60)) == [(2, "f", 62)]
    assert list(_long_functions(f"def f():\n{body[:-12]}\n", 60)) == []
