"""`landscape demo` end to end on a tiny setting: runs, surfaces, figures, and the cache."""
import numpy as np

from landscape.cli import main
from landscape.store import read_surface


def test_demo_writes_surfaces_and_figures_and_reuses_runs(tmp_path, capsys):
    args = ["demo", "--out", str(tmp_path), "--epochs", "2", "--points", "5", "--device", "cpu"]
    assert main(args) == 0
    assert "figures:" in capsys.readouterr().out
    for name in ("baseline", "mma"):
        plane = read_surface(tmp_path / "surfaces" / "2d" / f"{name}.h5")
        assert plane.shape == (5, 5) and plane.done.all()
        line = read_surface(tmp_path / "surfaces" / "1d" / f"{name}.h5")
        assert line.shape == (9,)
        # the centre of the line and of the plane is the trained model itself
        assert np.isclose(line["train_loss"][4], plane["train_loss"][2, 2], rtol=1e-5)
    between = read_surface(tmp_path / "surfaces" / "interpolation_baseline_to_mma.h5")
    assert between.x[0] == -0.5 and between.x[-1] == 1.5
    figures = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    assert "compare_1d.png" in figures and "mma_train_loss_surface3d.png" in figures
    assert all((tmp_path / "figures" / f).stat().st_size > 1000 for f in figures)

    assert main(args) == 0  # second time: the trained runs are reused, not retrained
    out = capsys.readouterr().out
    assert out.count("reusing the trained run") == 2 and "epoch   1/2" not in out
