"""Planning: one policy -> per arch, the rules libseccomp, Docker and runc all read alike.

Every output is built from this plan, so they cannot drift: the BPF program through
libseccomp (`build`), the Docker/OCI JSON written out (`docker_json`). Conditions
(`when`/`unless`) are decided here, at compile time, from the policy's kept
capabilities and the host facts passed in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from stockade.linux.hostfacts import HostFacts
from stockade.linux.syscall_table import syscall_table
from stockade.policy import model as m
from stockade.policy.network import EAFNOSUPPORT, allowed_region
from stockade.policy.semantics import applicable_rules, fallback, most_restrictive, restrictiveness
from stockade.seccomp.arches import ARGS_32BIT
from stockade.seccomp.argsets import (
    TERM_LIMIT,
    complement,
    negate_conjunction,
    normalise,
    too_complex,
)
from stockade.seccomp.rewrite import as_blocks, pad, uninverted
from stockade.seccomp.rules import ALWAYS, ArchPlan, PlannedRule


@dataclass(frozen=True)
class Escalation:
    """How far each syscall's rules had to be rewritten before libseccomp built them
    right (see `filter.compile_filter`); every output is planned with the same record."""

    narrow_pads: frozenset[str] = frozenset()  # padded with `ge 0` even over 64-bit args
    exact: frozenset[str] = frozenset()  # every rule cut down to where no stricter one matches
    no_ranges: frozenset[str] = frozenset()  # range comparisons written as masked blocks
    no_inverted: frozenset[str] = frozenset()  # no ne/lt/le before a rule's last argument

    def escalate(self, wrong: frozenset[str]) -> Escalation:
        """One more step for each syscall in `wrong`: other pads, then rules cut apart
        exactly, then no inverted comparisons early in a rule, then no range comparisons."""
        return Escalation(self.narrow_pads | wrong, self.exact | (wrong & self.narrow_pads),
                          self.no_ranges | (wrong & self.no_inverted),
                          self.no_inverted | (wrong & self.exact))


def plan_arch(policy: m.Policy, arch: str, host: HostFacts, escalation: Escalation = Escalation(),
              wide_pads: bool | None = None) -> ArchPlan:
    """What to tell libseccomp for one arch (syscalls not on that arch are left out).

    libseccomp gives each syscall either one argument-free action or argument rules that
    fall back to the filter's default, refuses rules equal to the default and identical
    rules with two actions. So a syscall's own fallback, when it differs from the default,
    is written as rules for the exact complement of its argument rules; a stricter rule
    that cannot be emitted (it equals the default) is cut out of the looser rules; and
    where rules overlap, libseccomp lets the stricter action win — which `compile_filter`
    verifies on boundary values, recompiling a syscall in `exact` mode (every rule cut
    down to where no stricter rule matches) if it ever did not (`escalation`).
    `wide_pads`: see `rewrite.pad` (default: by the arch's argument width).
    """
    sc = policy.syscalls
    default = sc.default
    table = syscall_table().by_arch[arch]
    planned: list[PlannedRule] = []
    for name in sorted(table):
        base = fallback(sc, name).action
        rules = applicable_rules(policy, name, arch, host.kernel)
        if arch in ARGS_32BIT:
            rules = _on_low_words(rules)
        unconditional = [r.action for r in rules if not r.args]
        if unconditional:
            # an argument-free rule matches every call; only stricter argument rules matter
            base = most_restrictive(unconditional)
            conditional = [r for r in rules if r.args and _stricter(r.action, base)]
        else:
            conditional = [r for r in rules if r.args]
        if not any(_stricter(base, r.action) for r in conditional):
            # no rule is looser than the fallback: one with the fallback's own action
            # changes nothing (a stricter match still wins), so it need not be written
            conditional = [r for r in conditional if r.action != base]
        if not conditional:
            if base != default:
                planned.append(PlannedRule(name, base))
            continue
        stricter: list[m.SyscallRule] = []
        for r in sorted(conditional, key=lambda r: restrictiveness(r.action), reverse=True):
            region = normalise(r.args)  # [] for a rule that can never match (`lt 0`)
            for s in stricter:
                if name in escalation.exact or s.action == default or s.args == r.args:
                    region = [t for term in region for neg in negate_conjunction(s.args)
                              for t in normalise((*term, *neg))]
            stricter.append(r)
            if r.action == default:
                continue
            for term in region:
                planned.append(PlannedRule(name, r.action, term or ALWAYS))
        if base != default:
            for term in complement([r.args for r in conditional]):
                planned.append(PlannedRule(name, base, term or ALWAYS))
    if policy.network.allow:
        planned = _restrict_sockets(planned, policy, default)
    if escalation.no_ranges:
        planned = [q for r in planned for q in (as_blocks(r) if r.syscall in escalation.no_ranges else [r])]
    wide = arch not in ARGS_32BIT if wide_pads is None else wide_pads
    planned = pad(planned, wide, escalation.narrow_pads)
    if escalation.no_inverted:  # after the pads: they decide which argument comes last
        planned = [q for r in planned for q in (
            uninverted(r, ranges=r.syscall not in escalation.no_ranges) if r.syscall in escalation.no_inverted
            else [r])]
    if arch in ARGS_32BIT:  # blocks written above may lie wholly above 32 bits: never there
        planned = [r for r in planned if _low_words(r.args) is not None]
    per_syscall: dict[str, int] = {}
    for pr in planned:
        per_syscall[pr.syscall] = per_syscall.get(pr.syscall, 0) + 1
    if per_syscall and max(per_syscall.values()) > TERM_LIMIT:
        raise too_complex(max(per_syscall.values()))
    return ArchPlan(arch, default, tuple(dict.fromkeys(planned)))


def _on_low_words(rules: list[m.SyscallRule]) -> list[m.SyscallRule]:
    """The rules as they read on an arch whose filter sees 32-bit arguments (ARGS_32BIT):
    a comparison with a wider value decided once (`ge 2**40` never holds, `ne 2**40`
    always does) instead of left to libseccomp, which compares the value's low word
    (`ge 2**40` became `ge 0`: always)."""
    out = []
    for r in rules:
        args = _low_words(r.args)
        if args is not None:
            out.append(dataclasses.replace(r, args=args))
    return out


def _low_words(conds: tuple[m.ArgCondition, ...]) -> tuple[m.ArgCondition, ...] | None:
    """`conds` on 32-bit arguments: the ones that always hold left out; None if one never does."""
    low = 0xFFFFFFFF
    out = []
    for c in conds:
        if c.op is m.ArgOp.MASKED_EQ:
            if c.value & ~low:
                return None
            c = m.ArgCondition(c.index, c.op, c.value, c.mask & low)
            if c.mask:
                out.append(c)
        elif c.value <= low:
            out.append(c)
        elif c.op not in (m.ArgOp.NE, m.ArgOp.LT, m.ArgOp.LE):  # every argument is below the value
            return None
    return tuple(out)


def _restrict_sockets(planned: list[PlannedRule], policy: m.Policy, default: m.Action) -> list[PlannedRule]:
    """`network.allow` decides socket() within its region: those calls are allowed even
    where the syscall rules (a base preset's `deny: [socket]`) refuse them; outside it,
    what the rules allowed gets EAFNOSUPPORT and what they refused keeps their action
    (policy.semantics.decide, the reference). The pieces stay disjoint from each other."""
    region = allowed_region(policy.network.allow)
    outside = complement(region)
    sockets = [r for r in planned if r.syscall == "socket"]
    out = [r for r in planned if r.syscall != "socket"]
    if default.is_allow:  # where no socket() rule matches, the default allows: cut that
        sockets += [PlannedRule("socket", default, term) for term in
                    complement([() if r.args == ALWAYS else r.args for r in sockets])]

    def outside_of(r: PlannedRule) -> list[PlannedRule]:
        base = () if r.args == ALWAYS else r.args
        action = EAFNOSUPPORT if r.action.is_allow else r.action
        if action == default:
            return []
        return [PlannedRule("socket", action, t or ALWAYS)
                for term in outside for t in normalise((*base, *term))]

    # refusals first, then the grant, then the allows cut down: the order they had
    for r in sockets:
        if not r.action.is_allow:
            out += outside_of(r)
    if default != m.ALLOW:
        out += [PlannedRule("socket", m.ALLOW, term or ALWAYS) for term in region]
    for r in sockets:
        if r.action.is_allow:
            out += outside_of(r)
    return out


def _stricter(a: m.Action, b: m.Action) -> bool:
    return a != b and most_restrictive([a, b]) == a


def skipped_notes(policy: m.Policy) -> list[str]:
    """Syscalls the policy file itself names (not via a group or a preset) that do not
    exist on some of its arches: they are skipped on those arches only."""
    table = syscall_table()
    sc = policy.syscalls
    own = policy.sources[-1] if policy.sources else ""
    if own.startswith("<preset:"):
        return []  # presets list every arch's names on purpose (Docker's profile does)
    named: set[str] = {
        e.name for e in (*sc.allow.values(), *sc.deny.values()) if not e.via_group and e.origin.file == own
    }
    named |= {n for r in sc.rules if r.origin.file == own for n in r.syscalls}
    missing_by_arches: dict[tuple[str, ...], list[str]] = {}
    for name in sorted(named):
        missing = tuple(a for a in sc.arches if name not in table.by_arch[a])
        if missing:
            missing_by_arches.setdefault(missing, []).append(name)
    return [
        f"not a syscall on {', '.join(arches)}, skipped there: {', '.join(names)}"
        for arches, names in sorted(missing_by_arches.items())
    ]
