"""The TFLite interpreter, whichever runtime this box has.

Three runtimes share one ``Interpreter`` API. They are tried in this order, once, at import
time (the choice is logged and shown by ``nemg info``):

1. ``ai_edge_litert.interpreter`` — LiteRT, the maintained runtime (x86_64, aarch64).
2. ``tflite_runtime.interpreter`` — the last release (2.14) also covers armv7l; needs numpy<2.
3. ``tensorflow.lite`` (its interpreter module) — only on a workstation that has TensorFlow anyway.

``NEMG_TFLITE_RUNTIME=litert|tflite_runtime|tensorflow`` forces one. Nothing else in
``edge`` touches a runtime module directly.

Which kernels run a model is chosen per interpreter by an op resolver name (the members of
the runtimes' shared ``OpResolverType``: ``AUTO``, ``BUILTIN``, ``BUILTIN_REF``,
``BUILTIN_WITHOUT_DEFAULT_DELEGATES``; None keeps the runtime's default) — the bundle's
arithmetic (:mod:`edge.arithmetic`) says which.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from typing import Any

from edge.errors import ConfigError, MissingExtraError

log = logging.getLogger(__name__)

#: runtime name -> module holding ``Interpreter`` (and ``OpResolverType``)
RUNTIMES: dict[str, str] = {
    "litert": "ai_edge_litert.interpreter",
    "tflite_runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow.lite.python.interpreter",
}

#: runtime name -> how people call it (messages)
RUNTIME_TITLES: dict[str, str] = {
    "litert": "LiteRT",
    "tflite_runtime": "tflite-runtime",
    "tensorflow": "tf.lite",
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

    op_resolver_type: Any = None
    """The module's ``OpResolverType`` enum (None: the runtime cannot choose kernels)."""

    @property
    def title(self) -> str:
        """``"LiteRT 2.3.0"``: name and version for messages."""
        return f"{RUNTIME_TITLES[self.name]} {self.version}"

    def op_resolvers(self) -> tuple[str, ...]:
        """The op resolver names this runtime accepts."""
        t = self.op_resolver_type
        return tuple(t.__members__) if t is not None else ()


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
    return Runtime(name, module_name, _version_of(module_name), module.Interpreter,
                   getattr(module, "OpResolverType", None))


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


def create_interpreter(runtime: Runtime, *, op_resolver: str | None = None,
                       **kwargs: Any) -> Any:
    """``runtime.interpreter_class(**kwargs)`` with tensors allocated, its start-up line
    (``Created TensorFlow Lite XNNPACK delegate``, which would be the first line before any
    ``nemg: error:``) kept off stderr: the C++ logger writes to file descriptor 2 directly,
    so it is caught there; anything else it prints is passed on.

    ``op_resolver``: an ``OpResolverType`` member name (``"BUILTIN_REF"``: TFLite's
    reference kernels), passed as ``experimental_op_resolver_type``; None leaves the
    runtime's default. A runtime without it is a :class:`ConfigError`."""
    import sys
    import tempfile

    from edge.console import is_noise

    if op_resolver is not None:
        if op_resolver not in runtime.op_resolvers():
            raise ConfigError(f"{runtime.title} cannot run a model with op resolver "
                              f"{op_resolver} (it offers: "
                              f"{', '.join(runtime.op_resolvers()) or 'none'})")
        kwargs["experimental_op_resolver_type"] = getattr(runtime.op_resolver_type,
                                                          op_resolver)

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
