"""Plots of loss surfaces: 1D curves, 2D contours/heat maps/3D surfaces, trajectories, 3D-volume
slices, side-by-side comparisons, and VTP export for ParaView.

Array conventions (those of the surface HDF5 files): coordinates ``x`` (nx,), ``y`` (ny,),
``z`` (nz,); values follow meshgrid 'xy', i.e. 1D (nx,), 2D (ny, nx) with ``Z[i, j]`` at
``(x[j], y[i])``, 3D (nz, ny, nx). Points not computed yet hold NaN (ours) or -1 (the
tomgoldstein/loss-landscape convention); every function masks them (and, with ``log=True``,
non-positive values too). Accuracy is in percent.

Every ``plot_*`` function takes arrays and returns a :class:`matplotlib.figure.Figure` built
without pyplot (no global state; save it with ``fig.savefig``). :func:`plot_surface_file` reads
a surface file and writes the images, each atomically (a temporary file renamed into place), and
:func:`gaps_note` says how many points of a surface are missing or NaN.
"""
from __future__ import annotations

import io
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from regularizers.safe_io import atomic_path, atomic_write_bytes

from .precision import plot_caption
from .store import SurfaceResult, read_surface

VALUE_KEYS = ("train_loss", "train_acc", "test_loss", "test_acc")
KINDS_2D = ("contour", "filled", "heatmap", "surface3d")
MISSING = -1.0  # the de facto "not computed yet" marker

GridValues = Tuple[np.ndarray, np.ndarray, np.ndarray]  # (x (nx,), y (ny,), values (ny, nx))


# ----------------------------------------------------------------------------- values, scales
def masked(values, log: bool = False) -> np.ma.MaskedArray:
    """``values`` as a float masked array with NaN, inf, -1 (and <= 0 if ``log``) masked."""
    v = np.ma.masked_invalid(np.asarray(values, dtype=float))
    v = np.ma.masked_where(np.ma.getdata(v) == MISSING, v)
    return np.ma.masked_less_equal(v, 0.0) if log else v


def label_of(key: str) -> str:
    """Readable axis label for a value key: 'train_acc' -> 'train accuracy (%)'."""
    words = key.replace("_acc", "_accuracy").replace("_", " ")
    return words + " (%)" if key.endswith("acc") else words


def _value_range(values: Sequence, vmin, vmax, log: bool) -> Tuple[float, float]:
    """(vmin, vmax): the given bounds, else the range of the valid entries of ``values`` (one
    array or a list of arrays sharing a scale)."""
    arrays = values if isinstance(values, (list, tuple)) else [values]
    valid = np.concatenate([masked(v, log).compressed() for v in arrays])
    if valid.size == 0:
        raise ValueError("no valid values to plot (all NaN, -1" + (", or <= 0 with log)" if log else ")"))
    if vmin is not None and vmax is not None and not float(vmin) < float(vmax):
        raise ValueError(f"vmin must be below vmax, got vmin {vmin:g} and vmax {vmax:g}")
    lo = float(valid.min()) if vmin is None else float(vmin)
    hi = float(valid.max()) if vmax is None else float(vmax)
    if log and lo <= 0:
        raise ValueError(f"vmin must be positive on a log scale, got {lo}")
    if hi <= lo:  # flat surface or inverted bounds: open a usable range
        hi = lo * 10 if log else lo + max(abs(lo), 1.0) * 0.1
    return lo, hi


