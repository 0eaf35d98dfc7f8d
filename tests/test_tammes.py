"""Tammes solver against known optima (degrees), the table, its figure script."""
import math
import runpy
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from analysis.angles import minimal_angles
from analysis.tammes_problem import known_optimum, plot_tammes_table, tammes, tammes_table

STEPS = 600


def test_known_optima():
    assert known_optimum(4, 3) == pytest.approx(109.4712, abs=1e-4)
    assert known_optimum(3, 6) == pytest.approx(120.0)
    assert known_optimum(2, 5) == pytest.approx(180.0)
    assert known_optimum(6, 3) == known_optimum(7, 4) == 90.0
    assert known_optimum(130, 3) == 18.5  # MMA Table 1, from Sloane's tables
    assert known_optimum(7, 3) is None


@pytest.mark.parametrize("loss", ["mma", "cosine", "riesz", "log"])
def test_every_loss_finds_the_tetrahedron(loss):
    result = tammes(4, 3, loss, steps=STEPS)
    assert result.min_angle == pytest.approx(109.47, abs=0.5)


@pytest.mark.parametrize("n, d", [(3, 6), (5, 4), (6, 5), (4, 3)])
def test_regular_simplex_when_n_at_most_d_plus_1(n, d):
    result = tammes(n, d, steps=STEPS)
    assert result.min_angle == pytest.approx(math.degrees(math.acos(-1 / (n - 1))), abs=0.5)
    assert result.points.shape == (n, d)
    assert np.linalg.norm(result.points, axis=1) == pytest.approx(np.ones(n))


@pytest.mark.parametrize("n, d, tol", [(6, 3, 0.1), (8, 4, 0.1), (7, 4, 0.5), (9, 5, 0.5)])
def test_right_angles_when_n_between_d_plus_2_and_2d(n, d, tol):
    # n = 2d is the cross-polytope. For n < 2d MMA's mean-of-minima objective settles about
    # 0.2-0.4 degrees short of 90: a mean of nearest angles can beat the min-max arrangement.
    assert tammes(n, d, steps=STEPS).min_angle == pytest.approx(90.0, abs=tol)


def test_never_beats_the_optimum_and_is_seeded():
    first = tammes(30, 3, steps=200, seed=1)
    assert first.min_angle <= 38.6 + 0.05
    again = tammes(30, 3, steps=200, seed=1)
    assert np.array_equal(first.points, again.points) and first.energy == again.energy
    assert not np.array_equal(first.points, tammes(30, 3, steps=200, seed=2).points)
    # the MMA energy is minus the mean nearest angle, in radians
    nearest = minimal_angles(first.points)
    assert first.energy == pytest.approx(-math.radians(nearest.mean()), abs=1e-9)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown loss"):
        tammes(4, 3, "coulomb")
    with pytest.raises(ValueError):
        tammes(1, 3)


def test_table_and_plot():
    table = tammes_table([(3, 4), (3, 7)], losses=("mma", "riesz"), steps=300)
    assert table.optimal[0] == pytest.approx(109.47, abs=0.01) and np.isnan(table.optimal[1])
    assert table.measured["mma"][0] == pytest.approx(109.47, abs=0.5)
    lines = table.to_markdown().splitlines()
    assert lines[0] == "| d | n | optimal | mma | riesz |"
    assert lines[2].startswith("| 3 | 4 | 109.5 | 109.5 (109.5) | 109.5 (109.4) |")
    assert lines[3].startswith("| 3 | 7 | nan | ")
    fig = plot_tammes_table(table)
    assert len(fig.axes[0].patches) == 2 * 2
    plt.close("all")


def test_figure_script_quick(tmp_path):
    script = Path(__file__).resolve().parents[1] / "figures" / "tammes_table.py"
    main = runpy.run_path(str(script))["main"]
    assert main(["--quick", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "tammes_table.md").read_text()
    assert "| 3 | 6 | 90.0 |" in text
    assert (tmp_path / "tammes_table.png").stat().st_size > 10_000
    plt.close("all")
