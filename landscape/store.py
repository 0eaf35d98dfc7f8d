"""HDF5 files of directions, surfaces and projected paths, in the layout of
tomgoldstein/loss-landscape (the de facto format) with its bugs fixed.

Direction file: groups ``xdirection`` (``ydirection``, ``zdirection``) holding datasets
``"0"`` .. ``"N-1"``, one per tensor in direction order (``model.parameters()`` for
``weights``, ``state_dict()`` for ``states``); PCA directions add ``explained_variance_ratio_``,
``explained_variance_`` and ``singular_values_``.

Surface file: ``dir_file`` (string), ``xcoordinates`` (``ycoordinates``, ``zcoordinates``) and
one float64 dataset per value -- ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc``
(accuracy in percent) -- shaped ``(nx,)``, ``(ny, nx)`` or ``(nz, ny, nx)`` in meshgrid-'xy'
order (``Z[i, j]`` at ``(x[j], y[i])``). Our files mark finished points in a ``done`` uint8
dataset of the same shape (unfinished values hold NaN, so a diverged NaN loss still counts as
done) and carry a ``version`` attribute plus provenance attributes that a resumed run must match.
De facto files (no ``version``) mark unfinished values with -1 and store 2D values as
``(nx, ny)`` in the same flat order; both are read and resumed (a point is unfinished when a
requested value is negative), by flat index, so their layout is kept.

Projection file: ``proj_xcoord``, ``proj_ycoord`` (the de facto names), ``labels``.
Every malformed input raises a one-line ``ValueError`` naming the file and the problem; a file
open in another process (HDF5 file locking) and a file or folder without permission get their
own one-line messages (ValueError, PermissionError), so a healthy file is never called unreadable.

Crash safety: a new file is built in memory and written under a temporary name, renamed into
place when complete (:func:`write_image`, :func:`regularizers.safe_io.atomic_path`), so a kill or a
full disk during creation leaves no file (or the old one), the HDF5 library never half-flushes a
file to a full disk, and a rerun starts afresh; leftover temporaries of killed processes are
removed. Every attribute of a surface file (``batch_size`` included) is written at creation and
never rewritten; value arrays are contiguous datasets allocated then, so writing rows later only
overwrites bytes in place (no new space is needed): :class:`SurfaceWriter` writes a chunk's
values, flushes, then marks the points ``done`` and flushes again, and a kill at any instant
leaves either the previous state or the new one (values without their ``done`` mark are
computed again).
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import h5py
import numpy as np
import torch

from regularizers.safe_io import atomic_path, kill_point, remove_stale_temps
from regularizers.safe_io import file_sha256 as file_sha256  # re-exported: the hashes live there
from regularizers.safe_io import tensors_sha256 as tensors_sha256

from .directions import AXES, Directions, check_finite, check_fits
from .grid import Grid

VERSION = 1
COORDINATES = tuple(f"{a}coordinates" for a in AXES)
PCA_KEYS = ("explained_variance_ratio", "explained_variance", "singular_values", "eigenvalues")  # meta kept in files
_INFO_KEYS = ("kind", "norm", "ignore", "seed", "sha256")


# ----------------------------------------------------------------------------- helpers
def canonical(value):
    """An attribute value in the form stored and compared: str, int or float."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if value is None:
        return "none"
    if isinstance(value, (list, tuple, np.ndarray)):
        return ",".join(str(canonical(v)) for v in value)
    return str(value)


LEGACY = {("precision", "none"): "fp32"}  # (setting, value in older files) -> today's value


def mismatch(stored: dict, wanted: dict) -> Optional[str]:
    """``"made with key='a', not 'b'"`` for the first setting of ``wanted`` that a file's
    ``stored`` attributes do not hold (values compared in :func:`canonical` form); else None."""
    for key, value in wanted.items():
        if LEGACY.get((key, stored.get(key)), stored.get(key)) != canonical(value):
            return f"made with {key}={stored.get(key, 'unset')!r}, not {canonical(value)!r}"
    return None


