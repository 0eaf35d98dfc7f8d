import numpy as np
import pytest
import torch
from torch import nn

from landscape.directions import (Directions, check_fits, direction_names, normalize, pca_directions,
                                  random_direction, random_directions, target_directions)


def small_net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    with torch.no_grad():  # non-trivial BN statistics
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
    return net


def rows_norm(t):
    return t.reshape(len(t), -1).norm(dim=1)


def test_filter_normalized_rows_have_the_weights_row_norms():
    net = small_net()
    d = random_directions(net, ndim=1, seed=3).axes[0]
    conv_w, conv_b, bn_w, bn_b, fc_w, fc_b = [p.detach() for p in net.parameters()]
    torch.testing.assert_close(rows_norm(d[0]), rows_norm(conv_w), rtol=1e-6, atol=0)
    torch.testing.assert_close(rows_norm(d[4]), rows_norm(fc_w), rtol=1e-6, atol=0)
    for i in (1, 2, 3, 5):  # biasbn: 1-D entries are zero
        assert torch.count_nonzero(d[i]) == 0


def test_same_seed_same_directions_other_seed_other_directions():
    net = small_net()
    a, b, c = (random_directions(net, ndim=2, seed=s) for s in (7, 7, 8))
    for u, v in zip(a.axes[0] + a.axes[1], b.axes[0] + b.axes[1]):
        assert torch.equal(u, v)
    assert not torch.equal(a.axes[0][0], c.axes[0][0])
    assert not torch.equal(a.axes[0][0], a.axes[1][0])  # x and y are different draws


def test_norms_layer_weight_none_and_ignore_none():
    torch.manual_seed(0)
    w2, w1 = torch.randn(5, 3, 2), torch.randn(5)
    d2, d1 = torch.randn(5, 3, 2), torch.randn(5)
    torch.testing.assert_close(normalize(d2, w2, norm="layer").norm(), w2.norm())
    torch.testing.assert_close(normalize(d2, w2, norm="weight"), d2 * w2)
    assert torch.equal(normalize(d2, w2, norm="none"), d2)
    # ignore="none" keeps a 1-D entry random and scales it like a whole layer
    kept = normalize(d1, w1, norm="filter", ignore=None)
    torch.testing.assert_close(kept, d1 * w1.norm() / d1.norm())
    assert torch.count_nonzero(normalize(d1, w1, norm="filter", ignore="biasbn")) == 0
    with pytest.raises(ValueError, match="norm must be one of"):
        normalize(d2, w2, norm="dfilter")
    with pytest.raises(ValueError, match="ignore must be one of"):
        normalize(d2, w2, ignore="bn")


def test_ignore_policy_does_not_change_the_multi_dim_entries():
    net = small_net()
    a = random_direction(net, torch.Generator().manual_seed(1), ignore="biasbn")
    b = random_direction(net, torch.Generator().manual_seed(1), ignore=None)
    assert torch.equal(a[0], b[0]) and torch.equal(a[4], b[4])
    assert torch.count_nonzero(b[1]) == 4


def test_states_directions_cover_running_stats_and_skip_integers():
    net = small_net()
    names = direction_names(net, "states")
    assert "1.running_var" in names and "1.num_batches_tracked" in names
    d = random_directions(net, ndim=1, seed=0, dir_type="states", ignore=None).axes[0]
    by_name = dict(zip(names, d))
    assert torch.count_nonzero(by_name["1.num_batches_tracked"]) == 0
    torch.testing.assert_close(by_name["1.running_var"].norm(), net[1].running_var.norm())
    assert len(d) == len(net.state_dict())


def test_target_directions_and_plane_through_three_models():
    a, b, c = small_net(0), small_net(1), small_net(2)
    d = target_directions(a, b, c, dir_type="states")
    assert d.ndim == 2 and [i["kind"] for i in d.info] == ["target", "target"]
    for name, w, dx, dy in zip(direction_names(a, "states"), a.state_dict().values(), *d.axes):
        if w.is_floating_point():
            torch.testing.assert_close(w + dx, b.state_dict()[name], rtol=0, atol=1e-6)
            torch.testing.assert_close(w + dy, c.state_dict()[name], rtol=0, atol=1e-6)


def test_pca_matches_sklearn_and_spans_a_planar_path():
    from sklearn.decomposition import PCA

    net = small_net()
    final = [p.detach().clone() for p in net.parameters()]
    g = torch.Generator().manual_seed(0)
    u, v = ([torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype) for p in final] for _ in range(2))
    coefs = np.array([[3.0, 1.0], [2.0, -1.5], [1.2, 0.4], [0.5, -0.2], [0.0, 0.0]])
    names = [n for n, _ in net.named_parameters()]
    states = [{n: w + a * du + b * dv for n, w, du, dv in zip(names, final, u, v)} for a, b in coefs]
    d = pca_directions(net, states, ignore=None)
    matrix = np.stack([torch.cat([(s[n] - w).reshape(-1) for n, w in zip(names, final)]).double().numpy()
                       for s in states])
    ref = PCA(n_components=2).fit(matrix)
    np.testing.assert_allclose(d.meta["explained_variance_ratio"], ref.explained_variance_ratio_, rtol=1e-5)
    np.testing.assert_allclose(d.meta["explained_variance"], ref.explained_variance_, rtol=1e-5)
    ours = np.stack([torch.cat([t.reshape(-1) for t in axis]).double().numpy() for axis in d.axes])
    np.testing.assert_allclose(np.abs(ours @ ref.components_.T), np.eye(2), atol=1e-5)
    with pytest.raises(ValueError, match="at least 3 checkpoints"):
        pca_directions(net, states[:2])


def test_check_fits_names_the_mismatch():
    net = small_net()
    d = random_directions(net, ndim=1, seed=0)
    check_fits(d, net)
    with pytest.raises(ValueError, match="has 5 tensors but the model has 6"):
        check_fits(Directions([d.axes[0][:5]]), net)
    bad = list(d.axes[0])
    bad[4] = torch.zeros(3, 7)
    with pytest.raises(ValueError, match=r"entry '4.weight' has shape \(3, 7\)"):
        check_fits(Directions([bad]), net)
    with pytest.raises(ValueError, match="dir_type must be one of"):
        Directions([bad], dir_type="params")