def contour_levels(values, vmin=None, vmax=None, vlevel=None, log: bool = False,
                   n_levels: int = 15) -> np.ndarray:
    """Contour levels: every ``vlevel`` from ``vmin`` up to ``vmax`` inclusive (``vlevel`` in
    decades when ``log``); without ``vlevel`` about ``n_levels`` round (linear) or geometric (log)
    levels spanning [vmin, vmax]. Missing bounds default to the valid data range.
    ``values`` may be one array or a list of arrays (a shared scale)."""
    lo, hi = _value_range(values, vmin, vmax, log)
    if vlevel is not None:
        a, b = (math.log10(lo), math.log10(hi)) if log else (lo, hi)
        if vlevel <= 0 or (b - a) / vlevel > 1000:
            raise ValueError(f"vlevel {vlevel} gives no or over 1000 levels in [{lo:g}, {hi:g}]")
        steps = a + vlevel * np.arange(math.floor((b - a) / vlevel + 1e-9) + 1)
        return 10.0 ** steps if log else steps
    if log:  # geometric, rounded to the fewest significant digits (2 or more) that keep them apart
        exact = np.geomspace(lo, hi, n_levels)
        for digits in range(2, 17):
            levels = np.unique([float(f"{v:.{digits}g}") for v in exact])
            if levels.size == n_levels:
                return levels
        return exact
    levels = MaxNLocator(nbins=n_levels).tick_values(lo, hi)
    levels = levels[(levels >= lo - 1e-12 * abs(lo)) & (levels <= hi + 1e-12 * abs(hi))]
    return levels if levels.size >= 2 else np.linspace(lo, hi, n_levels)


@dataclass
class _Scale:
    """A shared colour scale: contour levels and the colour norm."""
    levels: np.ndarray
    norm: Normalize
    log: bool

    @classmethod
    def of(cls, values, vmin=None, vmax=None, vlevel=None, log=False) -> "_Scale":
        levels = contour_levels(values, vmin, vmax, vlevel, log)
        lo, hi = _value_range(values, vmin, vmax, log)
        return cls(levels, (LogNorm if log else Normalize)(lo, hi), log)


def _colorbar(fig: Figure, mappable, ax, label: str, **kwargs):
    return fig.colorbar(mappable, ax=ax, label=label, format="%.3g", **kwargs)


def _new_figure(**kwargs) -> Figure:
    fig = Figure(layout="constrained", **kwargs)
    FigureCanvasAgg(fig)
    return fig


def _check_grid(x, y, values) -> GridValues:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    values = np.asarray(values, dtype=float)
    if values.shape != (y.size, x.size):
        raise ValueError(f"values of shape {values.shape} do not match (ny, nx) = ({y.size}, {x.size})")
    return x, y, values


# ----------------------------------------------------------------------------- 1D
def plot_1d(x, curves: Mapping, *, log: bool = False, title: Optional[str] = None,
            xlabel: str = "step along the direction") -> Figure:
    """Loss (left axis, log scale if ``log``) and accuracy in % (right twin axis) along a line.

    x: (n,) coordinates. curves: ``{key: (n,) values}`` with keys among train_loss, test_loss,
    train_acc, test_acc, or ``{run label: {key: values}}`` to overlay runs (baseline vs
    regularized). Train is drawn solid, test dashed; one colour per run.
    """
    x = np.asarray(x, dtype=float)
    runs = {"": curves} if all(np.ndim(v) == 1 for v in curves.values()) else dict(curves)
    for run, series in runs.items():
        for key, values in series.items():
            if key.endswith("loss") and masked(values, log).count() == 0:
                raise ValueError(f"{run + ' ' if run else ''}{key} has no finite value to plot (all NaN, inf, -1"
                                 + (" or <= 0 on a log scale)" if log else ")"))
    # accuracies are NaN where they mean nothing (MSE on real targets, a custom loss): not drawn
    runs = {run: {k: v for k, v in series.items() if not k.endswith("acc") or masked(v, False).count()}
            for run, series in runs.items()}
    fig = _new_figure(figsize=(6.4, 4.2))
    ax_loss = fig.add_subplot()
    ax_acc = None
    for r, (run, series) in enumerate(runs.items()):
        for key, values in series.items():
            values = masked(values, log and key.endswith("loss"))
            if values.shape != x.shape:
                raise ValueError(f"{run or 'curve'} {key}: shape {values.shape}, expected {x.shape}")
            is_acc = key.endswith("acc")
            if is_acc and ax_acc is None:
                ax_acc = ax_loss.twinx()
            color = f"C{r}" if len(runs) > 1 else ("C3" if is_acc else "C0")
            (ax_acc if is_acc else ax_loss).plot(
                x, values.filled(np.nan), color=color, lw=1.2 if is_acc else 2.0,
                ls="--" if key.startswith("test") else "-",
                label=f"{run} {label_of(key)}".strip())
    ax_loss.set_xlabel(xlabel)
    ax_loss.set_ylabel("loss")
    if log:
        ax_loss.set_yscale("log")
    handles, names = ax_loss.get_legend_handles_labels()
    if ax_acc is not None:
        ax_acc.set_ylabel("accuracy (%)")
        more = ax_acc.get_legend_handles_labels()
        handles, names = handles + more[0], names + more[1]
    if len(handles) > 4:  # many curves: legend below the axes, off the data
        fig.legend(handles, names, fontsize="small", loc="outside lower center", ncols=2)
    elif handles:
        ax_loss.legend(handles, names, fontsize="small", loc="best")
    if title:
        ax_loss.set_title(title)
    return fig