def _open(path, mode: str = "r", name=None) -> h5py.File:
    """``h5py.File(path, mode)``; errors are one line naming ``name`` (default ``path``):
    FileNotFoundError, PermissionError, ValueError for a file locked by another process,
    ValueError for a file that is not HDF5."""
    name = path if name is None else name
    try:
        return h5py.File(path, mode)
    except FileNotFoundError:
        missing = "no such file" if mode == "r" else "cannot create the file (no such folder)"
        raise FileNotFoundError(f"{name}: {missing}") from None
    except PermissionError:
        action = "read" if mode == "r" else "write"
        raise PermissionError(f"{name}: permission denied (cannot {action} the file)") from None
    except OSError as err:
        if isinstance(err, BlockingIOError) or "unable to lock file" in str(err):
            raise ValueError(
                f"{name}: locked by another process that has it open (HDF5 file locking); wait for "
                "it to finish (HDF5_USE_FILE_LOCKING=FALSE lifts the lock: only if you know that "
                "no other process writes the file)") from None
        text = str(err)  # "Unable to synchronously open file (file signature not found)"
        system = re.search(r"errno = (\d+), error message = '([^']*)'", text)
        if system and int(system.group(1)) != 0:  # the system refused (read-only file system, ...)
            action = "read the file" if mode == "r" else "open the file for writing"
            raise ValueError(f"{name}: cannot {action} ({system.group(2).lower()})") from None
        reason = text[text.find("(") + 1:text.rfind(")")] if "(" in text else text
        reason = " ".join(reason.split()).lower() or "unreadable"
        raise ValueError(f"{name}: not a readable HDF5 file ({reason})") from None


@contextlib.contextmanager
def _creating(path):
    """A new HDF5 file (open for writing) built in memory and written to ``path`` atomically
    when the block completes (:func:`write_image`); on an error or a kill, ``path`` is
    untouched. The HDF5 library never writes to the disk here, so a full disk is a clean
    one-line error, never a half-flushed cache. Temporaries left by killed processes are
    removed first."""
    path = Path(path)
    remove_stale_temps(path.parent, path.name)
    memory = h5py.File(f"{path.name}.{uuid.uuid4().hex}.image", "w", driver="core", backing_store=False)
    try:
        yield memory
        memory.flush()
        image = memory.id.get_file_image()
    finally:
        memory.close()
    write_image(path, image)


