"""The audit's value types: severities, statuses, findings, targets."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Severity(enum.IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        aliases = {"i": "info", "l": "low", "m": "medium", "h": "high", "c": "critical"}
        name = aliases.get(text.lower(), text.lower())
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r}") from None


class Status(enum.Enum):
    EXPLOITABLE = "exploitable"  # a harmless proof inside the container's confinement worked
    PRESENT = "present"  # the condition is there, not (or not safely) proved
    NOT_APPLICABLE = "not-applicable"  # could not run here (never a pass)
    ERROR = "error"  # the check crashed or its input vanished (never a pass)
    ABSENT = "absent"  # the check ran and the vector is closed: the only pass

    @property
    def is_open(self) -> bool:
        return self in (Status.EXPLOITABLE, Status.PRESENT)


@dataclass(frozen=True)
class Verdict:
    """What a check's evaluation returns; the registry turns it into a Finding."""

    status: Status
    evidence: tuple[str, ...] = ()
    proof: str = ""
    severity: Severity | None = None  # overrides the check's default (e.g. M/H rows)
    fix: tuple[tuple[str, object], ...] = ()  # (policy key path, value) pairs for --fix


def absent(*evidence: str) -> Verdict:
    return Verdict(Status.ABSENT, tuple(evidence))


def na(reason: str) -> Verdict:
    return Verdict(Status.NOT_APPLICABLE, (reason,))


@dataclass(frozen=True)
class Finding:
    id: str
    title: str
    severity: Severity
    status: Status
    evidence: tuple[str, ...]
    remediation: str
    references: tuple[str, ...]
    proof: str = ""
    fix: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class Target:
    """How the container was found and which process stands for it."""

    kind: str  # pid | docker | runc | stockade | self
    pid: int
    name: str = ""
    runtime: str = ""
    image: str = ""
    rootfs: str = ""
    container_id: str = ""

    def describe(self) -> str:
        label = self.name or self.container_id[:12] or str(self.pid)
        return f"{self.kind}:{label} (pid {self.pid})"


@dataclass(frozen=True)
class AuditResult:
    target: Target
    findings: tuple[Finding, ...]
    duration_s: float
    notes: tuple[str, ...] = field(default=())
    current_caps: tuple[str, ...] = ()  # effective capabilities, the starting point for --fix

    def open_findings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.status is not Status.ABSENT)
