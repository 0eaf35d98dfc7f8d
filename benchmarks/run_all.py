"""Run the four benchmarks one after another (``make bench``) and say which failed.

- ``bench_engine.py``: points/s of the surface engine against the de facto loop and the floor,
  with bf16 columns (speed and error per model);
- ``bench_sharding.py``: `landscape surface` on 1 process against N MPI ranks;
- ``bench_regularizers.py``: cost of each weight penalty per training step;
- ``bench_curvature.py``: Hessian trace and top eigenvalues against a reimplementation of
  PyHessian's graph-reusing method on the same probes.

Each runs in its own process with the settings below (``--quick``: smaller ones, about a
minute in all on 2 cores); the output goes to stdout and, with ``--out FILE``, to that file too.
Results are recorded by hand in benchmarks/RESULTS.md with the load of the machine, since the
timings of a shared machine are only comparable within one run.

    python benchmarks/run_all.py [--quick] [--only engine,sharding,regularizers] [--out FILE]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "engine": (["bench_engine.py", "--threads", "1"], ["--points", "3", "--rounds", "1", "--models",
                                                       "resnet20,vgg_bn", "--samples", "256"]),
    "sharding": (["bench_sharding.py"], ["--grid", "7", "--rounds", "1"]),
    "regularizers": (["bench_regularizers.py", "--threads", "1"], ["--rounds", "3", "--batch", "32"]),
    "curvature": (["bench_curvature.py", "--threads", "1"], ["--probes", "5", "--rounds", "1", "--models", "cnn"]),
}


def load() -> str:
    """The 1-minute load average and the core count, e.g. ``"load 3.2 on 2 cores"``."""
    try:
        return f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    except OSError:
        return f"{os.cpu_count()} cores"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grids, few rounds (a smoke run)")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated, of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--out", default=None, help="also write the output to this file")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"--only: unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))}
    log = open(args.out, "w") if args.out else None
    failed = []
    try:
        for name in names:
            script, quick = BENCHMARKS[name]
            command = [sys.executable, str(HERE / script[0]), *script[1:], *(quick if args.quick else [])]
            header = f"== {name}: {' '.join(command[1:])} ({time.strftime('%Y-%m-%d %H:%M:%S')}, {load()})"
            start = time.perf_counter()
            run = subprocess.run(command, env=env, capture_output=True, text=True)
            text = f"{header}\n{run.stdout}{run.stderr}== {name}: exit {run.returncode}, " \
                   f"{time.perf_counter() - start:.0f} s, {load()}\n"
            print(text, flush=True)
            if log:
                log.write(text + "\n")
                log.flush()
            if run.returncode:
                failed.append(name)
    finally:
        if log:
            log.close()
    print("all benchmarks ran" if not failed else f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
