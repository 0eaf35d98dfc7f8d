import os
import socket

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from landscape.directions import random_directions
from landscape.grid import make_grid
from landscape.store import (SurfaceWriter, file_sha256, load_directions, prepare_surface, read_projection,
                             read_surface, save_directions, save_projection, tensors_sha256)


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def test_direction_file_round_trip_and_layout(tmp_path):
    model = net()
    d = random_directions(model, ndim=2, seed=1, norm=["filter", "layer"])
    path = save_directions(tmp_path / "d.h5", d, {"model": "toy"})
    with h5py.File(path) as f:  # the de facto layout: groups of datasets "0".."N-1"
        assert sorted(f) == ["xdirection", "ydirection"]
        assert sorted(f["xdirection"], key=int) == [str(i) for i in range(6)]
        assert f.attrs["ynorm"] == "layer" and f.attrs["model"] == "toy" and f.attrs["version"] == 1
    back = load_directions(path, model=model)
    assert back.dir_type == "weights" and back.info == d.info
    assert tensors_sha256(back.axes[0] + back.axes[1]) == tensors_sha256(d.axes[0] + d.axes[1])


def test_de_facto_direction_file_is_read(tmp_path):
    model = net()
    path = tmp_path / "facto.h5"
    with h5py.File(path, "w") as f:
        group = f.create_group("xdirection")
        for i, (name, t) in enumerate(model.state_dict().items()):
            group.create_dataset(str(i), data=np.full(tuple(t.shape), 0.5, dtype=np.float32))
    d = load_directions(path, model=model, dir_type="states")
    assert d.ndim == 1 and d.dir_type == "states" and float(d.axes[0][0][0, 0]) == 0.5


def test_direction_files_that_do_not_fit_are_refused(tmp_path):
    model = net()
    path = save_directions(tmp_path / "d.h5", random_directions(model, ndim=1, seed=0))
    with pytest.raises(ValueError, match="holds weights directions, not states"):
        load_directions(path, model=model, dir_type="states")
    other = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Linear(5, 2))
    with pytest.raises(ValueError, match=r"entry '0.weight' has shape \(4, 3\), the model's is \(5, 3\)"):
        load_directions(path, model=other)
    with h5py.File(path, "r+") as f:  # now like a de facto file, whose type the caller names
        del f.attrs["dir_type"]
    with pytest.raises(ValueError, match="d.h5: xdirection has 6 tensors but the model has 9 states"):
        load_directions(path, model=model, dir_type="states")


