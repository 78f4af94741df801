"""The import contract: data flows one way, and so do imports (docs/architecture.md).

Packages, lowest first; a module may import its own package or a lower one::

    nemg_common <- wire <- edge <- rigs <- convert <- benches

Inside ``edge`` the modules sit in ordered groups (:data:`EDGE_GROUPS`): a module may import
its own group or a lower one, and no import loop may run inside ``edge``. ``edge.cli`` is the
top: nothing outside it imports it, and it reaches ``rigs``, ``convert`` and ``benches`` only
from inside functions, so that a box install never loads the workstation for ``run``,
``classify``, ``muap``, ``demo`` or the bedside page.

Every import counts: ``import x``, ``from x import y``, relative imports, imports inside
functions, ``importlib.import_module("...")`` with a literal, and string literals that name a
project module (``"benches.model_bench:run"``, ``"edge.cli.run"``) as registries do.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
import wave
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT

#: The project's packages, lowest first.
PACKAGES = ("nemg_common", "wire", "edge", "rigs", "convert", "benches")

#: ``edge``'s groups, lowest first: group -> module-name prefixes (a prefix covers the module
#: and, if it is a package, everything below it). A new edge module must be placed here.
EDGE_GROUPS: dict[str, tuple[str, ...]] = {
    "base": ("edge.errors", "edge.fileio", "edge.paths", "edge.labels", "edge.procmem",
             "edge.console"),
    "readers": ("edge.readers",),
    "spec/DSP": ("edge.spec", "edge.resample", "edge.features",
                 "edge.mel_reference", "edge.stretch"),
    "acquire": ("edge.acquire",),
    "model": ("edge.arithmetic", "edge.interpreter", "edge.classifier", "edge.calibration",
              "edge.bundle", "edge.store", "edge.runtime"),
    "decision": ("edge.rest_check", "edge.muap", "edge.recogniser", "edge.pipeline",
                 "edge.offline"),
    "session": ("edge.live", "edge.session", "edge.muap_live", "edge.eventlog",
                "edge.exam_recording"),
    "views": ("edge.web", "edge.muap_report", "edge.screen", "edge.exam_export",
              "edge.exam_report", "edge.exam_save"),
    "cli": ("edge.cli",),
}
GROUP_RANK = {g: i for i, g in enumerate(EDGE_GROUPS)}
CLI = "edge.cli"
#: What the CLI may import only inside functions: not on a box, or not needed to start.
LAZY_FOR_CLI = ("rigs", "convert", "benches")

# A string that is nothing but a project module path, optionally ``:function``.
_MODULE_STRING = re.compile(rf"(?:{'|'.join(PACKAGES)})(?:\.[A-Za-z_]\w*)*(?::[A-Za-z_]\w*)?")
_IMPORT_CALLS = {"import_module", "__import__"}


@dataclass(frozen=True)
class Import:
    """One dependency of a module on a project module."""

    target: str
    """The dotted module imported (the longest known module the statement names)."""

    line: int
    """Line of the statement, call or string."""

    kind: str
    """``import``, ``from``, ``relative``, ``importlib`` or ``string``."""

    lazy: bool
    """Inside a function (or a string a registry loads later): runs only when called."""


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _known(name: str, known: set[str]) -> str:
    """The longest prefix of ``name`` below a top package that is a known module (``name``
    if none is: an unknown ``edge.gadget`` must not pass for ``edge``)."""
    parts = name.split(".")
    for n in range(len(parts), 1, -1):
        if ".".join(parts[:n]) in known:
            return ".".join(parts[:n])
    return name


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, known: set[str]) -> None:
        self.module, self.is_package, self.known = module, is_package, known
        self.depth = 0
        self.found: list[Import] = []
        self._skip: set[int] = set()  # strings counted as importlib calls, or run as programs

    def _add(self, name: str, node: ast.AST, kind: str, lazy: bool | None = None) -> None:
        if name.split(".")[0] in PACKAGES:
            self.found.append(Import(_known(name, self.known), node.lineno, kind,
                                     self.depth > 0 if lazy is None else lazy))

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node, "import")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:  # relative: from the module's package, `level - 1` packages up
            package = self.module.split(".")
            package = package if self.is_package else package[:-1]
            base = ".".join(package[: len(package) - (node.level - 1)])
            base = f"{base}.{node.module}" if node.module else base
            kind = "relative"
        else:
            base, kind = node.module or "", "from"
        for alias in node.names:  # `from pkg import mod` imports the module pkg.mod
            sub = f"{base}.{alias.name}"
            self._add(sub if sub in self.known else base, node, kind)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in _IMPORT_CALLS and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            self._add(node.args[0].value, node, "importlib")
            self._skip.add(id(node.args[0]))
        self.generic_visit(node)

    def _sequence(self, node: ast.List | ast.Tuple) -> None:
        # [python, "-m", "edge.cli", ...] runs the program in another process: not an import
        for flag, name in zip(node.elts, node.elts[1:], strict=False):
            if isinstance(flag, ast.Constant) and flag.value == "-m":
                self._skip.add(id(name))
        self.generic_visit(node)

    visit_List = visit_Tuple = _sequence

    def visit_Constant(self, node: ast.Constant) -> None:
        text = node.value
        if isinstance(text, str) and id(node) not in self._skip \
                and _MODULE_STRING.fullmatch(text) and ("." in text or ":" in text):
            self._add(text.split(":")[0], node, "string", lazy=True)


def imports_of(source: str, module: str, *, is_package: bool = False,
               known: Iterable[str] = ()) -> list[Import]:
    """Every project module ``source`` (the text of ``module``) depends on."""
    collector = _Collector(module, is_package, set(known) | set(MODULES))
    collector.visit(ast.parse(source))
    return collector.found


def group_of(module: str) -> str | None:
    """``module``'s group inside ``edge`` (None: in no group, or not in ``edge``)."""
    if module == "edge":  # the package itself: its version string
        return "base"
    matches = [(len(p), g) for g, prefixes in EDGE_GROUPS.items() for p in prefixes
               if _within(module, p)]
    return max(matches)[1] if matches else None


