"""Data sets as in-memory tensors, their memorization corruptions, and CIFAR augmentation.

``load_data(spec)`` reads the embedded scikit-learn digits, a ``.npz`` file, or a folder holding
CIFAR-10/100 python batches or MNIST / Fashion-MNIST IDX files. The data are used as stored:

- inputs keep the kind of number the model needs: ``uint8`` arrays (CIFAR, MNIST, image ``.npz``
  files) are images, scaled to float32 in [0, 1] by 1/255 (torchvision's ``ToTensor`` convention);
  other integer arrays (``int8`` ... ``int64``, ``uint16`` ...) are ids, e.g. token ids for an
  ``nn.Embedding``, and become int64 unchanged; floats and booleans become float32; digits are
  scaled by 1/16;
- splits are the file's own (``x_train``/``x_test``, the CIFAR and MNIST test files); an ``.npz``
  with only ``x, y`` is one split, ``train``, unless ``test_fraction`` asks for a seeded split;
  digits, which ship without a split, are split 75/25 by ``seed`` (stratified);
- nothing is normalized unless ``normalize`` asks: ``"standardize"`` (per channel, statistics of
  the training split) or explicit ``"MEAN,STD"`` numbers.

Every transformation made is listed in :attr:`Dataset.transforms` (and so in the files made
from the data). Non-finite inputs and labels outside ``[0, num_classes)`` are refused.

The corruptions are those of Zhang et al. 2017, "Understanding deep learning requires
rethinking generalization": random labels, shuffled pixels, random pixels, Gaussian inputs.
"""
from __future__ import annotations

import dataclasses
import gzip
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

SPLITS = ("train", "test")  # the data splits, in the order surfaces and reports list them
DIGITS_TEST_FRACTION = 0.25
NORMALIZATIONS = ("none", "standardize", "MEAN,STD")
MAX_CLASSES = 1_000_000  # a larger class count is a mistake, not a classifier (its output layer alone)