# ----------------------------------------------------------------------------- 2D drawing
def _draw_contour(ax, x, y, values, scale: _Scale, filled: bool):
    """Contour lines with labels (or filled contours) of a (ny, nx) grid on ``ax``."""
    Z = masked(values, scale.log)
    if filled:
        return ax.contourf(x, y, Z, levels=scale.levels, norm=scale.norm, cmap="viridis", extend="both")
    cs = ax.contour(x, y, Z, levels=scale.levels, norm=scale.norm, cmap="viridis", linewidths=1.0)
    step = max(1, len(scale.levels) // 10)
    ax.clabel(cs, cs.levels[::step], inline=True, fontsize=7, fmt="%.3g")
    return cs


def _draw_heatmap(ax, x, y, values, scale: _Scale):
    """Heat map of a (ny, nx) grid: one cell centred on each grid point, y increasing upwards."""
    return ax.pcolormesh(x, y, masked(values, scale.log), norm=scale.norm, cmap="viridis",
                         shading="nearest")


def _finish_2d(ax, title, xlabel="x", ylabel="y"):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)


def plot_contour(x, y, values, *, filled: bool = False, vmin=None, vmax=None, vlevel=None,
                 log: bool = False, label: str = "loss", title: Optional[str] = None) -> Figure:
    """Contour plot of a 2D surface, levels labelled (or filled with a colour bar).

    x: (nx,), y: (ny,), values: (ny, nx). Levels from :func:`contour_levels`.
    """
    x, y, values = _check_grid(x, y, values)
    scale = _Scale.of(values, vmin, vmax, vlevel, log)
    fig = _new_figure()
    ax = fig.add_subplot()
    mappable = _draw_contour(ax, x, y, values, scale, filled)
    _colorbar(fig, mappable, ax, label)
    _finish_2d(ax, title)
    return fig


def plot_heatmap(x, y, values, *, vmin=None, vmax=None, log: bool = False, label: str = "loss",
                 title: Optional[str] = None) -> Figure:
    """Heat map of a 2D surface (pcolormesh, correct for non-square and non-uniform grids).

    x: (nx,), y: (ny,), values: (ny, nx); colours span [vmin, vmax] (default: data range).
    """
    x, y, values = _check_grid(x, y, values)
    scale = _Scale.of(values, vmin, vmax, None, log)
    fig = _new_figure()
    ax = fig.add_subplot()
    _colorbar(fig, _draw_heatmap(ax, x, y, values, scale), ax, label)
    _finish_2d(ax, title)
    return fig


def _thin(n: int, max_n: int) -> np.ndarray:
    """At most about ``max_n`` evenly spaced indices of range(n), first and last included."""
    if n <= max_n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_n).round().astype(int))


def grid_quads(valid: np.ndarray) -> np.ndarray:
    """(M, 4) flat indices into a (ny, nx) grid of the cells whose 4 corners are all ``valid``,
    corners in counter-clockwise order (x then y increasing)."""
    ny, nx = valid.shape
    idx = np.arange(ny * nx).reshape(ny, nx)
    quads = np.stack([idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]], -1).reshape(-1, 4)
    return quads[valid.ravel()[quads].all(axis=1)]


