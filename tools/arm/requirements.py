"""What pip installs for the box on a Raspberry Pi (CPython 3.11; aarch64, or armv7l for
32-bit Pi OS): the ``edge`` extra of pyproject.toml with every environment marker evaluated
for that machine, plus named test tools. pip's ``--platform`` picks wheels for another
machine but evaluates markers for the one it runs on, so the markers are decided here.

    python tools/arm/requirements.py [--machine armv7l] [--tools pytest] [--pin-to-host]

prints one requirement per line; ``--pin-to-host`` pins each to the version this
interpreter has installed (if any), so both machines run the same releases and only the
architecture differs.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

import tomllib

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # pip always carries a copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

AARCH64_PY311: dict[str, str] = {
    "implementation_name": "cpython",
    "implementation_version": "3.11.2",
    "os_name": "posix",
    "platform_machine": "aarch64",
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_system": "Linux",
    "platform_version": "",
    "python_full_version": "3.11.2",
    "python_version": "3.11",
    "sys_platform": "linux",
}
"""Debian Bookworm's python3.11 on a Pi 4/5 (Raspberry Pi OS 64-bit is Bookworm)."""

MACHINES: dict[str, dict[str, str]] = {
    "aarch64": AARCH64_PY311,
    "armv7l": {**AARCH64_PY311, "platform_machine": "armv7l"},
}
"""Marker environments by ``platform.machine()``: armv7l is Raspberry Pi OS 32-bit
(Bookworm, python3.11), the branch of the extra that selects tflite-runtime."""


def project_requirements(pyproject: dict, extras: list[str],
                         env: dict[str, str]) -> list[Requirement]:
    """The base dependencies and ``extras`` whose markers hold in ``env``; the project's
    own name inside an extra (``nemg-edge[edge]``) is expanded, not installed."""
    project = pyproject["project"]
    own = canonicalize_name(project["name"])
    optional = project.get("optional-dependencies", {})
    out: dict[str, Requirement] = {}
    todo = [(line, "") for line in project.get("dependencies", [])]
    todo += [(line, extra) for extra in extras for line in optional[extra]]
    done: set[str] = set(extras)
    while todo:
        line, extra = todo.pop(0)
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({**env, "extra": extra}):
            continue
        if canonicalize_name(req.name) == own:
            todo += [(x, e) for e in sorted(req.extras - done) for x in optional[e]]
            done |= req.extras
            continue
        req.marker = None
        key = canonicalize_name(req.name)
        if key in out:  # two lines for one package (numpy>=1.24 twice): both bounds hold
            out[key].specifier &= req.specifier
        else:
            out[key] = req
    return list(out.values())


def tool_requirements(pyproject: dict, names: list[str]) -> list[Requirement]:
    """The lines naming ``names`` in any extra (e.g. ``pytest>=8`` from ``dev``)."""
    wanted = {canonicalize_name(n) for n in names}
    found = {canonicalize_name(Requirement(x).name): Requirement(x)
             for lines in pyproject["project"].get("optional-dependencies", {}).values()
             for x in lines if canonicalize_name(Requirement(x).name) in wanted}
    missing = wanted - set(found)
    if missing:
        raise SystemExit(f"requirements: {', '.join(sorted(missing))} in no extra of "
                         "pyproject.toml")
    for r in found.values():
        r.marker = None
    return list(found.values())


def pinned(req: Requirement) -> str:
    """``name==version`` of this interpreter's installed copy, else the requirement."""
    try:
        return f"{req.name}=={metadata.version(req.name)}"
    except metadata.PackageNotFoundError:
        return str(req)


def main(argv: list[str] | None = None) -> int:
    """Print the requirement lines."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pyproject", type=Path, default=PYPROJECT)
    ap.add_argument("--extras", nargs="+", default=["edge"])
    ap.add_argument("--machine", choices=sorted(MACHINES), default="aarch64")
    ap.add_argument("--tools", nargs="*", default=[], help="packages named in any extra")
    ap.add_argument("--pin-to-host", action="store_true")
    args = ap.parse_args(argv)
    pyproject = tomllib.loads(args.pyproject.read_text())
    reqs = project_requirements(pyproject, args.extras, MACHINES[args.machine])
    reqs += tool_requirements(pyproject, args.tools)
    for r in reqs:
        print(pinned(r) if args.pin_to_host else str(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
