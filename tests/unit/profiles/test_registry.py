"""One registry of targets: every record resolves, and the profiles modules import alone."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import stockade.profiles
from stockade.errors import StockadeError
from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import Policy
from stockade.profiles import registry


def test_every_record_names_code_that_exists() -> None:
    assert len(registry.TARGETS) == 11
    for t in registry.TARGETS.values():
        assert t.name and callable(registry._load(t.compiler, t.name))
        if t.enforcements is not None:
            assert callable(registry._load(t.enforcements, t.name))
        for b in (*t.deploys, *t.deploys_if_asked):
            assert b in {other.backend for other in registry.TARGETS.values()}, (t.name, b)


def test_composites_deploy_the_lsm_profiles_only_when_asked(web_api: Policy, batch: Policy) -> None:
    assert web_api.lsm.apparmor is not None and batch.lsm.apparmor is None
    docker = registry.TARGETS["docker"]
    assert docker.backends(web_api)[-1] == "docker"
    assert "apparmor" in docker.backends(web_api)
    assert "apparmor" not in docker.backends(batch)
    assert registry.TARGETS["apparmor"].backends(web_api) == ("apparmor",)


def test_constituents_are_the_deployed_profiles_records(web_api: Policy, host: HostFacts,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    real = registry.backend_enforcements

    def recording(backend: str, policy: Policy, h: HostFacts):  # type: ignore[no-untyped-def]
        asked.append(backend)
        return () if backend == "seccomp" else real(backend, policy, h)

    monkeypatch.setattr(registry, "backend_enforcements", recording)
    records = registry.constituent_enforcements(web_api, host, "oci")
    assert asked == ["seccomp", "capabilities", "apparmor"]  # never oci's own
    assert {e.backend for e in records} == {"capabilities", "apparmor"}


def test_unknown_target_names_the_closest() -> None:
    with pytest.raises(StockadeError, match=r"unknown target 'dokcer' \(did you mean 'docker'\?\)"):
        registry.target("dokcer")


def _profiles_import_graph() -> dict[str, set[str]]:
    """profiles module -> the profiles modules it imports anywhere (function bodies too); a
    subpackage (selinux/) counts as one module."""
    root = Path(stockade.profiles.__file__).parent

    def unit(dotted: str) -> str | None:
        parts = dotted.split(".")
        if parts[:2] != ["stockade", "profiles"] or len(parts) < 3:
            return None
        return parts[2] if (root / parts[2]).exists() or (root / f"{parts[2]}.py").exists() else None

    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        me = path.relative_to(root).parts[0].removesuffix(".py")
        deps = graph.setdefault(me, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            deps.update(u for u in map(unit, names) if u is not None and u != me)
    return graph


def test_profiles_modules_import_no_cycle() -> None:
    """Read every import (lazy ones too): enforcement once imported the targets that
    imported it back; now nothing in profiles/ reaches itself again."""
    graph = _profiles_import_graph()
    assert {"registry", "enforcement", "docker", "oci", "kubernetes"} <= set(graph)

    def reaches(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(graph[start])
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo += graph.get(m, ())
        return seen

    assert [m for m in sorted(graph) if m in reaches(m)] == []
    assert reaches("registry") <= {"base"}  # targets are named, not imported


@pytest.mark.parametrize("module", ["registry", "enforcement", "docker"])
def test_module_imports_alone(module: str) -> None:
    proc = subprocess.run([sys.executable, "-c", f"import stockade.profiles.{module}"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