def plot_surface3d(x, y, values, *, vmin=None, vmax=None, log: bool = False, label: str = "loss",
                   title: Optional[str] = None, max_side: int = 100,
                   elev: float = 30.0, azim: float = -60.0) -> Figure:
    """3D surface of a 2D grid: one shaded quad per grid cell whose corners are all valid.

    x: (nx,), y: (ny,), values: (ny, nx). The height is the value (log10 of it if ``log``),
    clipped to [vmin, vmax] when given; grids longer than ``max_side`` are thinned evenly.
    """
    x, y, values = _check_grid(x, y, values)
    rows, cols = _thin(y.size, max_side), _thin(x.size, max_side)
    x, y, Z = x[cols], y[rows], masked(values[np.ix_(rows, cols)], log)
    if log:
        Z = np.ma.log10(Z)
        vmin = None if vmin is None else math.log10(vmin)
        vmax = None if vmax is None else math.log10(vmax)
    if Z.count() == 0:
        raise ValueError("no valid values to plot")
    lo = float(Z.min()) if vmin is None else vmin
    hi = float(Z.max()) if vmax is None else vmax
    hi = hi if hi > lo else lo + 1.0
    Z = np.ma.clip(Z, lo, hi)
    quads = grid_quads(~np.ma.getmaskarray(Z))
    X, Y = np.meshgrid(x, y)
    points = np.stack([X.ravel(), Y.ravel(), Z.filled(np.nan).ravel()], axis=-1)
    faces = points[quads]  # (M, 4, 3)
    norm, cmap = Normalize(lo, hi), colormaps["coolwarm"]
    fig = _new_figure()
    ax = fig.add_subplot(projection="3d")
    colors = cmap(norm(faces[:, :, 2].mean(axis=1)))
    ax.add_collection3d(Poly3DCollection(faces, facecolors=colors, edgecolors=colors,
                                         linewidths=0.3, shade=True))
    ax.set(xlim=(x[0], x[-1]), ylim=(y[0], y[-1]), zlim=(lo, hi), xlabel="x", ylabel="y",
           zlabel=f"log10 {label}" if log else label)
    ax.view_init(elev=elev, azim=azim)
    _colorbar(fig, ScalarMappable(norm, cmap), ax, f"log10 {label}" if log else label, shrink=0.6)
    if title:
        ax.set_title(title)
    return fig


# ----------------------------------------------------------------------------- composites
def plot_trajectory(path, explained_variance, surface: Optional[GridValues] = None, *, vmin=None,
                    vmax=None, vlevel=None, log: bool = False, label: str = "loss",
                    title: Optional[str] = None) -> Figure:
    """An optimization path projected on two PCA directions, over the surface's contours.

    path: (T, 2) coordinates along the 1st and 2nd PC; explained_variance: (2,) ratios in [0, 1]
    (shown as "1st PC: 63.2 %"); surface: optional (x (nx,), y (ny,), values (ny, nx)).
    """
    path = np.asarray(path, dtype=float)
    ratios = np.asarray(explained_variance, dtype=float).ravel()
    if path.ndim != 2 or path.shape[1] != 2:
        raise ValueError(f"path must have shape (T, 2), got {path.shape}")
    if ratios.size < 2 or np.any((ratios < 0) | (ratios > 1)):
        raise ValueError(f"explained_variance must be two ratios in [0, 1], got {ratios}")
    fig = _new_figure()
    ax = fig.add_subplot()
    if surface is not None:
        x, y, values = _check_grid(*surface)
        cs = _draw_contour(ax, x, y, values, _Scale.of(values, vmin, vmax, vlevel, log), False)
        _colorbar(fig, cs, ax, label)
    ax.plot(path[:, 0], path[:, 1], "k.-", lw=1.0, ms=3, label="trajectory")
    ax.plot(*path[0], "o", color="tab:green", label="start")
    ax.plot(*path[-1], "*", color="tab:red", ms=12, label="end")
    ax.legend(fontsize="small")
    _finish_2d(ax, title, f"1st PC: {100 * ratios[0]:.1f} %", f"2nd PC: {100 * ratios[1]:.1f} %")
    return fig


