"""Tests of landscape.plot and the `landscape plot` command on small hand-written surface files."""
import xml.etree.ElementTree as ET

import h5py
import matplotlib.image as mpimg
import numpy as np
import pytest
from matplotlib.collections import QuadMesh
from matplotlib.contour import ContourSet
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from landscape import cli
from landscape import plot as P
from landscape.commands import plot as plot_command

X1 = np.linspace(-1.0, 1.0, 7)   # nx = 7
Y1 = np.linspace(0.0, 1.5, 4)    # ny = 4: a non-square grid


def bowl(x=X1, y=Y1):
    """Z = x^2 + 2 y^2 + 0.1 on meshgrid 'xy', shape (ny, nx)."""
    X, Y = np.meshgrid(x, y)
    return X ** 2 + 2 * Y ** 2 + 0.1


def ramp(x=X1, y=Y1):
    """An asymmetric surface (ny, nx) whose orientation errors would show: Z = x + 10 y + 5."""
    X, Y = np.meshgrid(x, y)
    return X + 10 * Y + 5


def write_surface(path, x, y=None, z=None, **values):
    with h5py.File(path, "w") as f:
        f["xcoordinates"] = x
        if y is not None:
            f["ycoordinates"] = y
        if z is not None:
            f["zcoordinates"] = z
        for key, v in values.items():
            f[key] = v
    return path


def only(items, cls):
    found = [c for c in items if isinstance(c, cls)]
    assert len(found) == 1, found
    return found[0]


# ----------------------------------------------------------------------------- scales
def test_masked_hides_nan_and_minus_one_and_nonpositive_on_log():
    v = np.array([1.0, np.nan, -1.0, 0.0, 2.0])
    assert np.ma.getmaskarray(P.masked(v)).tolist() == [False, True, True, False, False]
    assert np.ma.getmaskarray(P.masked(v, log=True)).tolist() == [False, True, True, True, False]


def test_contour_levels_as_requested_and_defaults_from_data():
    np.testing.assert_allclose(P.contour_levels(bowl(), 0.5, 3.0, 0.5), [0.5, 1, 1.5, 2, 2.5, 3])
    np.testing.assert_allclose(P.contour_levels(bowl(), 0.01, 10, 1.0, log=True), [0.01, 0.1, 1, 10])
    lv = P.contour_levels(np.where(bowl() > 4, -1.0, bowl()))  # -1 must not enter the range
    assert lv.min() >= 0.1 - 1e-12 and lv.max() <= 4 and 5 <= len(lv) <= 20
    geo = P.contour_levels(bowl(), log=True)
    assert np.all(np.diff(np.log10(geo)) > 0) and geo[0] >= 0.09
    with pytest.raises(ValueError, match="no valid values"):
        P.contour_levels(np.full((2, 2), np.nan))


def test_contour_uses_requested_levels_and_labels_them():
    fig = P.plot_contour(X1, Y1, bowl(), vmin=0.5, vmax=3.0, vlevel=0.5)
    cs = only(fig.axes[0].collections, ContourSet)
    np.testing.assert_allclose(cs.levels, [0.5, 1, 1.5, 2, 2.5, 3])
    assert len(cs.labelTexts) > 0 and not cs.filled
    filled = only(P.plot_contour(X1, Y1, bowl(), filled=True, vlevel=0.5).axes[0].collections, ContourSet)
    assert filled.filled and filled.levels[0] == pytest.approx(0.1)


# ----------------------------------------------------------------------------- heat map, 3D
def test_heatmap_orientation_on_non_square_grid_and_masking():
    Z = ramp()
    Z[1, 5], Z[2, 0] = np.nan, -1.0
    fig = P.plot_heatmap(X1, Y1, Z)
    ax = fig.axes[0]
    mesh = only(ax.collections, QuadMesh)
    data = mesh.get_array()
    assert data.shape == (Y1.size, X1.size)  # rows are y, columns x
    np.testing.assert_allclose(data[0, -1], ramp()[0, -1])  # (x = 1, y = 0)
    assert data.mask[1, 5] and data.mask[2, 0] and data.mask.sum() == 2
    np.testing.assert_allclose(data.compressed(), Z[~(np.isnan(Z) | (Z == -1))])
    # cells are centred on the grid points, so the extent is the coordinates +- half a step
    verts = mesh.get_coordinates()
    centres = (verts[:-1, :-1] + verts[1:, 1:]) / 2
    np.testing.assert_allclose(centres[0, :, 0], X1, atol=1e-12)
    np.testing.assert_allclose(centres[:, 0, 1], Y1, atol=1e-12)
    dx, dy = X1[1] - X1[0], Y1[1] - Y1[0]
    np.testing.assert_allclose(ax.get_xlim(), (X1[0] - dx / 2, X1[-1] + dx / 2))
    np.testing.assert_allclose(ax.get_ylim(), (Y1[0] - dy / 2, Y1[-1] + dy / 2))


