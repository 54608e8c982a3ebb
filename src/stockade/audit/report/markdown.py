"""Markdown report: a summary line and one table per target."""

from __future__ import annotations

from collections.abc import Sequence

from stockade.audit.model import AuditResult, Status
from stockade.linux.hostfacts import HostFacts


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(results: Sequence[AuditResult], host: HostFacts) -> str:
    lines = ["# stockade audit", "",
             f"Host: kernel {host.kernel_release}, cgroup {host.cgroup_mode}, "
             f"LSMs {', '.join(host.lsms) or 'none'}", ""]
    for r in results:
        lines += [f"## {_cell(r.target.describe())}", ""]
        if r.target.image:
            lines += [f"Image: `{r.target.image}`", ""]
        shown = [f for f in r.findings if f.status is not Status.ABSENT]
        lines += ["| ID | Severity | Status | Evidence | Remediation |", "|---|---|---|---|---|"]
        for f in shown:
            lines.append(f"| {f.id} | {f.severity.label} | {f.status.value} | "
                         f"{_cell('; '.join(f.evidence[:2]))} | {_cell(f.remediation)} |")
        passed = [f.id for f in r.findings if f.status is Status.ABSENT]
        lines += ["", f"Passed ({len(passed)}): {', '.join(passed)}", ""]
        for note in r.notes:
            lines.append(f"> note: {_cell(note)}")
    return "\n".join(lines) + "\n"
