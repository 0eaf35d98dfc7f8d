"""CPU and CUDA values agree (1e-4 relative) for every rewrite and for vmap with 1, 8 and 32
points per pass. Marked ``cuda``: skipped where CUDA is absent (CPU CI); run by
``benchmarks/gpu_check.sh`` (``pytest -m cuda``). TF32 is switched off so that both devices
compute in full float32.
"""
import numpy as np
import pytest
import torch
from test_rewrites import MODELS, PLAIN, _data, _model

from landscape.directions import random_directions
from landscape.perturbed import Evaluator

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

POINTS = np.random.default_rng(0).uniform(-0.5, 0.5, size=(32, 2))


@pytest.fixture(autouse=True)
def full_float32():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize("name", sorted(MODELS))
def test_cuda_equals_cpu_for_every_rewrite_and_points_per_pass(name):
    net, data = _model(name), _data()
    d = random_directions(net, ndim=2, seed=3, ignore=None)
    expected = Evaluator(net, data, d, batch_size=16, device="cpu", **PLAIN)(POINTS)
    variants = {"plain": PLAIN, "no first layer": {"first_layer": False}, "default": {}}
    for label, options in variants.items():
        for ppp in (1, 8, 32):
            ev = Evaluator(net, data, d, batch_size=16, device="cuda", points_per_pass=ppp, **options)
            np.testing.assert_allclose(ev(POINTS), expected, rtol=1e-4, atol=1e-6, err_msg=f"{label}, {ppp} points/pass")
    assert next(net.parameters()).device.type == "cpu"  # the caller's model stays where it was


def test_auto_batch_size_on_cuda():
    net, data = _model("resnet20"), _data()
    d = random_directions(net, ndim=2, seed=5)
    ev = Evaluator(net, data, d, device="cuda")
    assert ev.device.type == "cuda" and ev.points_per_pass == 8
    assert ev.batch_size_note.startswith("auto: ")
    expected = Evaluator(net, data, d, batch_size=16, device="cpu", **PLAIN)(POINTS[:8])
    np.testing.assert_allclose(ev(POINTS[:8]), expected, rtol=1e-4, atol=1e-6)
