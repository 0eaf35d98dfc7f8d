import json

import numpy as np
import pytest
import torch
from torch import nn

from landscape.cli import main
from landscape.directions import as_vector, random_directions
from landscape.store import read_attrs
from landscape.trajectory import (checkpoint_paths, load_state, pca_trajectory, plane_distances, project,
                                  run_trajectory)
from regularizers.models import load_model


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))


def moved(net, directions, coefs):
    """State dicts at w + a d1 + b d2 for each (a, b) row."""
    states = []
    for a, b in coefs:
        state = {k: v.clone() for k, v in net.state_dict().items()}
        for (name, _), dx, dy in zip(net.named_parameters(), *directions.axes):
            state[name] += a * dx + b * dy
        states.append(state)
    return states


COEFS = np.array([[2.0, -1.0], [1.5, 0.5], [0.7, 0.9], [0.2, 0.1], [0.0, 0.0]])


def test_projection_recovers_coordinates_along_any_directions():
    net = model()
    d = random_directions(net, ndim=2, seed=1, norm="none")  # neither orthogonal nor unit
    np.testing.assert_allclose(project(net, moved(net, d, COEFS), d), COEFS, atol=1e-5)


def test_pca_path_lies_in_its_plane_and_ends_at_the_origin():
    net = model()
    d = random_directions(net, ndim=2, seed=2)
    states = moved(net, d, COEFS)
    traj = pca_trajectory(net, states, labels=[f"e{i}" for i in range(5)])
    assert traj.coords.shape == (5, 2) and traj.labels[0] == "e0"
    assert sum(traj.explained_variance_ratio) == pytest.approx(1.0, abs=1e-6)  # a planar path
    np.testing.assert_allclose(traj.coords[-1], [0.0, 0.0], atol=1e-7)
    # the projected coordinates rebuild every w_t - w_final
    for c, state in zip(traj.coords, states):
        for i, (name, w) in enumerate(net.named_parameters()):
            rebuilt = c[0] * traj.directions.axes[0][i] + c[1] * traj.directions.axes[1][i]
            torch.testing.assert_close(rebuilt, state[name] - w.detach(), atol=1e-5, rtol=0)
    # PCA axes are orthonormal
    flat = np.stack([torch.cat([t.reshape(-1) for t in a]).double().numpy() for a in traj.directions.axes])
    np.testing.assert_allclose(flat @ flat.T, np.eye(2), atol=1e-6)