def surface_faces(fig):
    ax = fig.axes[0]
    assert ax.name == "3d"
    return only(ax.collections, Poly3DCollection)


def test_surface3d_draws_one_face_per_valid_cell(tmp_path):
    fig = P.plot_surface3d(X1, Y1, ramp())
    coll = surface_faces(fig)
    assert len(coll.get_facecolor()) == (Y1.size - 1) * (X1.size - 1)
    np.testing.assert_allclose(fig.axes[0].get_zlim(), (ramp().min(), ramp().max()))
    holed = ramp()
    holed[1, 3], holed[2, 6] = np.nan, -1.0  # interior point: 4 cells; edge point: 2 cells
    assert len(surface_faces(P.plot_surface3d(X1, Y1, holed)).get_facecolor()) == 18 - 4 - 2
    fig.savefig(tmp_path / "s.png")
    image = mpimg.imread(tmp_path / "s.png")[..., :3]
    assert (np.abs(image - 1.0).sum(axis=-1) > 0.3).mean() > 0.1  # not a blank figure


def test_surface3d_log_and_clip():
    fig = P.plot_surface3d(X1, Y1, bowl(), log=True, vmax=2.0)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.get_zlim(), (np.log10(0.1), np.log10(2.0)))
    assert "log10" in ax.get_zlabel()


def test_thin_keeps_ends():
    idx = P._thin(250, 100)
    assert idx[0] == 0 and idx[-1] == 249 and len(idx) <= 100
    assert P._thin(5, 100).tolist() == [0, 1, 2, 3, 4]


# ----------------------------------------------------------------------------- 1D, trajectory, slices...
def test_1d_twin_axes_and_masked_points():
    x = np.linspace(-1, 1, 9)
    acc = np.full(9, 90.0)
    acc[4] = -1.0
    fig = P.plot_1d(x, {"train_loss": x ** 2, "test_loss": x ** 2 + 0.2, "train_acc": acc})
    ax_loss, ax_acc = fig.axes
    assert ax_acc.get_ylabel() == "accuracy (%)" and ax_loss.get_ylabel() == "loss"
    (acc_line,) = ax_acc.get_lines()
    y = np.asarray(acc_line.get_ydata(), dtype=float)
    assert np.isnan(y[4]) and not np.any(y == -1)
    styles = {line.get_label(): line.get_linestyle() for line in ax_loss.get_lines()}
    assert styles == {"train loss": "-", "test loss": "--"}


def test_1d_overlays_runs_and_log_scale():
    x = np.linspace(0, 1, 5)
    runs = {"baseline": {"train_loss": x + 1, "test_acc": 50 + x},
            "mma": {"train_loss": x + 2, "test_acc": 60 + x}}
    fig = P.plot_1d(x, runs, log=True)
    ax_loss, ax_acc = fig.axes
    assert ax_loss.get_yscale() == "log"
    assert [line.get_label() for line in ax_loss.get_lines()] == ["baseline train loss", "mma train loss"]
    assert ax_loss.get_lines()[0].get_color() != ax_loss.get_lines()[1].get_color()
    with pytest.raises(ValueError, match="shape"):
        P.plot_1d(x, {"train_loss": np.ones(3)})


def test_trajectory_labels_show_explained_variance():
    t = np.linspace(0, 1, 12)
    path = np.c_[0.8 * (1 - t), 0.5 * (1 - t) * np.sin(5 * t)]
    fig = P.plot_trajectory(path, [0.632, 0.21], (X1, Y1, bowl()))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "1st PC: 63.2 %" and ax.get_ylabel() == "2nd PC: 21.0 %"
    traj = [line for line in ax.get_lines() if line.get_label() == "trajectory"][0]
    np.testing.assert_allclose(traj.get_xydata(), path)
    only(ax.collections, ContourSet)
    with pytest.raises(ValueError, match="explained_variance"):
        P.plot_trajectory(path, [63.2, 21.0])
    with pytest.raises(ValueError, match=r"\(T, 2\)"):
        P.plot_trajectory(path[:, :1], [0.5, 0.2])


