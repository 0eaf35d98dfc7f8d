"""Shared test settings: one intra-op thread per test process.

The suite runs under pytest-xdist on a 2-core machine; tensors here are tiny, and two threads per
worker oversubscribe the cores (measured up to 75x slower on small CLI tests).
"""
import os

import matplotlib
import torch

matplotlib.use("Agg")
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
