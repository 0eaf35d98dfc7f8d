import copy
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape.directions import direction_names, random_directions
from landscape.perturbed import Evaluator, _Unfolded
from landscape.rewrites import compile_model


def conv_bn_net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(inplace=True),
                        nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
    net.train()
    with torch.no_grad():  # running statistics that differ from the defaults
        for _ in range(3):
            net(torch.randn(32, 1, 8, 8) * 2 + 0.5)
    return net


def tiny_data(seed=0, n_train=120, n_test=70, shape=(1, 8, 8), classes=5):
    g = torch.Generator().manual_seed(seed)
    return {"train": (torch.randn(n_train, *shape, generator=g), torch.randint(0, classes, (n_train,), generator=g)),
            "test": (torch.randn(n_test, *shape, generator=g), torch.randint(0, classes, (n_test,), generator=g))}


def reference(model, data, directions, coords, loss="crossentropy"):
    """Loss/acc per split by loading theta + sum c_k d_k into a fresh copy (an independent path)."""
    net = copy.deepcopy(model).eval()
    names = direction_names(model, directions.dir_type)
    state = net.state_dict()
    with torch.no_grad():
        for i, name in enumerate(names):
            if state[name].is_floating_point():
                state[name] += sum(c * axis[i] for c, axis in zip(coords, directions.axes))
        net.load_state_dict(state)
        row = []
        for split in ("train", "test"):
            x, y = data[split]
            out = net(x)
            if loss == "crossentropy":
                value = F.cross_entropy(out, y)
            else:
                value = F.mse_loss(out.softmax(1), F.one_hot(y, out.shape[1]).float())
            row += [value.item(), 100.0 * (out.argmax(1) == y).float().mean().item()]
    return np.array(row)


POINTS = np.array([[0.0, 0.0], [0.4, -0.3], [-0.8, 0.6], [1.0, 1.0]])
PLAIN = dict(fold_bn=False, first_layer=False, reorder=False)


def test_plain_path_matches_an_independent_computation():
    net, data = conv_bn_net(), tiny_data()
    d = random_directions(net, ndim=2, seed=1)
    ev = Evaluator(net, data, d, batch_size=50, device="cpu", **PLAIN)
    got = ev(POINTS)
    ref = np.stack([reference(net, data, d, c) for c in POINTS])
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    assert ev.columns == ["train_loss", "train_acc", "test_loss", "test_acc"]


def test_fast_and_vmap_paths_equal_the_plain_path():
    net, data = conv_bn_net(), tiny_data()
    d = random_directions(net, ndim=2, seed=2)
    plain = Evaluator(net, data, d, batch_size=50, device="cpu", **PLAIN)
    assert plain.program is plain._plain
    expected = plain(POINTS)
    fast = Evaluator(net, data, d, batch_size=50, device="cpu")  # first conv: unfolded input
    assert fast.program.first == "0" and isinstance(fast._cache["train"], _Unfolded)
    assert [f.conv for f in fast.program.folds] == ["3"]
    code = fast.program.module.code
    assert code.index('getattr(self, "6")') < code.index('getattr(self, "5")')  # max-pool, then ReLU
    assert fast._channels_last and "_max_pool_windows" not in code  # max_pool2d is fast on channels-last
    np.testing.assert_allclose(fast(POINTS), expected, rtol=1e-5)
    uncut = Evaluator(net, data, d, batch_size=50, device="cpu", first_layer=False)
    assert uncut.program.first is None and [f.conv for f in uncut.program.folds] == ["0", "3"]
    np.testing.assert_allclose(uncut(POINTS), expected, rtol=1e-5)
    for kwargs in ({}, dict(first_layer=False), PLAIN):
        vm = Evaluator(net, data, d, batch_size=50, points_per_pass=3, device="cpu", **kwargs)
        np.testing.assert_allclose(vm(POINTS), expected, rtol=1e-5)


