"""``nemg info``: what this installation is, which runtime and kernels it will use, on
which CPU."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")

#: /proc/cpuinfo features that matter to int8 kernels (ARM ``Features``, x86 ``flags``),
#: in the order shown -> what people call them.
CPU_FEATURES: dict[str, str] = {
    "neon": "NEON", "asimd": "NEON", "asimddp": "dotprod", "asimdhp": "fp16",
    "i8mm": "int8 matmul", "sve": "SVE", "sve2": "SVE2", "bf16": "bf16",
    "sse4_1": "SSE4.1", "sse4_2": "SSE4.2", "avx": "AVX", "avx2": "AVX2", "fma": "FMA",
    "avx512f": "AVX-512", "avx512bw": "AVX-512BW", "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI", "amx_int8": "AMX-INT8",
}
_CPU_NAME_KEYS = ("model name", "Model", "Hardware", "CPU part")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def cpu_info(text: str | None = None) -> dict[str, Any]:
    """The CPU's name and its int8-relevant features (:data:`CPU_FEATURES`) from
    ``/proc/cpuinfo`` (or ``text``); empty where the system has no such file."""
    if text is None:
        try:
            text = CPUINFO.read_text(errors="replace")
        except OSError:
            text = ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())  # the first core speaks for all
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    name = next((fields[k] for k in _CPU_NAME_KEYS if fields.get(k)), "unknown")
    return {"cpu": name, "cpu_features": [f for f in CPU_FEATURES if f in flags]}


def _kernels() -> dict[str, Any]:
    """The arithmetic, op resolver and kernels of the model the box would run (the store's
    active bundle or the shipped one; verified, not self-tested)."""
    from edge.errors import NemgError
    from edge.interpreter import RUNTIME
    from edge.runtime import default_model_path, load_verified

    path = default_model_path()
    try:
        arith = load_verified(path, self_test=False).arithmetic
    except NemgError as exc:
        return {"model": str(path), "arithmetic": f"unavailable ({exc})"}
    computed = RUNTIME is not None and (not arith.runtimes or RUNTIME.name in arith.runtimes)
    return {"model": str(path), "arithmetic": arith.name,
            "op_resolver": arith.op_resolver or "default", "kernels": arith.kernels,
            "runtime_computes_it": computed}


def collect() -> dict[str, Any]:
    """Versions, runtime, kernels and platform facts (the importable API behind
    ``nemg info``)."""
    import numpy

    from edge import __version__
    from edge.interpreter import RUNTIME, describe_runtime

    return {
        "nemg_edge": __version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "numpy": numpy.__version__,
        "tflite_runtime": describe_runtime(),
        "runtime": RUNTIME.name if RUNTIME else None,
        "runtime_version": RUNTIME.version if RUNTIME else None,
        **_kernels(),
        **cpu_info(),
    }


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info))
    else:
        for key, value in info.items():
            if key == "cpu_features":
                value = ", ".join(f"{f} ({CPU_FEATURES[f]})" for f in value) or "none known"
            print(f"{key:<19} {value}")
    sys.stdout.flush()
    return 0
