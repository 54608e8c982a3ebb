"""One audit: View -> probes -> checks -> findings; and many audits in parallel."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from stockade.audit import caps, registry
from stockade.audit.checks import ALL
from stockade.audit.model import AuditResult, Finding, Status, Target
from stockade.audit.probe import run_probes
from stockade.audit.registry import Check
from stockade.audit.view import build_view, still_running
from stockade.errors import StockadeError
from stockade.linux.hostfacts import HostFacts


def audit(target: Target, host: HostFacts, *, active: bool = False,
          checks: Mapping[str, Check] = ALL) -> AuditResult:
    """Audit one target; raises StockadeError when it cannot be looked at at all."""
    start = time.monotonic()
    view = build_view(None if target.kind == "self" else target.pid, host, active=active,
                      container_id=target.container_id, runtime=target.runtime)
    probes, failed = registry.plan_probes(view, checks.values())
    run = run_probes(view, probes)
    if not still_running(view):
        raise StockadeError(f"{target.describe()} exited during the audit")
    failed_ids = {f.id for f in failed}
    findings = list(failed)
    findings += [registry.evaluate(view, c, run.outcomes, run.error)
                 for c in checks.values() if c.id not in failed_ids]
    order = {cid: i for i, cid in enumerate(checks)}
    findings.sort(key=lambda f: order[f.id])
    notes = list(view.notes)
    if run.error:
        notes.append(run.error)
    return AuditResult(target, tuple(findings), time.monotonic() - start, tuple(notes),
                       tuple(caps.names(view.cap_eff)))


def failed_result(target: Target, message: str, checks: Mapping[str, Check] = ALL) -> AuditResult:
    """When a target of --all cannot be audited: every check is an error, never a pass."""
    findings = tuple(Finding(c.id, c.title, c.severity, Status.ERROR, (message,), c.remediation,
                             c.references) for c in checks.values())
    return AuditResult(target, findings, 0.0, (message,))


def audit_many(targets: Iterable[Target], host: HostFacts, *, active: bool = False,
               workers: int = 8, on_done: Callable[[AuditResult], None] | None = None) -> list[AuditResult]:
    targets = list(targets)

    def one(t: Target) -> AuditResult:
        try:
            r = audit(t, host, active=active)
        except StockadeError as exc:
            r = failed_result(t, exc.message)
        if on_done is not None:
            on_done(r)
        return r

    if len(targets) <= 1:
        return [one(t) for t in targets]
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(targets)))) as pool:
        return list(pool.map(one, targets))