def _grid_axes(fig: Figure, n: int, **kwargs) -> list:
    """``n`` axes on a near-square grid (unused cells removed)."""
    ncols = math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    axes = list(np.ravel(fig.subplots(nrows, ncols, squeeze=False, **kwargs)))
    for ax in axes[n:]:
        ax.remove()
    return axes[:n]


def plot_slices(x, y, z, values, *, n_slices: int = 9, vmin=None, vmax=None, log: bool = False,
                label: str = "loss", title: Optional[str] = None) -> Figure:
    """Heat maps of a 3D volume at up to ``n_slices`` evenly spaced z values, one colour scale.

    x: (nx,), y: (ny,), z: (nz,), values: (nz, ny, nx).
    """
    z = np.asarray(z, dtype=float)
    values = np.asarray(values, dtype=float)
    if values.ndim != 3 or values.shape[0] != z.size:
        raise ValueError(f"values of shape {values.shape} do not match (nz, ny, nx) with nz = {z.size}")
    picks = _thin(z.size, n_slices)
    scale = _Scale.of(values, vmin, vmax, None, log)
    fig = _new_figure(figsize=(3.2 * math.ceil(math.sqrt(len(picks))) + 1.0,
                               3.0 * math.ceil(len(picks) / math.ceil(math.sqrt(len(picks))))))
    axes = _grid_axes(fig, len(picks), sharex=True, sharey=True)
    for ax, k in zip(axes, picks):
        mesh = _draw_heatmap(ax, *_check_grid(x, y, values[k]), scale)
        ax.set_title(f"z = {z[k]:.3g}", fontsize="small")
    _colorbar(fig, mesh, axes, label)
    fig.supxlabel("x")
    fig.supylabel("y")
    if title:
        fig.suptitle(title)
    return fig


def plot_comparison(surfaces: Mapping[str, GridValues], *, kind: str = "filled", vmin=None, vmax=None,
                    vlevel=None, log: bool = False, label: str = "loss") -> Figure:
    """Surfaces side by side on one colour scale and the same contour levels.

    surfaces: ``{title: (x (nx,), y (ny,), values (ny, nx))}``, e.g. baseline and regularized;
    kind: 'contour', 'filled' or 'heatmap'.
    """
    if kind not in ("contour", "filled", "heatmap"):
        raise ValueError(f"comparison kind must be contour, filled or heatmap, got {kind!r}")
    if not surfaces:
        raise ValueError("no surfaces to compare")
    grids = {name: _check_grid(*grid) for name, grid in surfaces.items()}
    scale = _Scale.of([g[2] for g in grids.values()], vmin, vmax, vlevel, log)
    fig = _new_figure(figsize=(3.6 * len(grids) + 1.0, 3.6))
    axes = list(np.ravel(fig.subplots(1, len(grids), squeeze=False, sharex=True, sharey=True)))
    for ax, (name, grid) in zip(axes, grids.items()):
        if kind == "heatmap":
            mappable = _draw_heatmap(ax, *grid, scale)
        else:
            mappable = _draw_contour(ax, *grid, scale, filled=kind == "filled")
        _finish_2d(ax, name)
    _colorbar(fig, mappable, axes, label)
    return fig