def broken_rule(module: str, imp: Import) -> str | None:
    """The rule ``module``'s import ``imp`` breaks, or None."""
    src, dst = module.split(".")[0], imp.target.split(".")[0]
    if _within(imp.target, CLI) and not _within(module, CLI):
        return "only edge.cli imports edge.cli (the CLI is the top)"
    if _within(module, CLI):
        if dst in LAZY_FOR_CLI and not imp.lazy:
            return f"the CLI imports {dst} only inside functions (a box loads it only when asked)"
        return None
    if PACKAGES.index(dst) > PACKAGES.index(src):
        return f"{src} may not import {dst} (order: {' <- '.join(PACKAGES)})"
    if src == dst == "edge":
        have, want = group_of(module), group_of(imp.target)
        if want is None:
            return f"{imp.target} is in no edge group (place it in EDGE_GROUPS)"
        if have is not None and GROUP_RANK[want] > GROUP_RANK[have]:
            return f"edge group {have!r} may not import group {want!r}"
    return None


@dataclass(frozen=True)
class Violation:
    """A broken rule, where it is."""

    module: str
    imp: Import
    rule: str

    def __str__(self) -> str:
        lazy = " inside a function" if self.imp.lazy and self.imp.kind != "string" else ""
        return (f"{path_of(self.module)}:{self.imp.line}: {self.imp.kind} "
                f"{self.imp.target}{lazy} -- {self.rule}")


def violations(module: str, source: str, *, is_package: bool = False,
               known: Iterable[str] = ()) -> list[Violation]:
    """Every import of ``source`` (the text of ``module``) that breaks a rule."""
    found = []
    for imp in imports_of(source, module, is_package=is_package, known=known):
        rule = broken_rule(module, imp)
        if rule is not None:
            found.append(Violation(module, imp, rule))
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One loop (``[a, b, ..., a]``) per strongly connected set of modules in ``graph``
    (module -> the modules it imports); Tarjan's search."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_loop_through(c, graph) for c in sorted(components)]