def test_slices_share_one_scale():
    z = np.linspace(-1, 1, 5)
    V = np.stack([ramp() * (1 + k) for k in range(5)])
    fig = P.plot_slices(X1, Y1, z, V, n_slices=3)
    meshes = [only(ax.collections, QuadMesh) for ax in fig.axes[:3]]
    assert len(meshes) == 3
    assert {(m.norm.vmin, m.norm.vmax) for m in meshes} == {(V.min(), V.max())}
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert titles == ["z = -1", "z = 0", "z = 1"]
    np.testing.assert_allclose(meshes[2].get_array(), V[4])
    assert len(fig.axes) == 4  # 3 slices (the 4th grid cell removed) + 1 shared colour bar


def test_comparison_uses_same_levels_and_norm():
    fig = P.plot_comparison({"baseline": (X1, Y1, bowl()), "regularized": (X1, Y1, 0.5 * bowl())},
                            kind="filled", vlevel=0.5)
    sets = [only(ax.collections, ContourSet) for ax in fig.axes[:2]]
    np.testing.assert_array_equal(sets[0].levels, sets[1].levels)
    assert sets[0].norm.vmin == sets[1].norm.vmin == pytest.approx(0.05)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["baseline", "regularized"]
    with pytest.raises(ValueError, match="kind"):
        P.plot_comparison({"a": (X1, Y1, bowl())}, kind="surface3d")


# ----------------------------------------------------------------------------- VTP
def read_vtp(path):
    root = ET.parse(path).getroot()
    assert root.tag == "VTKFile" and root.get("type") == "PolyData"
    piece = root.find("PolyData/Piece")
    arrays = {el.get("Name"): np.array(el.text.split(), dtype=float) for el in piece.iter("DataArray")}
    points = np.array(piece.find("Points/DataArray").text.split(), dtype=float).reshape(-1, 3)
    return piece, arrays, points


def test_vtp_points_scalars_and_quads(tmp_path):
    Z = ramp()
    piece, arrays, points = read_vtp(P.write_vtp(tmp_path / "s.vtp", X1, Y1, Z, name="train_loss"))
    n = X1.size * Y1.size
    assert int(piece.get("NumberOfPoints")) == n == len(points)
    np.testing.assert_allclose(arrays["train_loss"], Z.ravel())
    Xg, Yg = np.meshgrid(X1, Y1)
    np.testing.assert_allclose(points, np.c_[Xg.ravel(), Yg.ravel(), Z.ravel()])
    n_quads = (X1.size - 1) * (Y1.size - 1)
    assert int(piece.get("NumberOfPolys")) == n_quads
    np.testing.assert_array_equal(arrays["offsets"], 4 * np.arange(1, n_quads + 1))
    first = arrays["connectivity"][:4].astype(int)
    assert first.tolist() == [0, 1, X1.size + 1, X1.size]


def test_vtp_drops_masked_points_clips_and_logs(tmp_path):
    Z = bowl()
    Z[1, 3], Z[0, 0] = np.nan, -1.0
    piece, arrays, points = read_vtp(P.write_vtp(tmp_path / "s.vtp", X1, Y1, Z, zmax=2.0, log=True))
    keep = ~(np.isnan(Z) | (Z == -1))
    assert len(points) == keep.sum() == X1.size * Y1.size - 2
    np.testing.assert_allclose(arrays["value"], np.log10(np.minimum(Z[keep], 2.0)))
    assert int(piece.get("NumberOfPolys")) == 18 - 4 - 1
    assert arrays["connectivity"].max() < len(points)


# ----------------------------------------------------------------------------- files and CLI
def test_plot_surface_file_2d_writes_images_and_vtp(tmp_path):
    Z = bowl()
    Z[2, 2] = np.nan
    f = write_surface(tmp_path / "surf.h5", X1, Y1, train_loss=Z, train_acc=100 - Z)
    written = P.plot_surface_file(f, out_dir=tmp_path / "out", vtp=True, vlevel=0.5)
    names = sorted(p.name for p in written)
    assert names == sorted([f"surf_train_loss_{k}.png" for k in P.KINDS_2D] + ["surf_train_loss.vtp"])
    assert all(p.stat().st_size > 1000 for p in written)
    pdfs = P.plot_surface_file(f, "train_acc", kinds=("heatmap",), formats=("png", "pdf"))
    assert [p.suffix for p in pdfs] == [".png", ".pdf"] and pdfs[0].parent == tmp_path
    assert pdfs[1].read_bytes().startswith(b"%PDF")


