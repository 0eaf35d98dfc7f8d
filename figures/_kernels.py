"""The figures' verdicts from two runs side by side (e.g. the default CPU kernels and
``ATEN_CPU_CAPABILITY=avx2``), as the markdown table of ``figures/README.md``:

    python figures/_kernels.py OUT_DEFAULT OUT_AVX2 [--times TIMES]

Each run folder holds the ``<figure>.json`` files the scripts write. A claim is "reproduced" or
"not reproduced" only where both runs say so (:func:`figures._runs.combined_verdict`).
``--times`` reads lines ``NAME KERNEL rc=0 seconds=S ...`` for the runtime column.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from figures import _runs  # noqa: E402


def effect_text(claim: dict, width: int = 260) -> str:
    """The claim's effect with its interval (a ratio for log-scale effects), else its shortened text."""
    e = claim.get("effect")
    if not e:
        text = claim["ours"]
        return text if len(text) <= width else text[:width - 3] + "..."
    if e["log"]:
        shown = f"x{math.exp(e['mean']):.3g} [x{math.exp(e['low']):.3g}, x{math.exp(e['high']):.3g}]"
    else:
        shown = f"{e['mean']:+.3g} [{e['low']:+.3g}, {e['high']:+.3g}]"
    return shown + (f", {e['seeds_above_0']}/{e['n']} seeds" + (" >1" if e["log"] else " >0")
                    if e.get("seeds_above_0") is not None else "")


def runtimes(path: Path | None) -> dict:
    """``{(name, kernel): seconds}`` from the timing lines."""
    found = {}
    for line in (path.read_text().splitlines() if path else []):
        m = re.match(r"(\S+) (\S+) rc=(\d+) seconds=(\d+)", line)
        if m:
            found[m.group(1), m.group(2)] = int(m.group(4))
    return found


def rows(first: Path, second: Path, times: dict) -> list:
    """One markdown row per claim found in both folders."""
    out = ["| figure | claim | default kernels: effect [95% interval] | verdict | AVX2: effect [95% interval] | "
           "verdict | verdict (both) | runtime default / AVX2 |", "|---|---|---|---|---|---|---|---|"]
    for path in sorted(first.glob("*.json")):
        other = second / path.name
        if not other.is_file():
            continue
        a, b = json.loads(path.read_text()), json.loads(other.read_text())
        name = path.stem
        env = f"torch {a['environment']['torch']}, {a['environment']['cpu_capability']} / " \
              f"{b['environment']['cpu_capability']}"
        when = f"{times.get((name, 'default'), '?')} s / {times.get((name, 'avx2'), '?')} s"
        for i, (ca, cb) in enumerate(zip(a["claims"], b["claims"])):
            label = f"`{name}`" + (f" ({env})" if i == 0 else "")
            out.append(f"| {label} | {ca['claim']} | {effect_text(ca)} | {ca['verdict']} | {effect_text(cb)} | "
                       f"{cb['verdict']} | {_runs.combined_verdict(ca['verdict'], cb['verdict'])} | "
                       f"{when if i == 0 else ''} |")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("first", type=Path, help="output folder of the first run (default kernels)")
    p.add_argument("second", type=Path, help="output folder of the second run (ATEN_CPU_CAPABILITY=avx2)")
    p.add_argument("--times", type=Path, default=None, help="timing lines 'NAME KERNEL rc=0 seconds=S'")
    args = p.parse_args(argv)
    print("\n".join(rows(args.first, args.second, runtimes(args.times))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