def write_image(path, image: bytes) -> Path:
    """Write ``image`` to ``path`` atomically (a temporary file renamed into place); a full
    disk raises a one-line ValueError naming the file and the size, and leaves ``path`` as it was."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(image)
            kill_point("h5:written")
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ValueError(f"{path}: no space left on device (the file needs {len(image) / 1024:.0f} KiB); "
                             "free some space and rerun: finished files and points are kept") from None
        raise
    return path


def add_attrs(path, attrs: dict) -> None:
    """Add ``attrs`` to the HDF5 file ``path`` atomically: a changed copy replaces it, so a full
    disk or a kill leaves the file as it was (attributes are never rewritten in place)."""
    with atomic_path(path) as temp:
        shutil.copyfile(path, temp)
        with _open(temp, "r+", name=path) as f:
            for key, value in attrs.items():
                f.attrs[key] = value


def _attrs(f: h5py.File) -> dict:
    return {k: canonical(v) for k, v in f.attrs.items()}


def read_attrs(path) -> dict:
    """The root attributes of an HDF5 file, in canonical form."""
    with _open(path) as f:
        return _attrs(f)


def _string(item) -> str:
    value = item[()]
    return value.decode() if isinstance(value, bytes) else str(value)


# ----------------------------------------------------------------------------- directions
def save_directions(path, directions: Directions, attrs: Optional[dict] = None) -> Path:
    """Write ``directions`` (and provenance ``attrs``) to a new direction file."""
    path = Path(path)
    with _creating(path) as f:
        for axis, direction in zip(AXES, directions.axes):
            group = f.create_group(f"{axis}direction")
            for i, t in enumerate(direction):
                group.create_dataset(str(i), data=t.detach().cpu().numpy())
            kill_point("h5:partial")
        for key in PCA_KEYS:
            if key in directions.meta:
                f[key + "_"] = np.asarray(directions.meta[key], dtype=np.float64)
        f.attrs["version"] = VERSION
        for key, value in {**directions.attrs(), **(attrs or {})}.items():
            f.attrs[key] = canonical(value)
    return path


def load_directions(path, *, model=None, dir_type: Optional[str] = None) -> Directions:
    """Read a direction file (ours or de facto). ``dir_type`` is needed for de facto files
    (default ``weights``) and must agree with ours; with ``model`` the tensors' count and
    shapes are checked against it."""
    with _open(path) as f:
        attrs = _attrs(f)
        stored = attrs.get("dir_type")
        if stored is not None and dir_type is not None and stored != dir_type:
            raise ValueError(f"{path}: holds {stored} directions, not {dir_type}")
        axes = []
        for axis in AXES:
            group = f.get(f"{axis}direction")
            if group is None:
                break
            if not isinstance(group, h5py.Group) or sorted(group.keys(), key=_as_int) != [str(i) for i in range(len(group))]:
                raise ValueError(f"{path}: {axis}direction is not a group of datasets '0'..'N-1'")
            axes.append([torch.from_numpy(np.array(group[str(i)][()])) for i in range(len(group))])
        if not axes:
            raise ValueError(f"{path}: no 'xdirection' group; not a direction file")
        meta = {k: f[k + "_"][()].tolist() for k in PCA_KEYS if k + "_" in f}
    info = [{k: attrs[f"{a}{k}"] for k in _INFO_KEYS if f"{a}{k}" in attrs} for a in AXES[:len(axes)]]
    directions = Directions(axes, stored or dir_type or "weights", info, meta)
    check_finite(directions, where=str(path))
    if model is not None:
        check_fits(directions, model, where=str(path))
    return directions


def _as_int(name: str) -> int:
    return int(name) if name.isdigit() else -1


# ----------------------------------------------------------------------------- surfaces
@dataclass
class SurfaceResult:
    """A surface: coordinates ``(x,)``, ``(x, y)`` or ``(x, y, z)`` and value arrays of shape
    ``(nx,)``, ``(ny, nx)`` or ``(nz, ny, nx)`` (``values[k][i, j]`` at ``(x[j], y[i])``; NaN
    where not computed), ``done`` marking computed points, and the file's attributes (with
    ``batch_size``, the batch size the file was begun with, a number)."""

    coordinates: Tuple[np.ndarray, ...]
    values: Dict[str, np.ndarray]
    done: np.ndarray
    attrs: dict = field(default_factory=dict)
    path: Optional[str] = None
    dir_file: str = ""
    computed: int = 0  # points evaluated by the call that returned it

    @property
    def grid(self) -> Grid:
        """The surface's :class:`Grid`."""
        return Grid(tuple(self.coordinates))

    @property
    def shape(self) -> Tuple[int, ...]:
        """Value-array shape: ``(nx,)``, ``(ny, nx)`` or ``(nz, ny, nx)``."""
        return self.grid.shape

    @property
    def x(self) -> np.ndarray:
        """The x coordinates."""
        return self.coordinates[0]

    @property
    def y(self) -> Optional[np.ndarray]:
        """The y coordinates (None for a 1D surface)."""
        return self.coordinates[1] if len(self.coordinates) > 1 else None

    @property
    def z(self) -> Optional[np.ndarray]:
        """The z coordinates (None below 3D)."""
        return self.coordinates[2] if len(self.coordinates) > 2 else None

    def __getitem__(self, key: str) -> np.ndarray:
        return self.values[key]

    @staticmethod
    def empty(grid: Grid, keys: Sequence[str], **kwargs) -> "SurfaceResult":
        """A surface of ``grid`` with no point computed (NaN values)."""
        values = {k: np.full(grid.shape, np.nan) for k in keys}
        return SurfaceResult(grid.coordinates, values, np.zeros(grid.shape, dtype=bool), **kwargs)

    def missing_count(self) -> int:
        """The number of points not computed yet."""
        return int(self.done.size - np.count_nonzero(self.done))

    def nan_count(self) -> int:
        """The number of computed points at which some value is NaN (the loss diverged there)."""
        nan = np.zeros(self.shape, dtype=bool)
        for values in self.values.values():
            nan |= np.isnan(values)
        return int(np.count_nonzero(nan & self.done))

    def put(self, indices, rows: np.ndarray, keys: Sequence[str]) -> None:
        """Store rows (k, len(keys)) at flat point indices (k,)."""
        for j, key in enumerate(keys):
            self.values[key].reshape(-1)[indices] = rows[:, j]
        self.done.reshape(-1)[indices] = True


