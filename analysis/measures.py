"""Per-model generalization measures (Jiang et al. 2019, "Fantastic Generalization Measures and
Where to Find Them", arXiv 1912.02178; Dziugaite et al. 2020, "In Search of Robust Measures of
Generalization", arXiv 2010.11924), computed on a user's model and training inputs.

Batch norm is folded into the conv/linear layer before it first (:func:`fold_batchnorm`), as the
papers do, so norms, margins and perturbations see the function the network computes in eval
mode. The filter geometry (angles, pairs, alpha) is measured on the weights as trained, as
``landscape diagnose`` does (a positive BN scale does not change a filter's direction).

:func:`compute_measures` returns every measure of :data:`MEASURES` for one model; a measure that
cannot be a number (a margin <= 0 under a log) is NaN, and a basin width that is only a lower
bound is listed in ``Measures.censored``: it is reported, never ranked as a number.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from analysis.curvature import epsilon_sharpness, hessian_trace, rho_sharpness, top_eigenvalues
from analysis.summary import basin_edges, layer_summaries
from landscape.directions import random_directions

LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)

# name -> (label, definition and source); the order is the report's
MEASURES = {
    "log_prod_frobenius": ("log prod Frobenius", "sum over layers of 2 log ||W||_F (Jiang et al. 2019, "
                           "log.prod.of.fro)"),
    "log_prod_spectral": ("log prod spectral", "sum over layers of 2 log ||W||_2; Conv2d layers by the FFT of "
                          "Sedghi et al. 2019, arXiv 1805.10408, others by power iteration (Jiang et al. 2019, "
                          "log.prod.of.spec)"),
    "distance_from_init": ("distance from init", "||w - w0||_2 over all conv/linear weights, BN folded into "
                           "both (Jiang et al. 2019, dist.init); NaN without an initial model"),
    "path_norm": ("path norm", "sum over input-output paths of the product of squared weights: the output "
                  "sum of the squared-weight net on an all-ones input (Jiang et al. 2019, path.norm)"),
    "margin": ("10th-percentile margin", "10th percentile over training examples of f_y(x) - max_{j != y} "
               "f_j(x) (Jiang et al. 2019)"),
    "log_spectral_over_margin": ("log prod spectral / margin^2", "log prod spectral - 2 log margin (Jiang "
                                 "et al. 2019, log.spec.orig); NaN when the margin is <= 0"),
    "log_frobenius_over_margin": ("log prod Frobenius / margin^2", "log prod Frobenius - 2 log margin "
                                  "(Jiang et al. 2019, log.prod.of.fro.over.margin); NaN when the margin <= 0"),
    "pacbayes_sigma": ("PAC-Bayes sigma", "largest sigma with E[train accuracy drop] <= 0.1 under "
                       "w + N(0, sigma^2 I), by bisection (Jiang et al. 2019, pacbayes.flatness = 1/sigma^2)"),
    "pacbayes_mag_sigma": ("magnitude-aware PAC-Bayes sigma", "the same with noise variance sigma^2 w_i^2 "
                           "+ 1e-6 (Jiang et al. 2019, pacbayes.mag.flatness; Dziugaite et al. 2020)"),
    "eps_sharpness": ("epsilon-sharpness", "Keskar et al. 2017 (arXiv 1609.04836): percent loss rise in the "
                      "box eps (|w| + 1), eps = 1e-3"),
    "rho_sharpness": ("rho-sharpness", "SAM's L(w + rho g/||g||) - L(w), rho = 0.05 (Foret et al. 2021, "
                      "arXiv 2010.01412)"),
    "lambda_max": ("Hessian lambda_max", "largest Hessian eigenvalue of the training loss, Lanczos"),
    "hessian_trace": ("Hessian trace", "Hutchinson estimate of the Hessian trace of the training loss"),
    "basin_width": ("1D basin width", "width of the interval around the model where the train loss stays "
                    "within 1 nat along one filter-normalized random direction (Li et al. 2018, arXiv "
                    "1712.09913); censored when the loss never rises that much within the span"),
    "min_angle": ("minimal filter angle (deg)", "smallest angle between two filters of a layer, over layers "
                  "(MMA, Wang et al. 2020, arXiv 2006.06527)"),
    "pairs_above": ("filter pairs with cos > 0.2", "count over layers of filter pairs with cosine > 0.2"),
    "alpha": ("weight-spectrum alpha", "mean over layers of the power-law exponent of the W^T W spectrum "
              "(Martin & Mahoney 2021, arXiv 1810.01075)"),
}


@dataclass
class MeasureSettings:
    """How the measures are computed: ``samples`` training examples (seeded subset), PAC-Bayes
    bisection to an accuracy ``drop`` (fraction) within ``drop_tol`` with ``noise_draws`` draws,
    curvature with ``probes`` Hutchinson probes and Lanczos tolerance ``eig_tol``, the 1D basin on
    ``points`` points over [-span, span] at a rise of ``basin_rise`` nats."""

    samples: int = 512
    seed: int = 0
    drop: float = 0.1
    drop_tol: float = 0.005
    noise_draws: int = 5
    eps: float = 1e-3
    rho: float = 0.05
    probes: int = 10
    eig_tol: float = 1e-2
    points: int = 21
    span: float = 1.0
    basin_rise: float = 1.0
    curvature: bool = True


@dataclass
class Measures:
    """``values``: measure name -> number; ``censored``: the names whose value is a lower bound;
    ``notes``: why a value is NaN."""

    values: dict
    censored: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every BatchNorm that directly follows a conv/linear
    layer folded into it (``torch.fx.experimental.optimization.fuse``). A model without batch
    norm is copied as is; one torch.fx cannot trace raises ValueError."""
    model = copy.deepcopy(model).eval()
    if not any(isinstance(m, NORMS) for m in model.modules()):
        return model
    from torch.fx.experimental.optimization import fuse

    try:
        folded = fuse(model)
    except Exception as error:  # torch.fx raises many types on untraceable code
        raise ValueError(f"cannot fold batch norm: torch.fx cannot trace the model ({error})") from None
    return folded.eval()


