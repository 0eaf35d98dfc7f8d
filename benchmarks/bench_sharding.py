"""Points/s of `landscape surface` on 1 process and on N MPI ranks, on the same grid.

Each run is a fresh `landscape surface` (mpiexec for the ranks) writing a new file; the speed is
the one the command reports for the computation itself (preparing the file, building the
evaluator, evaluating and writing every point), so start-up and imports are not counted. The
single process runs with the default threads (all cores) and with one thread; the ranks with
the threads `landscape.sharding.start` gives them (cores // ranks). Best of interleaved rounds,
to damp the noise of a shared machine. The files must be equal value for value.

All runs set ``THP_MEM_ALLOC_ENABLE=1`` (PyTorch then backs large CPU tensors with huge pages;
``--no-thp`` leaves it unset): on the 2-vCPU test VM a process's speed otherwise depends on
its luck with pages -- 33 to 51 points/s from run to run for the same single process -- which
swamps the comparison.

    python benchmarks/bench_sharding.py [--ranks 2] [--grid 21] [--rounds 3] [--no-thp]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

BIN = Path(sys.executable).parent
RATE = re.compile(r"\((\d+) computed in [\d.]+ s, ([\d.]+) points/s")


def surface(folder: Path, name: str, grid: int, ranks: int = 1, threads: int | None = None,
            thp: bool = True) -> float:
    """Points/s of one fresh run writing ``folder/name.h5``."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("OMP_NUM_THREADS", None)
    env.pop("THP_MEM_ALLOC_ENABLE", None)
    if thp:
        env["THP_MEM_ALLOC_ENABLE"] = "1"
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    surf = folder / f"{name}.h5"
    surf.unlink(missing_ok=True)
    command = [sys.executable, "-m", "landscape.cli", "surface", "--model", "cnn", "--data", "digits",
               f"--x=-1:1:{grid}", f"--y=-1:1:{grid}", "--quiet", "--dir_file", str(folder / "dirs.h5"),
               "--surf_file", str(surf)]
    if ranks > 1:
        command = [str(BIN / "mpiexec"), "-n", str(ranks), *command]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    match = RATE.search(out.stdout)
    if out.returncode or not match or int(match.group(1)) != grid * grid:
        raise SystemExit(f"{' '.join(command)} failed:\n{out.stdout}{out.stderr}")
    return float(match.group(2))


def same(a: Path, b: Path) -> bool:
    with h5py.File(a) as f, h5py.File(b) as g:
        return all(np.array_equal(f[k][()], g[k][()]) for k in f if k != "dir_file")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--grid", type=int, default=21, help="points per axis of the 2D grid")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-thp", dest="thp", action="store_false", help="leave THP_MEM_ALLOC_ENABLE unset")
    args = parser.parse_args()
    runs = {"1 process, default threads": dict(ranks=1), "1 process, 1 thread": dict(ranks=1, threads=1),
            f"{args.ranks} ranks": dict(ranks=args.ranks)}
    best = dict.fromkeys(runs, 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for _ in range(args.rounds):
            for i, (label, options) in enumerate(runs.items()):
                best[label] = max(best[label], surface(folder, f"run{i}", args.grid, thp=args.thp, **options))
        equal = same(folder / "run1.h5", folder / "run2.h5")
    print(f"cnn on digits, {args.grid}x{args.grid} grid, {os.cpu_count()} cores, best of {args.rounds}, "
          f"THP_MEM_ALLOC_ENABLE={'1' if args.thp else 'unset'}")
    for label, rate in best.items():
        print(f"  {label:28s} {rate:8.1f} points/s")
    ranks = best[f"{args.ranks} ranks"]
    print(f"  {args.ranks} ranks / 1 process, same threads per process (1): "
          f"{ranks / best['1 process, 1 thread']:.2f}x")
    print(f"  {args.ranks} ranks / 1 process on all cores (default threads): "
          f"{ranks / best['1 process, default threads']:.2f}x")
    print(f"  {args.ranks}-rank file equals the 1-thread file value for value: {equal}")


if __name__ == "__main__":
    main()