def _coordinates(f: h5py.File, path) -> Tuple[np.ndarray, ...]:
    if "xcoordinates" not in f:
        raise ValueError(f"{path}: no 'xcoordinates' dataset; not a surface file")
    coords = []
    for key in COORDINATES:
        if key not in f:
            break
        coords.append(np.asarray(f[key][()], dtype=np.float64).reshape(-1))
    return tuple(coords)


def _stored_value_keys(f: h5py.File, size: int) -> List[str]:
    return [k for k, item in f.items() if isinstance(item, h5py.Dataset) and item.size == size
            and (k.endswith("_loss") or k.endswith("_acc"))]


def prepare_surface(path, *, grid: Grid, keys: Sequence[str], attrs: dict, dir_file: str = "",
                    batch_size: Optional[int] = None, batch_size_choice: str = "") -> np.ndarray:
    """Create the surface file, or check an existing one against the settings; return the flat
    indices of the points still to compute (:func:`check_surface`, then :func:`create_surface`)."""
    found = check_surface(path, grid=grid, keys=keys, attrs=attrs)
    if found is not None:
        return found[0]
    create_surface(path, grid=grid, keys=keys, attrs=attrs, dir_file=dir_file, batch_size=batch_size,
                   batch_size_choice=batch_size_choice)
    return np.arange(grid.size)


def create_surface(path, *, grid: Grid, keys: Sequence[str], attrs: dict, dir_file: str = "",
                   batch_size: Optional[int] = None, batch_size_choice: str = "") -> Path:
    """A new surface file: coordinates, NaN values, zero ``done`` marks, ``version``, the
    settings ``attrs``, ``batch_size`` (a number: the batch size the file is begun with) and
    ``batch_size_choice`` (how it was chosen, e.g. ``"auto: 128 of 64,128,256"``). All of it is
    written at creation (atomically); later writes only overwrite value bytes in place."""
    path = Path(path)
    with _creating(path) as f:
        f["dir_file"] = str(dir_file)
        for key, axis in zip(COORDINATES, grid.coordinates):
            f[key] = axis
        kill_point("h5:partial")
        for key in keys:
            f.create_dataset(key, data=np.full(grid.shape, np.nan))
        f.create_dataset("done", data=np.zeros(grid.shape, dtype=np.uint8))
        f.attrs["version"] = VERSION
        for key, value in attrs.items():
            f.attrs[key] = canonical(value)
        if batch_size is not None:
            f.attrs["batch_size"] = int(batch_size)
        if batch_size_choice:
            f.attrs["batch_size_choice"] = str(batch_size_choice)
    return path


def check_surface(path, *, grid: Grid, keys: Sequence[str], attrs: dict,
                  writable: bool = True) -> Optional[Tuple[np.ndarray, Optional[int]]]:
    """``(flat indices still to compute, batch size the file was begun with or None)`` of an
    existing surface file made for ``grid`` with the settings ``attrs``; None when there is no
    file. With ``writable`` the file is opened for writing, so one that cannot be written (or
    is open in another process) is refused before any work, but nothing in it is rewritten (a
    de facto file missing a requested value gets it added, marked unfinished)."""
    path = Path(path)
    if not path.exists():
        return None
    with _open(path, "r+" if writable else "r") as f:
        coords = _coordinates(f, path)
        if len(coords) != grid.ndim or any(c.shape != a.shape or not np.allclose(c, a, rtol=1e-12, atol=1e-12)
                                           for c, a in zip(coords, grid.coordinates)):
            raise ValueError(f"{path}: made for another grid ({_two_grids(coords, grid.coordinates)}); "
                             "use another surface file")
        stored = _attrs(f)
        if "version" in stored:
            return _check_ours(f, path, grid, keys, stored, attrs), stored_batch_size(stored)
        if all(k in f for k in keys):
            return _de_facto_pending(f, grid, keys), None
    try:
        with _open(path, "r+") as f:  # a de facto file without some requested value: add it
            _add_de_facto_keys(f, grid, keys)
            return _de_facto_pending(f, grid, keys), None
    except (OSError, RuntimeError) as err:
        raise ValueError(f"{path}: cannot add the missing values to this de facto file ({_reason(err)})") from None


