"""`landscape` command line: one subcommand per module of :mod:`landscape.commands`.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``, and ``MPI = True`` when it shares its work among MPI ranks; this file only
dispatches, so the commands stay thin layers over the Python functions users call directly.
The other commands refuse to start under an MPI launcher (N copies would write the same files).
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("train", "surface", "plot", "interpolate", "trajectory", "diagnose", "figures", "demo")


def _available():
    for name in COMMANDS:
        try:
            yield name, importlib.import_module(f"landscape.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"landscape.commands.{name}":
                raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="landscape", description="Loss landscapes and regularization diagnostics for PyTorch models.",
        epilog="`landscape COMMAND --help` shows a command's options; `landscape demo` runs the main job.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in _available():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _mpi=getattr(module, "MPI", False))
    return parser


def main(argv=None) -> int:
    from landscape.sharding import launched

    args = build_parser().parse_args(argv)
    try:
        if launched() and not args._mpi:
            raise ValueError("this command runs in one process; start it without mpiexec/srun "
                             "(only `landscape surface` is sharded over MPI ranks)")
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        # Bad input: one line naming the problem, no traceback.
        print(f"landscape {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