@dataclass
class Dataset:
    """A classification data set held in memory.

    ``x_*`` are float32 ``(n, C, H, W)`` images or ``(n, F)`` features (int64 ``(n, L)`` ids for
    data stored as integers other than ``uint8``), ``y_*`` int64 ``(n,)``
    class indices in ``[0, num_classes)``. ``x_test``/``y_test`` are None for data with one
    split. ``transforms`` lists, in order, what was done to the stored values.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: Optional[torch.Tensor]
    y_test: Optional[torch.Tensor]
    num_classes: int
    transforms: Tuple[str, ...] = ()

    @property
    def in_channels(self) -> int:
        """Channels of an image (``x_train.shape[1]``; the feature count for ``(n, F)`` data)."""
        return int(self.x_train.shape[1])

    @property
    def splits(self) -> Tuple[str, ...]:
        """``SPLITS`` (train, test), or ``("train",)`` for data with one split."""
        return SPLITS if self.x_test is not None else SPLITS[:1]


# ----------------------------------------------------------------------------------- loading


def load_data(spec: str, seed: int = 0, *, normalize: str = "none", test_fraction: Optional[float] = None,
              limit: Optional[int] = None) -> Dataset:
    """Load ``spec``: ``"digits"``, a ``.npz`` path, or a CIFAR-10/100 or MNIST-style folder.

    Args:
        spec: ``"digits"`` (embedded), a ``.npz`` file (``x_train, y_train, x_test, y_test`` or
            ``x, y``; optional scalar ``num_classes``), or a folder (the data folder itself or one
            that contains it: ``data/`` holding ``cifar-10-batches-py/``; ``MNIST/`` holding ``raw/``).
        seed: seed of the digits split, of an explicit ``test_fraction`` split and of ``limit``.
        normalize: ``"none"`` (default: values as stored), ``"standardize"`` (per channel -- per
            feature for ``(n, F)`` data -- with the training split's mean and std), or
            ``"MEAN,STD"``: ``k`` means then ``k`` stds, ``k`` = 1 or the channel count.
        test_fraction: split an ``x, y`` file (stratified when possible); refused for data that
            have a test split.
        limit: keep a seeded random ``limit`` training and ``limit`` test examples (statistics of
            ``standardize`` come from the kept training examples).

    Returns:
        a :class:`Dataset`, its ``transforms`` naming every change made to the stored values.

    Raises:
        ValueError / FileNotFoundError: one line naming what is missing or wrong.
    """
    if test_fraction is not None and not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    name, arrays, num_classes, transforms = _read_spec(spec, seed, test_fraction)
    x_train, y_train = _tensors(*arrays[:2])
    x_test, y_test = _tensors(*arrays[2:]) if arrays[2] is not None else (None, None)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be a positive number of examples, got {limit}")
        gen = torch.Generator().manual_seed(seed)
        keep_train = torch.randperm(len(y_train), generator=gen)[:limit]
        x_train, y_train = x_train[keep_train], y_train[keep_train]
        if x_test is not None:
            keep_test = torch.randperm(len(y_test), generator=gen)[:limit]
            x_test, y_test = x_test[keep_test], y_test[keep_test]
        transforms.append(f"limit {limit} by seed {seed}")
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        _check_values(spec, split, x, y, num_classes)
    if normalize not in (None, "none") and not x_train.is_floating_point():
        raise ValueError(f"{spec}: normalize {normalize!r} applies to real-valued inputs; these are integer ids "
                         "(store images as uint8 or floats to normalize them)")
    mean, std = normalization(normalize, x_train)
    if mean is not None:
        x_train = normalize_channels(x_train, mean, std)
        x_test = None if x_test is None else normalize_channels(x_test, mean, std)
        transforms.append(f"normalize mean={_numbers(mean)} std={_numbers(std)}")
    return Dataset(name, x_train, y_train, x_test, y_test, num_classes, tuple(transforms))


def _read_spec(spec: str, seed: int, test_fraction: Optional[float]):
    """``(name, (x_train, y_train, x_test, y_test) numpy arrays, num_classes, transforms)`` of a
    spec as stored, split by ``test_fraction`` when asked."""
    if spec == "digits":
        name, *arrays, num_classes = _digits(seed)
        return name, arrays, num_classes, ["digits/16", f"split 75/25 by seed {seed}"]
    path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{spec}: no such file or folder (expected 'digits', a .npz file "
                                "or a CIFAR / MNIST folder)")
    if path.is_dir():
        name, x_train, y_train, x_test, y_test, num_classes = _read_folder(path)
    elif path.suffix == ".npz":
        name, x_train, y_train, x_test, y_test, num_classes = _read_npz(path)
    else:
        raise ValueError(f"{spec}: unsupported file type (expected a .npz file or a folder)")
    transforms = ["uint8/255"] if x_train.dtype == np.uint8 else ["integer ids as int64"] if is_ids(x_train) else []
    if test_fraction is not None:
        if x_test is not None:
            raise ValueError(f"{spec}: has a test split already; test_fraction splits only x, y files")
        train, test = _split(y_train, test_fraction, seed)
        x_train, y_train, x_test, y_test = x_train[train], y_train[train], x_train[test], y_train[test]
        transforms.append(f"split {1 - test_fraction:g}/{test_fraction:g} by seed {seed}")
    return name, (x_train, y_train, x_test, y_test), num_classes, transforms


def _numbers(t: torch.Tensor) -> str:
    return ",".join(f"{v:.6g}" for v in t.tolist())


def normalization(spec: str, x_train: torch.Tensor):
    """``(mean (C,), std (C,))`` that ``spec`` asks for on data like ``x_train``, or
    ``(None, None)`` for ``"none"``. ``standardize`` gives constant channels std 1."""
    if spec in (None, "none"):
        return None, None
    channels = x_train.shape[1]
    if spec == "standardize":
        dims = [d for d in range(x_train.dim()) if d != 1]
        mean, std = x_train.mean(dim=dims), x_train.std(dim=dims)
        return mean, torch.where(std > 1e-8, std, torch.ones_like(std))
    try:
        values = [float(v) for v in str(spec).split(",")]
    except ValueError:
        values = []
    if len(values) not in (2, 2 * channels) or not all(np.isfinite(values)):
        raise ValueError(f"normalize {spec!r}: expected none, standardize, or MEAN,STD (k means then "
                         f"k stds, k = 1 or {channels} channels)")
    k = len(values) // 2
    mean, std = torch.tensor(values[:k]), torch.tensor(values[k:])
    if (std <= 0).any():
        raise ValueError(f"normalize {spec!r}: every std must be positive")
    return mean.expand(channels).clone(), std.expand(channels).clone()


def _check_values(spec: str, split: str, x, y, num_classes: int) -> None:
    """Refuse non-finite inputs and labels outside ``[0, num_classes)``, naming the count."""
    if x is None:
        return
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise ValueError(f"{spec}: {bad} non-finite input value(s) (NaN or inf) in the {split} split")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"{spec}: the {split} labels range over [{int(y.min())}, {int(y.max())}], outside the "
                         f"{num_classes} classes [0, {num_classes}): labels must be class indices 0 .. {num_classes - 1}")


def _split(labels: np.ndarray, test_fraction: float, seed: int):
    """Train and test indices of a seeded split, stratified by label when every class allows it."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    try:
        return train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=labels)
    except ValueError:  # a class too small to be split in both parts
        return train_test_split(idx, test_size=test_fraction, random_state=seed)