def test_states_directions_move_running_statistics():
    net, data = conv_bn_net(), tiny_data()
    d = random_directions(net, ndim=2, seed=3, dir_type="states", ignore=None)
    small = POINTS * 0.2  # keep running variances positive
    ref = np.stack([reference(net, data, d, c) for c in small])
    for kwargs in ({}, dict(points_per_pass=2)):
        np.testing.assert_allclose(Evaluator(net, data, d, batch_size=64, device="cpu", **kwargs)(small), ref, rtol=1e-5)
    assert not np.allclose(ref[1], reference(net, data, random_directions(net, ndim=2, seed=3), small[1]))


def test_model_is_bit_exactly_unchanged_and_keeps_its_mode():
    net, data = conv_bn_net(), tiny_data()
    net.train()
    net[1].eval()  # a mixed mode must survive too
    before = {k: v.clone() for k, v in net.state_dict().items()}
    modes = [m.training for m in net.modules()]
    for dir_type in ("weights", "states"):
        d = random_directions(net, ndim=2, seed=4, dir_type=dir_type)
        Evaluator(net, data, d, batch_size=40, device="cpu", points_per_pass=2)(POINTS)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert [m.training for m in net.modules()] == modes


def test_mse_is_the_de_facto_softmax_one_hot_mean():
    net, data = conv_bn_net(), tiny_data()
    d = random_directions(net, ndim=2, seed=5)
    got = Evaluator(net, data, d, loss="mse", batch_size=50, device="cpu")(POINTS[:2])
    ref = np.stack([reference(net, data, d, c, loss="mse") for c in POINTS[:2]])
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_linear_first_layer_after_flatten_uses_the_cache():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 5))
    net[2].running_mean.uniform_(-1, 1)
    data = tiny_data()
    d = random_directions(net, ndim=2, seed=6, ignore=None)
    ev = Evaluator(net, data, d, batch_size=50, device="cpu")  # 64 multiply-adds per output: cached
    assert ev.program.first == "1" and ev.program.first_fold is not None
    ref = np.stack([reference(net, data, d, c) for c in POINTS])
    np.testing.assert_allclose(ev(POINTS), ref, rtol=1e-5)


@pytest.mark.parametrize("conv", [
    dict(kernel_size=3, stride=2, padding=2, dilation=2, bias=True),  # unfolded, odd geometry
    dict(kernel_size=(2, 3), padding=(1, 0), bias=False),
    dict(kernel_size=3, padding=1, groups=1, padding_mode="reflect"),  # not unfoldable: composed
])
def test_first_conv_paths_equal_the_plain_path(conv):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 6, **conv), nn.ReLU(), nn.Flatten(), nn.LazyLinear(5))
    net(torch.zeros(1, 1, 8, 8))  # materialize the lazy layer
    data = tiny_data()
    d = random_directions(net, ndim=2, seed=7, ignore=None)
    ref = np.stack([reference(net, data, d, c) for c in POINTS])
    ev = Evaluator(net, data, d, batch_size=37, device="cpu", first_layer=True)
    assert ev.program.first == "0"
    assert isinstance(ev._cache["test"], _Unfolded) == (conv.get("padding_mode") is None)
    np.testing.assert_allclose(ev(POINTS), ref, rtol=1e-5)
    np.testing.assert_allclose(Evaluator(net, data, d, batch_size=37, device="cpu", points_per_pass=3,
                                         first_layer=True)(POINTS), ref, rtol=1e-5)


