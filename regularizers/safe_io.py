"""Crash-safe files: atomic writes, a run-folder lock, content hashes, and a test-only kill switch.

Every file the toolkit writes goes through :func:`atomic_path` (or the helpers built on it): the
content is written to a temporary file in the target's folder, flushed and fsynced, renamed over
the target (``os.replace``, atomic on POSIX), and the folder is fsynced. A process killed at any
instant leaves the old file or the new one, never a partial one; at worst a hidden temporary
``.NAME.HOST.PID.tmp`` stays behind, which :func:`remove_stale_temps` deletes once its process
is gone (every atomic write calls it once per process and folder, the trainer and the HDF5 store
before they write). A full disk (ENOSPC) is a one-line OSError naming the target file, which
keeps its previous content.

:class:`RunLock` keeps two processes from training into one run folder at once: a lock file
``FOLDER/.lock`` holding the owner's pid, host and process start time, created exclusively. A
lock whose process is gone (same host, pid dead or reused) is stale and taken over, so a crashed
or killed trainer never leaves the folder stuck.

Test-only kill switch: ``LANDSCAPE_KILL_AT=LABEL:N`` makes the process SIGKILL itself the
``N``-th time (1-based, counted per process) it passes the point ``LABEL``:

- ``atomic:open``: a temporary file exists, nothing is written to it yet;
- ``atomic:written``: the temporary file is complete (fsynced) but not renamed into place;
- ``atomic:replaced``: renamed into place, the folder not yet fsynced;
- ``h5:partial``: a new HDF5 file is half made under its temporary name (``landscape.store``);
- ``h5:written``: a new HDF5 file is complete under its temporary name, not yet renamed;
- ``surface:values``: a chunk's values are in the surface file, its ``done`` marks not yet;
- ``surface:done``: a chunk's values and ``done`` marks are written and flushed.

``tests/test_kill.py`` uses it to kill ``landscape train`` and ``landscape surface`` inside
their writes and checks that rerunning the same command gives the uninterrupted results.
"""
from __future__ import annotations

import collections
import contextlib
import errno
import hashlib
import io
import json
import os
import signal
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

KILL_VARIABLE = "LANDSCAPE_KILL_AT"
_passages: collections.Counter = collections.Counter()


def kill_point(label: str) -> None:
    """SIGKILL this process at the N-th passage of ``label`` when ``LANDSCAPE_KILL_AT`` is
    ``LABEL:N`` (test-only; a no-op otherwise).

    Args:
        label: the name of this point, e.g. ``"atomic:written"`` (see the module docstring).
    """
    spec = os.environ.get(KILL_VARIABLE)
    if not spec:
        return
    wanted, _, count = spec.rpartition(":")
    if wanted != label:
        return
    _passages[label] += 1
    if str(_passages[label]) == count.strip():
        os.kill(os.getpid(), signal.SIGKILL)


# ----------------------------------------------------------------------------- temporary files
def _host() -> str:
    return socket.gethostname().replace(".", "_") or "localhost"


def temp_path(path) -> Path:
    """The temporary name used while ``path`` is written: ``.NAME.HOST.PID.tmp`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.{_host()}.{os.getpid()}.tmp")


def _temp_owner(entry: str):
    """``(target name, host, pid)`` of a temporary name made by :func:`temp_path`, else None."""
    if not (entry.startswith(".") and entry.endswith(".tmp")):
        return None
    name_host, _, pid = entry[1:-4].rpartition(".")
    name, _, host = name_host.rpartition(".")
    return (name, host, int(pid)) if name and host and pid.isdigit() else None


def remove_stale_temps(folder, name: str | None = None) -> int:
    """Delete the temporary files that killed writers on this host left in ``folder``.

    Args:
        folder: the folder to clean (nothing happens when it does not exist).
        name: only the temporaries of this target file name; default: all.

    Returns:
        The number of files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for entry in os.listdir(folder):
        owner = _temp_owner(entry)
        if owner is None or (name is not None and owner[0] != name):
            continue
        if owner[1] == _host() and not _alive(owner[2]):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(folder / entry)
                removed += 1
    return removed


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _not_writable(path: Path, err: OSError) -> OSError:
    """A one-line error of the same type and errno naming the target (not the temporary name)."""
    reason = (err.strerror or str(err)).lower()
    new = type(err)(f"cannot write {path}: {reason}")
    new.errno = err.errno
    return new


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Write a file by name atomically: yields a temporary path in the same folder; when the
    block ends normally the file there is fsynced and renamed to ``path`` (the folder is
    fsynced too); when it raises, the temporary file is removed and ``path`` is untouched.

    For writers that open files themselves (h5py, matplotlib). A folder that cannot be written
    raises a one-line PermissionError/OSError naming ``path``.

    Args:
        path: the file to (re)place.

    Yields:
        The temporary :class:`pathlib.Path` to write.
    """
    path = Path(path)
    tmp = temp_path(path)
    _clean_once(path.parent)
    try:
        with open(tmp, "wb"):
            pass
    except OSError as err:
        if isinstance(err, FileNotFoundError):
            raise FileNotFoundError(f"cannot write {path}: no such folder {path.parent}") from None
        raise _not_writable(path, err) from None
    try:
        kill_point("atomic:open")
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        kill_point("atomic:written")
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise _not_writable(path, err) from None  # one line naming the file, not the temporary
        raise
    kill_point("atomic:replaced")
    _fsync_folder(path.parent)


_cleaned: set = set()


def _clean_once(folder: Path) -> None:
    """:func:`remove_stale_temps` of ``folder`` the first time this process writes there, so
    the next command writing into a folder removes what killed writers left (never twice)."""
    key = os.path.abspath(folder)
    if key not in _cleaned:
        _cleaned.add(key)
        with contextlib.suppress(OSError):
            remove_stale_temps(folder)


@contextlib.contextmanager
def atomic_open(path) -> Iterator:
    """``open(path, "wb")`` made atomic (see :func:`atomic_path`): yields a binary file object.

    Args:
        path: the file to (re)place.

    Yields:
        A binary file object open for writing.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        yield f
        f.flush()


