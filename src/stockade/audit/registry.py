"""Check registration and evaluation.

Checks are registered explicitly (a tuple per module, listed in checks/__init__.py);
a duplicate ID fails at import. A check that crashes is reported as `error`, never a pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from stockade.audit.model import Finding, Severity, Status, Verdict
from stockade.audit.probe import Outcome, Probe
from stockade.audit.view import View

_ID = re.compile(r"^[A-Z0-9]+(-[A-Z0-9_]+)*$")


@dataclass(frozen=True)
class Proofs:
    """The outcomes of one check's probes (keys without the check-ID prefix)."""

    outcomes: Mapping[str, Outcome]
    error: str = ""

    def get(self, key: str) -> Outcome | None:
        return self.outcomes.get(key)

    def ok(self, key: str) -> bool:
        o = self.outcomes.get(key)
        return o is not None and o.ok

    def line(self, key: str) -> str:
        o = self.outcomes.get(key)
        if o is None:
            return f"{key}: not run ({self.error or 'no result'})"
        return f"{key}: {o.describe()}"


Evaluate = Callable[[View, Proofs], Verdict]
ProbePlan = Callable[[View], Mapping[str, Probe]]


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    severity: Severity
    remediation: str
    references: tuple[str, ...]
    evaluate: Evaluate
    probes: ProbePlan | None = None
    host_only: bool = False  # needs facts only the host has (runtime binaries)
    active: bool = False  # its probe sends network traffic: it runs only with --active

    @property
    def doc(self) -> str:
        return (self.evaluate.__doc__ or self.title).strip()


def check(id: str, title: str, severity: Severity, *, remediation: str,
          references: Iterable[str] = (), probes: ProbePlan | None = None,
          host_only: bool = False, active: bool = False) -> Callable[[Evaluate], Check]:
    def wrap(fn: Evaluate) -> Check:
        if not _ID.match(id):
            raise ValueError(f"bad check id {id!r}")
        return Check(id, title, severity, remediation, tuple(references), fn, probes, host_only,
                     active)
    return wrap


def build(groups: Iterable[Iterable[Check]]) -> Mapping[str, Check]:
    table: dict[str, Check] = {}
    for group in groups:
        for c in group:
            if c.id in table:
                raise ImportError(f"duplicate audit check id {c.id}")
            table[c.id] = c
    return table


def plan_probes(view: View, checks: Iterable[Check]) -> tuple[dict[str, Probe], list[Finding]]:
    """All probes of all checks, keyed "ID:sub"; a check whose planning crashes is an error."""
    probes: dict[str, Probe] = {}
    failed: list[Finding] = []
    for c in checks:
        if c.probes is None:
            continue
        try:
            for key, probe in c.probes(view).items():
                probes[f"{c.id}:{key}"] = probe
        except Exception as exc:  # noqa: BLE001 - one broken check must not stop the audit
            failed.append(_error(c, f"planning probes crashed: {exc!r}"))
    return probes, failed


def evaluate(view: View, c: Check, outcomes: Mapping[str, Outcome], probe_error: str) -> Finding:
    prefix = c.id + ":"
    mine = {k[len(prefix):]: v for k, v in outcomes.items() if k.startswith(prefix)}
    try:
        verdict = c.evaluate(view, Proofs(mine, probe_error))
    except Exception as exc:  # noqa: BLE001 - a crashing check reports error, never a pass
        return _error(c, f"check crashed: {exc!r}")
    return Finding(
        id=c.id, title=c.title, severity=verdict.severity or c.severity, status=verdict.status,
        evidence=verdict.evidence, remediation=c.remediation, references=c.references,
        proof=verdict.proof, fix=verdict.fix,
    )


def _error(c: Check, message: str) -> Finding:
    return Finding(c.id, c.title, c.severity, Status.ERROR, (message,), c.remediation,
                   c.references)
