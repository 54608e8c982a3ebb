"""The report document (what JSON carries; the other formats render it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from stockade.audit.model import AuditResult, Finding, Severity, Status
from stockade.linux.hostfacts import HostFacts

SCHEMA_ID = "https://stockade.dev/schemas/audit-report-1.json"
VERSION = 1


def finding_dict(f: Finding) -> dict[str, Any]:
    return {"id": f.id, "title": f.title, "severity": f.severity.label, "status": f.status.value,
            "evidence": list(f.evidence), "proof": f.proof, "remediation": f.remediation,
            "references": list(f.references)}


def summary(r: AuditResult) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = {s.value: {} for s in Status}
    for f in r.findings:
        bucket = counts[f.status.value]
        bucket[f.severity.label] = bucket.get(f.severity.label, 0) + 1
    return counts


def host_dict(h: HostFacts) -> dict[str, Any]:
    return {"kernel": h.kernel_release, "kernel_version": h.kernel_version, "lsms": list(h.lsms),
            "apparmor": h.apparmor_enabled, "selinux": h.selinux_mode, "cgroup_mode": h.cgroup_mode,
            "cap_last_cap": h.cap_last_cap, "from_inside": h.from_inside,
            "runtimes": {k: {"version": v.version, "package": v.package} for k, v in h.runtimes.items()}}


def build(results: Sequence[AuditResult], host: HostFacts) -> dict[str, Any]:
    return {
        "$schema": SCHEMA_ID,
        "version": VERSION,
        "tool": {"name": "stockade", "command": "audit"},
        "host": host_dict(host),
        "audits": [
            {"target": asdict(r.target), "duration_s": round(r.duration_s, 4), "notes": list(r.notes),
             "findings": [finding_dict(f) for f in r.findings if f.status is not Status.ABSENT],
             "passed": [f.id for f in r.findings if f.status is Status.ABSENT],
             "summary": summary(r)}
            for r in results
        ],
    }


def open_by_severity(results: Sequence[AuditResult]) -> dict[str, int]:
    out = {s.label: 0 for s in reversed(Severity)}
    for r in results:
        for f in r.findings:
            if f.status.is_open:
                out[f.severity.label] += 1
    return out
