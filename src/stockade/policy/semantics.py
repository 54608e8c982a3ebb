"""What a policy means for one syscall: the reference every backend is checked against.

Order (POLICY.md): a matching `rules` entry beats `deny`, `deny` beats `allow`, `allow`
beats `default`. Rules for one syscall are ORed; when several match, the most restrictive
action wins, so overlapping rules can never loosen each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stockade.policy import model as m
from stockade.policy.network import EAFNOSUPPORT, socket_permitted

# Higher = more restrictive (the kernel's own precedence among seccomp return values).
_RESTRICTIVENESS = {
    m.ActionKind.KILL_PROCESS: 7,
    m.ActionKind.KILL_THREAD: 6,
    m.ActionKind.TRAP: 5,
    m.ActionKind.ERRNO: 4,
    m.ActionKind.NOTIFY: 3,
    m.ActionKind.LOG: 2,
    m.ActionKind.ALLOW: 1,
}


def restrictiveness(action: m.Action) -> tuple[int, int]:
    """Sort key: larger is stricter; among errnos the lower number wins (a fixed tie-break)."""
    return (_RESTRICTIVENESS[action.kind], -action.errno)


def most_restrictive(actions: Sequence[m.Action]) -> m.Action:
    return max(actions, key=restrictiveness)


@dataclass(frozen=True)
class Decision:
    action: m.Action
    reason: str  # "rule", "deny", "allow", "default", "unknown"
    rule: m.SyscallRule | None = None
    entry: m.NamedEntry | None = None


def fallback(sc: m.SyscallPolicy, name: str) -> Decision:
    """The name-level decision, before argument rules."""
    if name in sc.deny:
        return Decision(sc.deny_action, "deny", entry=sc.deny[name])
    if name in sc.allow:
        return Decision(m.ALLOW, "allow", entry=sc.allow[name])
    return Decision(sc.default, "default")


def applicable_rules(
    policy: m.Policy, name: str, arch: str, kernel: tuple[int, int]
) -> list[m.SyscallRule]:
    kept = policy.capabilities.kept
    return [
        r for r in policy.syscalls.rules if name in r.syscalls and r.applies(arch, kept, kernel)
    ]


def decide(
    policy: m.Policy,
    name: str | None,
    arch: str,
    args: Sequence[int] = (0, 0, 0, 0, 0, 0),
    kernel: tuple[int, int] = (99, 0),
) -> Decision:
    """The action for syscall `name` (None: not in the vocabulary) on `arch` with `args`."""
    sc = policy.syscalls
    if name is None:
        return Decision(sc.unknown, "unknown")
    matching = [
        r
        for r in applicable_rules(policy, name, arch, kernel)
        if all(c.holds(args[c.index]) for c in r.args)
    ]
    if matching:
        action = most_restrictive([r.action for r in matching])
        rule = next(r for r in matching if r.action == action)
        decision = Decision(action, "rule", rule=rule)
    else:
        decision = fallback(sc, name)
    if name == "socket" and policy.network.allow:
        # network.allow decides socket() (seccomp.plan._restrict_sockets): a listed
        # family is granted even where the syscall rules (a base preset) deny it; an
        # unlisted one the rules allowed fails as if the kernel lacked it.
        if socket_permitted(policy.network.allow, args):
            return decision if decision.action.is_allow else Decision(m.ALLOW, "network")
        if decision.action.is_allow:
            return Decision(EAFNOSUPPORT, "network")
    return decision