def test_corrupt_and_foreign_files_give_one_line_errors(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file at all" * 10)
    for reader in (load_directions, read_surface, read_projection):
        with pytest.raises(ValueError, match="not a readable HDF5 file") as err:
            reader(junk)
        assert "\n" not in str(err.value)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["something"] = [1, 2, 3]
    with pytest.raises(ValueError, match="no 'xdirection' group"):
        load_directions(foreign)
    with pytest.raises(ValueError, match="no 'xcoordinates' dataset"):
        read_surface(foreign)
    with pytest.raises(ValueError, match="no 'xcoordinates' dataset"):
        prepare_surface(foreign, grid=make_grid("0:1:2"), keys=["train_loss"], attrs={})
    with h5py.File(foreign, "a") as f:
        f.create_group("xdirection")["1"] = [0.0]
    with pytest.raises(ValueError, match="not a group of datasets '0'..'N-1'"):
        load_directions(foreign)
    with pytest.raises(FileNotFoundError):
        read_surface(tmp_path / "missing.h5")


def test_surface_file_resume_bookkeeping(tmp_path):
    grid, keys = make_grid("0:2:3", "0:1:2"), ["train_loss", "train_acc"]
    path = tmp_path / "s.h5"
    attrs = {"loss": "crossentropy", "splits": ["train"], "seed": 3}
    np.testing.assert_array_equal(prepare_surface(path, grid=grid, keys=keys, attrs=attrs, dir_file="d.h5"), np.arange(6))
    with SurfaceWriter(path, keys) as write:
        write(np.array([4, 1]), np.array([[0.5, 50.0], [np.nan, 10.0]]))  # a diverged NaN is done too
    np.testing.assert_array_equal(prepare_surface(path, grid=grid, keys=keys, attrs=attrs), [0, 2, 3, 5])
    s = read_surface(path)
    assert s.values["train_loss"].shape == (2, 3) and s.dir_file == "d.h5" and s.attrs["splits"] == "train"
    assert s["train_loss"][1, 1] == 0.5 and s.done.sum() == 2 and np.isnan(s["train_loss"][0, 0])
    with pytest.raises(ValueError, match="made with seed=3, not 4"):
        prepare_surface(path, grid=grid, keys=keys, attrs={**attrs, "seed": 4})
    with pytest.raises(ValueError, match="made with loss='crossentropy', not 'mse'"):
        prepare_surface(path, grid=grid, keys=keys, attrs={**attrs, "loss": "mse"})
    with pytest.raises(ValueError, match=r"another grid \(\[0,2,3\] x \[0,1,2\], not \[0,2,3\] x \[0,1,3\]\)"):
        prepare_surface(path, grid=make_grid("0:2:3", "0:1:3"), keys=keys, attrs=attrs)


def de_facto_surface(path, x, y, values):
    """A file as tomgoldstein/loss-landscape writes it: (nx, ny) arrays in meshgrid-'xy' flat order."""
    with h5py.File(path, "w") as f:
        f["dir_file"] = "dirs.h5"
        f["xcoordinates"], f["ycoordinates"] = x, y
        for key, v in values.items():
            f[key] = v.reshape(len(x), len(y))


def test_de_facto_surface_file_orientation_and_pending(tmp_path):
    x, y = np.linspace(-1, 1, 3), np.linspace(0, 1, 2)
    grid = make_grid(x, y)
    flat = grid.coords(np.arange(6))
    loss = 10 * flat[:, 0] + flat[:, 1] + 20  # a known function of (x, y)
    loss[[1, 4]] = -1
    path = tmp_path / "facto.h5"
    de_facto_surface(path, x, y, {"train_loss": loss.copy()})
    s = read_surface(path)
    assert s.dir_file == "dirs.h5" and s.done.sum() == 4
    xx, yy = np.meshgrid(x, y)
    expected = 10 * xx + yy + 20
    expected[s.done == 0] = np.nan
    np.testing.assert_allclose(s["train_loss"], expected)
    pending = prepare_surface(path, grid=grid, keys=["train_loss", "train_acc"], attrs={"loss": "mse"})
    np.testing.assert_array_equal(pending, np.arange(6))  # train_acc was missing: added as -1
    pending = prepare_surface(path, grid=grid, keys=["train_loss"], attrs={})
    np.testing.assert_array_equal(pending, [1, 4])
    with SurfaceWriter(path, ["train_loss"]) as write:
        write(pending, np.array([[1.5], [2.5]]))
    with h5py.File(path) as f:
        assert f["train_loss"].shape == (3, 2) and "done" not in f and "version" not in f.attrs
        assert f["train_loss"][()].reshape(-1)[4] == 2.5
    assert read_surface(path)["train_loss"][1, 1] == 2.5


def test_projection_round_trip(tmp_path):
    coords = np.array([[1.0, 2.0], [0.5, -1.0], [0.0, 0.0]])
    path = save_projection(tmp_path / "p.h5", coords, labels=["epoch_001", "epoch_002", "epoch_003"])
    back, labels = read_projection(path)
    np.testing.assert_array_equal(back, coords)
    assert labels == ["epoch_001", "epoch_002", "epoch_003"]
    with h5py.File(path) as f:
        np.testing.assert_array_equal(f["proj_ycoord"][()], [2.0, -1.0, 0.0])


def test_de_facto_nan_is_never_done(tmp_path):
    x, y = np.linspace(-1, 1, 3), np.linspace(0, 1, 2)
    loss = np.arange(6, dtype=float) + 1
    loss[2], loss[5] = np.nan, -1  # a NaN in a file without a done mask: nothing says it was computed
    path = tmp_path / "facto.h5"
    de_facto_surface(path, x, y, {"train_loss": loss})
    s = read_surface(path)
    assert s.done.sum() == 4 and s.missing_count() == 2 and s.nan_count() == 0
    np.testing.assert_array_equal(prepare_surface(path, grid=make_grid(x, y), keys=["train_loss"], attrs={}), [2, 5])


def test_writer_stores_a_chunk_of_scattered_points_in_one_write(tmp_path):
    grid, keys = make_grid("0:3:4", "0:2:3", "0:1:2"), ["train_loss", "test_acc"]  # 3D: shape (2, 3, 4)
    path = tmp_path / "s.h5"
    prepare_surface(path, grid=grid, keys=keys, attrs={})
    first, second = np.array([23, 0, 7, 12]), np.array([5, 6])
    rows = lambda idx: np.c_[idx * 1.5, 100.0 - idx]  # noqa: E731 -- a known value per flat index
    with SurfaceWriter(path, keys) as write:
        write(first, rows(first))
        write(second, rows(second))
    s = read_surface(path)
    written = np.r_[first, second]
    expected = np.full(grid.size, np.nan)
    expected[written] = written * 1.5
    np.testing.assert_array_equal(s["train_loss"].reshape(-1), expected)
    expected[written] = 100.0 - written
    np.testing.assert_array_equal(s["test_acc"].reshape(-1), expected)
    assert sorted(np.flatnonzero(s.done)) == sorted(written)
    assert s.missing_count() == grid.size - 6 and s.nan_count() == 0


def test_nan_count_counts_finished_points_only(tmp_path):
    grid, keys = make_grid("0:2:3"), ["train_loss", "train_acc"]
    path = tmp_path / "s.h5"
    prepare_surface(path, grid=grid, keys=keys, attrs={})
    with SurfaceWriter(path, keys) as write:
        write(np.array([0, 2]), np.array([[np.nan, 10.0], [0.5, np.nan]]))
    s = read_surface(path)
    assert (s.nan_count(), s.missing_count()) == (2, 1)


def test_a_file_that_fails_during_creation_is_not_left_behind(tmp_path):
    class Broken:
        dir_type, info, meta = "weights", [{}], {}
        axes = [[torch.zeros(2), "not a tensor"]]

        def attrs(self):
            return {}

    with pytest.raises(AttributeError):
        save_directions(tmp_path / "d.h5", Broken())
    assert os.listdir(tmp_path) == []
    path = save_directions(tmp_path / "d.h5", random_directions(net(), ndim=1, seed=0))
    before = file_sha256(path)
    with pytest.raises(AttributeError):
        save_directions(path, Broken())
    assert file_sha256(path) == before and os.listdir(tmp_path) == ["d.h5"]
    assert load_directions(path, model=net()).ndim == 1


def test_leftover_temporaries_of_killed_writers_are_removed(tmp_path):
    stale = tmp_path / f".s.h5.{socket.gethostname().replace('.', '_')}.999999999.tmp"
    stale.write_bytes(b"half an hdf5 file")
    prepare_surface(tmp_path / "s.h5", grid=make_grid("0:1:2"), keys=["train_loss"], attrs={})
    assert os.listdir(tmp_path) == ["s.h5"]


def test_batch_size_is_a_number_and_old_notes_still_read(tmp_path):
    from landscape.store import check_surface, create_surface, stored_batch_size

    grid = make_grid("0:1:3")
    create_surface(tmp_path / "s.h5", grid=grid, keys=["train_loss"], attrs={"loss": "mse"}, batch_size=96,
                   batch_size_choice="auto: 96 of 64,96")
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert isinstance(f.attrs["batch_size"], (int, np.integer)) and f.attrs["batch_size"] == 96
    before = (tmp_path / "s.h5").read_bytes()
    pending, begun = check_surface(tmp_path / "s.h5", grid=grid, keys=["train_loss"], attrs={"loss": "mse"})
    assert pending.tolist() == [0, 1, 2] and begun == 96
    assert (tmp_path / "s.h5").read_bytes() == before  # checking rewrites nothing
    for note, value in (("auto: 256 of 64,128,256", 256), ("128 (given)", 128), ("n/a", None), (None, None)):
        assert stored_batch_size({} if note is None else {"batch_size": note}) == value