class Branchy(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.fc = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Linear(4 * 36, 5)

    def forward(self, x):
        h = self.bn(self.conv(x))
        if h.mean() > 100:
            h = -h
        return self.fc(h.relu().flatten(1))


def test_untraceable_models_fall_back_to_the_plain_path():
    torch.manual_seed(0)
    net, data = Branchy(), tiny_data()
    assert compile_model(net).folds == []
    d = random_directions(net, ndim=2, seed=7)
    ev = Evaluator(net, data, d, batch_size=50, device="cpu")
    assert ev.program is ev._plain
    np.testing.assert_allclose(ev(POINTS[:2]), np.stack([reference(net, data, d, c) for c in POINTS[:2]]), rtol=1e-5)


def test_bf16_autocast_is_close():
    net, data = conv_bn_net(), tiny_data()
    d = random_directions(net, ndim=2, seed=8)
    full = Evaluator(net, data, d, device="cpu")(POINTS[:2])
    half = Evaluator(net, data, d, device="cpu", precision="bf16")(POINTS[:2])
    np.testing.assert_allclose(half[:, [0, 2]], full[:, [0, 2]], rtol=3e-2)


def test_bad_inputs():
    net, data = conv_bn_net(), tiny_data()
    d = random_directions(net, ndim=2, seed=9)
    with pytest.raises(ValueError, match="no 'val' split"):
        Evaluator(net, data, d, splits=("val",), device="cpu")
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        Evaluator(net, data, d, loss="hinge", device="cpu")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        Evaluator(net, data, d, batch_size=0, device="cpu")
    with pytest.raises(TypeError, match="unsupported data of type int"):
        Evaluator(net, 3, d, device="cpu")
    with pytest.raises(ValueError, match="integer class targets"):
        Evaluator(net, {"train": (data["train"][0], data["train"][1].float())}, d, splits=("train",), device="cpu")
    with pytest.raises(ValueError, match="2 columns"):
        Evaluator(net, data, d, device="cpu")(np.zeros((1, 3)))


def test_values_do_not_depend_on_the_batch_size(tmp_path):
    """Surfaces with batch sizes 64, 128 and auto are bitwise equal (exact sums of per-example
    losses, the last batch widened); batch 7 runs other kernels and agrees to 1e-6. The chosen
    size is recorded in the file but is no setting: resuming with another one works."""
    from landscape.store import read_surface
    from landscape.surface import compute_surface

    net, data = conv_bn_net(), tiny_data(n_train=300, n_test=90)
    d = random_directions(net, ndim=2, seed=10)
    grid = dict(x="-1:1:3", y="-1:1:2")
    runs = {b: compute_surface(net, data, directions=d, batch_size=b, device="cpu", progress=False,
                               surf_file=tmp_path / f"b{b}.h5", **grid) for b in (7, 64, 128, None)}
    for key in runs[64].values:
        for b in (128, None):
            np.testing.assert_array_equal(runs[b][key], runs[64][key])
        np.testing.assert_allclose(runs[7][key], runs[64][key], rtol=1e-6)
    auto = Evaluator(net, data, d, device="cpu")
    assert auto.batch_size in (64, 128, 256, 300)
    assert auto.batch_size_note.startswith(f"auto: {auto.batch_size} of 64")  # candidates run within ~n examples
    assert str(read_surface(tmp_path / "b7.h5").attrs["batch_size"]).split()[0] == "7"
    assert str(runs[None].attrs["batch_size_choice"]).startswith("auto: ")
    # resume the batch-7 file with batch 64: not refused; the recorded size is the new one
    again = compute_surface(net, data, directions=d, batch_size=64, device="cpu", progress=False,
                            surf_file=tmp_path / "b7.h5", **grid)
    np.testing.assert_array_equal(again["train_loss"], runs[7]["train_loss"])


def test_resumed_with_another_batch_size_equals_uninterrupted(tmp_path):
    """Half the points computed at batch 128, the rest after a resume at batch 64: the file is
    bitwise the uninterrupted batch-64 surface."""
    import h5py

    from landscape.surface import compute_surface

    net, data = conv_bn_net(), tiny_data(n_train=200, n_test=90)
    d = random_directions(net, ndim=2, seed=12)
    grid = dict(x="-1:1:4", y="-1:1:3", directions=d, device="cpu", progress=False)
    whole = compute_surface(net, data, batch_size=64, **grid)
    path = tmp_path / "s.h5"
    compute_surface(net, data, batch_size=128, surf_file=path, **grid)
    with h5py.File(path, "r+") as f:  # as if killed half way
        f["done"][1:, :] = 0
        for key in whole.values:
            f[key][1:, :] = np.nan
    resumed = compute_surface(net, data, batch_size=64, surf_file=path, **grid)
    for key in whole.values:
        np.testing.assert_array_equal(resumed[key], whole[key])


def test_losses_are_exact_sums_of_the_per_example_losses():
    """The mean loss is the correctly rounded sum (math.fsum) of the plain path's per-example
    float32 losses, divided by n; the widened last batch counts each example once."""
    import math

    net, data = conv_bn_net(), tiny_data(n_train=150, n_test=70)
    d = random_directions(net, ndim=2, seed=11)
    point = np.array([0.3, -0.2])
    ev = Evaluator(net, data, d, batch_size=100, device="cpu", **PLAIN)  # last batch: 50 new rows of 64
    copy_ = copy.deepcopy(net).eval()
    names = direction_names(net, d.dir_type)
    state = copy_.state_dict()
    with torch.no_grad():
        for i, name in enumerate(names):
            if state[name].is_floating_point():
                state[name] += sum(float(c) * axis[i] for c, axis in zip(point, d.axes))
        copy_.load_state_dict(state)
        for j, split in enumerate(("train", "test")):
            x, y = data[split]
            per_example = F.cross_entropy(copy_(x), y, reduction="none")
            expected = math.fsum(per_example.double().tolist()) / len(y)
            np.testing.assert_allclose(ev(point)[0, 2 * j], expected, rtol=1e-6)
            hits = (copy_(x).argmax(1) == y).sum().item()
            assert ev(point)[0, 2 * j + 1] == 100.0 * hits / len(y)


# ------------------------------------------------------------------ data, loss and output forms
class Pixels(nn.Module):
    """The conv-BN net, called as ``model(pixels=x)``, returning ``{"logits": ..., "features": ...}``."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, pixels):
        return {"logits": self.net(pixels), "features": pixels.flatten(1)}


class Masked(nn.Module):
    """The conv-BN net called as ``model(x, scale)`` (tuple inputs), returning a tuple."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, scale):
        return self.net(x * scale), x


class Listed(torch.utils.data.Dataset):
    """A map-style Dataset that is not a TensorDataset (streamed)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def _surface(net, data, d, **kwargs):
    from landscape.surface import compute_surface

    result = compute_surface(net, data, directions=d, x="-1:1:3", y="-0.5:0.5:2", device="cpu", progress=False,
                             **kwargs)
    return np.stack([result[k] for k in result.values])  # (keys, ny, nx)


def test_every_data_form_gives_the_staged_values():
    from torch.utils.data import DataLoader, TensorDataset

    from regularizers.data import Dataset

    net, data = conv_bn_net(), tiny_data(n_train=90)
    d = random_directions(net, ndim=2, seed=11)
    (xt, yt), (xs, ys) = data["train"], data["test"]
    staged = _surface(net, data, d)
    train_only = _surface(net, {"train": data["train"]}, d)
    forms = {
        "Dataset": (Dataset("mine", xt, yt, xs, ys, num_classes=5), staged),
        "(x, y) pair": ((xt, yt), train_only),
        "numpy pair": ((xt.numpy(), yt.numpy()), train_only),
        "TensorDataset": (TensorDataset(xt, yt), train_only),
        "map-style Dataset": (Listed(xt, yt), train_only),
        "DataLoader": (DataLoader(TensorDataset(xt, yt), batch_size=32), train_only),
        "dict of loaders": ({"train": DataLoader(TensorDataset(xt, yt), batch_size=25),
                             "test": DataLoader(TensorDataset(xs, ys), batch_size=70)}, staged),
        "list of batches": ([(xt[:50], yt[:50]), (xt[50:], yt[50:])], train_only),
    }
    for name, (form, expected) in forms.items():
        np.testing.assert_allclose(_surface(net, form, d), expected, rtol=1e-6, err_msg=name)


def test_dict_and_tuple_inputs_and_outputs_are_streamed():
    from torch.utils.data import DataLoader, TensorDataset

    net, data = conv_bn_net(), tiny_data(n_train=90)
    d = random_directions(net, ndim=2, seed=12)
    x, y = data["train"]
    expected = _surface(net, {"train": (x, y)}, d)
    pixels = Pixels(net)
    loader = [({"pixels": x[i:i + 40]}, y[i:i + 40]) for i in range(0, 90, 40)]
    np.testing.assert_allclose(_surface(pixels, loader, d, output="logits"), expected, rtol=1e-6)
    dict_loader = DataLoader(TensorDataset(x, y), batch_size=32, collate_fn=lambda rows: (
        {"pixels": torch.stack([r[0] for r in rows])}, torch.stack([r[1] for r in rows])))
    ev = Evaluator(pixels, dict_loader, d, splits=("train",), output="logits", device="cpu")
    assert ev.program.first is None and len(ev.program.folds) == 2  # streamed: BN folded, no first-layer cache
    assert ev.batch_size is None and ev.batch_size_note == "the loader's batches"
    np.testing.assert_allclose(ev(np.array([[-1.0, -0.5], [1.0, 0.5]])), [expected[:, 0, 0], expected[:, 1, 2]],
                               rtol=1e-6)
    masked = Masked(net)
    tuples = [((x[i:i + 30], torch.tensor(1.0)), y[i:i + 30]) for i in range(0, 90, 30)]
    np.testing.assert_allclose(_surface(masked, tuples, d, output=0), expected, rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one clear error, no fallback warning first
        with pytest.raises(TypeError, match="output="):
            Evaluator(pixels, loader, d, splits=("train",), device="cpu")


def test_loss_callables_and_accuracy_switch():
    net, data = conv_bn_net(), tiny_data()
    d = random_directions(net, ndim=2, seed=13)
    named = Evaluator(net, data, d, device="cpu")(POINTS)
    per_example = Evaluator(net, data, d, device="cpu", loss=lambda out, t: 2 * F.cross_entropy(out, t, reduction="none"))
    np.testing.assert_allclose(per_example(POINTS)[:, [0, 2]], 2 * named[:, [0, 2]], rtol=1e-6)
    np.testing.assert_array_equal(per_example(POINTS)[:, [1, 3]], named[:, [1, 3]])
    batch_mean = Evaluator(net, data, d, device="cpu", batch_size=32, loss=F.cross_entropy)  # scalar per batch
    np.testing.assert_allclose(batch_mean(POINTS), named, rtol=1e-6)
    no_acc = Evaluator(net, data, d, device="cpu", accuracy=False)(POINTS)
    assert np.isnan(no_acc[:, [1, 3]]).all()
    np.testing.assert_allclose(no_acc[:, [0, 2]], named[:, [0, 2]], rtol=1e-6)


def test_regression_targets_give_nan_accuracy():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    x, y = torch.randn(50, 4), torch.randn(50, 2)
    d = random_directions(net, ndim=1, seed=0, ignore=None)
    ev = Evaluator(net, (x, y), d, splits=("train",), loss="mse", device="cpu")
    got = ev(np.array([[0.0], [0.5]]))
    assert np.isnan(got[:, 1]).all()
    with torch.no_grad():
        np.testing.assert_allclose(got[0, 0], float(((net(x) - y) ** 2).mean()), rtol=1e-6)


def test_exact_sums_are_correctly_rounded_and_order_free():
    from fractions import Fraction

    from landscape.perturbed import exact_sums

    g = torch.Generator().manual_seed(0)
    values = (torch.randn(3, 1000, generator=g) * torch.logspace(-6, 6, 1000)).float()
    sums = exact_sums(values)
    for row, total in zip(values.double().tolist(), sums.tolist()):
        assert total == float(sum(Fraction(v) for v in row))  # the exact sum, rounded once
    shuffled = values[:, torch.randperm(1000, generator=g)]
    assert torch.equal(exact_sums(shuffled), sums)
    odd = exact_sums(torch.tensor([[1.0, float("inf")], [float("inf"), -float("inf")], [float("nan"), 1.0]]))
    assert odd[0] == float("inf") and odd[1:].isnan().all()
