"""--fix: a stockade policy that closes the open findings, starting from what the container
has now (its current capabilities), so audit -> compile -> run closes the loop."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import yaml

from stockade.audit.model import AuditResult
from stockade.errors import StockadeError

ALL_NAMESPACES = ["user", "pid", "mount", "net", "ipc", "uts", "cgroup"]


def _name(result: AuditResult) -> str:
    raw = re.sub(r"[^a-z0-9_-]+", "-", (result.target.name or str(result.target.pid)).lower())
    return ("audit-fix-" + raw.strip("-"))[:63]


def _set(doc: dict[str, Any], path: str, value: object) -> None:
    keys = path.split(".")
    node = doc
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    last = keys[-1]
    if isinstance(value, list):
        current = node.setdefault(last, [])
        for item in value:
            if item not in current:
                current.append(item)
    else:
        node[last] = value


def policy_for(result: AuditResult) -> dict[str, Any]:
    doc: dict[str, Any] = {"stockade": 1, "name": _name(result),
                           "description": f"closes what stockade audit found in {result.target.describe()}",
                           "extends": ["default"]}
    fixes: dict[str, Any] = {}
    for f in result.findings:
        if not f.status.is_open:
            continue
        for path, value in f.fix:
            _set(fixes, path, value)
    drop = fixes.get("capabilities", {}).pop("drop", [])
    if drop or result.current_caps:
        # Start from what the container has, minus what the audit flagged.
        keep = [c for c in result.current_caps if c not in drop and "ALL" not in drop]
        doc["capabilities"] = {"drop": ["ALL"], "add": keep}
    if "namespaces" in fixes:
        fixes["namespaces"] = ALL_NAMESPACES
    if "extends" in fixes:
        fixes.pop("extends")
    for key, value in fixes.items():
        if key == "capabilities" and not value:
            continue
        _set(doc, key, value) if not isinstance(value, dict) else _merge(doc, key, value)
    return doc


def _merge(doc: dict[str, Any], key: str, value: dict[str, Any]) -> None:
    for sub, v in value.items():
        _set(doc, f"{key}.{sub}", v)


def render(result: AuditResult) -> str:
    return yaml.safe_dump(policy_for(result), sort_keys=False)


def policies(results: Sequence[AuditResult]) -> list[tuple[str, dict[str, Any]]]:
    """`--all --fix DIR`: one policy per container (a policy file holds one document, and
    containers differ), as (file name, document); names made unique across containers."""
    out: list[tuple[str, dict[str, Any]]] = []
    taken: set[str] = set()
    for r in results:
        doc = policy_for(r)
        name, n = doc["name"], 1
        while name in taken:
            n += 1
            name = f"{doc['name'][:63 - len(str(n)) - 1]}-{n}"
        taken.add(name)
        doc["name"] = name
        out.append((f"{name}.yaml", doc))
    return out


def write_policies(path: str, results: Sequence[AuditResult], *, many: bool) -> list[str]:
    """`--fix PATH`: the policy of one result as the file PATH, or (`many`) one policy per
    result in the directory PATH (created if missing); returns the files written. Each
    policy is proven to load, then renamed into place (never a partial file)."""
    from stockade.learn.output import check_and_write

    try:
        if not many:
            check_and_write(policy_for(results[0]), path)
            return [path]
        os.makedirs(path, exist_ok=True)
        written = []
        for name, doc in policies(results):
            check_and_write(doc, os.path.join(path, name))
            written.append(os.path.join(path, name))
        return written
    except OSError as exc:
        raise StockadeError(f"--fix {path}: cannot write: {exc.strerror}") from None