def test_plot_surface_file_1d_and_3d(tmp_path):
    x = np.linspace(-1, 1, 11)
    f1 = write_surface(tmp_path / "line.h5", x, train_loss=x ** 2, test_loss=x ** 2 + 0.1,
                       train_acc=np.r_[-np.ones(2), np.full(9, 90.0)])
    (png,) = P.plot_surface_file(f1)
    assert png.name == "line_1d.png" and png.stat().st_size > 1000
    z = np.linspace(0, 1, 3)
    f3 = write_surface(tmp_path / "vol.h5", X1, Y1, z, train_loss=np.stack([bowl() + k for k in z]))
    (png,) = P.plot_surface_file(f3)
    assert png.name == "vol_train_loss_slices.png" and png.stat().st_size > 1000
    with pytest.raises(ValueError, match="2D"):
        P.plot_surface_file(f3, vtp=True)


def test_read_surface_accepts_de_facto_layout(tmp_path):
    # tomgoldstein/loss-landscape allocates (nx, ny) but fills it in meshgrid-'xy' order
    Z = ramp()
    f = write_surface(tmp_path / "defacto.h5", X1, Y1, train_loss=Z.ravel().reshape(X1.size, Y1.size),
                      meta=np.arange(3))
    surface = P.read_surface(f)
    assert surface.shape == (Y1.size, X1.size) and list(surface.values) == ["train_loss"]
    np.testing.assert_array_equal(surface.values["train_loss"], Z)


