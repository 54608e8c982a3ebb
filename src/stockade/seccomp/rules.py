"""The planned rule set: what the BPF program and the Docker/OCI JSON are both built from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from stockade.policy import model as m
from stockade.policy.semantics import restrictiveness


@dataclass(frozen=True)
class PlannedRule:
    """One libseccomp rule: `action` for `syscall` when all `args` hold."""

    syscall: str
    action: m.Action
    args: tuple[m.ArgCondition, ...] = ()


@dataclass(frozen=True)
class ArchPlan:
    """Everything libseccomp is told for one arch: its default and its rules."""

    arch: str
    default: m.Action
    rules: tuple[PlannedRule, ...]


# An argument check that always holds: keeps a rule "conditional" for libseccomp, so it
# does not override the syscall's other (disjoint) argument rules (`rewrite.pad` picks
# the form libseccomp builds right).
ALWAYS = (m.ArgCondition(0, m.ArgOp.GE, 0),)


def ordered(rules: Iterable[PlannedRule]) -> list[PlannedRule]:
    """libseccomp's rule order, which runc follows for the JSON too: per syscall, argument
    rules first, the strictest first (where two collide, the first added wins)."""
    return sorted(rules, key=lambda r: (r.syscall, not r.args, tuple(-x for x in restrictiveness(r.action))))