def layer_inputs(model: nn.Module, example: torch.Tensor) -> dict:
    """``{module name: input shape without batch}`` of every conv/linear layer, from one forward
    pass of ``example`` ``(1, ...)``."""
    shapes, hooks = {}, []

    def record(name):
        def hook(module, args, output):
            shapes.setdefault(name, tuple(args[0].shape[1:]))     # returns None: the output stays
        return hook

    for name, module in model.named_modules():
        if isinstance(module, LAYERS):
            hooks.append(module.register_forward_hook(record(name)))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return shapes


def spectral_norm(matrix: torch.Tensor, *, iterations: int = 500, tol: float = 1e-10, seed: int = 0) -> float:
    """Largest singular value of a ``(rows, cols)`` matrix by power iteration on ``M^T M``
    (float64), stopped when the estimate changes by less than ``tol`` relative."""
    m = matrix.detach().cpu().double().reshape(len(matrix), -1)
    v = torch.randn(m.shape[1], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    value = 0.0
    for _ in range(iterations):
        v = m.T @ (m @ v)
        size = v.norm().item()
        if size == 0:
            return 0.0
        v /= size
        new = math.sqrt(size)
        if abs(new - value) <= tol * new:
            return new
        value = new
    return value


def conv_spectral_norm(weight: torch.Tensor, input_size, *, padding=0, circular: bool = False) -> float:
    """Spectral norm of a stride-1 2D convolution (Sedghi et al. 2019, "The Singular Values of
    Convolutional Layers", arXiv 1805.10408): the largest singular value over frequencies of the
    ``(out, in)`` matrices of the kernel's 2D FFT on an ``n1 x n2`` grid.

    ``weight`` ``(out, in, kh, kw)``; ``input_size`` ``(h, w)``. ``circular=True``: exact for
    circular padding on an ``h x w`` input. Otherwise the grid is the zero-padded input
    ``(h + 2 p, w + 2 p)``: the zero-padded (and any strided) convolution is a restriction of that
    circular operator, so this is an upper bound on its norm (exact as the input grows).
    """
    if weight.dim() != 4:
        raise ValueError(f"conv_spectral_norm needs a (out, in, kh, kw) kernel, got shape {tuple(weight.shape)}")
    pad = (padding, padding) if isinstance(padding, int) else tuple(padding)
    size = tuple(input_size[-2:]) if circular else (input_size[-2] + 2 * pad[0], input_size[-1] + 2 * pad[1])
    if size[0] < weight.shape[2] or size[1] < weight.shape[3]:
        raise ValueError(f"input {size} is smaller than the kernel {tuple(weight.shape[2:])}")
    transform = torch.fft.fft2(weight.detach().cpu().double(), s=size)       # (out, in, n1, n2)
    return float(torch.linalg.matrix_norm(transform.permute(2, 3, 0, 1), ord=2).max())


def layer_norms(model: nn.Module, example: torch.Tensor) -> list:
    """``[(name, Frobenius norm, spectral norm)]`` of each conv/linear layer of ``model``: the
    spectral norm of a Conv2d with groups 1 and dilation 1 by :func:`conv_spectral_norm` on its
    input size, of anything else (linear layers; other convolutions, as an approximation) by
    :func:`spectral_norm` of the weight reshaped to ``(out, rest)``."""
    shapes, out = layer_inputs(model, example), []
    for name, module in model.named_modules():
        if not isinstance(module, LAYERS) or name not in shapes:
            continue
        w = module.weight
        if isinstance(module, nn.Conv2d) and module.groups == 1 and module.dilation == (1, 1):
            padding = module.padding
            if isinstance(padding, str):           # "valid": none; "same": enough on each side
                padding = (0, 0) if padding == "valid" else tuple(k // 2 for k in module.kernel_size)
            spectral = conv_spectral_norm(w, shapes[name], padding=padding,
                                          circular=module.padding_mode == "circular")
        else:
            spectral = spectral_norm(w)
        out.append((name, float(w.detach().double().norm()), spectral))
    return out


def path_norm(model: nn.Module, input_shape) -> float:
    """Path norm (Jiang et al. 2019, path.norm; Neyshabur et al. 2015, arXiv 1503.00036): the sum
    over all input-output paths of the product of the squared weights on the path, computed as
    the output sum of a copy with every weight squared and every bias zeroed on an all-ones
    input of shape ``(1, *input_shape)``. Exact for nets of conv/linear layers, ReLU and average
    pooling; a max-pool takes the largest path sum of its window (as the papers' code does).
    Batch norm must be folded first (:func:`fold_batchnorm`)."""
    if any(isinstance(m, NORMS) for m in model.modules()):
        raise ValueError("path_norm needs batch norm folded first (fold_batchnorm): a BN layer remains")
    squared = copy.deepcopy(model).eval().double()
    with torch.no_grad():
        for p in squared.parameters():
            p.copy_(p ** 2 if p.dim() > 1 else torch.zeros_like(p))
        device = next(squared.parameters()).device
        return float(squared(torch.ones(1, *input_shape, dtype=torch.float64, device=device)).sum())


def margins(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """``(n,)`` output margins ``f_y(x) - max_{j != y} f_j(x)`` of the logits of ``model`` (eval
    mode), the margin of Jiang et al. 2019 (arXiv 1912.02178), who take its 10th percentile."""
    with torch.no_grad():
        logits = model(inputs).double()
    true = logits.gather(1, targets.view(-1, 1)).squeeze(1)
    other = logits.scatter(1, targets.view(-1, 1), -math.inf).max(dim=1).values
    return (true - other).cpu().numpy()


def _accuracy(model, params: dict, inputs, targets) -> float:
    with torch.no_grad():
        return (functional_call(model, params, (inputs,)).argmax(1) == targets).double().mean().item()


def pacbayes_sigma(model: nn.Module, inputs, targets, *, magnitude: bool = False, drop: float = 0.1,
                   drop_tol: float = 0.005, draws: int = 5, seed: int = 0, iterations: int = 40,
                   eps: float = 1e-3) -> tuple:
    """The PAC-Bayes flatness sigma (Jiang et al. 2019, Sec. C; Dziugaite et al. 2020): the largest
    sigma such that the mean training-accuracy drop (fraction) under ``w + u`` is ``drop``,
    ``u_i ~ N(0, sigma^2)`` or, ``magnitude=True``, ``N(0, sigma^2 w_i^2 + eps^2)``, over every
    parameter. Bisection on sigma with ``draws`` seeded noise draws (the same draws at every
    sigma), stopped when the drop is within ``drop_tol`` of ``drop`` or the bracket is 1e-4
    relative.

    Returns:
        ``(sigma, measured drop at sigma)``; sigma is NaN when no sigma up to 1e6 lowers the
        accuracy by ``drop`` (a model near chance).
    """
    model = model.eval()
    params = {n: p.detach() for n, p in model.named_parameters()}
    gen = torch.Generator().manual_seed(seed)
    noise = [{n: torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) for n, p in params.items()}
             for _ in range(draws)]
    base = _accuracy(model, params, inputs, targets)

    def drop_at(sigma: float) -> float:
        accs = []
        for z in noise:
            std = {n: (sigma ** 2 * p ** 2 + eps ** 2).sqrt() if magnitude else sigma for n, p in params.items()}
            accs.append(_accuracy(model, {n: p + std[n] * z[n] for n, p in params.items()}, inputs, targets))
        return base - float(np.mean(accs))

    low, high = 0.0, 1.0
    while drop_at(high) < drop:
        low, high = high, 2 * high
        if high > 1e6:      # a model at chance: no noise lowers its accuracy by the target
            return math.nan, drop_at(high)
    sigma, measured = high, math.nan
    for _ in range(iterations):
        sigma = (low + high) / 2
        measured = drop_at(sigma)
        if abs(measured - drop) <= drop_tol or high - low <= 1e-4 * high:
            break
        low, high = (low, sigma) if measured > drop else (sigma, high)
    return sigma, measured


def line_losses(model: nn.Module, inputs, targets, *, span: float = 1.0, points: int = 21,
                seed: int = 0) -> tuple:
    """Train loss along one filter-normalized random direction (Li et al. 2018): ``(x (points,),
    loss (points,))`` at ``w + x d`` for x in ``linspace(-span, span, points)``."""
    if points < 3 or points % 2 == 0:
        raise ValueError(f"points must be odd and at least 3 (the model is the middle point), got {points}")
    (direction,) = random_directions(model, ndim=1, seed=seed).axes
    names = [n for n, _ in model.named_parameters()]
    params = {n: p.detach() for n, p in model.named_parameters()}
    xs = np.linspace(-span, span, points)
    losses = []
    with torch.no_grad():
        for x in xs:
            moved = {n: params[n] + float(x) * d.to(params[n]) for n, d in zip(names, direction)}
            out = functional_call(model, moved, (inputs,))
            losses.append(nn.functional.cross_entropy(out, targets).item())
    return xs, np.array(losses)


def basin(model: nn.Module, inputs, targets, settings: MeasureSettings) -> tuple:
    """``(width, censored)``: :func:`analysis.summary.basin_edges` of :func:`line_losses` at a rise
    of ``settings.basin_rise``; censored (a lower bound) when one side never rises that much."""
    xs, losses = line_losses(model, inputs, targets, span=settings.span, points=settings.points,
                             seed=settings.seed)
    found = basin_edges(xs, losses, losses[int(np.argmin(np.abs(xs)))] + settings.basin_rise)
    return found.width, found.censored


def weight_distance(model: nn.Module, initial: nn.Module) -> float:
    """``||w - w0||_2`` over the conv/linear weights (matched by module name) of two models: the
    distance from initialization of Jiang et al. 2019 (dist.init, arXiv 1912.02178)."""
    first = dict(initial.named_modules())
    total = 0.0
    for name, module in model.named_modules():
        if isinstance(module, LAYERS):
            if name not in first or first[name].weight.shape != module.weight.shape:
                raise ValueError(f"the initial model has no layer {name!r} of the same shape")
            total += float((module.weight.detach().double() - first[name].weight.detach().double()).pow(2).sum())
    return math.sqrt(total)


def norm_measures(folded: nn.Module, inputs, targets, initial: nn.Module | None) -> dict:
    """The norm, distance, path-norm and margin measures of a BN-folded model (path norm NaN when
    a batch norm could not be folded: it does not follow a conv/linear layer)."""
    norms = layer_norms(folded, inputs[:1])
    frobenius = sum(2 * math.log(f) for _, f, _ in norms)
    spectral = sum(2 * math.log(s) for _, _, s in norms)
    margin = float(np.percentile(margins(folded, inputs, targets), 10))
    log_margin = 2 * math.log(margin) if margin > 0 else math.nan
    unfolded = any(isinstance(m, NORMS) for m in folded.modules())      # a BN not after a conv/linear layer
    return {"log_prod_frobenius": frobenius, "log_prod_spectral": spectral,
            "distance_from_init": weight_distance(folded, initial) if initial is not None else math.nan,
            "path_norm": math.nan if unfolded else path_norm(folded, tuple(inputs.shape[1:])), "margin": margin,
            "log_spectral_over_margin": spectral - log_margin, "log_frobenius_over_margin": frobenius - log_margin}


def compute_measures(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *,
                     initial: nn.Module | None = None, settings: MeasureSettings | None = None) -> Measures:
    """Every measure of :data:`MEASURES` for ``model`` on training ``inputs`` ``(n, ...)`` and class
    ``targets`` ``(n,)`` (CPU or the model's device); ``initial`` is the model at initialization
    (same architecture) or None. The model itself is not changed."""
    s = settings or MeasureSettings()
    folded, init = fold_batchnorm(model), fold_batchnorm(initial) if initial is not None else None
    values = norm_measures(folded, inputs, targets, init)
    for key, magnitude in (("pacbayes_sigma", False), ("pacbayes_mag_sigma", True)):
        values[key] = pacbayes_sigma(folded, inputs, targets, magnitude=magnitude, drop=s.drop,
                                     drop_tol=s.drop_tol, draws=s.noise_draws, seed=s.seed)[0]
    data = (inputs, targets)
    values["eps_sharpness"] = epsilon_sharpness(folded, data, eps=s.eps, seed=s.seed).value
    values["rho_sharpness"] = rho_sharpness(folded, data, rho=s.rho).value
    if s.curvature:
        values["lambda_max"] = float(top_eigenvalues(folded, data, k=1, seed=s.seed, tol=s.eig_tol).values[0])
        values["hessian_trace"] = hessian_trace(folded, data, num_probes=s.probes, seed=s.seed).mean
    else:
        values["lambda_max"] = values["hessian_trace"] = math.nan
    values["basin_width"], censored = basin(folded, inputs, targets, s)
    layers = layer_summaries(model)
    alphas = [layer.alpha for layer in layers if math.isfinite(layer.alpha)]
    values.update(min_angle=min((layer.min_angle for layer in layers), default=math.nan),  # no layer of 2+ filters
                  pairs_above=float(sum(layer.pairs_above for layer in layers)),
                  alpha=float(np.mean(alphas)) if alphas else math.nan)
    return Measures({k: float(values[k]) for k in MEASURES}, ["basin_width"] if censored else [], nan_notes(values))


def nan_notes(values: dict) -> list:
    """One sentence per NaN measure saying why it is undefined."""
    why = {"distance_from_init": "no initial model", "path_norm": "a batch norm could not be folded",
           "log_spectral_over_margin": "the 10th-percentile margin is <= 0",
           "log_frobenius_over_margin": "the 10th-percentile margin is <= 0",
           "pacbayes_sigma": "no sigma lowers the accuracy by the target drop (a model near chance)",
           "pacbayes_mag_sigma": "no sigma lowers the accuracy by the target drop (a model near chance)",
           "lambda_max": "curvature not computed", "hessian_trace": "curvature not computed",
           "alpha": "no layer has enough eigenvalues for a power-law fit"}
    return [f"{k}: {why.get(k, 'undefined')}" for k, v in values.items() if k in MEASURES and not math.isfinite(v)]

