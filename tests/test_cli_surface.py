import json

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from landscape.cli import main
from landscape.store import read_attrs, read_projection, read_surface
from regularizers.data import load_data
from regularizers.models import load_model

MODEL = ["--model", "cnn", "--model-option", "channels=[4,8]", "--data", "digits", "--quiet"]


def tiny_cnn(seed):
    torch.manual_seed(seed)
    return load_model("cnn", num_classes=10, in_channels=1, channels=[4, 8])


def loss_of(model, split="test"):
    data = load_data("digits")
    x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
    with torch.no_grad():
        return F.cross_entropy(model.eval()(x), y).item()


def test_surface_command_end_to_end_and_rerun(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    grid = ["--x=-1:1:3", "--y=-1:1:3", "--splits", "test"]
    assert main(["surface", *MODEL, *grid]) == 0
    dir_file = "cnn_weights_xignore=biasbn_xnorm=filter_yignore=biasbn_ynorm=filter_seed=0.h5"
    surf_file = dir_file[:-3] + "_[-1,1,3]x[-1,1,3]_test.h5"
    assert f"{surf_file}: 9/9 points (9 computed" in capsys.readouterr().out
    surface = read_surface(surf_file)
    assert surface["test_loss"].shape == (3, 3) and surface.attrs["batch_size"] > 0
    # the center is the model itself (built from --seed 0 without a checkpoint)
    np.testing.assert_allclose(surface["test_loss"][1, 1], loss_of(tiny_cnn(0)), rtol=1e-5)
    assert surface.dir_file == dir_file and surface.attrs["model"] == "cnn" and surface.attrs["data"] == "digits"
    assert read_attrs(dir_file)["xnorm"] == "filter" and read_attrs(dir_file)["checkpoint_sha256"] == "none"
    assert main(["surface", *MODEL, *grid]) == 0
    assert "9/9 points (0 computed" in capsys.readouterr().out
    assert main(["surface", *MODEL, *grid, "--loss_name", "mse", "--surf_file", surf_file]) == 2
    assert "made with loss='crossentropy', not 'mse'" in capsys.readouterr().err
    with h5py.File(dir_file, "r+") as f:  # as if made for other weights
        f.attrs["weights_sha256"] = "0123"
    # a derived name is never reused for other weights: a new file named with the weights' hash
    assert main(["surface", *MODEL, *grid]) == 0
    weights = read_attrs(surf_file)["weights_sha256"]
    bound = dir_file[:-3] + f"_w={weights[:12]}.h5"
    assert f"{bound[:-3]}_[-1,1,3]x[-1,1,3]_test.h5: 9/9 points (9 computed" in capsys.readouterr().out
    assert read_attrs(bound)["weights_sha256"] == weights
    # a name given explicitly is refused in one line
    assert main(["surface", *MODEL, *grid, "--dir_file", dir_file, "--surf_file", "other.h5"]) == 2
    err = capsys.readouterr().err
    assert "holds directions normalized to other weights" in err and err.count("\n") == 1
    assert not (tmp_path / "other.h5").exists()


def test_checkpoints_targets_and_interpolate(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    a, b = tiny_cnn(1), tiny_cnn(2)
    torch.save(a.state_dict(), "a.pt")
    torch.save({"model": b.state_dict(), "epoch": 3}, "b.pt")
    assert main(["interpolate", *MODEL, "--model_file", "a.pt", "--model_file2", "b.pt", "--x=0:1:2",
                 "--splits", "test"]) == 0
    line = read_surface("a.pt_b_states_x=target_[0,1,2]_test.h5")
    np.testing.assert_allclose(line["test_loss"], [loss_of(a), loss_of(b)], rtol=1e-5)
    assert read_attrs("a.pt_b_states_x=target.h5")["xkind"] == "target"
    # surface with a target x axis and a random y axis through --checkpoint
    assert main(["surface", *MODEL, "--checkpoint", "a.pt", "--model_file2", "b.pt", "--x=0:1:2", "--y=0:0:1",
                 "--dir_type", "states", "--splits", "test", "--surf_file", "plane.h5"]) == 0
    np.testing.assert_allclose(read_surface("plane.h5")["test_loss"][0], [loss_of(a), loss_of(b)], rtol=1e-5)


def test_existing_de_facto_direction_file_is_used_as_is(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    model = tiny_cnn(3)
    torch.save(model.state_dict(), "m.pt")
    with h5py.File("zero_dirs.h5", "w") as f:  # de facto layout, zero x direction
        group = f.create_group("xdirection")
        for i, p in enumerate(model.parameters()):
            group.create_dataset(str(i), data=np.zeros(tuple(p.shape), dtype=np.float32))
    assert main(["surface", *MODEL, "--checkpoint", "m.pt", "--dir_file", "zero_dirs.h5", "--x=-1:1:3",
                 "--splits", "test", "--surf_file", "flat.h5"]) == 0
    np.testing.assert_allclose(read_surface("flat.h5")["test_loss"], [loss_of(model)] * 3, rtol=1e-5)
    with h5py.File("bad_dirs.h5", "w") as f:
        f.create_group("xdirection").create_dataset("0", data=np.zeros(3))
    assert main(["surface", *MODEL, "--checkpoint", "m.pt", "--dir_file", "bad_dirs.h5", "--x=-1:1:3"]) == 2
    assert "bad_dirs.h5: xdirection has 1 tensors but the model has" in capsys.readouterr().err
    assert main(["surface", *MODEL, "--x=1:-1:3"]) == 2
    err = capsys.readouterr().err
    assert "stop must be greater than start" in err and err.count("\n") == 1


def test_trajectory_command(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": "cnn", "model_options": {"channels": [4, 8]},
                                                 "data": "digits", "data_seed": 0}))
    model = tiny_cnn(4)
    g = torch.Generator().manual_seed(0)
    for epoch in range(1, 5):
        state = {k: v + (4 - epoch) * 0.05 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
                 for k, v in model.state_dict().items()}
        torch.save({"model": state, "epoch": epoch}, run / "checkpoints" / f"epoch_{epoch:03d}.pt")
    torch.save(model.state_dict(), run / "model.pt")
    assert main(["trajectory", str(run), "--surface", "--x=-1:1:2", "--y=-1:1:2", "--splits", "test", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "explained variance ratio" in out and "4/4 points" in out
    coords, labels = read_projection(run / "trajectory_path.h5")
    assert coords.shape == (4, 2) and labels[-1] == "epoch_004"
    np.testing.assert_allclose(coords[-1], [0.0, 0.0], atol=1e-6)  # the last checkpoint is the final model
    surface = read_surface(run / "trajectory_surface.h5")
    assert surface.dir_file.endswith("trajectory_directions.h5") and surface.done.all()
    figure = run / "trajectory.png"
    assert figure.stat().st_size > 1000 and "the loss contours" in out


def test_bad_flags_and_files_are_one_line_naming_the_problem(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    torch.save(tiny_cnn(5).state_dict(), "narrow.pt")
    torch.save(load_model("cnn", num_classes=10, in_channels=1, channels=[4, 16]).state_dict(), "wide.pt")
    base = [*MODEL, "--checkpoint", "narrow.pt"]
    cases = [
        (["surface", *base, "--x="], "x axis '': expected start:stop:num"),
        (["surface", *base, "--x=-1e308:1e308:3"], "start and stop must be finite"),
        (["surface", *base, "--x=0:0:1", "--points-per-pass", "100000000"], "points_per_pass=100,000,000 needs about"),
        (["surface", *base, "--x=0:0:1", "--splits", "train,train"], "argument --splits: 'train,train' names a split twice"),
        (["surface", *base, "--x=0:0:1", "--batch-size", "0"], "argument --batch-size/--batch_size: 0 is not >= 1"),
        (["interpolate", *base, "--model_file2", "wide.pt", "--x=0:1:2"], "wide.pt does not fit the model"),
        (["trajectory", "run", "--margin", "nan"], "argument --margin: 'nan' is not a finite number"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["narrow.pt", "wide.pt"]  # nothing written
    # a grid changed by 1e-7 is printed with the digits that tell the two apart
    files = ["--surf_file", "g.h5", "--dir_file", "gd.h5", "--splits", "test"]
    assert main(["surface", *base, "--x=0:1:3", *files]) == 0
    assert main(["surface", *base, "--x=0:1.0000001:3", *files]) == 2
    assert "made for another grid ([0,1,3], not [0,1.0000001,3])" in capsys.readouterr().err
    with h5py.File("g.h5", "r+") as f:
        f.attrs["version"] = "1"
    assert main(["surface", *base, "--x=0:1:3", *files]) == 2
    assert "not a surface file of this toolkit" in capsys.readouterr().err


def test_progress_bars_name_the_model_and_the_grid(capsys):
    from landscape.directions import random_directions
    from landscape.surface import compute_surface

    model, data = tiny_cnn(6), load_data("digits")
    compute_surface(model, data, directions=random_directions(model, ndim=2), x="-1:1:3", y="-1:1:2",
                    stem="runs/a/model.pt", splits=["test"], batch_size=256)
    assert "model.pt x:3 y:2 (batch 256" in capsys.readouterr().err


def test_every_option_of_the_surface_commands_has_help():
    from landscape.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.choices and "surface" in a.choices).choices
    for name in ("surface", "interpolate", "trajectory"):
        missing = [a.dest for a in commands[name]._actions if not a.help]
        assert missing == [], (name, missing)


def test_output_flag_selects_the_logits_of_a_dict_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "dictnet.py").write_text(
        "import torch\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self, num_classes=10, in_channels=1):\n"
        "        super().__init__()\n"
        "        torch.manual_seed(0)\n"
        "        self.fc = torch.nn.Linear(64 * in_channels, num_classes)\n"
        "    def forward(self, inputs):\n"
        "        return {'logits': self.fc(inputs.flatten(1)), 'aux': inputs.sum()}\n"
        "def make(num_classes=10, in_channels=1):\n"
        "    return Net(num_classes, in_channels)\n")
    import dictnet

    model = dictnet.make()
    data = load_data("digits")
    with torch.no_grad():
        want = F.cross_entropy(model(data.x_test)["logits"], data.y_test).item()
    argv = ["surface", "--model", "dictnet:make", "--data", "digits", "--quiet", "--x=-1:1:3", "--splits", "test",
            "--surf_file", "s.h5", "--dir_file", "d.h5"]
    assert main(argv) == 2 and "output" in capsys.readouterr().err  # a dict output needs --output
    assert main([*argv, "--output", "logits"]) == 0
    np.testing.assert_allclose(read_surface("s.h5")["test_loss"][1], want, rtol=1e-5)


def test_non_finite_weights_and_directions_are_refused_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    model = tiny_cnn(7)
    torch.save(model.state_dict(), "m.pt")
    bad = {k: v.clone() for k, v in model.state_dict().items()}
    bad[next(k for k in bad if k.endswith("weight"))][0] = float("nan")
    torch.save(bad, "nan.pt")
    base = [*MODEL, "--x=-1:1:3", "--splits", "test"]
    assert main(["surface", *base, "--checkpoint", "nan.pt", "--surf_file", "a.h5", "--dir_file", "a_dirs.h5"]) == 2
    err = capsys.readouterr().err
    assert "holds 9 non-finite values (NaN or inf)" in err and err.count("\n") == 1
    assert main(["surface", *base, "--checkpoint", "m.pt", "--surf_file", "b.h5", "--dir_file", "dirs.h5"]) == 0
    with h5py.File("dirs.h5", "r+") as f:
        f["xdirection"]["0"][0] = np.nan
    assert main(["surface", *base, "--checkpoint", "m.pt", "--surf_file", "c.h5", "--dir_file", "dirs.h5"]) == 2
    err = capsys.readouterr().err
    assert "dirs.h5: xdirection entry 0 holds 9 non-finite values (NaN or inf)" in err and err.count("\n") == 1
    assert not (tmp_path / "a.h5").exists() and not (tmp_path / "c.h5").exists()
