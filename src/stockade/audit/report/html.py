"""A self-contained HTML page: inline CSS and an inline SVG summary chart, no scripts."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from stockade.audit.model import AuditResult, Status
from stockade.audit.report.document import open_by_severity
from stockade.linux.hostfacts import HostFacts

COLORS = {"critical": "#8b0000", "high": "#d9480f", "medium": "#e8a400", "low": "#4a7ab7",
          "info": "#888888"}
# A fixed layout with set column widths, and evidence allowed to break anywhere: one long
# evidence line (a mount path, a cap mask) must not push Proof and Remediation off-screen.
CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;
width:100%;margin-bottom:2em;table-layout:fixed}td,th{border:1px solid #ccc;padding:4px 6px;
vertical-align:top;font-size:13px;overflow-wrap:anywhere;word-break:break-word}
th{background:#f3f3f3}.sev{color:#fff;padding:1px 6px;border-radius:3px}
code{font-size:12px;white-space:pre-wrap}"""
COLUMNS = (("ID", 16), ("Severity", 7), ("Status", 8), ("Evidence", 29), ("Proof", 20),
           ("Remediation", 20))
HEADER = ("<colgroup>" + "".join(f'<col style="width:{pct}%">' for _, pct in COLUMNS)
          + "</colgroup><tr>" + "".join(f"<th>{name}</th>" for name, _ in COLUMNS) + "</tr>")


def chart(counts: dict[str, int]) -> str:
    width, bar_h, gap = 420, 22, 6
    top = max(counts.values()) or 1
    rows = []
    for i, (sev, n) in enumerate(counts.items()):
        y = i * (bar_h + gap)
        w = int((width - 140) * n / top)
        rows.append(f'<text x="0" y="{y + 16}" font-size="13">{sev}</text>'
                    f'<rect x="80" y="{y}" width="{w}" height="{bar_h}" fill="{COLORS[sev]}"/>'
                    f'<text x="{86 + w}" y="{y + 16}" font-size="13">{n}</text>')
    height = len(counts) * (bar_h + gap)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="open findings by severity" '
            f'width="{width}" height="{height}">{"".join(rows)}</svg>')


def render(results: Sequence[AuditResult], host: HostFacts) -> str:
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>stockade audit</title>",
             f"<style>{CSS}</style></head><body><h1>stockade audit</h1>",
             f"<p>Kernel {escape(host.kernel_release)}, cgroup {escape(host.cgroup_mode)}, "
             f"LSMs {escape(', '.join(host.lsms) or 'none')}.</p>",
             "<h2>Open findings by severity</h2>", chart(open_by_severity(results))]
    for r in results:
        parts.append(f"<h2>{escape(r.target.describe())}</h2><table>{HEADER}")
        for f in r.findings:
            if f.status is Status.ABSENT:
                continue
            sev = f.severity.label
            parts.append(
                f"<tr><td><code>{escape(f.id)}</code><br>{escape(f.title)}</td>"
                f"<td><span class='sev' style='background:{COLORS[sev]}'>{sev}</span></td>"
                f"<td>{escape(f.status.value)}</td>"
                f"<td>{'<br>'.join(f'<code>{escape(e)}</code>' for e in f.evidence[:4])}</td>"
                f"<td>{escape(f.proof)}</td><td>{escape(f.remediation)}<br>"
                f"<small>{escape(', '.join(f.references))}</small></td></tr>")
        parts.append("</table>")
        passed = [f.id for f in r.findings if f.status is Status.ABSENT]
        parts.append(f"<p>Passed ({len(passed)}): {escape(', '.join(passed))}</p>")
    parts.append("</body></html>\n")
    return "".join(parts)