def test_run_folder_checkpoints(tmp_path):
    net = model()
    states = moved(net, random_directions(net, ndim=2, seed=3), COEFS)
    (tmp_path / "checkpoints").mkdir()
    for epoch, state in enumerate(states, start=1):
        torch.save({"model": state, "epoch": epoch}, tmp_path / "checkpoints" / f"epoch_{epoch:03d}.pt")
    assert [p.name for p in checkpoint_paths(tmp_path)][:2] == ["epoch_001.pt", "epoch_002.pt"]
    traj = run_trajectory(net, tmp_path)
    assert traj.labels == [f"epoch_{e:03d}" for e in range(1, 6)]
    np.testing.assert_allclose(traj.coords, pca_trajectory(net, states).coords, atol=1e-9)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_state(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoints"):
        checkpoint_paths(tmp_path / "checkpoints")


def flat_params(net):
    return as_vector([p for _, p in net.named_parameters()])


def test_planar_path_is_explained_fully_and_lies_on_its_plane():
    net = model()
    traj = pca_trajectory(net, moved(net, random_directions(net, ndim=2, seed=2), COEFS))
    assert traj.explained_fraction == pytest.approx(1.0, abs=1e-6)
    scale = np.abs(traj.coords).max()
    np.testing.assert_allclose(traj.distance, 0.0, atol=1e-6 * scale)
    np.testing.assert_allclose(traj.relative_distance, 0.0, atol=1e-5)
    assert "100.0 %" in traj.summary()


def test_distance_of_a_point_off_given_directions():
    net = model()
    d = random_directions(net, ndim=2, seed=4, norm="none")  # neither orthogonal nor unit
    basis = torch.stack([as_vector(a) for a in d.axes], dim=1)
    q, _ = torch.linalg.qr(torch.cat([basis, torch.randn(len(basis), 1, dtype=torch.float64)], dim=1))
    u = q[:, 2]  # a unit vector orthogonal to both directions
    states = moved(net, d, COEFS)
    offsets = [0.0, 0.7, 0.0, -0.2, 0.0]
    for state, e in zip(states, offsets):
        start = 0
        for name, p in net.named_parameters():
            state[name] += e * u[start:start + p.numel()].reshape(p.shape).float()
            start += p.numel()
    coords, distance, relative = plane_distances(net, states, d)
    np.testing.assert_allclose(coords, COEFS, atol=1e-5)  # u is orthogonal: coordinates unchanged
    np.testing.assert_allclose(distance, np.abs(offsets), atol=1e-5)
    full = np.array([np.linalg.norm((as_vector([s[n] for n, _ in net.named_parameters()])
                                     - flat_params(net)).numpy()) for s in states])
    np.testing.assert_allclose(relative[:-1], np.abs(offsets[:-1]) / full[:-1], rtol=1e-4, atol=1e-6)
    assert relative[-1] == 0.0  # the final point itself


def test_pca_fraction_and_distances_of_a_three_dimensional_path():
    """A path in a 3-D subspace, with the PCA and the residuals computed independently in it."""
    net = model()
    d3 = random_directions(net, ndim=3, seed=5)  # 1-D entries zero, so PCA with biasbn sees all
    basis = torch.stack([as_vector(a) for a in d3.axes], dim=1)
    q, _ = torch.linalg.qr(basis)  # orthonormal u1, u2, u3 over the weights
    points = np.array([[2.0, -1.0, 0.3], [1.5, 0.5, -0.4], [0.7, 0.9, 0.5], [0.2, 0.1, -0.1],
                       [0.0, 0.0, 0.0]])
    states = []
    for c in points:
        state = {k: v.clone() for k, v in net.state_dict().items()}
        step, start = q @ torch.from_numpy(c), 0
        for name, p in net.named_parameters():
            state[name] += step[start:start + p.numel()].reshape(p.shape).float()
            start += p.numel()
        states.append(state)
    traj = pca_trajectory(net, states)
    centered = points - points.mean(axis=0)
    _, sv, vt = np.linalg.svd(centered)
    assert traj.explained_fraction == pytest.approx((sv[0] ** 2 + sv[1] ** 2) / np.sum(sv ** 2), abs=1e-6)
    residual = points - points @ vt[:2].T @ vt[:2]  # off the plane through the final point (origin)
    np.testing.assert_allclose(traj.distance, np.linalg.norm(residual, axis=1), atol=1e-5)
    worst = int(np.argmax(traj.relative_distance))
    assert traj.labels[worst] in traj.summary()


def test_bias_drift_counts_in_the_distance():
    net = model()
    states = moved(net, random_directions(net, ndim=2, seed=6), COEFS)
    states[1]["0.bias"] = states[1]["0.bias"] + torch.tensor([0.3, 0.0, 0.0, 0.4, 0.0, 0.0])
    traj = pca_trajectory(net, states)  # ignore="biasbn": the PCA never sees the biases
    assert traj.explained_fraction == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(traj.distance, [0.0, 0.5, 0.0, 0.0, 0.0], atol=1e-5)
    with pytest.raises(ValueError, match="labels"):
        pca_trajectory(net, states, labels=["a"])


def test_command_prints_and_records_the_plane_fit(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": "cnn", "model_options": {"channels": [4, 8]},
                                                 "data": "digits", "data_seed": 0}))
    torch.manual_seed(0)
    final = load_model("cnn", num_classes=10, in_channels=1, channels=[4, 8])
    g = torch.Generator().manual_seed(1)
    for epoch in range(1, 5):
        state = {k: v + (4 - epoch) * 0.05 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
                 for k, v in final.state_dict().items()}
        torch.save({"model": state, "epoch": epoch}, run / "checkpoints" / f"epoch_{epoch:03d}.pt")
    torch.save(final.state_dict(), run / "model.pt")
    assert main(["trajectory", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    traj = run_trajectory(final, run)
    assert f"explains {100 * traj.explained_fraction:.1f} % of the path's variance" in out
    for label, distance in zip(traj.labels, traj.distance):
        assert f"{label}: {distance:.4g} off the plane" in out
    attrs = read_attrs(run / "trajectory_path.h5")
    assert attrs["explained_fraction"] == pytest.approx(traj.explained_fraction)
    assert attrs["max_plane_distance"] == pytest.approx(traj.distance.max())
    assert (run / "trajectory.png").stat().st_size > 1000


def test_checkpoints_are_in_epoch_number_order(tmp_path):
    from landscape.trajectory import checkpoint_paths

    (tmp_path / "checkpoints").mkdir()
    for epoch in (1000, 999, 2, 1002, 10):
        (tmp_path / "checkpoints" / f"epoch_{epoch:03d}.pt").write_bytes(b"")
    (tmp_path / "checkpoints" / "epoch_best.pt").write_bytes(b"")
    assert [p.name for p in checkpoint_paths(tmp_path)] == [
        "epoch_002.pt", "epoch_010.pt", "epoch_999.pt", "epoch_1000.pt", "epoch_1002.pt"]