# ----------------------------------------------------------------------------- VTP export
def write_vtp(path, x, y, values, *, name: str = "value", log: bool = False,
              zmax: Optional[float] = None) -> Path:
    """Write a 2D surface as VTK XML PolyData (ASCII .vtp, opens in ParaView).

    Points are the valid grid points (x, y, value), cells the quads of :func:`grid_quads`, and
    the value is the point data array ``name``. ``zmax`` clips values above it; ``log`` then
    stores log10 of the value. x: (nx,), y: (ny,), values: (ny, nx). Returns the path.
    """
    x, y, values = _check_grid(x, y, values)
    Z = masked(values, log)
    if zmax is not None:
        Z = np.ma.minimum(Z, zmax)
    if log:
        Z = np.ma.log10(Z)
    valid = ~np.ma.getmaskarray(Z)
    if not valid.any():
        raise ValueError("no valid values to export")
    new_index = np.cumsum(valid.ravel()) - 1  # grid index -> index among the kept points
    quads = new_index[grid_quads(valid)]
    X, Y = np.meshgrid(x, y)
    keep = valid.ravel()
    points = np.stack([X.ravel()[keep], Y.ravel()[keep], Z.compressed()], axis=-1)

    def array(parent, numbers, dtype, **attrs):
        el = ET.SubElement(parent, "DataArray", type=dtype, format="ascii", **attrs)
        el.text = " ".join(map(repr, numbers.ravel().tolist()))

    root = ET.Element("VTKFile", type="PolyData", version="0.1", byte_order="LittleEndian")
    piece = ET.SubElement(ET.SubElement(root, "PolyData"), "Piece", NumberOfPoints=str(len(points)),
                          NumberOfVerts="0", NumberOfLines="0", NumberOfStrips="0",
                          NumberOfPolys=str(len(quads)))
    array(ET.SubElement(piece, "PointData", Scalars=name), points[:, 2], "Float64", Name=name)
    array(ET.SubElement(piece, "Points"), points, "Float64", NumberOfComponents="3")
    polys = ET.SubElement(piece, "Polys")
    array(polys, quads, "Int64", Name="connectivity")
    array(polys, 4 * np.arange(1, len(quads) + 1), "Int64", Name="offsets")
    ET.indent(root)
    buffer = io.BytesIO()
    ET.ElementTree(root).write(buffer, encoding="utf-8", xml_declaration=True)
    return atomic_write_bytes(path, buffer.getvalue())