def is_ids(x: np.ndarray) -> bool:
    """True for integer arrays other than ``uint8``: ids (token ids), kept as int64 values."""
    return np.issubdtype(x.dtype, np.integer) and x.dtype != np.uint8


def _tensors(x: np.ndarray, y: np.ndarray):
    """Inputs as the model needs them -- ids int64, ``uint8`` images float32 / 255, the rest
    float32 -- and int64 labels."""
    if is_ids(x):
        inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.int64))
    else:
        scale = 1 / 255.0 if x.dtype == np.uint8 else 1.0
        inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32) * np.float32(scale))
    return inputs, torch.from_numpy(y.astype(np.int64))


def _digits(seed: int):
    """scikit-learn's 1797 8x8 digits as ``(n, 1, 8, 8)`` in [0, 1] (pixel values / 16)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.images.astype(np.float32).reshape(-1, 1, 8, 8) / 16.0
    y = digits.target
    train, test = _split(y, DIGITS_TEST_FRACTION, seed)
    return "digits", x[train], y[train], x[test], y[test], 10


def _as_images(x: np.ndarray, path: Path) -> np.ndarray:
    """``(n, H, W)`` gains a channel, ``(n, H, W, C)`` with C in {1, 3} (and dim 1 not) becomes
    ``(n, C, H, W)``; ``(n, F)`` features stay as they are. The dtype is kept."""
    if x.ndim < 2 or x.ndim > 4:
        raise ValueError(f"{path}: inputs have shape {x.shape}, expected (n, F), (n, H, W) or (n, C, H, W)")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise ValueError(f"{path}: inputs have dtype {x.dtype}, expected numbers")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    return x


def _labels(y: np.ndarray, n: int, path: Path, what: str) -> np.ndarray:
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{path}: {what} has shape {y.shape} and dtype {y.dtype}, expected ({n},) integers")
    if n and y.min() < 0:
        raise ValueError(f"{path}: {what} holds negative class indices")
    return y


def _read_npz(path: Path):
    """``x_train, y_train, x_test, y_test`` arrays, or ``x, y`` (one split: ``train``); an
    optional scalar ``num_classes`` (else the largest label + 1)."""
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":
            raise ValueError(f"{path}: not a .npz file (not a zip archive of .npy arrays)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as err:
        if "allow_pickle" in str(err):  # an object array inside a real archive
            raise ValueError(f"{path}: holds pickled object arrays; save plain numeric arrays with np.savez") from None
        raise ValueError(f"{path}: not a readable .npz file ({err})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable .npz file ({type(err).__name__})") from None
    if {"x_train", "y_train", "x_test", "y_test"} <= arrays.keys():
        x_train, x_test = _as_images(arrays["x_train"], path), _as_images(arrays["x_test"], path)
        y_train = _labels(arrays["y_train"], len(x_train), path, "y_train")
        y_test = _labels(arrays["y_test"], len(x_test), path, "y_test")
        if x_train.shape[1:] != x_test.shape[1:]:
            raise ValueError(f"{path}: train inputs {x_train.shape[1:]} and test inputs {x_test.shape[1:]} differ")
        kinds = [("ids" if is_ids(x) else "uint8 images" if x.dtype == np.uint8 else "values") for x in (x_train, x_test)]
        if kinds[0] != kinds[1]:
            raise ValueError(f"{path}: x_train is {x_train.dtype} ({kinds[0]}) but x_test is {x_test.dtype} ({kinds[1]}); "
                             "store both splits with one dtype")
    elif {"x", "y"} <= arrays.keys():
        x_train = _as_images(arrays["x"], path)
        y_train = _labels(arrays["y"], len(x_train), path, "y")
        x_test = y_test = None
    else:
        raise ValueError(f"{path}: needs arrays x, y or x_train, y_train, x_test, y_test; has {sorted(arrays)}")
    for what, x in (("x_train" if x_test is not None else "x", x_train), ("x_test", x_test)):
        if x is not None and not len(x):
            raise ValueError(f"{path}: {what} holds no examples (shape {x.shape})")
    labels = [y for y in (y_train, y_test) if y is not None]
    num_classes = _stored_classes(arrays["num_classes"], path) if "num_classes" in arrays else _num_classes(path, *labels)
    return path.stem, x_train, y_train, x_test, y_test, num_classes


def _stored_classes(value: np.ndarray, path: Path) -> int:
    """An ``.npz`` file's ``num_classes``: one whole number in ``[2, MAX_CLASSES]``, else ValueError."""
    number = value.item() if value.size == 1 and np.issubdtype(value.dtype, np.number) else None
    if number is None or not np.isfinite(number) or number != int(number) or not 2 <= number <= MAX_CLASSES:
        shown = value.item() if value.size == 1 else f"an array of shape {value.shape}"
        raise ValueError(f"{path}: num_classes must be one whole number in [2, {MAX_CLASSES:,}], got {shown!r}")
    return int(number)


