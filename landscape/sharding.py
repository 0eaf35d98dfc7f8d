"""MPI sharding of surface points: ``mpiexec -n N landscape surface ...``.

The unfinished points are cut into the chunks of ``points_per_pass`` points that one process
would evaluate, so every point goes through the same float operations and the files are equal
value for value. Rank 0 alone opens the surface file. It hands out blocks of chunks from a queue
(guided: a share of what is left, shrinking to one chunk at the end; a worker asks for the next
block while it still has :data:`AHEAD` chunks), evaluates chunks itself one at a time, and
between them answers requests and writes the rows the other ranks send in batches (non-blocking
sends, at least every :data:`SEND_SECONDS`). So a slower rank -- rank 0 also writes every row --
takes fewer points, and no step waits for all ranks per point.

Failures never hang the job: steps every rank takes together (:func:`on_root`, :func:`on_all`)
raise the same :class:`SharedError` on all ranks, reported once by rank 0; any other error on a
rank is printed with the rank's number and, under :func:`guard`, ends the whole job with
``MPI_Abort`` (a worker first tells rank 0, which closes the file, and waits
:data:`GRACE_SECONDS`). Rows already written are flushed, so a rerun -- with any number of
ranks -- resumes.

The surface code sees none of this: it calls a *runner* (:func:`runner`): :class:`SerialRunner`
in one process, :class:`MPIRunner` over ranks, with the same methods (``on_root``, ``on_all``,
``share``, ``evaluate``).

mpi4py is imported only when an MPI launch is detected (:func:`launched`) or forced; a single
process never initializes MPI.

Test-only fault switch: ``LANDSCAPE_FAULT_RANK=r`` (and ``LANDSCAPE_FAULT_AFTER=k``, default 0)
makes rank ``r`` of a sharded run raise ``RuntimeError`` after evaluating ``k`` points.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import os
import signal
import sys
import threading
import time
from typing import Callable, Optional

import numpy as np
from tqdm import tqdm

GRACE_SECONDS = 2.0   # a failing worker waits this long for rank 0 to close the file, then aborts
SEND_SECONDS = 0.5    # a worker sends its rows at least this often
POLL_SECONDS = 0.005  # sleep between probes while waiting for a message
AHEAD = 2             # a worker asks for more work while this many chunks are still queued
_ROWS, _DONE, _ERROR, _WANT, _WORK = 11, 12, 13, 14, 15
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")  # set by MPI launchers
_LOCAL_RANK_VARS = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK",
                    "SLURM_LOCALID")
_LOCAL_SIZE_VARS = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE")


class SharedError(ValueError):
    """An error raised on every rank with the same message; rank 0 alone reports it."""


class RankFailed(RuntimeError):
    """Raised on rank 0 when another rank reports an error; ``status`` is the exit status that
    error calls for (:func:`exit_status`)."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def exit_status(err: BaseException) -> int:
    """2 for bad input or failed file access (a full disk), as in one process; 1 otherwise."""
    if isinstance(err, RankFailed):
        return err.status
    return 2 if isinstance(err, (ValueError, TypeError, OSError)) else 1


def describe(err: BaseException) -> str:
    """One line: the message of a ValueError, FileNotFoundError or RankFailed, else
    ``Type: message``."""
    if isinstance(err, (ValueError, FileNotFoundError, RankFailed)):
        return str(err)
    return f"{type(err).__name__}: {err}".rstrip(": ")


# ----------------------------------------------------------------------------- start-up
def launched(env=None) -> int:
    """The number of processes an MPI launcher (mpiexec, srun) started, as its environment
    says; 0 when none did. Nothing is imported or initialized."""
    env = os.environ if env is None else env
    size = _env_int(env, _SIZE_VARS)
    if size is None:  # srun (with or without an MPI plugin)
        size = _env_int(env, ("SLURM_STEP_NUM_TASKS",))
    return size if size and size > 1 else 0


def _env_int(env, names) -> Optional[int]:
    for name in names:
        if env.get(name, "").isdigit():
            return int(env[name])
    return None


