"""`landscape` command line: one subcommand per module of :mod:`landscape.commands`.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``, and ``MPI = True`` when it shares its work among MPI ranks; this file only
dispatches, so the commands stay thin layers over the Python functions users call directly.
The other commands refuse to start under an MPI launcher (N copies would write the same files).

Ordinary events never show a traceback: bad input (ValueError, FileNotFoundError, TypeError)
and failed file access (PermissionError and other OSError) print one line on stderr and exit 2;
a full disk is one line with exit 2 whatever library reports it, and so is a usage error; a
diverged computation (FloatingPointError) prints one line and exits 1; Ctrl-C prints one line
saying how to continue and exits 130; a closed output pipe (``landscape ... | head -1``) exits
quietly with 141, the status of a process ended by SIGPIPE.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

COMMANDS = ("train", "surface", "plot", "interpolate", "trajectory", "diagnose", "sweep", "figures", "demo")
# What a rerun does after Ctrl-C (files are written atomically, so nothing is left half written).
ON_INTERRUPT = {
    "train": "rerun the same command to resume after the last finished epoch",
    "surface": "rerun the same command to compute only the missing points",
    "interpolate": "rerun the same command to compute only the missing points",
    "trajectory": "rerun the same command to compute only the missing points",
    "demo": "rerun it to continue (finished runs and surfaces are reused)",
}
EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_CLOSED_PIPE = 2, 1, 130, 141


def _available():
    for name in COMMANDS:
        try:
            yield name, importlib.import_module(f"landscape.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"landscape.commands.{name}":
                raise


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the text already states it or there is
    none to state (None, False, an empty list)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default  # 0 and 0.0 are shown: compare by identity, not ==
        none = default is None or default is False or default is argparse.SUPPRESS or (
            isinstance(default, (list, tuple)) and not default)
        if "default" in text or none or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, ``landscape CMD: error: argument
    --flag: reason``, with exit status 2 (argparse prints the usage too); subcommands inherit it."""

    def error(self, message):
        """Print ``message`` in one line with a pointer to ``--help`` and exit with status 2."""
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``landscape`` parser, one subparser per available command module."""
    parser = Parser(
        prog="landscape", description="Loss landscapes and regularization diagnostics for PyTorch models.",
        epilog="`landscape COMMAND --help` shows a command's options; `landscape demo` runs the main job.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in _available():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP,
                           formatter_class=HelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _mpi=getattr(module, "MPI", False))
    return parser


def one_line(err: BaseException) -> str:
    """An exception as one line: ``FILE: reason`` for a system error that names a file, else
    the first line of its message (its type when it has none)."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror.lower()}"
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def main(argv=None) -> int:
    """Run ``landscape COMMAND ...`` (``argv`` defaults to ``sys.argv[1:]``).

    Returns:
        The exit status: 0, or as in the module docstring.
    """
    from landscape.sharding import launched

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as err:  # --help (0) or a usage error (2), already printed
        return err.code if isinstance(err.code, int) else EXIT_BAD_INPUT
    prefix = f"landscape {args.command}"
    try:
        if launched() and not args._mpi:
            raise ValueError("this command runs in one process; start it without mpiexec/srun "
                             "(only `landscape surface` is sharded over MPI ranks)")
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        then = ON_INTERRUPT.get(args.command, "nothing was left half written")
        print(f"{prefix}: interrupted; {then}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly; stdout goes nowhere from now on, so the
        # interpreter's final flush cannot complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_CLOSED_PIPE
    except FloatingPointError as err:
        print(f"{prefix}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_FAILED
    except (ValueError, TypeError, OSError) as err:  # OSError covers FileNotFound, Permission, a full disk
        print(f"{prefix}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as err:
        if not full_disk(err):
            raise
        print(f"{prefix}: error: no space left on device ({one_line(err)}); free some space and rerun "
              "the same command", file=sys.stderr)
        return EXIT_BAD_INPUT


def full_disk(err: BaseException) -> bool:
    """Whether ``err`` (or an error it was raised from) is a full disk (ENOSPC), as libraries
    that wrap it in their own exception types (HDF5, torch) report it."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if (isinstance(err, OSError) and err.errno == errno.ENOSPC) or "no space left on device" in str(err).lower():
            return True
        err = err.__cause__ or err.__context__
    return False


if __name__ == "__main__":
    sys.exit(main())