def _num_classes(path: Path, *labels: np.ndarray) -> int:
    """The largest label + 1; data without any example, or with one class only, is a ValueError."""
    if not any(len(y) for y in labels):
        raise ValueError(f"{path}: the data hold no examples")
    count = int(max(y.max() for y in labels if len(y))) + 1
    if count < 2:
        raise ValueError(f"{path}: every label is 0: a classifier needs at least 2 classes (store num_classes "
                         "in the .npz when the data hold only some of them)")
    return count


# --- folders

CIFAR10_DIR, CIFAR100_DIR = "cifar-10-batches-py", "cifar-100-python"
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
CIFAR100_FILES = ("train", "test")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _detect(folder: Path) -> Optional[str]:
    """``"cifar10"``, ``"cifar100"``, ``"idx"`` or None from the folder's name and entries."""
    entries = list(folder.iterdir())
    names = {p.name for p in entries}
    if folder.name == CIFAR10_DIR or names & set(CIFAR10_FILES):
        return "cifar10"
    if folder.name == CIFAR100_DIR or any((folder / n).is_file() for n in CIFAR100_FILES):
        return "cifar100"
    if "mnist" in folder.name.lower() and not any(p.is_dir() for p in entries):
        return "idx"
    if any(n.startswith(stem) for n in names for stem in IDX_FILES):
        return "idx"
    return None


def _read_folder(path: Path):
    """Find the data folder (``path``, a child, or a child's ``raw/``) and read it."""
    children = sorted(p for p in path.iterdir() if p.is_dir())
    for level in ([path], children, [c / "raw" for c in children if (c / "raw").is_dir()]):
        found = [(d, fmt) for d in level if (fmt := _detect(d))]
        if len(found) > 1:
            raise ValueError(f"{path}: holds several data sets ({', '.join(d.name for d, _ in found)}); name one")
        if found:
            folder, fmt = found[0]
            if fmt == "cifar10":
                return ("cifar10", *_read_cifar(folder, CIFAR10_FILES[:-1], CIFAR10_FILES[-1], "labels"), 10)
            if fmt == "cifar100":
                return ("cifar100", *_read_cifar(folder, ("train",), "test", "fine_labels"), 100)
            return _read_mnist(folder)
    raise ValueError(f"{path}: no CIFAR-10/100 python batches ({CIFAR10_DIR}, {CIFAR100_DIR}) "
                     f"or MNIST IDX files ({IDX_FILES[0]}[.gz]) found")


