"""One executor for per-recording work: a local process pool by default, a Ray cluster on
request — the same tasks, the same results in the same order, wherever they ran.

Every caller (corpus synthesis, window building, ``nemg classify`` over many files, the
cross-simulator bench) hands :meth:`Executor.map` a module-level function and a list of
picklable jobs; each job's result depends on the job alone (its seed travels in it), so a
corpus or a report is the same bytes for any number of workers or nodes. ``shared`` is one
object every call needs (a verified bundle, the folder results go to): sent with each
chunk of jobs to a local worker, once to the cluster (Ray's object store), never per job.

:func:`configure` points the whole process at a cluster (``nemg … --ray ADDRESS``);
:func:`executor` is what callers ask for. Ray is a workstation extra (``cluster``): it is
imported only by :class:`RayExecutor`, never on the local path.

Faults on Ray: a task whose worker process is killed, or whose node leaves, is retried
(:data:`TASK_RETRIES`) on what is left of the cluster; results are gathered by this
process, in job order, so each job's result is used exactly once.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from nemg_common.errors import ConfigError

RAY_ADDRESS_ENV = "RAY_ADDRESS"
"""Where ``--ray`` without an address connects (as ``ray.init`` reads it); else ``auto``."""
TASK_RETRIES = 5
"""Times Ray re-runs a task whose worker or node died (results do not depend on where)."""
IN_FLIGHT_PER_WORKER = 4
"""Chunks submitted ahead per worker: the cluster stays busy, memory stays bounded by
this, not by the number of jobs."""


class _Nothing:
    """No shared object (a singleton that stays itself through pickling to a worker)."""

    def __reduce__(self) -> str:
        return "_NOTHING"


_NOTHING = _Nothing()


def ray_address(option: str | None) -> str:
    """The address ``--ray`` means: the option's, else :data:`RAY_ADDRESS_ENV`, else
    ``auto`` (a cluster already running on this machine)."""
    return option or os.environ.get(RAY_ADDRESS_ENV) or "auto"


class TaskFailed(Exception):
    """A job raised in a worker: carries the job's own exception (raised again here)."""


class Executor:
    """Maps a function over jobs; see the module docstring. Use as a context manager."""

    workers: int = 1
    where: str = "local"

    def map(self, fn: Callable, jobs: Iterable, *, shared: Any = _NOTHING,
            chunksize: int = 1) -> Iterator:
        """``fn(job)`` (or ``fn(job, shared)``) for each job, yielded in job order as they
        complete. An exception a job raises is raised here, as it was raised there."""
        raise NotImplementedError

    def submit(self, fn: Callable, jobs: list, *, shared: Any = _NOTHING,
               chunksize: int = 1) -> Callable[[], list]:
        """Start :meth:`map` and return at once; calling the result waits for the list."""
        results = list(self.map(fn, jobs, shared=shared, chunksize=chunksize))
        return lambda: results

    def close(self) -> None:
        """Release worker processes (a cluster connection is kept for the process)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _call(fn: Callable, job: Any, shared: Any) -> Any:
    return fn(job) if shared is _NOTHING else fn(job, shared)


def _run_chunk(fn: Callable, chunk: list, shared: Any = _NOTHING) -> list:
    """A chunk of jobs in one worker; a job's exception comes back as a value (a worker
    that raises is not a worker that died: it must not be retried)."""
    out = []
    for job in chunk:
        try:
            out.append(_call(fn, job, shared))
        except Exception as exc:  # handed back to the caller as is
            return [*out, TaskFailed(exc)]
    return out


def _unpack(results: list) -> Iterator:
    for r in results:
        if isinstance(r, TaskFailed):
            raise r.args[0]
        yield r


def _pool_chunk(args: tuple[Callable, list, Any]) -> list:
    return _run_chunk(*args)


def _chunks(jobs: list, size: int) -> list[list]:
    size = max(1, size)
    return [jobs[k:k + size] for k in range(0, len(jobs), size)]


class LocalExecutor(Executor):
    """``workers`` spawned processes on this machine (in this process when 1, or when
    there are fewer than two jobs per worker: a pool would cost more than it saves)."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = max(1, int(workers))
        self._pool = None

    def _started(self):
        if self._pool is None:
            import multiprocessing as mp

            # spawn: workers never inherit a trainer's TensorFlow threads
            self._pool = mp.get_context("spawn").Pool(self.workers)
        return self._pool

    def _local(self, jobs: list) -> bool:
        return self.workers == 1 or len(jobs) < 2 * self.workers

    def map(self, fn, jobs, *, shared=_NOTHING, chunksize=1):
        jobs = list(jobs)
        if self._local(jobs):
            return (_call(fn, j, shared) for j in jobs)
        # ``shared`` travels with each chunk: one pool serves every call
        parts = self._started().imap(_pool_chunk,
                                     [(fn, c, shared) for c in _chunks(jobs, chunksize)])
        return (r for part in parts for r in _unpack(part))

    def submit(self, fn, jobs, *, shared=_NOTHING, chunksize=1):
        jobs = list(jobs)
        if self._local(jobs):
            return lambda: [_call(fn, j, shared) for j in jobs]
        pending = self._started().map_async(
            _pool_chunk, [(fn, c, shared) for c in _chunks(jobs, chunksize)])
        return lambda: [r for part in pending.get() for r in _unpack(part)]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()  # work nobody will wait for is dropped
            self._pool.join()
            self._pool = None