def test_missing_key_and_bad_files(tmp_path):
    f = write_surface(tmp_path / "surf.h5", X1, Y1, train_loss=bowl(), test_acc=bowl())
    with pytest.raises(ValueError, match=r"no dataset 'test_loss'; present: test_acc, train_loss"):
        P.plot_surface_file(f, "test_loss")
    with pytest.raises(ValueError, match="unknown plot kind"):
        P.plot_surface_file(f, kinds=("pie",))
    with pytest.raises(FileNotFoundError):
        P.read_surface(tmp_path / "absent.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        P.read_surface(tmp_path / "text.h5")


def test_cli_writes_and_prints_paths_with_comparison(tmp_path, capsys):
    a = write_surface(tmp_path / "base.h5", X1, Y1, train_loss=bowl())
    b = write_surface(tmp_path / "reg.h5", X1, Y1, train_loss=0.5 * bowl())
    rc = cli.main(["plot", str(a), str(b), "--kinds", "contour", "--out", str(tmp_path / "o"),
                   "--vmin", "0.1", "--vmax", "2", "--vlevel", "0.25", "--vtp"])
    assert rc == 0
    printed = capsys.readouterr().out.split()
    assert [p.rsplit("/", 1)[-1] for p in printed] == [
        "base_train_loss_contour.png", "base_train_loss.vtp", "reg_train_loss_contour.png",
        "reg_train_loss.vtp", "compare_train_loss_contour.png"]
    assert all((tmp_path / "o" / p.rsplit("/", 1)[-1]).stat().st_size > 0 for p in printed)


def test_compare_1d_files_overlays_runs(tmp_path):
    x = np.linspace(-1, 1, 9)
    a = write_surface(tmp_path / "base.h5", x, train_loss=x ** 2, test_acc=90 - x ** 2)
    b = write_surface(tmp_path / "reg.h5", x, train_loss=0.5 * x ** 2, test_acc=95 - x ** 2)
    (png,) = P.compare_surface_files([a, b])
    assert png.name == "compare_1d.png" and png.stat().st_size > 1000
    c = write_surface(tmp_path / "other.h5", x[:5], train_loss=x[:5])
    with pytest.raises(ValueError, match="same xcoordinates"):
        P.compare_surface_files([a, c])
    d = write_surface(tmp_path / "flat.h5", X1, Y1, train_loss=bowl())
    with pytest.raises(ValueError, match="all 1D or all 2D"):
        P.compare_surface_files([a, d])


def test_cli_error_for_missing_key(tmp_path, capsys):
    f = write_surface(tmp_path / "surf.h5", X1, Y1, train_loss=bowl())
    assert cli.main(["plot", str(f), "--key", "test_acc"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "'test_acc'" in err and "present: train_loss" in err


def test_cli_kinds_match_library():
    assert plot_command.KINDS_2D == P.KINDS_2D


def test_figures_replace_old_ones_atomically_and_leave_no_temporaries(tmp_path):
    f = write_surface(tmp_path / "surf.h5", X1, Y1, train_loss=bowl())
    out = tmp_path / "o"
    first = P.plot_surface_file(f, kinds=("heatmap",), out_dir=out, vtp=True)
    old = {p: p.read_bytes() for p in first}
    write_surface(f, X1, Y1, train_loss=2 * bowl() + 1)
    assert P.plot_surface_file(f, kinds=("heatmap",), out_dir=out, vtp=True) == first
    assert all(p.read_bytes() != old[p] for p in first)  # new content under the same names
    assert sorted(p.name for p in out.iterdir()) == ["surf_train_loss.vtp", "surf_train_loss_heatmap.png"]


def test_gaps_note_counts_missing_and_nan_points(tmp_path):
    values = bowl()
    assert P.gaps_note(P.read_surface(write_surface(tmp_path / "full.h5", X1, Y1, train_loss=values))) is None
    values[0, :3] = -1        # not computed (the de facto mark)
    values[1, 1] = np.nan     # in a file without a done mask NaN is not computed either
    note = P.gaps_note(P.read_surface(write_surface(tmp_path / "gaps.h5", X1, Y1, train_loss=values)))
    assert note == (f"{tmp_path / 'gaps.h5'}: 4 of {values.size} points are not computed yet (rerun the same "
                    "`landscape surface` command to finish them); they are left blank")


# ----------------------------------------------------------------------------- issue 20 item 5: nearly flat surfaces
@pytest.mark.parametrize("log", [True, False])
def test_a_nearly_flat_surface_is_plotted_with_distinct_levels(tmp_path, log):
    flat = 1.389 + 0.011 * (bowl() - bowl().min()) / np.ptp(bowl())  # 1.389 .. 1.400
    levels = P.contour_levels(flat, log=log)
    assert levels.size >= 5 and np.all(np.diff(levels) > 0)  # two-digit rounding collapsed them to [1.4]
    assert levels[0] >= 1.389 - 1e-9 and levels[-1] <= 1.400 + 1e-9
    path = write_surface(tmp_path / "flat.h5", X1, Y1, train_loss=flat)
    written = P.plot_surface_file(path, kinds=P.KINDS_2D, log=log)
    assert [p.name for p in written] == [f"flat_train_loss_{kind}.png" for kind in P.KINDS_2D]
    fig = P.plot_contour(X1, Y1, flat, log=log)
    assert np.allclose(only(fig.axes[0].get_children(), ContourSet).levels, levels)


def test_a_constant_surface_on_a_log_scale_gets_a_decade():
    levels = P.contour_levels(np.full((4, 7), 1.39), log=True)
    # rounded to 2 significant digits where that keeps the 15 levels apart
    assert levels.size == 15 and np.all(np.diff(levels) > 0)
    assert levels[0] == pytest.approx(1.39, rel=0.05) and levels[-1] == pytest.approx(13.9, rel=0.05)


def test_refused_scales_and_values(tmp_path):
    with pytest.raises(ValueError, match="vmin must be below vmax, got vmin 5 and vmax 1"):
        P.plot_contour(X1, Y1, bowl(), vmin=5, vmax=1)
    with pytest.raises(ValueError, match="train_loss has no finite value to plot"):
        P.plot_1d(X1, {"train_loss": np.full(7, np.inf), "train_acc": np.full(7, 50.0)})


def test_a_1d_surface_without_accuracies_plots_its_losses():
    from landscape.plot import plot_1d

    x = np.linspace(-1, 1, 5)
    fig = plot_1d(x, {"train_loss": x ** 2 + 1, "train_acc": np.full(5, np.nan)})  # MSE: accuracy means nothing
    lines = [line for ax in fig.axes for line in ax.get_lines()]
    assert len(lines) == 1 and np.allclose(lines[0].get_ydata(), x ** 2 + 1)
    with pytest.raises(ValueError, match="train_loss has no finite value to plot"):
        plot_1d(x, {"train_loss": np.full(5, np.nan), "train_acc": np.ones(5)})
