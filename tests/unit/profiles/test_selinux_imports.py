"""The SELinux backend's modules import no circle: `module` once imported the package's
`template_text` inside a function while the package imported `module` (issue 18); the
shipped CIL readers now sit below both, in `shipped`."""

from __future__ import annotations

import ast
from pathlib import Path

import stockade.profiles.selinux
from tests.unit.image.test_imports import find_cycle

PACKAGE = "stockade.profiles.selinux"
ROOT = Path(stockade.profiles.selinux.__file__).parent
SUBMODULES = {p.stem for p in ROOT.glob("*.py") if p.stem != "__init__"}


def _imports(path: Path) -> set[str]:
    """The package's own modules `path` imports anywhere (function bodies too); a name the
    package's __init__ defines counts as importing the __init__."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
            out |= {a.name if a.name in SUBMODULES else "__init__" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE + "."):
            out.add(node.module.rsplit(".", 1)[1])
    return out


def test_selinux_modules_import_no_cycle() -> None:
    graph = {p.stem: _imports(p) for p in ROOT.glob("*.py")}
    assert "module" in graph["__init__"] and "shipped" in graph["module"]
    assert find_cycle(graph) is None, find_cycle(graph)
