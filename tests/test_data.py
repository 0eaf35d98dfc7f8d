"""Data loading (true on-disk formats), memorization corruptions and augmentation."""
import gzip
import pickle
import struct
from collections import Counter

import numpy as np
import pytest
import torch

from regularizers.data import (Dataset, augment_crop_flip, corrupt, gaussian_inputs, load_data, normalize_channels,
                               random_labels, random_pixels, read_idx, shuffled_pixels)


def expected_standardized(train: np.ndarray, test: np.ndarray):
    """Independent reference: per-channel (axis 1) standardization with train mean / sample std."""
    axes = tuple(a for a in range(train.ndim) if a != 1)
    shape = [1, -1] + [1] * (train.ndim - 2)
    mean = train.mean(axis=axes).reshape(shape)
    std = train.std(axis=axes, ddof=1).reshape(shape)
    return (train - mean) / std, (test - mean) / std


def assert_values(spec, data: Dataset, raw_train: np.ndarray, raw_test: np.ndarray):
    """The data as stored (uint8 / 255), and standardized only when asked, with train statistics."""
    np.testing.assert_allclose(data.x_train.numpy(), raw_train, atol=1e-6)
    np.testing.assert_allclose(data.x_test.numpy(), raw_test, atol=1e-6)
    assert data.transforms == ("uint8/255",)
    standard = load_data(str(spec), normalize="standardize")
    want_train, want_test = expected_standardized(raw_train.astype(np.float64), raw_test.astype(np.float64))
    np.testing.assert_allclose(standard.x_train.numpy(), want_train, atol=1e-4)
    np.testing.assert_allclose(standard.x_test.numpy(), want_test, atol=1e-4)
    assert standard.transforms[0] == "uint8/255" and standard.transforms[1].startswith("normalize mean=")


# ------------------------------------------------------------------------------------ CIFAR


def write_cifar_batch(path, data, labels, label_key=b"labels"):
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"x", b"data": data, label_key: list(labels)}, f)


def make_cifar10(root, per_batch=2, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rows, labels = [], []
    for i in range(1, 6):
        data, y = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8), rng.integers(0, 10, per_batch)
        write_cifar_batch(folder / f"data_batch_{i}", data, y)
        rows.append(data)
        labels.append(y)
    test, test_y = rng.integers(0, 256, (3, 3072), dtype=np.uint8), rng.integers(0, 10, 3)
    write_cifar_batch(folder / "test_batch", test, test_y)
    return folder, np.concatenate(rows), np.concatenate(labels), test, test_y


def test_cifar10_folder_and_parent(tmp_path):
    folder, rows, labels, test, test_y = make_cifar10(tmp_path)
    for spec in (folder, tmp_path):  # the folder itself, or one containing it
        data = load_data(str(spec))
        assert data.name == "cifar10" and data.num_classes == 10 and data.in_channels == 3
        assert data.x_train.shape == (10, 3, 32, 32) and data.x_test.shape == (3, 3, 32, 32)
        assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
        assert data.y_train.tolist() == labels.tolist() and data.y_test.tolist() == test_y.tolist()
        # rows are 1024 red, 1024 green, 1024 blue values, each row-major 32x32
        assert_values(spec, data, rows.reshape(-1, 3, 32, 32) / 255.0, test.reshape(-1, 3, 32, 32) / 255.0)
    raw = rows[4].astype(np.float64) / 255.0
    channel_g = rows[:, 1024:2048].astype(np.float64) / 255.0
    assert data.x_train[4, 1, 2, 5].item() == pytest.approx(raw[1024 + 2 * 32 + 5], abs=1e-6)
    standard = load_data(str(folder), normalize="standardize")
    got = standard.x_train[4, 1, 2, 5].item()
    assert got == pytest.approx((raw[1024 + 2 * 32 + 5] - channel_g.mean()) / channel_g.std(ddof=1), abs=1e-4)
    assert standard.x_train.mean(dim=(0, 2, 3)).abs().max() < 1e-5


