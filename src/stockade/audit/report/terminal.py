"""Terminal table (rich)."""

from __future__ import annotations

import io
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from stockade.audit.model import AuditResult, Status
from stockade.linux.hostfacts import HostFacts

STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


def render(results: Sequence[AuditResult], host: HostFacts, *, color: bool = False, width: int = 160) -> str:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=color, width=width, color_system="standard" if color else None)
    for r in results:
        table = Table(title=f"{r.target.describe()}  ({r.duration_s * 1000:.0f} ms)", show_lines=False)
        for col in ("ID", "Severity", "Status", "Evidence"):
            table.add_column(col, overflow="fold")
        for f in r.findings:
            if f.status is Status.ABSENT:
                continue
            sev = f.severity.label
            table.add_row(f.id, f"[{STYLE[sev]}]{sev}[/]", f.status.value, (f.evidence or ("",))[0])
        console.print(table)
        passed = sum(1 for f in r.findings if f.status is Status.ABSENT)
        console.print(f"{passed} checks passed; {len(r.notes)} notes" + "".join(f"\n  note: {n}" for n in r.notes))
    return buf.getvalue()