def _require(folder: Path, names: Sequence[str], suffixes=("",)) -> list:
    """Paths of ``names`` in ``folder`` (first existing suffix); the first missing one raises."""
    paths = []
    for name in names:
        hits = [folder / (name + s) for s in suffixes if (folder / (name + s)).is_file()]
        if not hits:
            alternatives = "[.gz]" if len(suffixes) > 1 else ""
            raise FileNotFoundError(f"{folder}: missing {name}{alternatives}")
        paths.append(hits[0])
    return paths


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays: CIFAR batches need nothing else."""

    def find_class(self, module, name):
        if module.split(".")[0] == "numpy" and name in {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"}:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_cifar_batch(path: Path, label_key: str = "labels"):
    """One CIFAR python batch: ``(x, y)``, x uint8 ``(n, 3, 32, 32)``, y int64 ``(n,)``.

    The file is a pickled dict with ``data`` (n, 3072) uint8 rows (1024 red, 1024 green, 1024
    blue values, row-major) and ``label_key`` (n labels); keys may be bytes or str.
    """
    path = Path(path)
    with open(path, "rb") as f:
        try:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
        except Exception as err:
            raise ValueError(f"{path}: not a CIFAR python batch ({type(err).__name__}: {err})") from None
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: not a CIFAR python batch (holds a {type(batch).__name__}, not a dict)")

    def entry(key):
        for k in (key.encode(), key):
            if k in batch:
                return np.asarray(batch[k])
        raise ValueError(f"{path}: no '{key}' entry")

    data = entry("data")
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise ValueError(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 (n, 3072)")
    labels = _labels(entry(label_key), len(data), path, f"'{label_key}'")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _read_cifar(folder: Path, train_names, test_name, label_key):
    *train_paths, test_path = _require(folder, (*train_names, test_name))
    batches = [read_cifar_batch(p, label_key) for p in train_paths]
    x_test, y_test = read_cifar_batch(test_path, label_key)
    x_train = np.concatenate([b[0] for b in batches])
    y_train = np.concatenate([b[1] for b in batches])
    return _as_images(x_train, folder), y_train, _as_images(x_test, folder), y_test


IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not, detected from its first bytes) as a numpy array.

    Header: two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then each size as a big-endian uint32.
    """
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"{path}: broken gzip data ({err})") from None
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] not in IDX_DTYPES:
        raise ValueError(f"{path}: bad IDX magic number 0x{raw[:4].hex()}")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: IDX header cut short")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(dims)) * dtype.itemsize:
        raise ValueError(f"{path}: IDX header says shape {dims} of {dtype} but the file holds {len(body)} data bytes")
    return np.frombuffer(body, dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _read_mnist(folder: Path):
    """MNIST-style IDX files: ``(n, 1, H, W)`` images; named fashion-mnist when the path says so."""
    paths = _require(folder, IDX_FILES, suffixes=("", ".gz"))
    x_train, y_train, x_test, y_test = (read_idx(p) for p in paths)
    for x, y, (px, py) in ((x_train, y_train, paths[:2]), (x_test, y_test, paths[2:])):
        if x.ndim != 3:
            raise ValueError(f"{px}: images have shape {x.shape}, expected (n, H, W)")
        _labels(y, len(x), py, "labels")
    x_train, x_test = _as_images(x_train, folder), _as_images(x_test, folder)
    name = "fashion-mnist" if "fashion" in str(folder).lower() else "mnist"
    return name, x_train, y_train, x_test, y_test, _num_classes(folder, y_train, y_test)


# ------------------------------------------------------------------------------ corruptions


def _pixels(x: torch.Tensor) -> torch.Tensor:
    """``(n, C, P)`` view of images (P = H*W pixels, channels kept together); ``(n, 1, F)`` for
    features."""
    return x.reshape(x.shape[0], x.shape[1], -1) if x.dim() > 2 else x.unsqueeze(1)


def random_labels(data: Dataset, p: float = 1.0, seed: int = 0) -> Dataset:
    """Replace a fraction ``p`` of the training labels (exactly ``round(p * n)`` examples chosen
    at random) by classes drawn uniformly, so about ``p * (1 - 1/K)`` of them change. Test
    labels stay true, as in Zhang et al., so test accuracy measures generalization."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"random_labels: p must lie in [0, 1], got {p}")
    gen = torch.Generator().manual_seed(seed)
    n = len(data.y_train)
    chosen = torch.randperm(n, generator=gen)[:round(p * n)]
    y = data.y_train.clone()
    y[chosen] = torch.randint(data.num_classes, (len(chosen),), generator=gen)
    return dataclasses.replace(data, name=f"{data.name}+labels{p:g}", y_train=y,
                               transforms=(*data.transforms, f"random labels p={p:g} seed {seed}"))


def _inputs_replaced(data: Dataset, kind: str, change) -> Dataset:
    """``data`` with ``change`` applied to the inputs of every split, named and recorded."""
    test = None if data.x_test is None else change(data.x_test)
    return dataclasses.replace(data, name=f"{data.name}+{kind}", x_train=change(data.x_train), x_test=test,
                               transforms=(*data.transforms, kind))


def shuffled_pixels(data: Dataset, seed: int = 0) -> Dataset:
    """Apply one random permutation of pixel positions (all channels of a pixel move together)
    to every training and test image."""
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(_pixels(data.x_train).shape[2], generator=gen)

    def shuffle(x):
        return _pixels(x)[:, :, perm].reshape(x.shape)

    return _inputs_replaced(data, "shuffled_pixels", shuffle)


def random_pixels(data: Dataset, seed: int = 0) -> Dataset:
    """Apply an independent random permutation of pixel positions to each train and test image."""
    gen = torch.Generator().manual_seed(seed)

    def scramble(x):
        flat = _pixels(x)
        perms = torch.rand(flat.shape[0], flat.shape[2], generator=gen).argsort(dim=1)
        return flat.gather(2, perms[:, None, :].expand_as(flat)).reshape(x.shape)

    return _inputs_replaced(data, "random_pixels", scramble)


def gaussian_inputs(data: Dataset, seed: int = 0) -> Dataset:
    """Replace every train and test input by Gaussian noise with the per-channel mean and
    variance of the training inputs (same shapes; labels unchanged)."""
    if not data.x_train.is_floating_point():
        raise ValueError(f"gaussian inputs need real-valued inputs; {data.name} holds integer ids")
    gen = torch.Generator().manual_seed(seed)
    flat = _pixels(data.x_train)
    mean = flat.mean(dim=(0, 2), keepdim=True)
    std = flat.std(dim=(0, 2), keepdim=True)

    def noise(x):
        return (torch.randn(_pixels(x).shape, generator=gen) * std + mean).reshape(x.shape)

    return _inputs_replaced(data, "gaussian", noise)


CORRUPTIONS = ("labels", "shuffled_pixels", "random_pixels", "gaussian")


def corrupt(data: Dataset, kind: str, p: float = 1.0, seed: int = 0) -> Dataset:
    """Dispatch to a corruption by name (``CORRUPTIONS``); ``p`` is used by ``"labels"`` only."""
    if kind == "labels":
        return random_labels(data, p, seed)
    makers = {"shuffled_pixels": shuffled_pixels, "random_pixels": random_pixels, "gaussian": gaussian_inputs}
    if kind not in makers:
        raise ValueError(f"unknown corruption {kind!r}; choose from {', '.join(CORRUPTIONS)}")
    return makers[kind](data, seed)


# ----------------------------------------------------------------------------- augmentation


def augment_crop_flip(x: torch.Tensor, generator: Optional[torch.Generator] = None,
                      padding: int = 4) -> torch.Tensor:
    """Standard CIFAR augmentation of a batch ``(b, C, H, W)``: zero-pad by ``padding`` pixels,
    crop a random ``H x W`` window per image, and flip it horizontally with probability 1/2.

    ``generator`` (on any device) makes it reproducible. Returns a new ``(b, C, H, W)`` tensor.
    """
    b, _, h, w = x.shape
    device = generator.device if generator is not None else x.device
    dy, dx = torch.randint(0, 2 * padding + 1, (2, b), generator=generator, device=device).to(x.device)
    flip = (torch.rand(b, generator=generator, device=device) < 0.5).to(x.device)
    padded = F.pad(x, (padding, padding, padding, padding)).permute(0, 2, 3, 1)  # (b, H+2p, W+2p, C)
    rows = dy[:, None] + torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + dx[:, None]
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def normalize_channels(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel: dim -3 of ``(..., C, H, W)`` images, dim -1 of features."""
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device)
    shape = (-1, 1, 1) if x.dim() >= 3 else (-1,)
    return (x - mean.view(shape)) / std.view(shape)