def test_cifar10_missing_batch_named(tmp_path):
    folder, *_ = make_cifar10(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_data(str(tmp_path))
    msg = str(err.value)
    assert msg.endswith("cifar-10-batches-py: missing data_batch_3") and "\n" not in msg


def test_cifar_malformed_batches(tmp_path):
    folder, *_ = make_cifar10(tmp_path)
    write_cifar_batch(folder / "data_batch_2", np.zeros((2, 100), np.uint8), [0, 1])
    with pytest.raises(ValueError, match=r"data_batch_2: 'data' is uint8 \(2, 100\), expected uint8 \(n, 3072\)"):
        load_data(str(folder))
    write_cifar_batch(folder / "data_batch_2", np.zeros((2, 3072), np.uint8), [0, 1, 2])
    with pytest.raises(ValueError, match="data_batch_2: 'labels' has shape"):
        load_data(str(folder))
    with open(folder / "data_batch_2", "wb") as f:  # a pickle needing a non-numpy global is refused
        pickle.dump({b"data": Counter(), b"labels": []}, f)
    with pytest.raises(ValueError, match="data_batch_2: not a CIFAR python batch .*collections"):
        load_data(str(folder))


def test_cifar100_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    train, test = rng.integers(0, 256, (4, 3072), dtype=np.uint8), rng.integers(0, 256, (2, 3072), dtype=np.uint8)
    with open(folder / "train", "wb") as f:
        pickle.dump({b"data": train, b"fine_labels": [99, 3, 50, 0], b"coarse_labels": [19, 1, 2, 0]}, f)
    with open(folder / "test", "wb") as f:
        pickle.dump({b"data": test, b"fine_labels": [7, 98], b"coarse_labels": [1, 2]}, f)
    data = load_data(str(tmp_path))
    assert data.name == "cifar100" and data.num_classes == 100
    assert data.y_train.tolist() == [99, 3, 50, 0] and data.y_test.tolist() == [7, 98]
    assert_values(tmp_path, data, train.reshape(-1, 3, 32, 32) / 255.0, test.reshape(-1, 3, 32, 32) / 255.0)
    (folder / "test").unlink()
    with pytest.raises(FileNotFoundError, match="cifar-100-python: missing test$"):
        load_data(str(folder))


# -------------------------------------------------------------------------------------- IDX


def idx_bytes(array: np.ndarray, type_code: int) -> bytes:
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def make_idx_folder(folder, gz, seed=0, h=5, w=6):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (7, h, w), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, 7).astype(np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, h, w), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": np.array([9, 0, 4], np.uint8)}
    for name, array in arrays.items():
        blob = idx_bytes(array, 0x08)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(blob))
        else:
            (folder / name).write_bytes(blob)
    return list(arrays.values())


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx(tmp_path, gz):
    x_train, y_train, x_test, y_test = make_idx_folder(tmp_path / "mnist", gz)
    data = load_data(str(tmp_path / "mnist"))
    assert data.name == "mnist" and data.in_channels == 1 and data.num_classes == 10
    assert data.x_train.shape == (7, 1, 5, 6) and data.x_test.shape == (3, 1, 5, 6)
    assert data.y_train.tolist() == y_train.tolist() and data.y_test.tolist() == [9, 0, 4]
    assert_values(tmp_path / "mnist", data, x_train[:, None] / 255.0, x_test[:, None] / 255.0)


def test_fashion_mnist_torchvision_layout(tmp_path):
    x_train, *_ = make_idx_folder(tmp_path / "FashionMNIST" / "raw", gz=True, seed=3)
    data = load_data(str(tmp_path / "FashionMNIST"))
    assert data.name == "fashion-mnist" and data.x_train.shape == (7, 1, 5, 6)
    (tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"raw: missing t10k-labels-idx1-ubyte\[\.gz\]$"):
        load_data(str(tmp_path))


