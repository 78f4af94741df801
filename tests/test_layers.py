"""The import contract: data flows one way, and so do imports.

    nemg_common  <-  wire (the wire)  <-  edge (the box)  <-  convert (workstation)

``edge/cli`` is the application on top of all of them (its workstation commands import
``convert``, lazily). Every import in every module counts, including those inside
functions: a lazy import that reaches back up is still a wrong-way dependency.
"""

from __future__ import annotations

import ast

import pytest
from conftest import ROOT

PROJECT = ("nemg_common", "wire", "edge", "convert")
#: layer -> the project packages its modules may import
MAY_IMPORT = {
    "nemg_common": {"nemg_common"},
    "wire": {"nemg_common", "wire"},
    "edge": {"nemg_common", "wire", "edge"},
    "convert": {"nemg_common", "wire", "edge", "convert"},
    "edge/cli": set(PROJECT),
}


def layer_of(rel: str) -> str:
    return "edge/cli" if rel.startswith("edge/cli/") else rel.split("/")[0]


def project_imports(source: str) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out & set(PROJECT)


MODULES = sorted(str(p.relative_to(ROOT)) for pkg in PROJECT for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("rel", MODULES)
def test_no_import_reaches_back_up(rel):
    wrong = project_imports((ROOT / rel).read_text()) - MAY_IMPORT[layer_of(rel)]
    assert not wrong, f"{rel} ({layer_of(rel)}) imports {sorted(wrong)}"


def test_the_contract_sees_a_wrong_way_import():
    assert project_imports("def f():\n    from edge.errors import InputError\n") == {"edge"}
    assert project_imports("import convert.synth as s\nfrom . import x\n") == {"convert"}
    assert len(MODULES) > 40 and layer_of("edge/cli/run.py") == "edge/cli"
