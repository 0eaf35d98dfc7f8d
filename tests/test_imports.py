"""One direction of imports: regularizers -> landscape (engine) -> analysis -> command line.

Every module's imports are read with ``ast`` (function-level imports included), so the rule
holds without anyone remembering it: no module imports from a layer above its own, and nothing
but the command line imports the command line (the figure and benchmark scripts included).
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI = ("landscape.cli", "landscape.commands", "landscape.__main__")
LAYERS = {"regularizers": 0, "landscape": 1, "analysis": 2, "cli": 3}
SCRIPTS = ("figures", "benchmarks")


def layer_of(module: str):
    """The layer of a dotted module name of this project, or None for anything else."""
    if module in (CLI[0], CLI[2]) or module.startswith(CLI[1]):
        return LAYERS["cli"]
    return LAYERS.get(module.split(".")[0])


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path):
    """``(line, module)`` for every import in the file; relative imports resolved."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if node.module is None:  # from . import x: each name may be a module
                for alias in node.names:
                    yield node.lineno, f"{target}.{alias.name}"
            else:
                yield node.lineno, target


def project_files():
    for folder in ("regularizers", "landscape", "analysis", *SCRIPTS):
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_every_import_points_down_or_sideways():
    upward = []
    for path in project_files():
        name = module_name(path)
        own = layer_of(name) if path.parts[len(ROOT.parts)] not in SCRIPTS else LAYERS["cli"] - 0.5
        for line, target in imported(path):
            theirs = layer_of(target)
            if theirs is not None and theirs > own:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not upward, "imports that run upward:\n" + "\n".join(upward)


def test_no_import_cycle_among_the_packages():
    edges = {p: set() for p in LAYERS}
    for path in project_files():
        if path.parts[len(ROOT.parts)] in SCRIPTS:
            continue
        source = next(k for k, v in LAYERS.items() if v == layer_of(module_name(path)))
        for _, target in imported(path):
            theirs = layer_of(target)
            if theirs is not None:
                edges[source].add(next(k for k, v in LAYERS.items() if v == theirs))
    for package, reached in edges.items():
        for other in reached - {package}:
            assert package not in edges[other], f"{package} and {other} import each other"


@pytest.mark.parametrize("module, layer", [("regularizers.train", 0), ("landscape.surface", 1),
                                           ("landscape.commands.surface", 3), ("landscape.cli", 3),
                                           ("analysis.report", 2), ("numpy", None)])
def test_layer_of(module, layer):
    assert layer_of(module) == layer


def test_the_checker_sees_function_level_and_relative_imports():
    relative = {t for _, t in imported(ROOT / "landscape" / "perturbed.py")}
    assert "landscape.directions" in relative  # from .directions import ...
    inside_functions = {t for _, t in imported(ROOT / "landscape" / "commands" / "surface.py")}
    assert "landscape.surface" in inside_functions  # imported in a function body