def test_read_idx_types_and_errors(tmp_path):
    values = np.array([[-5, 2 ** 30], [7, -(2 ** 31)]], dtype=np.int32)
    (tmp_path / "a").write_bytes(idx_bytes(values, 0x0C))
    got = read_idx(tmp_path / "a")
    assert got.dtype == np.int32 and got.tolist() == values.tolist()
    floats = np.array([1.5, -2.25, 3.0], dtype=np.float32)
    (tmp_path / "f.gz").write_bytes(gzip.compress(idx_bytes(floats, 0x0D)))
    assert read_idx(tmp_path / "f.gz").tolist() == [1.5, -2.25, 3.0]
    (tmp_path / "bad").write_bytes(b"\x00\x01\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="bad: bad IDX magic number 0x00010801"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(idx_bytes(np.zeros((4, 3), np.uint8), 0x08)[:-1])
    with pytest.raises(ValueError, match=r"says shape \(4, 3\) of uint8 but the file holds 11 data bytes"):
        read_idx(tmp_path / "short")


# -------------------------------------------------------------------------------------- npz


def test_npz_xy_is_one_split_used_as_stored(tmp_path):
    n = 60
    x = np.stack([np.arange(n, dtype=np.float32), np.random.default_rng(0).normal(size=n)], axis=1) * 7 + 3
    y = np.arange(n) % 3
    np.savez(tmp_path / "toy.npz", x=x, y=y)
    data = load_data(str(tmp_path / "toy.npz"), seed=4)
    assert data.name == "toy" and data.num_classes == 3 and data.splits == ("train",) and data.x_test is None
    assert np.array_equal(data.x_train.numpy(), x.astype(np.float32)) and data.y_train.tolist() == y.tolist()
    assert data.transforms == ()


def test_npz_xy_explicit_split_deterministic_disjoint(tmp_path):
    n = 60
    x = np.stack([np.arange(n, dtype=np.float32), np.random.default_rng(0).normal(size=n)], axis=1)
    y = np.arange(n) % 3
    np.savez(tmp_path / "toy.npz", x=x, y=y)
    spec = str(tmp_path / "toy.npz")
    a, b = load_data(spec, seed=4, test_fraction=0.25), load_data(spec, seed=4, test_fraction=0.25)
    c = load_data(spec, seed=5, test_fraction=0.25)
    assert a.x_train.shape == (45, 2) and a.x_test.shape == (15, 2)
    assert a.transforms == ("split 0.75/0.25 by seed 4",)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)
    assert a.y_test.bincount().tolist() == [5, 5, 5]  # stratified
    ids = torch.cat([a.x_train[:, 0], a.x_test[:, 0]])
    assert sorted(ids.tolist()) == list(range(n))  # disjoint and complete, values as stored
    order = ids.argsort()
    assert torch.cat([a.y_train, a.y_test])[order].tolist() == y.tolist()
    with pytest.raises(ValueError, match="test_fraction must lie strictly between 0 and 1"):
        load_data(spec, test_fraction=1.0)


def test_normalize_options_and_refused_values(tmp_path):
    x = np.random.default_rng(1).normal(2.0, 3.0, size=(40, 2, 4, 4)).astype(np.float32)
    y = np.arange(40) % 4
    np.savez(tmp_path / "img.npz", x=x, y=y)
    spec = str(tmp_path / "img.npz")
    explicit = load_data(spec, normalize="1,2,0.5,4")  # two channel means then two stds
    np.testing.assert_allclose(explicit.x_train[:, 0].numpy(), (x[:, 0] - 1) / 0.5, rtol=1e-6)
    np.testing.assert_allclose(explicit.x_train[:, 1].numpy(), (x[:, 1] - 2) / 4, rtol=1e-6)
    assert explicit.transforms == ("normalize mean=1,2 std=0.5,4",)
    scalar = load_data(spec, normalize="2,3")
    np.testing.assert_allclose(scalar.x_train.numpy(), (x - 2) / 3, rtol=1e-5, atol=1e-6)
    for bad in ("1,2,3", "mean", "0,0"):
        with pytest.raises(ValueError, match="normalize"):
            load_data(spec, normalize=bad)
    x[3, 1, 0, 0], x[7, 0, 2, 3] = np.nan, np.inf
    np.savez(tmp_path / "nan.npz", x=x, y=y)
    with pytest.raises(ValueError, match=r"nan.npz: 2 non-finite input value\(s\) \(NaN or inf\) in the train split"):
        load_data(str(tmp_path / "nan.npz"))
    np.savez(tmp_path / "labels.npz", x=x[:2] * 0, y=np.array([0, 5]), num_classes=3)
    with pytest.raises(ValueError, match=r"train labels range over \[0, 5\], outside the 3 classes \[0, 3\)"):
        load_data(str(tmp_path / "labels.npz"))
    (tmp_path / "noise.npz").write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(ValueError, match="noise.npz: not a .npz file"):
        load_data(str(tmp_path / "noise.npz"))


