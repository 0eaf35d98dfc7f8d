"""Cost of the weight penalties: time of one training step (forward + backward + SGD step) of
ResNet-20 on a fixed batch with each penalty, relative to no penalty.

Configurations are measured interleaved (a shuffled round of every configuration, repeated) so
that drifts of the machine hit all of them alike; the median and the minimum per configuration
are reported (on a shared machine the minimum is the steadier estimate), with the penalty's own
forward + backward time measured apart.
Goals: MMA <= 1.15x, norm loss <= 1.05x.

    python benchmarks/bench_regularizers.py [--rounds 15] [--batch 64] [--threads N] [--device cpu]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from regularizers.base import defines  # noqa: E402
from regularizers.models import create_model  # noqa: E402
from regularizers.registry import make_regularizer  # noqa: E402

PENALTIES = ("mma", "cosine", "mhe", "orthogonal", "srip", "norm", "l1", "pbwn")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step(model, opt, reg, x, y) -> None:
    loss = F.cross_entropy(model(x), y)
    if reg is not None and defines(reg, "penalty"):
        loss = loss + reg.penalty(model)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if reg is not None and defines(reg, "after_step"):
        reg.after_step(model)


def penalty_time(model, reg, device, repeats: int = 20) -> float:
    """Seconds of the penalty's own forward + backward (0 for hook-only methods)."""
    if not defines(reg, "penalty"):
        return 0.0
    sync(device)
    began = time.perf_counter()
    for _ in range(repeats):
        reg.penalty(model).backward()
    sync(device)
    model.zero_grad(set_to_none=True)
    return (time.perf_counter() - began) / repeats


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, in_channels=3).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(args.batch, 3, 32, 32, device=device)
    y = torch.randint(10, (args.batch,), device=device)
    configs = {"none": None, **{name: make_regularizer(name) for name in PENALTIES}}

    for reg in configs.values():  # warm-up
        for _ in range(2):
            step(model, opt, reg, x, y)
    times = {name: [] for name in configs}
    order = list(configs)
    rng = random.Random(0)
    for _ in range(args.rounds):
        rng.shuffle(order)
        for name in order:
            sync(device)
            began = time.perf_counter()
            step(model, opt, configs[name], x, y)
            sync(device)
            times[name].append(time.perf_counter() - began)

    base_median, base_min = statistics.median(times["none"]), min(times["none"])
    print(f"ResNet-20, batch {args.batch}x3x32x32, {device}, {torch.get_num_threads()} threads, "
          f"{args.rounds} interleaved rounds")
    print(f"{'method':<12}{'median ms':>10}{'ratio':>8}{'min ms':>10}{'ratio':>8}{'penalty ms':>12}")
    for name, reg in configs.items():
        median, fastest = statistics.median(times[name]), min(times[name])
        own = 0.0 if reg is None else penalty_time(model, reg, device) * 1e3
        print(f"{name:<12}{median * 1e3:>10.1f}{median / base_median:>8.3f}"
              f"{fastest * 1e3:>10.1f}{fastest / base_min:>8.3f}{own:>12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
