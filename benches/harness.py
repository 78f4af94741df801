"""Benchmark harness: warm-up, repeats, median, candidates interleaved in one run.

Machines here are noisy, so a benchmark never reports a bare time alone: it times the
thing under test and its reference in the *same* run, round-robin (A B A B ..., order
rotated each round so neither always runs first on a warm cache), and reports medians and
ratios. Times are CPU seconds of this process (``time.process_time``) as well as wall
seconds; with :func:`pin_to_one_cpu` the process runs on one core, as the issues ask.

Benchmarks register by name in :data:`BENCHMARKS` (``name -> "module:function"``); the
function takes :class:`BenchOptions` and returns a JSON-serialisable dict. They are
imported only when run, so ``nemg bench --list`` costs nothing.
"""

from __future__ import annotations

import importlib
import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from edge.errors import ConfigError

#: name -> "module:function". Later issues add their benchmarks here.
BENCHMARKS: dict[str, str] = {
    "features": "benches.features_bench:run",
    "wire": "benches.wire_bench:run",
    "pipeline": "benches.pipeline_bench:run",
    "model": "benches.model_bench:run",
    "real": "benches.real_bench:run",
    "crosssim": "benches.crosssim_bench:run",
    "resample": "benches.resample_bench:run",
    "muap": "benches.muap_bench:run",
    "rest": "benches.rest_bench:run",
    "web": "benches.web_bench:run",
    "pi": "benches.pi_bench:run",
    "cluster": "benches.cluster_bench:run",
}


@dataclass(frozen=True)
class BenchOptions:
    """How hard a benchmark works."""

    repeats: int = 5
    """Timed runs per candidate; the median is reported."""

    warmup: int = 1
    """Untimed runs per candidate before timing (caches, lazy imports, allocators)."""

    quick: bool = False
    """Smaller inputs, for tests of the benchmark code itself (figures not meaningful)."""


@dataclass(frozen=True)
class Timing:
    """Median timings of one candidate."""

    wall_s: float
    """Median wall-clock seconds per run."""

    cpu_s: float
    """Median CPU seconds (this process, all threads) per run."""

    repeats: int
    """Number of timed runs."""

    wall_all_s: tuple[float, ...] = field(default=(), repr=False)
    """Every timed run's wall seconds, in order."""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["wall_all_s"] = list(self.wall_all_s)
        return d


def _time_once(fn: Callable[[], object]) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def measure(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> Timing:
    """Time ``fn`` alone: ``warmup`` untimed calls, then the median of ``repeats``."""
    return measure_interleaved({"_": fn}, repeats=repeats, warmup=warmup)["_"]


def measure_interleaved(
    candidates: Mapping[str, Callable[[], object]], *, repeats: int = 5, warmup: int = 1
) -> dict[str, Timing]:
    """Time several candidates round-robin in one run; returns each one's medians."""
    if repeats < 1 or warmup < 0:
        raise ConfigError(f"repeats must be >= 1 and warmup >= 0 (got {repeats}, {warmup})")
    if not candidates:
        raise ConfigError("no candidates to time")
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    walls: dict[str, list[float]] = {n: [] for n in names}
    cpus: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:  # rotate who goes first
            w, c = _time_once(candidates[name])
            walls[name].append(w)
            cpus[name].append(c)
    return {
        n: Timing(
            wall_s=statistics.median(walls[n]),
            cpu_s=statistics.median(cpus[n]),
            repeats=repeats,
            wall_all_s=tuple(walls[n]),
        )
        for n in names
    }


_ALLOWED_CPUS: list[int] | None = None  # what this process could use before pinning


def _allowed_cpus() -> list[int]:
    if _ALLOWED_CPUS is not None:
        return _ALLOWED_CPUS
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]


def pin_to_one_cpu() -> int | None:
    """Restrict this process to one CPU (Linux); returns it, or None where unsupported."""
    global _ALLOWED_CPUS
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = _allowed_cpus()
    _ALLOWED_CPUS = cpus
    os.sched_setaffinity(0, {cpus[-1]})
    return cpus[-1]


def box_and_front_end_cpus() -> tuple[int, int]:
    """(the box's core, the virtual front end's) for a benchmark that runs both: the core
    :func:`pin_to_one_cpu` chose, and another of those the process was allowed before it
    pinned itself (the same one where there is no other)."""
    cpus = _allowed_cpus()
    box = cpus[-1]
    return box, next((c for c in cpus if c != box), box)


def limit_threads_env() -> None:
    """Ask BLAS/OpenMP pools for one thread. Effective only before numpy is imported."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def run_benchmark(name: str, options: BenchOptions | None = None) -> dict[str, Any]:
    """Run one registered benchmark and return its JSON object (with ``benchmark`` key)."""
    try:
        target = BENCHMARKS[name]
    except KeyError:
        known = ", ".join(sorted(BENCHMARKS))
        raise ConfigError(f"unknown benchmark {name!r} (known: {known})") from None
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    opts = options or BenchOptions()
    result = func(opts)
    return {"benchmark": name, "repeats": opts.repeats, "quick": opts.quick, **result}