def _loop_through(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """The shortest loop from the first module of a strongly connected set back to itself."""
    start, inside = component[0], set(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, set()) & inside):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no loop through {component}")  # a component always has one


def edge_graph(sources: dict[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """module -> the edge modules it imports, for modules given as name -> (text,
    is_package)."""
    graph: dict[str, set[str]] = {}
    for module, (source, is_package) in sources.items():
        if _within(module, "edge"):
            graph[module] = {i.target for i in imports_of(source, module, is_package=is_package,
                                                          known=sources)
                             if _within(i.target, "edge") and i.target != module}
    return graph


# ---- the tree --------------------------------------------------------------------------------
def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


FILES = {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}
MODULES = sorted(FILES)


def path_of(module: str) -> str:
    """Where ``module`` lives (its dotted name if it is not a file of the tree)."""
    return str(FILES[module].relative_to(ROOT)) if module in FILES else module


def _tree() -> dict[str, tuple[str, bool]]:
    return {m: (p.read_text(), p.name == "__init__.py") for m, p in FILES.items()}


@pytest.mark.parametrize("module", MODULES)
def test_no_import_reaches_back_up(module):
    path = FILES[module]
    wrong = violations(module, path.read_text(), is_package=path.name == "__init__.py")
    assert not wrong, "\n".join(map(str, wrong))


def test_every_edge_module_is_placed_in_a_group():
    """A new module in ``edge`` is placed on purpose, not by accident of its name."""
    edge = [m for m in MODULES if _within(m, "edge")]
    unplaced = [path_of(m) for m in edge if group_of(m) is None]
    assert not unplaced, f"place these in EDGE_GROUPS: {unplaced}"
    assert len(edge) > 40


def test_no_import_loop_inside_edge():
    loops = cycles(edge_graph(_tree()))
    assert not loops, "import loops inside edge:\n" + "\n".join(" -> ".join(c) for c in loops)


# ---- the checker sees each kind of back-arrow ----------------------------------------------
PLANTED = [  # (module, is_package, source, the rule it must break)
    # a string registry entry (as benches/harness.py's BENCHMARKS)
    ("edge.pipeline", False, 'RUNNERS = {"x": "convert.train:run"}\n', "edge may not import"),
    ("benches.harness", False, 'BENCHMARKS = {"c": "edge.cli.classify:run"}\n',
     "only edge.cli imports edge.cli"),
    ("edge.features", False, 'TABLE = ("edge.runtime",)\n', "'spec/DSP' may not import group"),
    # importlib with a literal
    ("edge.readers.wav", False, 'import importlib\nm = importlib.import_module("edge.live")\n',
     "'readers' may not import group 'session'"),
    ("wire.link", False, 'def f():\n    return __import__("edge.errors")\n',
     "wire may not import edge"),
    # a CLI import from a library module, eager and lazy
    ("edge.live", False, "from edge.cli.classify import scaled_recording\n",
     "only edge.cli imports edge.cli"),
    ("rigs.demo", False, "def f():\n    import edge.cli.run\n", "only edge.cli imports"),
    # a lazy import up (inside a function, a method, a lambda)
    ("edge.spec", False, "def f():\n    from edge.bundle import Bundle\n",
     "'spec/DSP' may not import group 'model'"),
    ("edge.runtime", False, "class C:\n    def m(self):\n        import edge.pipeline\n",
     "'model' may not import group 'decision'"),
    ("rigs.sources", False, "f = lambda: __import__('convert.synth')\n",
     "rigs may not import convert"),
    # relative imports, from a module and from a package's __init__
    ("edge.readers.wav", False, "from ..live import LiveSession\n",
     "'readers' may not import group 'session'"),
    ("edge.readers.wav", False, "from .. import pipeline\n",
     "'readers' may not import group 'decision'"),
    ("edge.web", True, "from ..cli import run\n", "only edge.cli imports edge.cli"),
    ("edge.features", False, "from . import muap_report\n", "may not import group 'views'"),
    # the CLI reaching the workstation when the module loads
    ("edge.cli.classify", False, "from convert.synth import synth_example\n",
     "the CLI imports convert only inside functions"),
    ("edge.cli.demo", False, "import rigs.demo\n", "the CLI imports rigs only inside"),
    # a module placed in no group
    ("edge.pipeline", False, "import edge.gadget\n", "edge.gadget is in no edge group"),
]


@pytest.mark.parametrize(("module", "is_package", "source", "rule"), PLANTED)
def test_a_planted_back_arrow_is_reported(module, is_package, source, rule):
    found = violations(module, source, is_package=is_package)
    assert len(found) == 1 and rule in found[0].rule, found


ALLOWED = [  # imports pointing the right way (how many the checker must see): none reported
    ("edge.live", False, "def f():\n    from edge.pipeline import Pipeline\n", 1),
    ("edge.cli.demo", False, "def run(a):\n    from rigs.demo import run_demo\n", 1),
    ("edge.cli", True, 'C = ("edge.cli.run", "convert")\nimport importlib\n', 1),
    ("benches.harness", False, 'B = {"m": "benches.model_bench:run"}\nimport convert.synth\n',
     2),
    ("edge.readers.wav", False, "from . import recording\nfrom ..errors import InputError\n",
     2),
    ("edge.web", True, '"""Serves edge.pipeline\'s windows; see edge.cli.run."""\n', 0),
    ("edge.features", False, "from edge import __version__\nfrom edge.spec import Spec\n", 2),
    # the CLI run as a program in another process is not an import of it
    ("benches.pi_bench", False, 'CMD = ["python", "-m", "edge.cli", "run"]\n', 0),
]


@pytest.mark.parametrize(("module", "is_package", "source", "n"), ALLOWED)
def test_an_import_the_right_way_is_not_reported(module, is_package, source, n):
    assert len(imports_of(source, module, is_package=is_package)) == n
    assert violations(module, source, is_package=is_package) == []


def test_a_planted_loop_inside_edge_is_reported():
    # features <-> spec (one group), and bundle -> classifier -> interpreter -> bundle
    # (another) reached from spec; a lazy import and a string close the loops too
    planted = {
        "edge.features": ("from edge.spec import Spec\n", False),
        "edge.spec": ("def f():\n    from edge import features, bundle\n", False),
        "edge.bundle": ("from .classifier import Classifier\n", False),
        "edge.classifier": ('RUNTIME = "edge.interpreter:Interpreter"\n', False),
        "edge.interpreter": ("import edge.bundle\nimport edge.errors\n", False),
        "edge.errors": ("", False),
    }
    assert cycles(edge_graph(planted)) == [
        ["edge.bundle", "edge.classifier", "edge.interpreter", "edge.bundle"],
        ["edge.features", "edge.spec", "edge.features"],
    ]
    planted["edge.spec"] = ("import edge.errors\n", False)
    assert cycles(edge_graph(planted)) == [
        ["edge.bundle", "edge.classifier", "edge.interpreter", "edge.bundle"]]


def test_the_checker_reads_every_kind_of_import():
    source = textwrap.dedent('''
        """Docstring naming edge.cli.run in a sentence: not an import."""
        import os, edge.errors
        from edge.readers import wav
        from . import spec
        import importlib
        R = {"a": "benches.features_bench:run", "b": "edge"}
        def f():
            from wire.link import SerialLink
            return importlib.import_module("edge.resample")
    ''')
    got = {(i.target, i.kind, i.lazy) for i in imports_of(source, "edge.features")}
    assert got == {("edge.errors", "import", False), ("edge.readers.wav", "from", False),
                   ("edge.spec", "relative", False), ("benches.features_bench", "string", True),
                   ("wire.link", "from", True), ("edge.resample", "importlib", True)}


# ---- a box install runs its commands without the workstation -----------------------------
#: What a box (the 'edge' extra) does not have.
NOT_ON_A_BOX = ("convert", "benches", "tensorflow", "tf_keras", "tensorflow_model_optimization",
                "ray")

BOX_ONLY = textwrap.dedent(f"""
    import importlib.abc, json, sys
    tried = []
    class Hide(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in {NOT_ON_A_BOX!r}:
                tried.append(name)
                raise ModuleNotFoundError(f"{{name}} is not on a box", name=name)
    sys.meta_path.insert(0, Hide())

    import numpy as np
    from edge.cli import main
    from wire.boards import get_frontend
    from wire.virtual import SampleSource, VirtualFrontEnd
    exam, rc = sys.argv[1], {{}}
    for argv in (['classify', exam], ['muap', exam],
                 ['demo', '--fast', '--plain', '--no-log', '--web', '127.0.0.1:0']):
        rc[argv[0]] = main(argv)
    noise = np.random.default_rng(1).integers(-200, 200, 40_000)
    with VirtualFrontEnd(get_frontend('nemg-fe1'), SampleSource(noise), fast=True) as fe:
        rc['run'] = main(['run', '--port', fe.path, '--duration', '2', '--plain', '--no-log',
                          '--web', '127.0.0.1:0'])
    leaked = sorted(m for m in sys.modules if m.split('.')[0] in {NOT_ON_A_BOX!r})
    print(json.dumps({{'exit': rc, 'tried': tried, 'loaded': leaked}}))
""")


def test_box_commands_never_import_the_workstation(tmp_path):
    """``nemg classify``, ``muap``, ``demo``, ``run`` and the bedside page (``--web``) with
    ``convert``, ``benches`` and TensorFlow not installed: each works and none is tried."""
    import numpy as np

    from edge.readers.wav import write_wav

    # the first 10 s of the demo examination (recorded at 0.5 µV/LSB)
    with wave.open(str(ROOT / "rigs" / "data" / "demo-exam.wav")) as w:
        rate = w.getframerate()
        write_wav(tmp_path / "exam.wav", np.frombuffer(w.readframes(10 * rate), "<i2"), rate,
                  0.5)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "NEMG_STORE": "",
           "XDG_DATA_HOME": str(tmp_path), "NEMG_LOG_DB": ""}
    proc = subprocess.run([sys.executable, "-c", BOX_ONLY, str(tmp_path / "exam.wav")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.splitlines()[-1])
    assert got == {"exit": {"classify": 0, "muap": 0, "demo": 0, "run": 0}, "tried": [],
                   "loaded": []}, proc.stderr[-3000:]


# ---- Ray is a workstation extra, imported in two modules only ----------------------------
RAY_MODULES = {"nemg_common/executor.py", "convert/sweep.py"}


def test_ray_is_imported_only_by_the_executor_and_the_sweep():
    found = set()
    for package in PACKAGES:
        for f in (ROOT / package).rglob("*.py"):
            tree = ast.parse(f.read_text())
            for node in ast.walk(tree):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(n == "ray" or n.startswith("ray.") for n in names):
                    found.add(str(f.relative_to(ROOT)))
    assert found == RAY_MODULES


def test_the_box_extra_never_installs_ray():
    """``pip install -e '.[edge]'``: the edge extra names neither ray nor an extra that
    does (the cluster extra builds on convert, never the other way)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert any(r.startswith("ray") for r in extras["cluster"])

    def closure(name: str) -> set[str]:
        reqs = set(extras[name])
        for r in list(reqs):
            if r.startswith("nemg-edge["):
                reqs |= closure(r[len("nemg-edge["):-1])
        return reqs

    assert not any(r.startswith("ray") for r in closure("edge"))
    assert not any(r.startswith("ray") for r in closure("convert"))
