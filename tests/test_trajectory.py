import numpy as np
import pytest
import torch
from torch import nn

from landscape.directions import random_directions
from landscape.trajectory import checkpoint_paths, load_state, pca_trajectory, project, run_trajectory


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