def _check_ours(f: h5py.File, path, grid: Grid, keys: Sequence[str], stored: dict, attrs: dict) -> np.ndarray:
    version = stored["version"]
    if not isinstance(version, int):
        raise ValueError(f"{path}: 'version' attribute is {version!r}, not a number: not a surface file "
                         "of this toolkit (or a corrupt one); use another surface file")
    if version > VERSION:
        raise ValueError(f"{path}: file version {version} is newer than this reader ({VERSION})")
    differs = mismatch(stored, attrs)
    if differs:
        raise ValueError(f"{path}: {differs}; use another surface file")
    missing = [k for k in (*keys, "done") if k not in f or f[k].shape != grid.shape]
    if missing:
        raise ValueError(f"{path}: dataset {missing[0]!r} is missing or misshapen")
    return np.flatnonzero(f["done"][()].reshape(-1) == 0)


def stored_batch_size(attrs: dict) -> Optional[int]:
    """The ``batch_size`` attribute as a number: files store an int; older files a note such as
    ``"auto: 256 of 64,128,256"`` or ``"256 (given)"``, which are read too. None when absent."""
    value = attrs.get("batch_size")
    if isinstance(value, int):
        return value
    found = re.match(r"(?:auto: )?(\d+)", value) if isinstance(value, str) else None
    return int(found.group(1)) if found else None


def _describe(axes, digits: int = 6) -> str:
    return " x ".join(f"[{a[0]:.{digits}g},{a[-1]:.{digits}g},{len(a)}]" for a in axes)


def _two_grids(stored, wanted) -> str:
    """``"[a,b,n] ..., not [c,d,m] ..."`` with as many digits as it takes to tell them apart."""
    for digits in (6, 9, 12, 17):
        old, new = _describe(stored, digits), _describe(wanted, digits)
        if old != new:
            return f"{old}, not {new}"
    return f"{old}, not {new}: the same ends and sizes, other coordinates inside"


def _add_de_facto_keys(f: h5py.File, grid: Grid, keys: Sequence[str]) -> None:
    present = _stored_value_keys(f, grid.size)
    shape = f[present[0]].shape if present else grid.shape
    for key in keys:
        if key not in f:
            f.create_dataset(key, data=-np.ones(shape))


def _de_facto_pending(f: h5py.File, grid: Grid, keys: Sequence[str]) -> np.ndarray:
    unfinished = np.zeros(grid.size, dtype=bool)
    for key in keys:
        unfinished |= ~_de_facto_done(f[key][()].reshape(-1))
    return np.flatnonzero(unfinished)


def _de_facto_done(values: np.ndarray) -> np.ndarray:
    """Finished entries of a de facto file: not the -1 (any negative) mark, and not NaN (such
    files have no ``done`` mask, so a NaN cannot be told from a value never written)."""
    return ~((values < 0) | np.isnan(values))


def _write_points(dataset: h5py.Dataset, flat: np.ndarray, values: np.ndarray) -> None:
    """``dataset[unravel(flat[i])] = values[i]`` for all i in one HDF5 write (a point selection)."""
    coords = np.stack(np.unravel_index(flat, dataset.shape), axis=1).astype(np.uint64)
    file_space = dataset.id.get_space()
    file_space.select_elements(coords)
    memory_space = h5py.h5s.create_simple((len(flat),))
    dataset.id.write(memory_space, file_space, np.ascontiguousarray(values, dtype=dataset.dtype))


