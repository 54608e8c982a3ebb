"""The image package has no import circle (issue 18): each module imports alone in a fresh
interpreter, and the modules' imports, function-local ones included, form no cycle (a
local import is how a circle hides: store -> rootfs -> store imported fine until run)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import stockade.image

PACKAGE = Path(stockade.image.__file__).parent
MODULES = sorted(f"stockade.image.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def image_imports(path: Path) -> set[str]:
    """The stockade.image modules `path` imports anywhere in its body."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return {name for name in out if name in MODULES}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that returns to its start, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for nxt in sorted(edges.get(node, ())):
            found = visit(nxt, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    for start in sorted(edges):
        found = visit(start, [])
        if found:
            return found
    return None


def test_find_cycle_sees_a_circle_through_a_local_import() -> None:
    # the shape the package had: store imported rootfs inside prune(), rootfs imports store
    cycle = find_cycle({"store": {"rootfs"}, "rootfs": {"copytree", "store"}, "copytree": {"store"}})
    assert cycle is not None and cycle[0] == cycle[-1] and {"store", "rootfs"} <= set(cycle), cycle
    assert find_cycle({"rootfs": {"copytree", "store"}, "copytree": {"store"}, "store": set()}) is None


def test_image_modules_form_no_import_cycle() -> None:
    edges = {name: image_imports(PACKAGE / f"{name.rsplit('.', 1)[1]}.py") for name in MODULES}
    assert len(edges) >= 10
    assert find_cycle(edges) is None


@pytest.mark.parametrize("module", MODULES)
def test_each_image_module_imports_alone(module: str) -> None:
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
