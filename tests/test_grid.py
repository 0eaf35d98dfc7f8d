import numpy as np
import pytest

from landscape.grid import Grid, check_size, make_grid, parse_axis


def test_parse_axis_is_linspace():
    np.testing.assert_array_equal(parse_axis("-1:1:51"), np.linspace(-1, 1, 51))
    np.testing.assert_array_equal(parse_axis(" -0.5 : 1.5 : 5 "), [-0.5, 0.0, 0.5, 1.0, 1.5])
    np.testing.assert_array_equal(parse_axis("0:0:1"), [0.0])
    np.testing.assert_array_equal(parse_axis([0.0, 0.5, 2.0]), [0.0, 0.5, 2.0])


@pytest.mark.parametrize("spec, words", [
    ("-1:1", "start:stop:num"),
    ("a:1:3", "numbers"),
    ("-1:1:2.5", "integer"),
    ("-1:1:0", "at least 1"),
    ("-1:1:-3", "integer"),
    ("1:-1:5", "greater than start"),
    ("1:1:5", "greater than start"),
    ("0:1:1", "stop == start"),
    ("nan:1:3", "finite"),
])
def test_bad_axis_specs_name_the_problem(spec, words):
    with pytest.raises(ValueError, match=words):
        parse_axis(spec)


def test_bad_coordinate_arrays():
    for bad in ([], [0.0, 0.0], [1.0, 0.0], [0.0, np.inf]):
        with pytest.raises(ValueError, match="increasing"):
            parse_axis(bad)
    with pytest.raises(ValueError, match="z axis needs a y axis"):
        make_grid("0:1:2", z="0:1:2")


def test_2d_flat_order_is_meshgrid_xy_on_a_non_square_grid():
    grid = make_grid("0:2:3", "10:40:4")  # nx = 3, ny = 4
    assert grid.shape == (4, 3) and grid.size == 12 and grid.ndim == 2
    xx, yy = np.meshgrid(grid.coordinates[0], grid.coordinates[1])  # 'xy'
    np.testing.assert_array_equal(grid.coords(np.arange(12)), np.c_[xx.ravel(), yy.ravel()])
    # Z[i, j] at (x[j], y[i]): flat index i * nx + j
    assert tuple(grid.coords([2 * 3 + 1])[0]) == (1.0, 30.0)


def test_3d_flat_order():
    grid = make_grid("0:1:2", "0:2:3", "0:3:4")
    assert grid.shape == (4, 3, 2)
    coords = grid.coords(np.arange(grid.size))
    for k, (x, y, z) in enumerate(coords):
        s, i, j = np.unravel_index(k, grid.shape)
        assert (x, y, z) == (grid.coordinates[0][j], grid.coordinates[1][i], grid.coordinates[2][s])


def test_1d_grid():
    grid = make_grid("-1:1:5")
    assert grid.shape == (5,)
    np.testing.assert_array_equal(grid.coords([0, 4]), [[-1.0], [1.0]])
    assert isinstance(grid, Grid)


def test_grid_size_is_checked_against_memory_before_allocation():
    # 41 bytes per point with four values (8 per value, 1 for the done mark, 8 for the index), 8 per coordinate
    assert check_size([10, 20]) == 200 * 41 + 8 * 30
    with pytest.raises(ValueError, match=r"a grid of 1,000,000,000 points needs about 45\.6 GiB of memory for its "
                                         r"values, more than the 1\.0 GiB available"):
        check_size([10**9], available=2**30)
    with pytest.raises(ValueError, match=r"a grid of 1000000 x 1000000 = 1,000,000,000,000 points needs about 37\.3 TiB"):
        make_grid("-1:1:1000000", "-1:1:1000000")  # refused before numpy allocates anything
    assert check_size([10**6], values_per_point=2, available=33 * 10**6) == 25 * 10**6 + 8 * 10**6  # just fits


def test_error_messages_name_the_axis_not_a_flag():
    with pytest.raises(ValueError, match=r"^y axis '1:-1:5': stop must be greater than start$"):
        make_grid("0:1:2", "1:-1:5")


def test_one_axis_too_large_for_memory_is_refused_before_allocation():
    with pytest.raises(ValueError, match=r"a grid of 1,000,000,000,000 points needs about"):
        parse_axis("-1:1:1000000000000")