class SurfaceWriter:
    """``writer(indices, rows)`` stores rows (k, len(keys)) at flat point indices (k,) of an
    existing surface file (:func:`create_surface`): each key's values in one write, a flush,
    then the ``done`` marks and a second flush (see the module docstring). Opening rewrites
    nothing, and the writes only overwrite bytes allocated when the file was made, so a full
    disk cannot corrupt the file; a failed write is a one-line ValueError and the points
    finished before it are kept."""

    def __init__(self, path, keys: Sequence[str]):
        self.keys = list(keys)
        self.path = path
        self._file = _open(path, "r+")
        self._done = self._file["done"] if "done" in self._file else None

    def __call__(self, indices, rows: np.ndarray) -> None:
        """Store ``rows`` (k, len(keys)) at the flat point ``indices`` (k,)."""
        flat = np.asarray(indices, dtype=np.int64).reshape(-1)
        rows = np.asarray(rows, dtype=np.float64).reshape(len(flat), len(self.keys))
        if len(flat) == 0:
            return
        try:
            for j, key in enumerate(self.keys):
                _write_points(self._file[key], flat, rows[:, j])
            self._file.flush()
            kill_point("surface:values")
            if self._done is not None:
                _write_points(self._done, flat, np.ones(len(flat), dtype=np.uint8))
                self._file.flush()
        except (OSError, RuntimeError) as err:
            raise ValueError(f"{self.path}: writing computed points failed ({_reason(err)}); the points "
                             "finished before are kept: free space (or fix the disk) and rerun to resume") from None
        kill_point("surface:done")

    def close(self) -> None:
        """Close the file (a close that fails after a failed write is not reported twice)."""
        with contextlib.suppress(OSError, RuntimeError):
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _reason(err: BaseException) -> str:
    """The system's words from an HDF5 error (``error message = '...'``), else the first line."""
    found = re.search(r"error message = '([^']*)'", str(err))
    if found:
        return found.group(1).lower()
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def read_surface(path) -> SurfaceResult:
    """Read a surface file (ours or de facto) into a :class:`SurfaceResult`."""
    with _open(path) as f:
        coords = _coordinates(f, path)
        grid = Grid(coords)
        keys = _stored_value_keys(f, grid.size)
        values = {k: np.asarray(f[k][()], dtype=np.float64).reshape(grid.shape) for k in keys}
        attrs = _attrs(f)
        if "version" in attrs:
            if "done" not in f or f["done"].size != grid.size:
                raise ValueError(f"{path}: no 'done' dataset of the grid's size; file is corrupt")
            done = f["done"][()].reshape(grid.shape).astype(bool)
            for v in values.values():
                v[~done] = np.nan
        else:  # de facto: -1 marks each unfinished value; NaN cannot count as finished
            done = np.ones(grid.shape, dtype=bool)
            for v in values.values():
                done &= _de_facto_done(v)
                v[v < 0] = np.nan
        dir_file = _string(f["dir_file"]) if "dir_file" in f else ""
    return SurfaceResult(coords, values, done, attrs, os.fspath(path), dir_file)


# ----------------------------------------------------------------------------- projected paths
def save_projection(path, coords: np.ndarray, *, labels: Sequence[str] = (), attrs: Optional[dict] = None) -> Path:
    """Write a projected optimizer path (T, ndim) as ``proj_xcoord``, ``proj_ycoord``, ..."""
    path = Path(path)
    coords = np.asarray(coords, dtype=np.float64)
    with _creating(path) as f:
        for axis, column in zip(AXES, coords.T):
            f[f"proj_{axis}coord"] = column
        f["labels"] = np.array([str(s) for s in labels], dtype=h5py.string_dtype())
        f.attrs["version"] = VERSION
        for key, value in (attrs or {}).items():
            f.attrs[key] = canonical(value)
    return path


def read_projection(path) -> Tuple[np.ndarray, List[str]]:
    """``(coords (T, ndim), labels)`` of a projection file (ours or de facto)."""
    with _open(path) as f:
        if "proj_xcoord" not in f:
            raise ValueError(f"{path}: no 'proj_xcoord' dataset; not a projection file")
        columns = [np.asarray(f[f"proj_{a}coord"][()], dtype=np.float64) for a in AXES if f"proj_{a}coord" in f]
        labels = [s.decode() if isinstance(s, bytes) else str(s) for s in f["labels"][()]] if "labels" in f else []
    return np.stack(columns, axis=1), labels