def threads_per_rank(local_size: int) -> int:
    """CPU threads for one of ``local_size`` ranks on a node: its share of the node's cores,
    at most the cores it may run on, at least 1."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(usable, (os.cpu_count() or 1) // max(1, local_size)))


def start(force: bool = False):
    """``MPI.COMM_WORLD`` when launched under MPI with several ranks (or ``force``), else None.

    Also sets up each rank: ``max(1, cores // ranks on the node)`` CPU threads (unless
    ``OMP_NUM_THREADS`` is set) and, with CUDA, the GPU ``local rank % GPUs``."""
    expected = launched()
    if not (expected or force):
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        raise ValueError("MPI launch without mpi4py: pip install mpi4py mpich (the `mpi` extra), "
                         "or run a single process") from None
    comm = MPI.COMM_WORLD
    if comm.Get_size() == 1:
        if expected > 1:  # e.g. srun without an MPI plugin: the processes would all write one file
            raise ValueError(f"the launcher started {expected} processes but MPI sees one; "
                             "use mpiexec, or srun --mpi=pmix (or pmi2)")
        return None
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    local_rank = _env_int(os.environ, _LOCAL_RANK_VARS)
    local_size = _env_int(os.environ, _LOCAL_SIZE_VARS) or node.Get_size()
    local_rank = node.Get_rank() if local_rank is None else local_rank
    node.Free()
    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(threads_per_rank(local_size))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    return comm


# ----------------------------------------------------------------------------- collective steps
def on_root(comm, fn: Callable):
    """``fn()`` on rank 0, its result broadcast to every rank. An error there is raised on
    every rank as :class:`SharedError`. Without ``comm``, just ``fn()``."""
    if comm is None:
        return fn()
    outcome = None
    if comm.Get_rank() == 0:
        try:
            outcome = (True, fn())
        except Exception as err:
            comm.bcast((False, describe(err)), root=0)
            raise SharedError(describe(err)) from err
    ok, value = comm.bcast(outcome, root=0)
    if not ok:
        raise SharedError(value)
    return value


def on_all(comm, fn: Callable):
    """``fn()`` on every rank; when it fails on any, every rank raises :class:`SharedError`
    (the message once when all ranks failed alike, else per rank)."""
    if comm is None:
        return fn()
    try:
        value, error = fn(), None
    except Exception as err:
        value, error = None, err
    errors = comm.allgather(None if error is None else describe(error))
    failed = [(rank, message) for rank, message in enumerate(errors) if message is not None]
    if failed:
        if len(failed) == len(errors) and len(set(errors)) == 1:
            raise SharedError(errors[0]) from error
        raise SharedError("; ".join(f"rank {rank}: {message}" for rank, message in failed)) from error
    return value


@contextlib.contextmanager
def guard(comm, prog: str = "landscape"):
    """End the whole job when this rank fails: a :class:`SharedError` exits quietly (status 2)
    on ranks other than 0 and is raised on rank 0; any other error is printed with the rank
    and ends the job with ``MPI_Abort(1)`` -- after telling rank 0 and waiting
    :data:`GRACE_SECONDS` on other ranks; Ctrl-C ends it with ``MPI_Abort(130)``, as a single
    process exits. Without ``comm``, nothing changes."""
    if comm is None:
        yield
        return
    rank = comm.Get_rank()

    def interrupted(signum, frame):  # Ctrl-C reaches every rank; the job ends with 130
        if rank == 0:  # unwind, so the open surface file is closed, then abort (below)
            raise KeyboardInterrupt
        time.sleep(GRACE_SECONDS)  # rank 0 closes the file and aborts first; this abort is the backstop
        comm.Abort(130)            # (a KeyboardInterrupt raised where Python ignores it, e.g. a weakref callback)

    before = signal.signal(signal.SIGINT, interrupted) if threading.current_thread() is threading.main_thread() else None
    try:
        yield
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; rerun the same command to compute only the missing points",
              file=sys.stderr, flush=True)
        comm.Abort(130)
    except SharedError:
        if rank == 0:
            raise
        raise SystemExit(2) from None
    except Exception as err:
        print(f"{prog}: error: rank {rank}: {describe(err)}", file=sys.stderr, flush=True)
        if rank != 0:
            request = comm.isend((describe(err), exit_status(err)), dest=0, tag=_ERROR)
            deadline = time.monotonic() + GRACE_SECONDS
            while time.monotonic() < deadline:  # rank 0 closes the file and aborts the job
                request.Test()
                time.sleep(0.05)
        comm.Abort(exit_status(err))
    finally:
        if before is not None:
            signal.signal(signal.SIGINT, before)


# ----------------------------------------------------------------------------- runners
class SerialRunner:
    """One process: the steps a surface takes, run plainly. :class:`MPIRunner` has the same
    methods over the ranks of a communicator, so the surface code never branches on MPI."""

    root = True
    ranks = 1

    def on_root(self, fn: Callable, *args, **kwargs):
        """``fn(*args, **kwargs)`` (on rank 0 only, its result shared, under MPI)."""
        return fn(*args, **kwargs)

    def on_all(self, fn: Callable, *args, **kwargs):
        """``fn(*args, **kwargs)`` (on every rank, a failure on any raised on all, under MPI)."""
        return fn(*args, **kwargs)

    def share(self, value):
        """``value`` (rank 0's, under MPI)."""
        return value

    def evaluate(self, evaluate: Callable[[np.ndarray], np.ndarray], grid, indices, *, write: Callable,
                 chunk: int = 1, progress: bool = True, desc: str = "surface") -> None:
        """:func:`evaluate_points`."""
        evaluate_points(evaluate, grid, indices, write=write, chunk=chunk, progress=progress, desc=desc)


class MPIRunner(SerialRunner):
    """The ranks of ``comm`` share the points (:func:`evaluate_shared`); rank 0 alone touches
    files (:func:`on_root`) and gets every row."""

    def __init__(self, comm):
        self.comm = comm
        self.root = comm.Get_rank() == 0
        self.ranks = comm.Get_size()

    def on_root(self, fn: Callable, *args, **kwargs):
        """:func:`on_root` of ``fn(*args, **kwargs)``."""
        return on_root(self.comm, functools.partial(fn, *args, **kwargs))

    def on_all(self, fn: Callable, *args, **kwargs):
        """:func:`on_all` of ``fn(*args, **kwargs)``."""
        return on_all(self.comm, functools.partial(fn, *args, **kwargs))

    def share(self, value):
        """Rank 0's ``value`` on every rank."""
        return self.comm.bcast(value, root=0)

    def evaluate(self, evaluate, grid, indices, *, write, chunk=1, progress=True, desc="surface") -> None:
        """:func:`evaluate_shared`."""
        evaluate_shared(self.comm, evaluate, grid, indices, write=write, chunk=chunk, progress=progress, desc=desc)


def runner(comm=None) -> SerialRunner:
    """The runner for ``comm``: :class:`SerialRunner` without one (or with a single rank),
    else :class:`MPIRunner`. A runner passes through unchanged."""
    if isinstance(comm, SerialRunner):
        return comm
    return SerialRunner() if comm is None or comm.Get_size() == 1 else MPIRunner(comm)


# ----------------------------------------------------------------------------- the point loop
def evaluate_points(evaluate: Callable[[np.ndarray], np.ndarray], grid, indices, *, write: Callable,
                    chunk: int = 1, progress: bool = True, desc: str = "surface") -> None:
    """Evaluate ``evaluate(coords (k, ndim)) -> rows (k, ncols)`` at the flat point ``indices``
    of ``grid``, ``chunk`` points at a time, calling ``write(indices, rows)`` after each chunk.
    A progress bar (points/s) goes to stderr unless ``progress`` is False."""
    indices = np.asarray(indices, dtype=np.int64)
    with tqdm(total=len(indices), unit="pt", desc=desc, disable=not progress, leave=False) as bar:
        for start in range(0, len(indices), chunk):
            part = indices[start:start + chunk]
            write(part, evaluate(grid.coords(part)))
            bar.update(len(part))


def _fault(evaluate: Callable, rank: int) -> Callable:
    """``evaluate`` raising RuntimeError after LANDSCAPE_FAULT_AFTER points on rank
    LANDSCAPE_FAULT_RANK (test-only)."""
    if os.environ.get("LANDSCAPE_FAULT_RANK") != str(rank):
        return evaluate
    after, done = int(os.environ.get("LANDSCAPE_FAULT_AFTER", "0")), [0]

    def faulty(coords):
        if done[0] + len(coords) > after:
            raise RuntimeError(f"fault injected by LANDSCAPE_FAULT_RANK={rank} after {done[0]} points")
        done[0] += len(coords)
        return evaluate(coords)
    return faulty


def _probe(comm, source, tag, status, wait: bool) -> bool:
    """Whether a message is there; with ``wait``, poll until one is (interruptible, unlike recv)."""
    while not comm.Iprobe(source=source, tag=tag, status=status):
        if not wait:
            return False
        time.sleep(POLL_SECONDS)
    return True


def evaluate_shared(comm, evaluate: Callable[[np.ndarray], np.ndarray], grid, indices, *,
                    write: Callable, chunk: int = 1, progress: bool = True, desc: str = "surface") -> None:
    """:func:`evaluate_points` over the ranks of ``comm``, in chunks of
    ``chunk`` indices. On rank 0 ``write(indices, rows)`` gets every rank's rows; on other
    ranks, their own (and they are sent to rank 0). Returns on rank 0 once all rows are in;
    raises :class:`RankFailed` there when another rank reports an error."""
    evaluate = _fault(evaluate, comm.Get_rank())
    if comm.Get_rank() != 0:
        _work(comm, evaluate, grid, write)
        return
    indices = np.asarray(indices, dtype=np.int64)
    chunks = [indices[i:i + chunk] for i in range(0, len(indices), chunk)]
    with tqdm(total=len(indices), unit="pt", desc=desc, disable=not progress, leave=False) as bar:
        _lead(comm, evaluate, grid, chunks, write, bar)


def _lead(comm, evaluate, grid, chunks, write, bar) -> None:
    """Rank 0: hand out blocks of chunks on request, evaluate its own chunks one at a time,
    and write every rank's rows, until all ranks are done."""
    from mpi4py import MPI

    size, queue = comm.Get_size(), collections.deque(chunks)
    status, waiting, sends = MPI.Status(), set(range(1, size)), []

    def hand_out(worker: int) -> None:  # guided: a share of what is left, shrinking to 1 chunk
        n = min(len(queue), max(1, -(-len(queue) // (2 * size))))
        sends.append(comm.isend([queue.popleft() for _ in range(n)], dest=worker, tag=_WORK))

    def receive(wait: bool) -> None:
        while waiting and _probe(comm, MPI.ANY_SOURCE, MPI.ANY_TAG, status, wait):
            source, tag = status.Get_source(), status.Get_tag()
            message = comm.recv(source=source, tag=tag)
            if tag == _ERROR:
                raise RankFailed(f"stopping all ranks after rank {source}'s error; finished points are kept",
                                 status=message[1])
            if tag == _WANT:
                hand_out(source)  # an empty block when none is left: the worker finishes
            elif tag == _DONE:
                waiting.discard(source)
            else:
                write(*message)
                bar.update(len(message[0]))

    for worker in range(1, size):
        hand_out(worker)
    while queue:
        part = queue.popleft()
        write(part, evaluate(grid.coords(part)))
        bar.update(len(part))
        receive(wait=False)
    receive(wait=True)
    MPI.Request.waitall(sends)


def _work(comm, evaluate, grid, write) -> None:
    """Another rank: evaluate the blocks rank 0 hands out, asking for the next while
    :data:`AHEAD` chunks are still queued; send the rows in batches, then a done message."""
    from mpi4py import MPI

    queue, asked, finished = collections.deque(), True, False  # the first block comes unasked
    requests, batch, sent = [], [], time.monotonic()

    def send() -> None:
        nonlocal batch, sent
        if batch:
            message = (np.concatenate([p for p, _ in batch]), np.concatenate([r for _, r in batch]))
            requests.append(comm.isend(message, dest=0, tag=_ROWS))
        batch, sent = [], time.monotonic()

    try:
        while queue or not finished:
            if asked and _probe(comm, 0, _WORK, None, wait=not queue):
                block = comm.recv(source=0, tag=_WORK)
                queue.extend(block)
                asked, finished = False, not block
            if not asked and not finished and len(queue) <= AHEAD:
                requests.append(comm.isend(None, dest=0, tag=_WANT))
                asked = True
            if queue:
                part = queue.popleft()
                rows = evaluate(grid.coords(part))
                write(part, rows)
                batch.append((part, rows))
                if time.monotonic() - sent >= SEND_SECONDS:
                    send()
    finally:  # on an error too: rank 0 writes what was computed before it learns of the error
        send()
    requests.append(comm.isend(None, dest=0, tag=_DONE))
    MPI.Request.waitall(requests)