class RayExecutor(Executor):
    """Tasks on the Ray cluster at ``address`` (``auto``: the one running on this machine;
    ``ray://host:10001``: a remote head through Ray Client). Every node must have this
    project installed at the same commit, and see the files a job names (a shared
    filesystem) — jobs carry paths and seeds, results come back here."""

    where = "ray"

    def __init__(self, address: str) -> None:
        import logging

        import ray

        self._ray = ray
        _cluster_messages_to_stderr()
        if not ray.is_initialized():
            _check_reachable(address)
            try:
                ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR,
                         configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(f"no Ray cluster at {address!r} ({str(exc).splitlines()[0]})"
                                  "; start one with 'ray start --head'") from None
        self.address = address
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote = ray.remote(max_retries=TASK_RETRIES, retry_exceptions=False)(_run_chunk)
        self._shared_ref: tuple[Any, Any] | None = None

    @classmethod
    def start_local(cls, num_cpus: int) -> RayExecutor:
        """A fresh single-machine cluster of ``num_cpus`` (a raylet and its workers, as
        ``ray start --head`` makes), connected; :meth:`shutdown` ends it."""
        import logging

        import ray

        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, logging_level=logging.ERROR)
        return cls("local")

    def shutdown(self) -> None:
        """Disconnect (and end a cluster :meth:`start_local` started)."""
        global _RAY
        self._ray.shutdown()
        if _RAY is self:
            _RAY = None

    def _shared(self, shared: Any) -> Any:
        if shared is _NOTHING:
            return _NOTHING
        # the object itself is kept: an id() alone could be reused by the next call's
        if self._shared_ref is None or self._shared_ref[0] is not shared:
            self._shared_ref = (shared, self._ray.put(shared))  # once, not per task
        return self._shared_ref[1]

    def _refs(self, fn, jobs, shared, chunksize) -> Iterator:
        """Chunk futures in order, at most IN_FLIGHT_PER_WORKER × workers submitted."""
        ref = self._shared(shared)
        pending = deque(_chunks(list(jobs), chunksize))
        flight: deque = deque()
        cap = IN_FLIGHT_PER_WORKER * self.workers
        while pending or flight:
            while pending and len(flight) < cap:
                flight.append(self._remote.remote(fn, pending.popleft(), ref))
            yield flight.popleft()

    def map(self, fn, jobs, *, shared=_NOTHING, chunksize=1):
        for ref in self._refs(fn, jobs, shared, chunksize):
            yield from _unpack(self._ray.get(ref))

    def submit(self, fn, jobs, *, shared=_NOTHING, chunksize=1):
        ref = self._shared(shared)
        refs = [self._remote.remote(fn, c, ref) for c in _chunks(list(jobs), chunksize)]
        return lambda: [r for part in self._ray.get(refs) for r in _unpack(part)]


CONNECT_TIMEOUT_S = 10.0
"""How long a ``host:port`` may take to accept a connection (Ray itself would retry an
address where nothing listens for minutes)."""


def _check_reachable(address: str) -> None:
    """A ``host:port`` address must accept a TCP connection: a one-line error, not a hang."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return  # 'auto', 'local', ray://…: Ray's own checks answer at once
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(f"no Ray cluster at {address!r} ({exc.strerror or exc}); start one "
                          "with 'ray start --head' and give the address it prints") from None


def _cluster_messages_to_stderr() -> None:
    """Ray prints the cluster's messages ("raylet has lagging heartbeats", a worker that
    died) on the driver's stdout; ``nemg classify --json`` promises results only there."""
    from ray._private import worker

    def to_stderr(data: dict, ignore_prefix: bool, _print=worker.print_to_stdstream) -> None:
        _print({**data, "is_err": True}, ignore_prefix)

    if not getattr(worker.print_to_stdstream, "nemg_to_stderr", False):
        to_stderr.nemg_to_stderr = True  # type: ignore[attr-defined]
        worker.print_to_stdstream = to_stderr


_RAY_ADDRESS: str | None = None
_RAY: RayExecutor | None = None


def configure(ray: str | None) -> None:
    """Send this process's per-recording work to the cluster at ``ray`` (None: local)."""
    global _RAY_ADDRESS
    _RAY_ADDRESS = ray


def configured() -> bool:
    """Whether :func:`configure` pointed this process at a cluster."""
    return _RAY_ADDRESS is not None


def executor(workers: int = 1) -> Executor:
    """What a caller with ``workers`` local processes in mind should use: the configured
    cluster (one connection per process), else a :class:`LocalExecutor`."""
    global _RAY
    if _RAY_ADDRESS is None:
        return LocalExecutor(workers)
    if _RAY is None:
        _RAY = RayExecutor(_RAY_ADDRESS)
    return _RAY