def atomic_write_bytes(path, data: bytes) -> Path:
    """Replace ``path`` by ``data`` atomically.

    Args:
        path: the file to (re)place.
        data: its new content.

    Returns:
        ``path`` as a :class:`pathlib.Path`.
    """
    with atomic_open(path) as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> Path:
    """Replace ``path`` by ``text`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path, obj, indent: int | None = 2) -> Path:
    """Replace ``path`` by ``obj`` as JSON atomically (see :func:`atomic_write_bytes`).

    Args:
        path: the file to (re)place.
        obj: any JSON-serializable object.
        indent: as in :func:`json.dumps`.

    Returns:
        ``path`` as a :class:`pathlib.Path`.
    """
    return atomic_write_text(path, json.dumps(obj, indent=indent))


def atomic_torch_save(obj, path) -> Path:
    """``torch.save(obj, path)`` made atomic (see :func:`atomic_path`).

    Args:
        obj: what to save (a state dict, a trainer checkpoint dict).
        path: the file to (re)place.

    Returns:
        ``path`` as a :class:`pathlib.Path`.
    """
    buffer = io.BytesIO()  # serialized first: a failed write is then an OSError (e.g. ENOSPC), not torch's
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getbuffer())


# ----------------------------------------------------------------------------- hashes
def file_sha256(path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tensors_sha256(tensors: Iterable[torch.Tensor]) -> str:
    """Hex SHA-256 of tensors' shapes, dtypes and values (independent of device)."""
    digest = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        digest.update(f"{tuple(t.shape)}{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def check_finite(tensors, source, what: str = "a diverged or damaged checkpoint") -> None:
    """Refuse tensors holding NaN or infinite values (diverged or damaged weights).

    Args:
        tensors: a mapping of names to tensors (non-float and sparse entries are not checked).
        source: what to name in the message, e.g. the checkpoint's path.
        what: what is refused, for the message.

    Raises:
        ValueError: one line naming ``source``, the first bad tensor and its count of bad values.
    """
    for name, t in tensors.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and t.layout == torch.strided:
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise ValueError(f"{source}: {name} holds {bad} non-finite values (NaN or inf) of {t.numel()}; "
                                 f"refusing {what}")


# ----------------------------------------------------------------------------- processes
def _start_time(pid: int) -> str | None:
    """The kernel's start time of process ``pid`` (Linux ``/proc``), None where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None = None) -> bool:
    """Whether process ``pid`` of this host runs (and, with ``started``, is the same process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    return started is None or _start_time(pid) in (None, started)


# ----------------------------------------------------------------------------- run-folder lock
class RunLock:
    """An exclusive lock on a folder, held while a process writes it (``with RunLock(out):``).

    The lock is the file ``folder/.lock`` holding ``{"pid", "host", "started"}``; it is made
    complete under a temporary name and hard-linked into place, which fails when the file
    exists, so a lock file is never seen half written. A lock held by a live process is a
    one-line ValueError; one whose process is gone (same host) is taken over. Two processes
    finding the same stale lock at the same instant are settled by reading the lock back.

    Args:
        folder: the folder to lock (it must exist).
        what: the verb of the refusal message: ``"FOLDER is being trained by pid N"``.
    """

    NAME = ".lock"

    def __init__(self, folder, what: str = "trained"):
        self.folder = Path(folder)
        self.path = self.folder / self.NAME
        self.what = what
        self.mine = {"pid": os.getpid(), "host": _host(), "started": _start_time(os.getpid())}
        self.held = False

    def _holder(self) -> dict | None:
        try:
            holder = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}
        return holder if isinstance(holder, dict) else {}

    def _live(self, holder: dict) -> bool:
        pid = holder.get("pid")
        if not isinstance(pid, int):
            return False  # unreadable content: not written by a lock holder
        if holder.get("host") != _host():
            return True  # another machine's process: cannot tell, assume it runs
        return _alive(pid, holder.get("started"))

    def acquire(self) -> RunLock:
        """Take the lock.

        Returns:
            self.

        Raises:
            ValueError: another live process holds it.
            PermissionError: the folder cannot be written.
        """
        tmp = temp_path(self.path)
        try:
            tmp.write_text(json.dumps(self.mine))
        except OSError as err:
            raise _not_writable(self.folder, err) from None
        try:
            for _ in range(3):
                try:
                    os.link(tmp, self.path)
                    self.held = True
                    return self
                except FileExistsError:
                    holder = self._holder()
                    if holder is None:
                        continue  # released meanwhile: try again
                    if self._live(holder):
                        self._refuse(holder)
                    os.replace(tmp, self.path)  # a stale lock: take it over, then read it back
                    if self._holder() == self.mine:
                        self.held = True
                        return self
                    self._refuse(self._holder() or {})
            raise ValueError(f"{self.folder}: could not take the lock {self.path}; try again")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _refuse(self, holder: dict) -> None:
        elsewhere = holder.get("host") not in (None, _host())
        where = f" on {holder['host']}" if elsewhere else ""
        gone = f"; if it is no longer running there, delete {self.path}" if elsewhere else f" (lock file {self.path})"
        raise ValueError(f"{self.folder} is being {self.what} by pid {holder.get('pid', '?')}{where}; "
                         f"wait for it to finish or use another folder{gone}")

    def release(self) -> None:
        """Give the lock back (only when this process holds it)."""
        if self.held and self._holder() == self.mine:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