# ----------------------------------------------------------------------------- files
def save_figure(fig: Figure, path, dpi: int = 150) -> Path:
    """Write ``fig`` to ``path`` atomically (the format from its suffix); returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix[1:] or "png")
    return path


def _save(fig: Figure, out_dir: Path, name: str, formats: Sequence[str]) -> list:
    """Save ``fig`` as ``out_dir/name.<format>`` for each format; return the paths."""
    return [save_figure(fig, out_dir / f"{name}.{fmt}") for fmt in formats]


def gaps_note(surface: SurfaceResult) -> Optional[str]:
    """One line on what a plot of ``surface`` leaves blank: points not computed yet and
    computed points whose values are NaN (a diverged loss); None when there are none."""
    missing, nan = surface.missing_count(), surface.nan_count()
    parts = []
    if missing:
        parts.append(f"{missing} of {surface.done.size} points are not computed yet (rerun the "
                     "same `landscape surface` command to finish them)")
    if nan:
        parts.append(f"{nan} computed points are NaN (the loss diverged there)")
    return f"{surface.path}: " + "; ".join(parts) + "; they are left blank" if parts else None


def _value(surface: SurfaceResult, key: str, path) -> np.ndarray:
    if key not in surface.values:
        raise ValueError(f"{path} has no dataset {key!r}; present: "
                         f"{', '.join(surface.values) or 'none'}")
    return surface.values[key]


def plot_surface_file(path, key: str = "train_loss", kinds: Sequence[str] = KINDS_2D,
                      out_dir=None, formats: Sequence[str] = ("png",), *, vmin=None, vmax=None,
                      vlevel=None, log: bool = False, vtp: bool = False,
                      zmax: Optional[float] = None) -> list:
    """Plot the surface ``key`` of a surface file; return the written paths.

    2D files give one image per kind in ``kinds`` (contour, filled, heatmap, surface3d) and,
    with ``vtp``, a .vtp (clipped at ``zmax``); 1D files give the loss/accuracy figure of all
    train/test values present; 3D files the slices figure. Files are named
    ``<file stem>_<key>_<kind>.<format>`` in ``out_dir`` (default: beside the file).
    """
    path = Path(path)
    surface = read_surface(path)
    values = _value(surface, key, path)
    unknown = set(kinds) - set(KINDS_2D)
    if unknown:
        raise ValueError(f"unknown plot kind(s) {sorted(unknown)}; choose from {', '.join(KINDS_2D)}")
    out_dir = Path(out_dir) if out_dir is not None else path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{path.stem}_{key}"
    label, ndim = label_of(key), len(surface.shape)
    caption = plot_caption(surface.attrs)  # a reduced-precision surface's measured error
    if vtp and ndim != 2:
        raise ValueError(f"VTP export needs a 2D surface; {path} is {ndim}D")
    if ndim == 1:
        curves = {k: surface.values[k] for k in VALUE_KEYS if k in surface.values} or {key: values}
        return _save(plot_1d(surface.x, curves, log=log, title="\n".join(filter(None, [path.stem, caption]))),
                     out_dir, f"{path.stem}_1d",
                     formats)
    if ndim == 3:
        fig = plot_slices(surface.x, surface.y, surface.z, values, vmin=vmin, vmax=vmax, log=log,
                          label=label, title="\n".join(filter(None, [path.stem, caption])))
        return _save(fig, out_dir, f"{stem}_slices", formats)
    grid = (surface.x, surface.y, values)
    scale = dict(vmin=vmin, vmax=vmax, log=log, label=label, **({"title": caption} if caption else {}))
    draw = {
        "contour": lambda: plot_contour(*grid, vlevel=vlevel, **scale),
        "filled": lambda: plot_contour(*grid, filled=True, vlevel=vlevel, **scale),
        "heatmap": lambda: plot_heatmap(*grid, **scale),
        "surface3d": lambda: plot_surface3d(*grid, **scale),
    }
    written = []
    for kind in kinds:
        written += _save(draw[kind](), out_dir, f"{stem}_{kind}", formats)
    if vtp:
        written.append(write_vtp(out_dir / f"{stem}.vtp", *grid, name=key, log=log, zmax=zmax))
    return written


def compare_surface_files(paths: Sequence, key: str = "train_loss",
                          kinds: Sequence[str] = ("filled",), out_dir=None,
                          formats: Sequence[str] = ("png",), *, vmin=None, vmax=None, vlevel=None,
                          log: bool = False) -> list:
    """Compare several surface files (e.g. baseline vs regularized); return the written paths.

    1D files (same x): one overlay of their train/test loss and accuracy, ``compare_1d.<format>``.
    2D files: ``key`` side by side on one scale (:func:`plot_comparison`), one figure per kind
    among contour/filled/heatmap, ``compare_<key>_<kind>.<format>``. Titles are the file stems.
    """
    surfaces = {}
    for i, p in enumerate(map(Path, paths)):
        surface = read_surface(p)
        _value(surface, key, p)
        surfaces[p.stem if p.stem not in surfaces else f"{p.stem} [{i + 1}]"] = surface
    dims = {len(s.shape) for s in surfaces.values()}
    if dims not in ({1}, {2}):
        raise ValueError(f"comparison needs all 1D or all 2D surfaces, got {sorted(dims)}D")
    out_dir = Path(out_dir) if out_dir is not None else Path(paths[0]).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    if dims == {1}:
        x = next(iter(surfaces.values())).x
        if any(s.x.shape != x.shape or not np.allclose(s.x, x) for s in surfaces.values()):
            raise ValueError("1D comparison needs the same xcoordinates in every file")
        runs = {name: {k: s.values[k] for k in VALUE_KEYS if k in s.values} for name, s in surfaces.items()}
        return _save(plot_1d(x, runs, log=log), out_dir, "compare_1d", formats)
    grids = {name: (s.x, s.y, s.values[key]) for name, s in surfaces.items()}
    written = []
    for kind in kinds:
        fig = plot_comparison(grids, kind=kind, vmin=vmin, vmax=vmax, vlevel=vlevel, log=log,
                              label=label_of(key))
        written += _save(fig, out_dir, f"compare_{key}_{kind}", formats)
    return written
