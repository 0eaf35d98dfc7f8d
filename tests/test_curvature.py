"""Curvature and sharpness against exact answers: explicit Hessians and closed forms."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from analysis import curvature as cv


def mse(out, y):
    return ((out.squeeze(-1) - y) ** 2).mean()


def linear_problem(n=60, d=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64) * torch.linspace(0.2, 3.0, d, dtype=torch.float64)
    y = torch.randn(n, generator=gen, dtype=torch.float64)
    model = nn.Linear(d, 1).double()
    return model, x, y


class Quadratic(nn.Module):
    """L(w) = 0.5 w^T A w (the output, repeated per sample); w is (1, d), plus an unused bias."""

    def __init__(self, a, w0=None):
        super().__init__()
        self.register_buffer("a", torch.as_tensor(a, dtype=torch.float64))
        d = len(self.a)
        start = torch.zeros(d) if w0 is None else torch.as_tensor(w0)
        self.w = nn.Parameter(start.to(torch.float64).view(1, d))
        self.bias = nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def forward(self, x):
        w = self.w[0]
        return (0.5 * w @ self.a @ w).expand(len(x))


class Cubic(nn.Module):
    """L(w) = w0^3/6 + w1^3/6 + sum_i c_i w_{i+2}^2 / 2: Hessian diag(w0, w1, c)."""

    def __init__(self, c):
        super().__init__()
        self.register_buffer("c", torch.as_tensor(c, dtype=torch.float64))
        self.w = nn.Parameter(torch.zeros(1, 2 + len(self.c), dtype=torch.float64))
        self.bias = nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def forward(self, x):
        w = self.w[0]
        return (w[0] ** 3 / 6 + w[1] ** 3 / 6 + 0.5 * (self.c * w[2:] ** 2).sum()).expand(len(x))


def mean_out(out, y):
    return out.mean()


DUMMY = torch.zeros(5, 1), torch.zeros(5)


def exact_linear_hessian(x):
    xa = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1).numpy()
    return 2 * xa.T @ xa / len(x)


def test_linear_regression_spectrum_and_trace():
    model, x, y = linear_problem()
    h = exact_linear_hessian(x)
    exact = np.linalg.eigvalsh(h)
    kw = dict(loss=mse, batch_size=16, params="all")
    np.testing.assert_allclose(cv.dense_hessian(model, (x, y), **kw), h, rtol=1e-10, atol=1e-10)
    top = cv.top_eigenvalues(model, (x, y), k=3, **kw)
    np.testing.assert_allclose(top.values, exact[::-1][:3], rtol=1e-4)
    assert top.num_params == 13 and top.num_hvp > 0
    # eigenvectors: H v = lambda v
    np.testing.assert_allclose(h @ top.vectors, top.vectors * top.values, atol=1e-5 * exact[-1])
    low = cv.min_eigenvalue(model, (x, y), **kw)
    np.testing.assert_allclose(low.values, exact[:1], rtol=1e-4)
    # weights only: the bias row and column drop out
    w_only = cv.top_eigenvalues(model, (x, y), k=1, loss=mse, params="weights")
    np.testing.assert_allclose(w_only.values[0], np.linalg.eigvalsh(h[:-1, :-1])[-1], rtol=1e-4)

    # Hutch++ with a sketch of the full dimension is exact
    hpp = cv.hessian_trace(model, (x, y), num_probes=3 * 13, method="hutch++", **kw)
    assert hpp.mean == pytest.approx(np.trace(h), rel=1e-8)
    hutch = cv.hessian_trace(model, (x, y), num_probes=400, seed=3, **kw)
    assert abs(hutch.mean - np.trace(h)) < 4 * hutch.stderr
    # Rademacher variance is 2 sum_{i != j} H_ij^2
    expected_se = np.sqrt(2 * (np.sum(h ** 2) - np.sum(np.diag(h) ** 2)) / 400)
    assert hutch.stderr == pytest.approx(expected_se, rel=0.25)
    assert (hutch.seed, hutch.num_hvp, hutch.method) == (3, 400, "hutchinson")


def mlp_problem(n=50):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Dropout(0.5), nn.Linear(6, 3)).double()
    x = torch.randn(n, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (n,))
    return model, x, y


WEIGHTS = dict(params="weights")


def autograd_hessian(model, x, y, every=False):
    names = [k for k, p in model.named_parameters() if every or p.dim() > 1]
    shapes = [dict(model.named_parameters())[k].shape for k in names]
    flat0 = torch.cat([dict(model.named_parameters())[k].detach().reshape(-1) for k in names])

    def loss(flat):
        chunks = flat.split([s.numel() for s in shapes])
        weights = {k: c.view(s) for k, c, s in zip(names, chunks, shapes)}
        return F.cross_entropy(functional_call(model, weights, (x,), strict=False), y)

    model.eval()
    h = torch.autograd.functional.hessian(loss, flat0, vectorize=True).numpy()
    model.train()
    return h


def test_mlp_hvp_matches_dense_autograd_hessian():
    model, x, y = mlp_problem()
    h = autograd_hessian(model, x, y)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    v = torch.randn(h.shape[0], dtype=torch.float64)
    hv = cv.hessian_vector_product(model, (x, y), v, batch_size=7, **WEIGHTS)
    np.testing.assert_allclose(hv.numpy(), h @ v.numpy(), rtol=1e-8, atol=1e-10)
    # one tensor per chosen parameter gives the same product
    parts = list(v.split([24, 18]))
    hv2 = cv.hessian_vector_product(model, (x, y), [parts[0].view(6, 4), parts[1].view(3, 6)], **WEIGHTS)
    np.testing.assert_allclose(hv2.numpy(), hv.numpy(), rtol=1e-10, atol=1e-12)

    exact = np.linalg.eigvalsh(h)
    assert exact[0] < 0  # a genuine saddle direction
    np.testing.assert_allclose(cv.top_eigenvalues(model, (x, y), k=2, **WEIGHTS).values, exact[::-1][:2], rtol=1e-4)
    np.testing.assert_allclose(cv.min_eigenvalue(model, (x, y), **WEIGHTS).values[0], exact[0], rtol=1e-4)
    hpp = cv.hessian_trace(model, (x, y), num_probes=30, method="hutch++", seed=2, **WEIGHTS)
    assert abs(hpp.mean - np.trace(h)) < 4 * hpp.stderr and hpp.num_hvp == 30
    conv = cv.convexity_ratio(model, (x, y), **WEIGHTS)
    assert conv.ratio == pytest.approx(abs(exact[0] / exact[-1]), rel=1e-3)
    # restored: training mode and parameter values
    assert model.training and model[2].training
    for k, val in model.state_dict().items():
        assert torch.equal(val, state[k])


def test_default_counts_every_parameter_like_the_exact_hessian():
    model, x, y = mlp_problem()
    exact = np.linalg.eigvalsh(autograd_hessian(model, x, y, every=True))
    np.testing.assert_allclose(cv.top_eigenvalues(model, (x, y), k=2).values, exact[::-1][:2], rtol=1e-4)
    assert cv.top_eigenvalues(model, (x, y), k=1).num_params == 6 * 4 + 6 + 3 * 6 + 3


def test_loader_with_dict_inputs_and_callable_loss_equal_the_pair():
    model, x, y = mlp_problem(n=30)

    class Keyword(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, features):
            return {"logits": self.inner(features)}

    loader = torch.utils.data.DataLoader(
        [({"features": a}, b) for a, b in zip(x, y)], batch_size=8)
    wrapped = Keyword(model)
    ref = cv.top_eigenvalues(model, (x, y), k=1, seed=3).values
    got = cv.top_eigenvalues(wrapped, loader, k=1, seed=3, output="logits",
                             loss=lambda out, t: F.cross_entropy(out, t, reduction="none")).values
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_eigenvalues_do_not_depend_on_batch_size():
    model, x, y = mlp_problem(n=30)  # batches of 7, 7, 7, 7, 2
    small = cv.top_eigenvalues(model, (x, y), k=2, batch_size=7).values
    full = cv.top_eigenvalues(model, (x, y), k=2, batch_size=30).values
    np.testing.assert_allclose(small, full, rtol=1e-6)
    t7 = cv.hessian_trace(model, (x, y), num_probes=12, batch_size=7, seed=1)
    tn = cv.hessian_trace(model, (x, y), num_probes=12, seed=1)
    assert t7.mean == pytest.approx(tn.mean, rel=1e-8)


def test_select_params():
    model, _, _ = mlp_problem()
    assert len(cv.select_params(model)) == 4  # every parameter by default, as PyHessian
    assert len(cv.select_params(model, "weights")) == 2
    assert cv.select_params(model, [model[3].bias]) == [model[3].bias]
    with pytest.raises(ValueError):
        cv.select_params(model, "biases")
    with pytest.raises(ValueError):
        cv.select_params(model, [nn.Parameter(torch.zeros(2))])


def test_convexity_ratio_on_saddle():
    a = np.diag([3.0, 2.0, 1.0, 0.5, -0.2, -0.5, 0.1, 1.5])
    res = cv.convexity_ratio(Quadratic(a), DUMMY, loss=mean_out, params="weights")
    assert res.ratio == pytest.approx(0.5 / 3.0, rel=1e-6)
    assert (res.lambda_min, res.lambda_max) == (pytest.approx(-0.5), pytest.approx(3.0))
    # too small for ARPACK: the explicit Hessian answers
    tiny = cv.convexity_ratio(Quadratic(np.diag([-1.0, 4.0])), DUMMY, loss=mean_out, params="weights")
    assert (tiny.lambda_min, tiny.lambda_max, tiny.ratio) == (pytest.approx(-1), pytest.approx(4), pytest.approx(0.25))


def test_convexity_map_orientation_and_values():
    model = Cubic([2.0, 1.5, 0.5, 1.0])
    zero = [torch.zeros_like(p) for p in model.parameters()]
    d1, d2 = [t.clone() for t in zero], [t.clone() for t in zero]
    d1[0][0, 0], d2[0][0, 1] = 1.0, 1.0
    xs, ys = np.array([-1.0, 0.3, 3.0]), np.array([-0.4, 1.0])
    cmap = cv.convexity_map(model, DUMMY, directions=(d1, d2), xcoords=xs, ycoords=ys, loss=mean_out, params="weights")
    a, b = np.meshgrid(xs, ys)
    lmin = np.minimum(np.minimum(a, b), 0.5)
    lmax = np.maximum(np.maximum(a, b), 2.0)
    assert cmap.ratio.shape == (2, 3)
    np.testing.assert_allclose(cmap.lambda_min, lmin, atol=1e-6)
    np.testing.assert_allclose(cmap.lambda_max, lmax, atol=1e-6)
    np.testing.assert_allclose(cmap.ratio, np.abs(lmin / lmax), atol=1e-6)
    assert torch.equal(model.w, torch.zeros_like(model.w))


def test_rho_sharpness_closed_form():
    a = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 0.3]])
    w = np.array([0.7, -1.2, 0.4])
    rho, eta = 0.1, 0.01

    def loss(v):
        return 0.5 * v @ a @ v

    g = a @ w
    res = cv.rho_sharpness(Quadratic(a, w), DUMMY, rho=rho, loss=mean_out, params="weights")
    assert res.value == pytest.approx(loss(w + rho * g / np.linalg.norm(g)) - loss(w), rel=1e-10)
    assert res.loss == pytest.approx(loss(w))
    t = np.abs(w) + eta
    res = cv.rho_sharpness(Quadratic(a, w), DUMMY, rho=rho, adaptive=True, eta=eta, loss=mean_out, params="weights")
    assert res.value == pytest.approx(loss(w + rho * t ** 2 * g / np.linalg.norm(t * g)) - loss(w), rel=1e-10)
    assert res.kind == "asam"


def test_average_sharpness_closed_form():
    a = np.diag([2.0, 1.0, 0.5, 0.25])
    sigma, m = 0.1, 2000
    res = cv.average_sharpness(Quadratic(a), DUMMY, sigma=sigma, num_samples=m, loss=mean_out, params="weights", seed=5)
    # at w = 0 each draw is sigma^2/2 e^T A e: mean sigma^2/2 tr(A), variance sigma^4/2 tr(A^2)
    closed = sigma ** 2 / 2 * np.trace(a)
    assert abs(res.value - closed) < 4 * res.stderr
    assert res.stderr == pytest.approx(np.sqrt(sigma ** 4 / 2 * np.trace(a @ a) / m), rel=0.15)
    assert (res.seed, res.num_samples) == (5, m)


def test_epsilon_sharpness_reaches_the_box_corner():
    a = np.diag([2.0, 1.0, 0.5])
    w = np.array([0.8, -1.5, 0.3])
    eps = 1e-2
    res = cv.epsilon_sharpness(Quadratic(a, w), DUMMY, eps=eps, loss=mean_out, params="weights")
    # for diagonal positive A the maximum is at the corner z = sign(w) eps (|w| + 1)
    corner = w + np.sign(w) * eps * (np.abs(w) + 1)
    base = 0.5 * w @ a @ w
    assert res.value == pytest.approx(100 * (0.5 * corner @ a @ corner - base) / (1 + base), rel=1e-10)


# ----------------------------------------------------------------------------- graph reuse, memory, hooks
class Counting(nn.Module):
    """Counts its forward passes."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_graph_reuse_and_recompute_equal_the_dense_hessian():
    from landscape.hessian import Objective, evaluating

    model, x, y = mlp_problem(n=30)
    counted = Counting(model)
    h = autograd_hessian(model, x, y, every=True)
    vs = torch.randn(4, h.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with evaluating(counted):
        sizes = []
        for part in (slice(0, 7), slice(7, 14)):
            one = Objective(counted, (x[part], y[part]), reuse=True)
            one.hvp(vs[0, :one.dim])
            sizes.append(one.kept_bytes)
        two = sizes[0] + sizes[1] + sizes[0] // 2  # room for the graphs of the first two batches
    products = {}
    batches = 5  # 7, 7, 7, 7, 2
    for reuse, budget, kept in ((True, None, 5), (False, None, 0), (None, 0, 0), (None, two, 2)):
        counted.calls = 0
        with evaluating(counted):
            obj = Objective(counted, (x, y), batch_size=7, reuse=reuse, budget=budget)
            products[reuse, budget] = torch.stack([obj.hvp(v) for v in vs]).numpy()
        assert obj.kept_batches == kept
        assert counted.calls == batches + 3 * (batches - kept)  # a kept graph: one forward in all
    for got in products.values():
        np.testing.assert_allclose(got, vs.numpy() @ h, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(products[True, None], products[False, None])  # the same sums


def test_kept_graphs_follow_parameter_changes():
    from landscape.hessian import Objective, evaluating

    model, x, y = mlp_problem(n=20)
    v = torch.randn(sum(p.numel() for p in model.parameters()), dtype=torch.float64)
    with evaluating(model):
        obj = Objective(model, (x, y), reuse=True)
        before = obj.hvp(v)
        with torch.no_grad():
            model[0].weight.mul_(1.5)
        after = obj.hvp(v)
    np.testing.assert_allclose(after.numpy(), autograd_hessian(model, x, y, every=True) @ v.numpy(), rtol=1e-9)
    assert not torch.allclose(before, after)


def test_default_batch_size_is_chosen_by_measured_memory():
    from landscape.hessian import Objective, evaluating

    model, x, y = mlp_problem(n=40)
    with evaluating(model):
        whole = Objective(model, (x, y))
        assert whole.batch_size == 40  # a tiny graph: everything at once
        per_example = whole.graph_bytes / 40
        small = Objective(model, (x, y), budget=int(per_example * 10))
        assert 5 <= small.batch_size <= 10
        v = torch.ones(whole.dim, dtype=torch.float64)
        np.testing.assert_allclose(small.hvp(v).numpy(), whole.hvp(v).numpy(), rtol=1e-10)


class TinyAttention(nn.Module):
    """Embedding + one F.scaled_dot_product_attention head + linear head; int64 token ids."""

    def __init__(self, vocab=11, dim=6, classes=3):
        super().__init__()
        self.embed, self.qkv, self.head = nn.Embedding(vocab, dim), nn.Linear(dim, 3 * dim), nn.Linear(dim, classes)

    def forward(self, input_ids):
        q, k, v = self.qkv(self.embed(input_ids)).unsqueeze(1).chunk(3, dim=-1)
        return {"logits": self.head(F.scaled_dot_product_attention(q, k, v).squeeze(1).mean(1))}


def token_problem(n=24, length=5):
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    ids = torch.randint(0, 11, (n, length), generator=gen)
    return TinyAttention(), ids, torch.randint(0, 3, (n,), generator=gen)


def test_attention_model_top_eigenvalue_equals_the_dense_hessian():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model, ids, labels = token_problem()
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(flat):
        weights = {k: c.view(s) for k, c, s in zip(names, flat.split([s.numel() for s in shapes]), shapes)}
        return F.cross_entropy(functional_call(model, weights, (ids,))["logits"], labels)

    with sdpa_kernel(SDPBackend.MATH):  # the independent dense Hessian needs the math kernel too
        exact = np.linalg.eigvalsh(torch.autograd.functional.hessian(loss, flat0).double().numpy())
    got = cv.top_eigenvalues(model, (ids, labels), k=2, output="logits", batch_size=10, tol=1e-8)
    np.testing.assert_allclose(got.values, exact[::-1][:2], rtol=2e-4)
    low = cv.min_eigenvalue(model, (ids, labels), output="logits", tol=1e-8)
    np.testing.assert_allclose(low.values[0], exact[0], rtol=2e-3, atol=1e-5)


def hf_loader(ids, labels, batch_size=7):
    """HuggingFace-style dict batches with the labels inside."""
    rows = [{"input_ids": a, "labels": b} for a, b in zip(ids, labels)]
    return torch.utils.data.DataLoader(rows, batch_size=batch_size)


def hf_split(batch):
    return {k: v for k, v in batch.items() if k != "labels"}, batch["labels"]


CURVATURE_CALLS = {
    "top": lambda m, d, **kw: cv.top_eigenvalues(m, d, k=1, seed=1, **kw).values,
    "min": lambda m, d, **kw: cv.min_eigenvalue(m, d, k=1, seed=1, **kw).values,
    "trace": lambda m, d, **kw: cv.hessian_trace(m, d, num_probes=6, seed=1, **kw).mean,
    "hvp": lambda m, d, **kw: cv.hessian_vector_product(m, d, torch.ones(sum(p.numel() for p in m.parameters())),
                                                        **kw).numpy(),
    "convexity": lambda m, d, **kw: cv.convexity_ratio(m, d, **kw).ratio,
    "rho": lambda m, d, **kw: cv.rho_sharpness(m, d, **kw).value,
    "average": lambda m, d, **kw: cv.average_sharpness(m, d, num_samples=3, **kw).value,
    "epsilon": lambda m, d, **kw: cv.epsilon_sharpness(m, d, steps=2, **kw).value,
}


@pytest.mark.parametrize("name", sorted(CURVATURE_CALLS))
def test_every_curvature_function_takes_hf_dict_batches(name):
    from regularizers.evaluation import BatchHooks

    model, ids, labels = token_problem()
    call = CURVATURE_CALLS[name]
    pair = call(model, (ids, labels), output="logits")
    dicts = call(model, hf_loader(ids, labels), output="logits", hooks=BatchHooks(split=hf_split))
    np.testing.assert_allclose(dicts, pair, rtol=2e-4, atol=1e-6)