def test_npz_given_split_nhwc_uint8(tmp_path):
    rng = np.random.default_rng(2)
    x_train = rng.integers(0, 256, (6, 4, 5, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    np.savez(tmp_path / "img.npz", x_train=x_train, y_train=np.array([0, 1, 2, 3, 4, 1]),
             x_test=x_test, y_test=np.array([4, 0]), num_classes=7)
    data = load_data(str(tmp_path / "img.npz"))
    assert data.x_train.shape == (6, 3, 4, 5) and data.num_classes == 7 and data.in_channels == 3
    assert_values(tmp_path / "img.npz", data, x_train.transpose(0, 3, 1, 2) / 255.0, x_test.transpose(0, 3, 1, 2) / 255.0)
    np.savez(tmp_path / "wrong.npz", images=x_train)
    with pytest.raises(ValueError, match=r"wrong.npz: needs arrays x, y or x_train, .*; has \['images'\]"):
        load_data(str(tmp_path / "wrong.npz"))


def test_bad_specs(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere: no such file or folder"):
        load_data(str(tmp_path / "nowhere"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.txt").write_text("hi")
    with pytest.raises(ValueError, match="junk: no CIFAR-10/100 python batches"):
        load_data(str(tmp_path / "junk"))
    (tmp_path / "notes.csv").write_text("1,2")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_data(str(tmp_path / "notes.csv"))
    make_cifar10(tmp_path / "both")
    make_idx_folder(tmp_path / "both" / "mnist", gz=False)
    with pytest.raises(ValueError, match=r"holds several data sets \(cifar-10-batches-py, mnist\); name one"):
        load_data(str(tmp_path / "both"))


# ----------------------------------------------------------------------------------- digits


def test_digits_split():
    from sklearn.datasets import load_digits

    a, b, c = load_data("digits", seed=0), load_data("digits", seed=0), load_data("digits", seed=1)
    assert a.name == "digits" and a.num_classes == 10 and a.in_channels == 1
    assert a.x_train.shape == (1347, 1, 8, 8) and a.x_test.shape == (450, 1, 8, 8)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_train, c.y_train)
    assert a.x_train.min() == 0 and a.x_train.max() == 1 and a.transforms == ("digits/16", "split 75/25 by seed 0")
    standard = load_data("digits", normalize="standardize")
    assert abs(standard.x_train.mean().item()) < 1e-5 and standard.x_train.std().item() == pytest.approx(1.0, abs=1e-5)
    # train and test partition the 1797 (image, label) pairs
    digits = load_digits()
    everything = Counter((img.astype(np.int64).tobytes(), int(t)) for img, t in zip(digits.images, digits.target))
    scale_lo, scale_hi = a.x_train.min(), a.x_train.max()
    parts = Counter()
    for x, y in ((a.x_train, a.y_train), (a.x_test, a.y_test)):
        pixels = np.rint(((x - scale_lo) / (scale_hi - scale_lo) * 16).numpy()).astype(np.int64)
        parts.update((img[0].tobytes(), int(t)) for img, t in zip(pixels, y))
    assert parts == everything
    small = load_data("digits", limit=100)
    assert small.x_train.shape == (100, 1, 8, 8) and small.x_test.shape == (100, 1, 8, 8)
    assert torch.equal(load_data("digits", limit=100).y_train, small.y_train)
    with pytest.raises(ValueError, match="limit must be a positive number of examples, got 0"):
        load_data("digits", limit=0)


# ------------------------------------------------------------------------------ corruptions


def toy(n=400, channels=3, h=4, w=5, k=10, seed=0) -> Dataset:
    gen = torch.Generator().manual_seed(seed)
    return Dataset("toy", torch.randn(n, channels, h, w, generator=gen), torch.randint(k, (n,), generator=gen),
                   torch.randn(n // 4, channels, h, w, generator=gen), torch.randint(k, (n // 4,), generator=gen), k)


def test_random_labels_fraction():
    data = toy(n=4000)
    before = data.y_train.clone()
    noisy = random_labels(data, p=0.5, seed=3)
    changed = (noisy.y_train != data.y_train).float().mean().item()
    assert changed == pytest.approx(0.5 * (1 - 1 / 10), abs=0.03)
    assert torch.equal(data.y_train, before)  # input not mutated
    assert torch.equal(noisy.y_test, data.y_test) and noisy.x_train is data.x_train
    assert torch.equal(random_labels(data, 0.5, seed=3).y_train, noisy.y_train)
    all_random = random_labels(data, 1.0, seed=0).y_train
    assert (all_random != data.y_train).float().mean().item() == pytest.approx(0.9, abs=0.03)
    assert torch.equal(random_labels(data, 0.0).y_train, data.y_train)
    assert torch.equal(corrupt(data, "labels", p=0.5, seed=3).y_train, noisy.y_train)


def source_positions(orig: torch.Tensor, moved: torch.Tensor) -> torch.Tensor:
    """For each image, the source pixel index of every output pixel (matched on channel 0)."""
    a, b = orig[:, 0].flatten(1), moved[:, 0].flatten(1)
    return (b[:, :, None] == a[:, None, :]).float().argmax(dim=2)


def apply_positions(orig: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    flat = orig.flatten(2)
    return flat.gather(2, pos[:, None, :].expand_as(flat)).reshape(orig.shape)


def test_shuffled_pixels_one_permutation():
    data = toy(n=20)
    out = shuffled_pixels(data, seed=1)
    perm = source_positions(data.x_train[:1], out.x_train[:1])[0]
    assert not torch.equal(perm, torch.arange(20)) and sorted(perm.tolist()) == list(range(20))
    for x, moved in ((data.x_train, out.x_train), (data.x_test, out.x_test)):
        same = perm.expand(len(x), -1)
        assert torch.equal(apply_positions(x, same), moved)  # every channel, train and test
    assert torch.equal(out.y_train, data.y_train)
    assert torch.equal(corrupt(data, "shuffled_pixels", seed=1).x_test, out.x_test)


def test_random_pixels_per_image():
    data = toy(n=20)
    out = random_pixels(data, seed=2)
    for x, moved in ((data.x_train, out.x_train), (data.x_test, out.x_test)):
        pos = source_positions(x, moved)
        assert torch.equal(pos.sort(dim=1).values, torch.arange(20).expand_as(pos))  # a permutation each
        assert torch.equal(apply_positions(x, pos), moved)  # channels of a pixel move together
        assert len({tuple(p.tolist()) for p in pos}) == len(x)  # a different one per image


def test_gaussian_inputs_match_moments():
    gen = torch.Generator().manual_seed(0)
    mean, std = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1.0, 3.0, 0.5])
    # uniform on [mean - sqrt(3) std, mean + sqrt(3) std] per channel
    x = (torch.rand(500, 3, 4, 5, generator=gen) * 2 - 1) * (3 ** 0.5 * std).view(1, 3, 1, 1) + mean.view(1, 3, 1, 1)
    data = Dataset("u", x, torch.zeros(500, dtype=torch.long), x[:100], torch.zeros(100, dtype=torch.long), 2)
    out = gaussian_inputs(data, seed=0)
    assert out.x_train.shape == x.shape and out.x_test.shape == (100, 3, 4, 5)
    got_mean, got_std = out.x_train.mean(dim=(0, 2, 3)), out.x_train.std(dim=(0, 2, 3))
    assert torch.allclose(got_mean, mean, atol=0.05 * 3) and torch.allclose(got_mean, x.mean(dim=(0, 2, 3)), atol=0.1)
    assert torch.allclose(got_std / x.std(dim=(0, 2, 3)), torch.ones(3), atol=0.04)
    # Gaussian, not the uniform input: kurtosis 3 rather than 1.8
    z = (out.x_train - got_mean.view(1, 3, 1, 1)) / got_std.view(1, 3, 1, 1)
    assert (z ** 4).mean().item() == pytest.approx(3.0, abs=0.2)
    assert not torch.equal(out.x_train[:100], out.x_test)


def test_corrupt_unknown_kind():
    with pytest.raises(ValueError, match="unknown corruption 'noise'; choose from labels, shuffled_pixels"):
        corrupt(toy(n=8), "noise")


# ----------------------------------------------------------------------------- augmentation


def test_augment_crop_flip_is_a_shifted_flipped_crop():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 6, 7, generator=gen) + 1.0  # nonzero, so padding is recognizable
    out = augment_crop_flip(x, generator=torch.Generator().manual_seed(5), padding=2)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))

    def crop(i, dy, dx, flip):
        window = padded[i, :, dy:dy + 6, dx:dx + 7]
        return window.flip(-1) if flip else window

    found = []
    for i in range(len(x)):
        matches = [(dy, dx, flip) for dy in range(5) for dx in range(5) for flip in (False, True)
                   if torch.equal(out[i], crop(i, dy, dx, flip))]
        assert matches, f"image {i} is not a crop of the padded input"
        found.append(matches[0])
    assert len(set(found)) > 15 and {f[2] for f in found} == {False, True}
    again = augment_crop_flip(x, generator=torch.Generator().manual_seed(5), padding=2)
    assert torch.equal(out, again)


def test_normalize_per_channel():
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    out = normalize_channels(x, (1.0, 2.0, 3.0), (2.0, 4.0, 0.5))
    assert torch.equal(out[:, 1], (x[:, 1] - 2.0) / 4.0) and torch.equal(out[:, 2], (x[:, 2] - 3.0) / 0.5)
    feats = torch.ones(4, 3)
    assert normalize_channels(feats, [1.0, 0.0, -1.0], [1.0, 1.0, 2.0])[0].tolist() == [0.0, 1.0, 1.0]


# ------------------------------------------------------------------------ dtypes and bad files


def test_inputs_keep_the_dtype_the_model_needs(tmp_path):
    """Integer ids stay int64 (values unchanged), uint8 images are scaled by 1/255, floats and
    booleans become float32."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50_000, (6, 5)).astype(np.int32)
    images = rng.integers(0, 256, (6, 1, 2, 2), dtype=np.uint8)
    floats = rng.normal(size=(6, 3))
    y = np.array([0, 1, 2, 0, 1, 2])
    for name, x in (("ids", ids), ("images", images), ("floats", floats), ("flags", floats > 0)):
        np.savez(tmp_path / f"{name}.npz", x=x, y=y)
    data = load_data(str(tmp_path / "ids.npz"))
    assert data.x_train.dtype == torch.int64 and np.array_equal(data.x_train.numpy(), ids)
    assert data.transforms == ("integer ids as int64",)
    big = np.array([[2**40, 3]], dtype=np.int64).repeat(3, 0)
    np.savez(tmp_path / "big.npz", x=big, y=np.array([0, 1, 0]))
    assert torch.equal(load_data(str(tmp_path / "big.npz")).x_train, torch.from_numpy(big))
    data = load_data(str(tmp_path / "images.npz"))
    assert data.x_train.dtype == torch.float32
    np.testing.assert_allclose(data.x_train.numpy(), images / 255.0, rtol=1e-6)
    data = load_data(str(tmp_path / "floats.npz"))
    assert data.x_train.dtype == torch.float32 and np.allclose(data.x_train.numpy(), floats, atol=1e-6)
    flags = load_data(str(tmp_path / "flags.npz")).x_train
    assert flags.dtype == torch.float32 and np.array_equal(flags.numpy(), (floats > 0).astype(np.float32))
    # ids split, limited and shuffled stay ids; normalizing or Gaussian noise on ids is refused
    split = load_data(str(tmp_path / "ids.npz"), test_fraction=0.5, limit=2)
    assert split.x_train.dtype == split.x_test.dtype == torch.int64
    assert set(map(tuple, split.x_train.tolist())) <= set(map(tuple, ids.tolist()))
    assert corrupt(load_data(str(tmp_path / "ids.npz")), "shuffled_pixels").x_train.dtype == torch.int64
    with pytest.raises(ValueError, match="applies to real-valued inputs; these are integer ids"):
        load_data(str(tmp_path / "ids.npz"), normalize="standardize")
    with pytest.raises(ValueError, match="gaussian inputs need real-valued inputs"):
        gaussian_inputs(load_data(str(tmp_path / "ids.npz")))
    np.savez(tmp_path / "mixed.npz", x_train=ids, y_train=y, x_test=rng.normal(size=(6, 5)), y_test=y)
    with pytest.raises(ValueError, match="x_train is int32 \\(ids\\) but x_test is float64"):
        load_data(str(tmp_path / "mixed.npz"))


@pytest.mark.parametrize("value, shown", [(10.7, "10.7"), (1e12, "1000000000000.0"), (1, "1"), (-3, "-3"),
                                          (np.nan, "nan"), ("ten", "'ten'"), (np.array([3, 4]), "shape \\(2,\\)")])
def test_npz_num_classes_must_be_a_whole_number_in_range(tmp_path, value, shown):
    np.savez(tmp_path / "c.npz", x=np.zeros((4, 3), np.float32), y=np.array([0, 1, 2, 0]), num_classes=value)
    expected = f"c.npz: num_classes must be one whole number in \\[2, 1,000,000\\], got .*{shown}"
    with pytest.raises(ValueError, match=expected):
        load_data(str(tmp_path / "c.npz"))


def test_npz_num_classes_whole_float_and_extra_classes_accepted(tmp_path):
    np.savez(tmp_path / "c.npz", x=np.zeros((4, 3), np.float32), y=np.array([0, 1, 2, 0]), num_classes=12.0)
    assert load_data(str(tmp_path / "c.npz")).num_classes == 12


def test_npz_without_examples_is_one_clear_line(tmp_path):
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 3), np.float32), y=np.zeros(0, np.int64))
    with pytest.raises(ValueError, match=r"empty.npz: x holds no examples \(shape \(0, 3\)\)$"):
        load_data(str(tmp_path / "empty.npz"))
    np.savez(tmp_path / "notest.npz", x_train=np.zeros((2, 3), np.float32), y_train=np.array([0, 1]),
             x_test=np.zeros((0, 3), np.float32), y_test=np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="notest.npz: x_test holds no examples"):
        load_data(str(tmp_path / "notest.npz"))


def test_single_class_data_is_refused_unless_num_classes_says_more(tmp_path):
    """One class would train a 1-output model whose accuracy means nothing (NaN)."""
    x = np.zeros((4, 3), np.float32)
    np.savez(tmp_path / "one.npz", x=x, y=np.zeros(4, np.int64))
    with pytest.raises(ValueError, match=r"one.npz: every label is 0: a classifier needs at least 2 classes"):
        load_data(str(tmp_path / "one.npz"))
    np.savez(tmp_path / "some.npz", x=x, y=np.zeros(4, np.int64), num_classes=10)
    assert load_data(str(tmp_path / "some.npz")).num_classes == 10
