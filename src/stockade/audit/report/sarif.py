"""SARIF 2.1.0: one run, one rule per catalogue ID, one result per open finding."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from stockade.audit.checks import ALL
from stockade.audit.model import AuditResult, Severity, Status
from stockade.linux.hostfacts import HostFacts

_LEVEL = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning",
          Severity.LOW: "note", Severity.INFO: "note"}
# GitHub code scanning reads this property to rank results (0.0 - 10.0).
_SCORE = {Severity.CRITICAL: "9.5", Severity.HIGH: "8.0", Severity.MEDIUM: "5.5",
          Severity.LOW: "3.0", Severity.INFO: "0.0"}


def render(results: Sequence[AuditResult], host: HostFacts) -> str:
    rules = [{
        "id": c.id, "name": c.id.replace("-", "_"),
        "shortDescription": {"text": c.title},
        "fullDescription": {"text": c.doc},
        "help": {"text": f"Remediation: {c.remediation}"},
        "defaultConfiguration": {"level": _LEVEL[c.severity]},
        "properties": {"security-severity": _SCORE[c.severity], "tags": ["security", *c.references]},
    } for c in ALL.values()]
    index = {c.id: i for i, c in enumerate(ALL.values())}
    out: list[dict[str, Any]] = []
    for r in results:
        uri = f"container://{r.target.kind}/{r.target.name or r.target.pid}"
        for f in r.findings:
            if f.status is Status.ABSENT:
                continue
            level = _LEVEL[f.severity] if f.status.is_open else "none"
            out.append({
                "ruleId": f.id, "ruleIndex": index.get(f.id, 0), "level": level,
                "kind": "fail" if f.status.is_open else "notApplicable" if f.status is Status.NOT_APPLICABLE else "review",
                "message": {"text": f"{f.title} [{f.status.value}]: " + "; ".join(f.evidence[:3])},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}},
                               "logicalLocations": [{"name": r.target.describe(), "kind": "module"}]}],
                "properties": {"status": f.status.value, "severity": f.severity.label,
                               "proof": f.proof, "remediation": f.remediation},
            })
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "stockade-audit", "informationUri": "https://stockade.dev",
                                "version": "0.1.0", "rules": rules}},
            "results": out,
            "properties": {"kernel": host.kernel_release, "cgroupMode": host.cgroup_mode},
        }],
    }
    return json.dumps(doc, indent=2) + "\n"
