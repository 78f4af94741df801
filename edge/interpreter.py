"""The TFLite interpreter, whichever runtime this box has.

Three runtimes share one ``Interpreter`` API. They are tried in this order, once, at import
time (the choice is logged and shown by ``nemg info``):

1. ``ai_edge_litert.interpreter`` — LiteRT, the maintained runtime (x86_64, aarch64).
2. ``tflite_runtime.interpreter`` — the last release (2.14) also covers armv7l; needs numpy<2.
3. ``tensorflow.lite`` (its interpreter module) — only on a workstation that has TensorFlow anyway.

``NEMG_TFLITE_RUNTIME=litert|tflite_runtime|tensorflow`` forces one. Nothing else in
``edge`` touches a runtime module directly.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from typing import Any

from edge.errors import ConfigError, MissingExtraError

log = logging.getLogger(__name__)

#: runtime name -> (module holding ``Interpreter``, attribute path inside it)
RUNTIMES: dict[str, str] = {
    "litert": "ai_edge_litert.interpreter",
    "tflite_runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow.lite.python.interpreter",
}


@dataclass(frozen=True)
class Runtime:
    """The runtime in use."""

    name: str
    """Key in :data:`RUNTIMES`."""

    module: str
    """Module the ``Interpreter`` class came from."""

    version: str
    """The runtime package's version, or ``"unknown"``."""

    interpreter_class: Any
    """The ``Interpreter`` class itself."""


def _version_of(module: str) -> str:
    from importlib import metadata

    dist = {
        "ai_edge_litert": "ai-edge-litert",
        "tflite_runtime": "tflite-runtime",
        "tensorflow": "tensorflow",
    }[module.split(".")[0]]
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _load(name: str) -> Runtime:
    module_name = RUNTIMES[name]
    module = importlib.import_module(module_name)
    return Runtime(name, module_name, _version_of(module_name), module.Interpreter)


def select_runtime(forced: str | None = None) -> Runtime | None:
    """Pick the first importable runtime (or the forced one). None if there is none."""
    if forced:
        if forced not in RUNTIMES:
            raise ConfigError(
                f"NEMG_TFLITE_RUNTIME={forced!r} is not one of {', '.join(RUNTIMES)}"
            )
        try:
            return _load(forced)
        except ImportError as exc:
            raise ConfigError(
                f"NEMG_TFLITE_RUNTIME={forced} but {RUNTIMES[forced]} does not import: {exc}"
            ) from None
    for name in RUNTIMES:
        try:
            return _load(name)
        except ImportError:
            continue
    return None


RUNTIME: Runtime | None = select_runtime(os.environ.get("NEMG_TFLITE_RUNTIME") or None)
if RUNTIME is not None:
    log.info("TFLite runtime: %s %s (%s)", RUNTIME.name, RUNTIME.version, RUNTIME.module)


def create_interpreter(runtime: Runtime, **kwargs: Any) -> Any:
    """``runtime.interpreter_class(**kwargs)`` with tensors allocated, its start-up line
    (``Created TensorFlow Lite XNNPACK delegate``, which would be the first line before any
    ``nemg: error:``) kept off stderr: the C++ logger writes to file descriptor 2 directly,
    so it is caught there; anything else it prints is passed on."""
    import sys
    import tempfile

    from edge.console import is_noise

    with tempfile.TemporaryFile() as caught:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            interpreter = runtime.interpreter_class(**kwargs)
            interpreter.allocate_tensors()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            rest = [ln for ln in caught.read(1 << 16).splitlines(keepends=True)
                    if not is_noise(ln)]
            if rest:
                os.write(2, b"".join(rest))
    return interpreter


def require_runtime() -> Runtime:
    """The selected runtime, or a clear error naming what to install."""
    if RUNTIME is None:
        raise MissingExtraError("edge", "running a model", "ai-edge-litert (or tflite-runtime)")
    return RUNTIME


def describe_runtime() -> str:
    """One line for logs and ``nemg info``."""
    if RUNTIME is None:
        return "none (install the 'edge' extra)"
    return f"{RUNTIME.name} {RUNTIME.version} ({RUNTIME.module}.Interpreter)"
